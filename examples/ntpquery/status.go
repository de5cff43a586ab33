package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// daemonStatus is the body of an ntpkit daemon's GET /v1/status, as far as
// ntpquery prints it.
type daemonStatus struct {
	Version       string   `json:"version"`
	GoVersion     string   `json:"go_version"`
	Started       string   `json:"started"`
	UptimeSeconds float64  `json:"uptime_seconds"`
	Serving       bool     `json:"serving"`
	Listen        []string `json:"listen"`
	APIListen     string   `json:"api_listen"`
	Synchronized  bool     `json:"synchronized"`
	SyncReason    string   `json:"sync_reason"`
	Reference     struct {
		Leap                  string  `json:"leap"`
		Stratum               int     `json:"stratum"`
		RefID                 string  `json:"refid"`
		ReferenceTime         string  `json:"reference_time"`
		RootDelaySeconds      float64 `json:"root_delay_seconds"`
		RootDispersionSeconds float64 `json:"root_dispersion_seconds"`
		Precision             int     `json:"precision"`
		PrecisionSeconds      float64 `json:"precision_seconds"`
	} `json:"reference"`
	Config struct {
		Generation uint64 `json:"generation"`
		Successes  uint64 `json:"successes"`
		Failures   uint64 `json:"failures"`
		LastReload string `json:"last_reload"`
		LastError  string `json:"last_error"`
	} `json:"config"`
	Upstream json.RawMessage `json:"upstream"`
}

// statusEndpoint turns the API's base URL into the status URL; a URL that
// already has a path is used as it is.
func statusEndpoint(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("-status %q: %w", base, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("-status %q: want an http:// or https:// URL", base)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/status"
	}
	return u.String(), nil
}

// printStatus fetches a daemon's status and prints it.
func printStatus(w io.Writer, base, token string, timeout time.Duration) error {
	endpoint, err := statusEndpoint(base)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(http.MethodGet, endpoint, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: timeout}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", endpoint, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("%s: 401 unauthorized (give the token with -token-file or NTPKIT_API_TOKEN)", endpoint)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", endpoint, resp.Status, strings.TrimSpace(string(body)))
	}
	var st daemonStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("%s: %w", endpoint, err)
	}
	st.print(w, endpoint)
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (st *daemonStatus) print(w io.Writer, endpoint string) {
	r := &st.Reference
	sync := yesNo(st.Synchronized)
	if st.SyncReason != "" {
		sync += " (" + st.SyncReason + ")"
	}
	uptime := time.Duration(st.UptimeSeconds * float64(time.Second)).Truncate(time.Second)
	fmt.Fprintf(w, "status          %s\n", endpoint)
	fmt.Fprintf(w, "version         %s %s\n", st.Version, st.GoVersion)
	fmt.Fprintf(w, "started         %s (up %v)\n", st.Started, uptime)
	fmt.Fprintf(w, "serving         %s on %s\n", yesNo(st.Serving), strings.Join(st.Listen, ", "))
	fmt.Fprintf(w, "synchronized    %s\n", sync)
	fmt.Fprintf(w, "leap            %s\n", r.Leap)
	fmt.Fprintf(w, "stratum         %d\n", r.Stratum)
	fmt.Fprintf(w, "reference id    %s\n", r.RefID)
	fmt.Fprintf(w, "reference time  %s\n", r.ReferenceTime)
	fmt.Fprintf(w, "root delay      %v\n", time.Duration(r.RootDelaySeconds*float64(time.Second)))
	fmt.Fprintf(w, "root dispersion %v\n", time.Duration(r.RootDispersionSeconds*float64(time.Second)))
	fmt.Fprintf(w, "precision       %d (%v)\n", r.Precision, time.Duration(r.PrecisionSeconds*float64(time.Second)))
	c := &st.Config
	fmt.Fprintf(w, "config          generation %d, %d reloads, %d refused\n", c.Generation, c.Successes, c.Failures)
	if c.LastError != "" {
		fmt.Fprintf(w, "last refusal    %s\n", c.LastError)
	}
	if len(st.Upstream) > 0 && string(st.Upstream) != "null" {
		var buf bytes.Buffer
		if json.Indent(&buf, st.Upstream, "                ", "  ") == nil {
			fmt.Fprintf(w, "upstream        %s\n", buf.String())
		}
	}
}

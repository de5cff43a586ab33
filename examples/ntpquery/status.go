package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/ntpkit/ntpkit/server/ops"
)

// views are the daemon views ntpquery -status prints, after chronyc's
// commands of the same names.
var views = map[string]string{
	"status":      "the daemon: version, serving, sync state and its reason, reference, kernel clock, reloads",
	"tracking":    "the served clock, like chronyc tracking",
	"sources":     "the upstream sources, like chronyc sources (-v adds a legend)",
	"sourcestats": "each source's samples, failures by reason, offset, jitter and delay, like chronyc sourcestats",
	"serverstats": "requests, replies, drops, kisses, access control, rate limit and authentication, like chronyc serverstats",
}

// viewNames lists the views for the usage text.
func viewNames() string {
	names := make([]string, 0, len(views))
	for n := range views {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// apiClient reads an ntpkit daemon's management API.
type apiClient struct {
	base    *url.URL
	token   string
	timeout time.Duration
}

func newAPIClient(base, token string, timeout time.Duration) (*apiClient, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("-status %q: %w", base, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("-status %q: want an http:// or https:// URL", base)
	}
	// A URL naming an endpoint stands for the API's root.
	u.Path = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(u.Path, "/v1/status"), "/v1/stats"), "/")
	return &apiClient{base: u, token: token, timeout: timeout}, nil
}

// get fetches path and returns the body.
func (c *apiClient) get(path string) ([]byte, error) {
	u := *c.base
	u.Path += path
	endpoint := u.String()
	req, err := http.NewRequest(http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := (&http.Client{Timeout: c.timeout}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", endpoint, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, fmt.Errorf("%s: 401 unauthorized (give the token with -token-file or NTPKIT_API_TOKEN)", endpoint)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", endpoint, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// getJSON fetches path into v and returns the raw body.
func (c *apiClient) getJSON(path string, v any) (json.RawMessage, error) {
	body, err := c.get(path)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return body, nil
}

// printView prints one view of the daemon at base. With asJSON it prints
// the API's JSON the view is made from instead: /v1/status for status,
// tracking and sources, /v1/stats for serverstats, and both as
// {"status": ..., "stats": ...} for sourcestats.
func printView(w io.Writer, view, base, token string, timeout time.Duration, verbose, asJSON bool) error {
	if _, ok := views[view]; !ok {
		return &usageError{fmt.Sprintf("unknown view %q; the views are %s", view, viewNames())}
	}
	c, err := newAPIClient(base, token, timeout)
	if err != nil {
		return err
	}
	var st ops.Status
	var stats ops.Stats
	var rawStatus, rawStats json.RawMessage
	if view != "serverstats" {
		if rawStatus, err = c.getJSON("/v1/status", &st); err != nil {
			return err
		}
	}
	if view == "serverstats" || view == "sourcestats" {
		if rawStats, err = c.getJSON("/v1/stats", &stats); err != nil {
			return err
		}
	}
	if asJSON {
		var out any = rawStatus
		switch view {
		case "serverstats":
			out = rawStats
		case "sourcestats":
			out = map[string]json.RawMessage{"status": rawStatus, "stats": rawStats}
		}
		data, err := json.MarshalIndent(out, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", data)
		return err
	}
	switch view {
	case "status":
		printStatusView(w, &st)
	case "tracking":
		printTracking(w, &st)
	case "sources":
		printSources(w, &st, verbose)
	case "sourcestats":
		printSourceStats(w, &st, &stats)
	case "serverstats":
		printServerStats(w, &stats)
	}
	return nil
}

// seconds formats a duration given in seconds with a unit a human reads
// at a glance: ns, µs, ms or s, three significant digits or more.
func seconds(s float64) string {
	a := math.Abs(s)
	switch {
	case a == 0:
		return "0s"
	case a < 1e-6:
		return fmt.Sprintf("%.0fns", s*1e9)
	case a < 1e-3:
		return fmt.Sprintf("%.1fµs", s*1e6)
	case a < 1:
		return fmt.Sprintf("%.3fms", s*1e3)
	}
	return fmt.Sprintf("%.3fs", s)
}

// signed is seconds with an explicit sign.
func signed(s float64) string {
	if s >= 0 {
		return "+" + seconds(s)
	}
	return seconds(s)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// now is the daemon's time when it took the status.
func now(st *ops.Status) time.Time {
	return st.Started.Add(time.Duration(st.UptimeSeconds * float64(time.Second)))
}

// ago says how long before the status t was, or "-" for none.
func ago(st *ops.Status, t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	d := now(st).Sub(*t)
	switch {
	case d < 0:
		return "0s"
	case d < 100*time.Second:
		return fmt.Sprintf("%.0fs", d.Seconds())
	case d < 100*time.Minute:
		return fmt.Sprintf("%.0fm", d.Minutes())
	case d < 48*time.Hour:
		return fmt.Sprintf("%.0fh", d.Hours())
	}
	return fmt.Sprintf("%.0fd", d.Hours()/24)
}

func kernelLine(k ops.Kernel) string {
	if !k.Known {
		return "unknown (" + k.Error + ")"
	}
	sync := "synchronized"
	if !k.Synchronized {
		sync = "unsynchronized"
	}
	return fmt.Sprintf("%s (%s), max error %s, estimated error %s, frequency %+.3f ppm",
		sync, k.ClockState, seconds(k.MaxErrorSeconds), seconds(k.EstimatedErrorSeconds), k.FrequencyPPM)
}

func printStatusView(w io.Writer, st *ops.Status) {
	r := &st.Reference
	sync := yesNo(st.Synchronized)
	if st.SyncReason != "" {
		sync += " (" + st.SyncReason + ")"
	}
	uptime := time.Duration(st.UptimeSeconds * float64(time.Second)).Truncate(time.Second)
	fmt.Fprintf(w, "version         %s %s\n", st.Version, st.GoVersion)
	fmt.Fprintf(w, "started         %s (up %v)\n", st.Started.Format(time.RFC3339), uptime)
	fmt.Fprintf(w, "serving         %s on %s\n", yesNo(st.Serving), strings.Join(st.Listen, ", "))
	fmt.Fprintf(w, "synchronized    %s\n", sync)
	fmt.Fprintf(w, "leap            %s\n", r.Leap)
	fmt.Fprintf(w, "stratum         %d\n", r.Stratum)
	fmt.Fprintf(w, "reference id    %s\n", refidLabel(r.RefID, r.Stratum, st.Upstream == nil))
	fmt.Fprintf(w, "reference time  %s\n", r.ReferenceTime.Format(time.RFC3339))
	fmt.Fprintf(w, "root delay      %s\n", seconds(r.RootDelaySeconds))
	fmt.Fprintf(w, "root dispersion %s\n", seconds(r.RootDispersionSeconds))
	fmt.Fprintf(w, "precision       %d (%s)\n", r.Precision, seconds(r.PrecisionSeconds))
	fmt.Fprintf(w, "kernel clock    %s\n", kernelLine(st.Kernel))
	c := &st.Config
	fmt.Fprintf(w, "config          generation %d, %d reloads, %d refused\n", c.Generation, c.Successes, c.Failures)
	if c.LastError != "" {
		fmt.Fprintf(w, "last refusal    %s\n", c.LastError)
	}
	if u := st.Upstream; u != nil {
		reach := 0
		for _, s := range u.Sources {
			if s.Reach != 0 {
				reach++
			}
		}
		fmt.Fprintf(w, "upstream        %d sources, %d reachable, %d updates, %d steps (ntpquery -status URL sources)\n",
			len(u.Sources), reach, u.Updates, u.Steps)
	} else {
		fmt.Fprintf(w, "upstream        none: serving the local clock\n")
	}
}

// refidLabel explains a reference ID: the local clock's 127.127.1.1, a
// kiss or reference code, or an upstream's address.
func refidLabel(id string, stratum uint8, local bool) string {
	switch {
	case id == "127.127.1.1":
		return id + " (the local clock, as chrony and ntpd name it)"
	case local:
		return id + " (the local clock)"
	case stratum <= 1 || stratum >= 16:
		return id + " (a reference or status code)"
	}
	return id + " (the selected upstream's address)"
}

func printTracking(w io.Writer, st *ops.Status) {
	r := &st.Reference
	leap := map[string]string{"none": "Normal", "insert": "Insert second", "delete": "Delete second", "alarm": "Not synchronised"}[r.Leap]
	fmt.Fprintf(w, "Reference ID    : %s\n", refidLabel(r.RefID, r.Stratum, st.Upstream == nil))
	fmt.Fprintf(w, "Stratum         : %d\n", r.Stratum)
	fmt.Fprintf(w, "Ref time (UTC)  : %s\n", r.ReferenceTime.UTC().Format("Mon Jan 02 15:04:05 2006"))
	if u := st.Upstream; u != nil {
		dir := "fast"
		if u.OffsetSeconds > 0 {
			dir = "slow" // positive offset: the served clock is behind
		}
		fmt.Fprintf(w, "Served time     : %s %s of NTP time (still being slewed away)\n", seconds(math.Abs(u.OffsetSeconds)), dir)
		fmt.Fprintf(w, "Correction      : %s (served time minus the system clock)\n", signed(u.CorrectionSeconds))
		fdir := "fast"
		if u.FrequencyPPM < 0 {
			fdir = "slow"
		}
		fmt.Fprintf(w, "Frequency       : %.3f ppm %s\n", math.Abs(u.FrequencyPPM), fdir)
		fmt.Fprintf(w, "Root distance   : %s\n", seconds(u.RootDistanceSeconds))
		fmt.Fprintf(w, "Last update     : %s ago (%d updates, %d steps)\n", ago(st, u.LastUpdate), u.Updates, u.Steps)
	} else {
		fmt.Fprintf(w, "Served time     : the system clock itself (no upstream)\n")
	}
	fmt.Fprintf(w, "Root delay      : %s\n", seconds(r.RootDelaySeconds))
	fmt.Fprintf(w, "Root dispersion : %s\n", seconds(r.RootDispersionSeconds))
	fmt.Fprintf(w, "Precision       : %s (2^%d s)\n", seconds(r.PrecisionSeconds), r.Precision)
	fmt.Fprintf(w, "Leap status     : %s\n", leap)
	fmt.Fprintf(w, "Kernel clock    : %s\n", kernelLine(st.Kernel))
	sync := yesNo(st.Synchronized)
	if st.SyncReason != "" {
		sync += ": " + st.SyncReason
	}
	fmt.Fprintf(w, "Healthy         : %s\n", sync)
}

// stateSymbol is chronyc's one-character source state.
var stateSymbol = map[string]string{
	"selected": "*", "candidate": "+", "outlier": "-", "falseticker": "x", "unreachable": "?", "init": "?", "kod": "!",
}

const sourcesLegend = `  .-- Source mode  '^' = server
 / .- Source state '*' = selected, '+' = combined, '-' = not combined (outlier),
| /             'x' = falseticker, '?' = unreachable or no sample yet,
||              '!' = retired after a DENY or RSTR kiss-o'-death
||                                                    .- offset of the last sample
||   Stratum and poll interval (log2 s) of the     /     and, after +/-, the source's
||   source, reachability of the last 8 queries   |      root distance (its error
||   (octal), and how long ago the last sample    |      bound)
||   came                                         |
`

func printSources(w io.Writer, st *ops.Status, verbose bool) {
	u := st.Upstream
	if u == nil {
		fmt.Fprintf(w, "no upstream sources: the daemon serves the local clock (stratum %d, refid %s)\n", st.Reference.Stratum, st.Reference.RefID)
		return
	}
	if verbose {
		fmt.Fprint(w, sourcesLegend)
	}
	fmt.Fprintf(w, "MS %-27s %7s %5s %5s %6s  %s\n", "Name/IP address", "Stratum", "Poll", "Reach", "LastRx", "Last sample")
	fmt.Fprintln(w, strings.Repeat("=", 79))
	for _, s := range u.Sources {
		sym := stateSymbol[s.State]
		if sym == "" {
			sym = "?"
		}
		name := s.Name
		if s.Addr != "" && !strings.HasPrefix(s.Addr, s.Name) {
			name += " (" + s.Addr + ")"
		}
		sample := "-"
		if s.LastSample != nil {
			sample = fmt.Sprintf("%s +/- %s", signed(s.OffsetSeconds), seconds(s.RootDistanceSeconds))
		}
		poll := "-"
		if s.PollSeconds > 0 {
			poll = fmt.Sprintf("%.0f", math.Log2(s.PollSeconds))
		}
		fmt.Fprintf(w, "^%s %-27s %7d %5s %5o %6s  %s\n", sym, truncate(name, 27), s.Stratum, poll, s.Reach, ago(st, s.LastSample), sample)
	}
}

func truncate(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func printSourceStats(w io.Writer, st *ops.Status, stats *ops.Stats) {
	if st.Upstream == nil || stats.Upstream == nil {
		fmt.Fprintf(w, "no upstream sources: the daemon serves the local clock\n")
		return
	}
	counts := map[string]ops.UpstreamSourceStats{}
	for _, s := range stats.Upstream.Sources {
		counts[s.Name] = s
	}
	fmt.Fprintf(w, "%-27s %7s %8s %9s %8s %8s %9s  %s\n", "Name/IP address", "Samples", "Failures", "Offset", "Jitter", "Delay", "Root dist", "Failures by reason")
	fmt.Fprintln(w, strings.Repeat("=", 100))
	for _, s := range st.Upstream.Sources {
		c := counts[s.Name]
		offset, jitter, delay, dist := "-", "-", "-", "-"
		if s.LastSample != nil {
			offset, jitter, delay, dist = signed(s.OffsetSeconds), seconds(s.JitterSeconds), seconds(s.DelaySeconds), seconds(s.RootDistanceSeconds)
		}
		fmt.Fprintf(w, "%-27s %7d %8d %9s %8s %8s %9s  %s\n", truncate(s.Name, 27), c.Successes, c.Failures, offset, jitter, delay, dist, reasons(c.Rejects))
	}
}

// reasons lists the non-zero reject counters as "timeout=3 kiss_rate=1".
func reasons(r ops.Rejects) string {
	var m map[string]uint64
	data, _ := json.Marshal(r)
	json.Unmarshal(data, &m)
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "-"
	}
	sort.Strings(keys)
	var b bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

func printServerStats(w io.Writer, stats *ops.Stats) {
	s := &stats.Server
	row := func(name string, v uint64) { fmt.Fprintf(w, "%-34s: %d\n", name, v) }
	row("NTP packets received", s.Requests)
	row("NTP replies sent", s.Replies)
	row("NTP kiss-o'-death sent", s.Kisses)
	row("NTP packets dropped", s.DroppedTotal)
	reasons := make([]string, 0, len(s.Dropped))
	for r := range s.Dropped {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		if s.Dropped[r] > 0 {
			row("  dropped: "+r, s.Dropped[r])
		}
	}
	row("Bytes received", s.BytesReceived)
	row("Bytes sent", s.BytesSent)
	if m := stats.Middleware; m != nil {
		if a := m.Access; a != nil {
			row("Access: allowed", a.Allowed)
			row("Access: denied by address", a.DeniedAddr)
			row("Access: denied by name", a.DeniedName)
			row("Access: denied, kissed", a.Kissed)
			row("Access: denied, dropped", a.Dropped)
		}
		if r := m.RateLimit; r != nil {
			row("Rate limit: allowed", r.Allowed)
			row("Rate limit: over limit, answered", r.Leaked)
			row("Rate limit: limited (per client)", r.Limited)
			row("Rate limit: limited (global cap)", r.LimitedGlobal)
			row("Rate limit: kissed (RATE)", r.Kissed)
			row("Rate limit: dropped", r.Dropped)
			row("Kiss budget exhausted", r.KissLimited+accessKissLimited(m))
		}
	}
	if a := stats.Auth; a != nil {
		if n := a.NTS; n != nil {
			row("NTS requests", n.Requests)
			row("NTS authenticated", n.Authenticated)
			row("NTS NAKs", n.NAKs)
		}
		if k := a.KE; k != nil {
			row("NTS-KE sessions", k.Sessions)
			row("NTS-KE served", k.Served)
		}
		if m := a.MAC; m != nil {
			row("MAC requests", m.Requests)
			row("MAC authenticated", m.Authenticated)
			row("MAC unknown key", m.UnknownKey)
			row("MAC bad", m.BadMAC)
		}
	}
}

func accessKissLimited(m *ops.Middleware) uint64 {
	if m.Access == nil {
		return 0
	}
	return m.Access.KissLimited
}

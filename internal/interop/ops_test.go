package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/kernelsync"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server/servertest"
)

// Operations tests: the daemon run as an operator runs it, from a config
// file, watched through its management API, reloaded with SIGHUP.

// apiGet fetches url with the bearer token (none when empty).
func apiGet(t *testing.T, url, token string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// opsStatus is the part of /v1/status the test reads.
type opsStatus struct {
	Serving      bool     `json:"serving"`
	Synchronized bool     `json:"synchronized"`
	Listen       []string `json:"listen"`
	Reference    struct {
		Stratum int    `json:"stratum"`
		Leap    string `json:"leap"`
		RefID   string `json:"refid"`
	} `json:"reference"`
	Config struct {
		Generation int    `json:"generation"`
		Successes  int    `json:"successes"`
		Failures   int    `json:"failures"`
		LastError  string `json:"last_error"`
	} `json:"config"`
	Kernel struct {
		Known        bool `json:"known"`
		Synchronized bool `json:"synchronized"`
	} `json:"kernel"`
}

type opsStats struct {
	Server struct {
		Requests      uint64            `json:"requests"`
		Replies       uint64            `json:"replies"`
		BytesReceived uint64            `json:"bytes_received"`
		BytesSent     uint64            `json:"bytes_sent"`
		Dropped       map[string]uint64 `json:"dropped"`
	} `json:"server"`
}

func getJSON(t *testing.T, url, token string, v any) {
	t.Helper()
	code, _, body := apiGet(t, url, token)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, body)
	}
}

var sampleRE = regexp.MustCompile(`(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$`)

// metricValue returns the value of series in a text exposition.
func metricValue(t *testing.T, text, series string) float64 {
	t.Helper()
	for _, m := range sampleRE.FindAllStringSubmatch(text, -1) {
		if m[1] == series {
			v, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no series %s in:\n%s", series, text)
	return 0
}

func TestOpsDaemonConfigAPIReload(t *testing.T) {
	RequireTool(t, "chronyd")
	promtool := RequireTool(t, "promtool")
	bin := BuildDaemon(t)
	port := FreeUDPPort(t)
	dir := t.TempDir()
	const token = "ops-test-token"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.json")
	// The rate limit's burst is raised so that the test's own queries
	// are never limited.
	configACL := func(stratum int, listen, deny string) string {
		return fmt.Sprintf(`{
  "listen": [%s],
  "local": {"stratum": %d, "refid": "GPS"},
  "log_level": "info",
  "access": {"deny": [%s], "kiss": true},
  "rate_limit": {"burst": 1000},
  "api": {"listen": "127.0.0.1:0", "token_file": %q}
}`, listen, stratum, deny, tokenFile)
	}
	config := func(stratum int, listen string) string { return configACL(stratum, listen, "") }
	listen := fmt.Sprintf(`"127.0.0.1:%d", "[::1]:%d"`, port, port)
	writeConfig := func(s string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(config(1, listen))

	d := StartDaemon(t, bin, "-config", cfgPath, "-api", "127.0.0.1:0")
	base := d.APIURL(t)
	d.WaitLog(t, "msg=serving", 10*time.Second)

	// A real client accepts the time.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	off, out, err := ChronyQuery(ctx, t, "127.0.0.1", port)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if off.Abs() > maxOffset {
		t.Fatalf("offset %v, want under %v:\n%s", off, maxOffset, out)
	}

	// Without the right token: a bare 401 on every endpoint.
	for _, path := range []string{"/healthz", "/v1/status", "/v1/stats", "/metrics"} {
		for _, tok := range []string{"", "wrong"} {
			code, _, body := apiGet(t, base+path, tok)
			if code != http.StatusUnauthorized || len(body) != 0 {
				t.Errorf("GET %s with token %q: %d %q, want a bare 401", path, tok, code, body)
			}
		}
	}

	// The daemon serves the local clock, so its health follows what the
	// kernel says about this machine's clock: 200 only when a time daemon
	// keeps it synchronised, else 503 naming the kernel's state.
	kernel, kerr := kernelsync.System{}.Read()
	kernelSynced := kerr != nil || kernel.Synchronized
	code, _, body := apiGet(t, base+"/healthz", token)
	switch {
	case kernelSynced && (code != http.StatusOK || string(body) != "ok\n"):
		t.Errorf("/healthz: %d %q, want 200 ok (kernel: %v, %v)", code, body, kernel, kerr)
	case !kernelSynced && (code != http.StatusServiceUnavailable || !strings.Contains(string(body), "kernel reports the system clock unsynchronized")):
		t.Errorf("/healthz: %d %q, want 503 naming the kernel's state (kernel: %v)", code, body, kernel)
	}

	var st opsStatus
	getJSON(t, base+"/v1/status", token, &st)
	if !st.Serving || st.Synchronized != kernelSynced || st.Reference.Stratum != 1 || st.Reference.RefID != "GPS" ||
		len(st.Listen) != 2 || st.Config.Generation != 1 || st.Kernel.Known != (kerr == nil) {
		t.Errorf("unexpected /v1/status: %+v", st)
	}

	var stats opsStats
	getJSON(t, base+"/v1/stats", token, &stats)
	if stats.Server.Requests == 0 || stats.Server.Replies == 0 || stats.Server.BytesSent == 0 {
		t.Errorf("/v1/stats counted no traffic after chronyd's queries: %+v", stats)
	}

	code, hdr, metrics := apiGet(t, base+"/metrics", token)
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/metrics: %d %s", code, hdr.Get("Content-Type"))
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(metrics))
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("promtool check metrics: %v\n%s\n%s", err, out, metrics)
	}
	if v := metricValue(t, string(metrics), "ntpkit_replies_total"); v < float64(stats.Server.Replies) {
		t.Errorf("ntpkit_replies_total %v, want at least %d", v, stats.Server.Replies)
	}
	if v := metricValue(t, string(metrics), "ntpkit_stratum"); v != 1 {
		t.Errorf("ntpkit_stratum %v, want 1", v)
	}

	// A bad file is refused with the reason; the old configuration keeps
	// serving.
	writeConfig(config(99, listen))
	d.Signal(t, syscall.SIGHUP)
	d.WaitLogCount(t, "config reload refused", 1, 10*time.Second)
	writeConfig(`{"listen": [` + listen + `], "bogus": true}`)
	d.Signal(t, syscall.SIGHUP)
	d.WaitLogCount(t, "config reload refused", 2, 10*time.Second)
	log := d.Stderr.String()
	if !strings.Contains(log, "local.stratum") || !strings.Contains(log, "config: bogus: unknown field") {
		t.Errorf("refusals do not give the reasons:\n%s", log)
	}
	for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("[::1]:%d", port)} {
		rep, err := servertest.Query(addr, 5*time.Second)
		if err != nil {
			t.Fatalf("after a refused reload: %v", err)
		}
		if rep.Stratum != 1 || rep.IsKiss() {
			t.Errorf("after a refused reload %s answered stratum %d kiss %v", addr, rep.Stratum, rep.IsKiss())
		}
	}
	getJSON(t, base+"/v1/status", token, &st)
	if st.Config.Failures != 2 || st.Config.Generation != 1 || !strings.Contains(st.Config.LastError, "bogus") {
		t.Errorf("status after refused reloads: %+v", st.Config)
	}

	// A valid file with a change that needs a restart: reloaded, the
	// change is named and not applied.
	writeConfig(config(2, listen))
	d.Signal(t, syscall.SIGHUP)
	d.WaitLog(t, "msg=\"config reloaded\"", 10*time.Second)
	if !strings.Contains(d.Stderr.String(), "need a restart") {
		t.Errorf("no restart warning for a changed local section:\n%s", d.Stderr.String())
	}
	if rep, err := servertest.Query(fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second); err != nil || rep.Stratum != 1 {
		t.Errorf("after reloading a non-reloadable change: stratum %d, err %v; want 1", rep.Stratum, err)
	}
	st = opsStatus{}
	getJSON(t, base+"/v1/status", token, &st)
	if st.Config.Generation != 2 || st.Config.Successes != 1 || st.Config.LastError != "" {
		t.Errorf("status after a good reload: %+v", st.Config)
	}
	_, _, metrics = apiGet(t, base+"/metrics", token)
	if v := metricValue(t, string(metrics), `ntpkit_config_reloads_total{result="failure"}`); v != 2 {
		t.Errorf("failed reloads metric %v, want 2", v)
	}

	// An ACL that denies the loopback clients takes effect on reload:
	// they get a DENY kiss-o'-death.
	writeConfig(configACL(1, listen, `"127.0.0.1", "::1"`))
	d.Signal(t, syscall.SIGHUP)
	d.WaitLogCount(t, "msg=\"config reloaded\"", 2, 10*time.Second)
	for _, addr := range []string{fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("[::1]:%d", port)} {
		rep, err := servertest.Query(addr, 5*time.Second)
		if err != nil {
			t.Fatalf("denied client: %v, want a kiss-o'-death", err)
		}
		if !rep.IsKiss() || rep.RefID != ntpwire.KissDeny {
			t.Errorf("denied client %s got stratum %d refid %v, want a DENY kiss", addr, rep.Stratum, rep.RefID)
		}
	}
	// A bad ACL is refused, naming the field; the deny rules stay.
	writeConfig(configACL(1, listen, `"10.0.0.0/33"`))
	d.Signal(t, syscall.SIGHUP)
	d.WaitLogCount(t, "config reload refused", 3, 10*time.Second)
	if !strings.Contains(d.Stderr.String(), "access.deny[0]") {
		t.Errorf("refusal does not name access.deny[0]:\n%s", d.Stderr.String())
	}
	if rep, err := servertest.Query(fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second); err != nil || !rep.IsKiss() {
		t.Errorf("after a refused ACL reload: kiss %v, err %v; want the old deny rules", rep.IsKiss(), err)
	}
	_, _, metrics = apiGet(t, base+"/metrics", token)
	if v := metricValue(t, string(metrics), `ntpkit_kiss_total{code="DENY"}`); v < 3 {
		t.Errorf(`ntpkit_kiss_total{code="DENY"} = %v, want at least 3`, v)
	}
	if v := metricValue(t, string(metrics), `ntpkit_access_requests_total{result="denied_addr"}`); v < 3 {
		t.Errorf(`ntpkit_access_requests_total{result="denied_addr"} = %v, want at least 3`, v)
	}
	// Allowed again.
	writeConfig(config(1, listen))
	d.Signal(t, syscall.SIGHUP)
	d.WaitLogCount(t, "msg=\"config reloaded\"", 3, 10*time.Second)
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	_, out, err = ChronyQuery(ctx, t, "::1", port)
	cancel()
	if err != nil {
		t.Fatalf("chronyd after allowing again: %v\n%s", err, out)
	}

	d.Stop(t)
	if !strings.Contains(d.Stderr.String(), "msg=stopped") {
		t.Errorf("no clean stop:\n%s", d.Stderr.String())
	}
}

// TestOpsAPIOff checks that "api": {"listen": ""} turns the API off and a
// port already taken stops the daemon from starting at all.
func TestOpsAPIOffAndBusy(t *testing.T) {
	bin := BuildDaemon(t)
	port := FreeUDPPort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	d := StartDaemon(t, bin, "-listen", listen, "-api=")
	d.WaitLog(t, "msg=serving", 10*time.Second)
	if _, err := servertest.Query(listen, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(d.Stderr.String(), "api listening") {
		t.Errorf("API started although off:\n%s", d.Stderr.String())
	}
	d.Stop(t)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	out, err := exec.Command(bin, "-listen", listen, "-api", busy.Addr().String()).CombinedOutput()
	if err == nil {
		t.Fatalf("daemon ran with its API port taken:\n%s", out)
	}
	if !strings.Contains(string(out), "api:") || strings.Contains(string(out), "msg=serving") {
		t.Errorf("want a refusal naming the API before serving:\n%s", out)
	}
}

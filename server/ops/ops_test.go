package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/policy"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/servertest"
	"github.com/ntpkit/ntpkit/upstream"
)

// fake serves fixed snapshots.
type fake struct {
	h  daemon.Health
	st daemon.Status
	s  daemon.Stats
}

func (f *fake) Health() daemon.Health { return f.h }
func (f *fake) Status() daemon.Status { return f.st }
func (f *fake) Stats() daemon.Stats   { return f.s }

func get(t *testing.T, h http.Handler, path, auth string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Host = "127.0.0.1:8080" // httptest's example.com would fail the Host check
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHealthz(t *testing.T) {
	f := &fake{}
	h := Handler(f, Options{})
	for _, tc := range []struct {
		h    daemon.Health
		code int
		body string
	}{
		{daemon.Health{Serving: true, Synchronized: true}, http.StatusOK, "ok\n"},
		{daemon.Health{Serving: true, Reason: "no upstream reachable"}, http.StatusServiceUnavailable, "not synchronized: no upstream reachable\n"},
		{daemon.Health{Synchronized: true}, http.StatusServiceUnavailable, "not serving\n"},
	} {
		f.h = tc.h
		rec := get(t, h, "/healthz", "")
		if rec.Code != tc.code || rec.Body.String() != tc.body {
			t.Errorf("%+v: %d %q, want %d %q", tc.h, rec.Code, rec.Body.String(), tc.code, tc.body)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
	}
}

func TestStatusJSON(t *testing.T) {
	started := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	last := started.Add(30 * time.Second)
	f := &fake{st: daemon.Status{
		Time:          started.Add(90 * time.Second),
		Version:       "v1",
		GoVersion:     "go1",
		Started:       started,
		Serving:       true,
		Listen:        []string{"127.0.0.1:123"},
		Synchronized:  false,
		SyncReason:    "upstream not synchronized",
		Reference:     ntpwire.Reference{Stratum: 2, RefID: ntpwire.RefID{192, 0, 2, 1}, Leap: ntpwire.LeapNone, Precision: -10},
		ReferenceTime: started,
		Reloads:       daemon.ReloadStatus{Generation: 1, Failures: 1, LastAttempt: last, LastSuccess: started, LastError: "bad"},
		Upstream: &upstream.Status{
			Synchronized: true, Stratum: 2, RefID: ntpwire.RefID{192, 0, 2, 7}, Offset: 1500 * time.Microsecond, Frequency: 3.5, RootDistance: 20 * time.Millisecond,
			Sources: []upstream.SourceStatus{{
				Name: "a:123", State: upstream.StateSelected, Reach: 0xff, Poll: 64 * time.Second, Stratum: 1, RefID: ntpwire.RefIDString("GPS"),
				Offset: -2 * time.Millisecond, Delay: 10 * time.Millisecond, Samples: 4,
				InterleavedSamples: 3, Interleaved: true,
				Rejects: upstream.Rejects{Timeout: 2},
			}},
		},
	}}
	rec := get(t, Handler(f, Options{Addr: "127.0.0.1:8080"}), "/v1/status", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("/v1/status: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	var raw map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	src := raw["upstream"].(map[string]any)["sources"].([]any)[0].(map[string]any)
	for k, want := range map[string]any{
		"uptime_seconds": 90.0,
		"api_listen":     "127.0.0.1:8080",
		"sync_reason":    "upstream not synchronized",
		"reference": map[string]any{
			"leap": "none", "stratum": 2.0, "refid": "192.0.2.1", "reference_time": "2026-03-01T12:00:00Z",
			"root_delay_seconds": 0.0, "root_dispersion_seconds": 0.0, "precision": -10.0,
			"precision_seconds": ntpwire.LogToDuration(-10).Seconds(),
		},
		"config": map[string]any{
			"generation": 1.0, "successes": 0.0, "failures": 1.0, "last_reload": "2026-03-01T12:00:30Z",
			"last_success": "2026-03-01T12:00:00Z", "last_error": "bad",
		},
	} {
		if diff := cmp.Diff(want, raw[k]); diff != "" {
			t.Errorf("%s (-want +got):\n%s", k, diff)
		}
	}
	u := raw["upstream"].(map[string]any)
	for k, want := range map[string]float64{"offset_seconds": 0.0015, "frequency_ppm": 3.5, "root_distance_seconds": 0.02} {
		if u[k] != want {
			t.Errorf("upstream.%s = %v, want %v", k, u[k], want)
		}
	}
	for k, want := range map[string]any{
		"name": "a:123", "state": "selected", "reach": 255.0, "poll_seconds": 64.0,
		"offset_seconds": -0.002, "delay_seconds": 0.01, "samples": 4.0,
		"interleaved_samples": 3.0, "interleaved": true,
	} {
		if src[k] != want {
			t.Errorf("upstream.sources[0].%s = %v, want %v", k, src[k], want)
		}
	}
	if _, ok := src["poll"]; ok {
		t.Error("a duration without its unit: upstream.sources[0].poll")
	}
	if _, ok := u["leap_second"]; ok {
		t.Error("leap_second present although none is scheduled")
	}
	if u["refid"] != "192.0.2.7" || src["refid"] != "GPS" {
		t.Errorf("refids %v and %v, want the upstream's address and the stratum-1 source's code", u["refid"], src["refid"])
	}

	// Without an upstream and before any reload the optional keys are
	// left out.
	f.st.Upstream, f.st.Reloads = nil, daemon.ReloadStatus{Generation: 1, LastSuccess: started}
	body := get(t, Handler(f, Options{}), "/v1/status", "").Body.String()
	for _, k := range []string{`"upstream"`, `"last_reload"`, `"last_error"`} {
		if strings.Contains(body, k) {
			t.Errorf("%s present:\n%s", k, body)
		}
	}
}

func TestStatsJSON(t *testing.T) {
	f := &fake{s: daemon.Stats{
		Server:    server.Stats{Received: 5, Replies: 4, Kisses: 1, BytesReceived: 240, BytesSent: 192, Interleaved: 2, KernelTxStamps: 1, Dropped: server.DropStats{Short: 1}},
		Access:    &server.AccessStats{Allowed: 4, DeniedAddr: 1, Kissed: 1},
		RateLimit: &server.RateLimitStats{Allowed: 4},
		Upstream: &upstream.Status{Updates: 3, Sources: []upstream.SourceStatus{
			{Name: "a:123", Samples: 6, Rejects: upstream.Rejects{Timeout: 2, BadOrigin: 1}},
		}},
	}}
	var got Stats
	if err := json.Unmarshal(get(t, Handler(f, Options{}), "/v1/stats", "").Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := Stats{
		Server: ServerStats{Requests: 5, Replies: 4, Kisses: 1, BytesReceived: 240, BytesSent: 192, Interleaved: 2, KernelTxStamps: 1, DroppedTotal: 1, Dropped: map[string]uint64{
			"short": 1, "truncated": 0, "version": 0, "mode": 0, "control": 0, "malformed": 0, "handler": 0, "oversize": 0, "send_error": 0, "zero_port": 0,
		}},
		Middleware: &Middleware{Access: &AccessStats{Allowed: 4, DeniedAddr: 1, Kissed: 1}, RateLimit: &RateLimitStats{Allowed: 4}},
		Upstream: &UpstreamStats{Updates: 3, Sources: []UpstreamSourceStats{
			{Name: "a:123", Successes: 6, Failures: 3, Rejects: Rejects{Timeout: 2, BadOrigin: 1}},
		}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/v1/stats (-want +got):\n%s", diff)
	}
}

func TestToken(t *testing.T) {
	h := Handler(&fake{}, Options{Token: "s3cret"})
	for _, path := range []string{"/healthz", "/v1/status", "/v1/stats", "/metrics", "/nonexistent"} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer s3cre", "Bearer s3cret2", "bearer s3cret", "s3cret", "Basic czNjcmV0"} {
			rec := get(t, h, path, auth)
			if rec.Code != http.StatusUnauthorized || rec.Body.Len() != 0 {
				t.Errorf("%s with %q: %d %q, want a bare 401", path, auth, rec.Code, rec.Body.String())
			}
			if rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s with %q: 401 without WWW-Authenticate", path, auth)
			}
		}
		rec := get(t, h, path, "Bearer s3cret")
		want := http.StatusOK
		switch path {
		case "/nonexistent":
			want = http.StatusNotFound
		case "/healthz":
			want = http.StatusServiceUnavailable // the fake is not serving
		}
		if rec.Code != want {
			t.Errorf("%s with the token: %d, want %d", path, rec.Code, want)
		}
	}
}

func TestMethods(t *testing.T) {
	h := Handler(&fake{}, Options{})
	req := httptest.NewRequest(http.MethodPost, "/v1/status", nil)
	req.Host = "localhost"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/status: %d, want 405", rec.Code)
	}
}

// exchange sends one client request to addr and waits for the reply.
func exchange(t *testing.T, addr string) ntpwire.Packet {
	t.Helper()
	rep, err := servertest.Query(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// runDaemon runs a daemon built from o on a loopback port until the test
// ends, and returns it with its NTP address.
func runDaemon(t *testing.T, o daemon.Options) (*daemon.Daemon, string) {
	t.Helper()
	o.Listen = []string{"127.0.0.1:0"}
	o.Tuning.Sockets = 1
	d, err := daemon.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-d.Ready():
	case err := <-errc:
		t.Fatalf("Run: %v", err)
	}
	return d, d.Status().Listen[0]
}

// TestDaemon serves a real daemon with access control denying the client
// and checks what the endpoints report: the DENY kiss in /metrics and
// /v1/stats, the local reference in /v1/status.
func TestDaemon(t *testing.T) {
	refTime := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	d, addr := runDaemon(t, daemon.Options{
		Local:     daemon.Local{Stratum: 3},
		Clock:     clocktest.New(refTime),
		Access:    daemon.Access{Rules: []policy.Rule{{Action: policy.Deny, Prefix: netipPrefix(t, "127.0.0.0/8")}}, Kiss: true},
		RateLimit: daemon.RateLimit{KissPerSecond: 100},
	})
	if rep := exchange(t, addr); !rep.IsKiss() || rep.RefID != ntpwire.KissDeny {
		t.Fatalf("denied client got stratum %d refid %v, want a DENY kiss", rep.Stratum, rep.RefID)
	}
	h := Handler(d, Options{})
	// The kiss is counted when it is staged, the reply once the worker
	// has sent it: wait for both.
	var metrics string
	for deadline := time.Now().Add(5 * time.Second); ; {
		metrics = get(t, h, "/metrics", "").Body.String()
		if strings.Contains(metrics, "ntpkit_kiss_total{code=\"DENY\"} 1\n") && strings.Contains(metrics, "ntpkit_replies_total 1\n") || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, line := range []string{
		`ntpkit_kiss_total{code="DENY"} 1`,
		`ntpkit_kiss_total{code="RATE"} 0`,
		`ntpkit_kiss_total{code="other"} 0`,
		`ntpkit_access_requests_total{result="denied_addr"} 1`,
		`ntpkit_access_denied_total{action="kissed"} 1`,
		`ntpkit_ratelimit_requests_total{result="allowed"} 0`,
		`ntpkit_stratum 3`,
		`ntpkit_serving 1`,
	} {
		if !strings.Contains(metrics, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	var stats Stats
	if err := json.Unmarshal(get(t, h, "/v1/stats", "").Body.Bytes(), &stats); err != nil {
		t.Fatal(err)
	}
	if s := stats.Server; s.Requests != 1 || s.Replies != 1 || s.Kisses != 1 || s.BytesReceived != 48 || len(s.Dropped) != 10 {
		t.Errorf("server stats %+v", s)
	}
	if m := stats.Middleware; m == nil || m.Access == nil || m.Access.DeniedAddr != 1 || m.RateLimit == nil {
		t.Errorf("middleware stats %+v", m)
	}
	var st Status
	if err := json.Unmarshal(get(t, h, "/v1/status", "").Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Serving || !st.Synchronized || st.Reference.Stratum != 3 || st.Reference.RefID != "127.127.1.1" ||
		!st.Reference.ReferenceTime.Equal(refTime) || st.Config.Generation != 1 || len(st.Listen) != 1 || st.Upstream != nil {
		t.Errorf("status %+v", st)
	}
	if rec := get(t, h, "/healthz", ""); rec.Code != http.StatusOK {
		t.Errorf("/healthz: %d %q", rec.Code, rec.Body.String())
	}
}

func netipPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

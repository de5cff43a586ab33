package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/policy"
	"github.com/ntpkit/ntpkit/server"
)

// newTestDaemon serves NTP on a loopback socket, through mw when given,
// and returns the daemon and the socket's address.
func newTestDaemon(t *testing.T, mw ...server.Middleware) (*daemon, string) {
	t.Helper()
	src := server.NewLocalSource(clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)), 3)
	srv := &server.Server{Source: src}
	if len(mw) > 0 {
		srv.Handler = server.Chain(server.Responder(), mw...)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background(), pc) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		if err := <-errc; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		pc.Close()
	})
	d := &daemon{
		logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		started: time.Now(),
		srv:     srv,
		src:     src,
		addrs:   []string{pc.LocalAddr().String()},
	}
	cfg := DefaultConfig()
	d.cfg.Store(&cfg)
	d.reloads.begin(d.started)
	d.serving.Store(true)
	return d, pc.LocalAddr().String()
}

// exchange sends one client request to addr and waits for the reply.
func exchange(t *testing.T, addr string) ntpwire.Packet {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, XmitTime: 0x1234}
	if _, err := c.Write(req.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var rep ntpwire.Packet
	if err := rep.Decode(buf[:n]); err != nil {
		t.Fatal(err)
	}
	return rep
}

func get(t *testing.T, h http.Handler, path, auth string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHealthz(t *testing.T) {
	d, _ := newTestDaemon(t)
	h := d.apiHandler("")
	if rec := get(t, h, "/healthz", ""); rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Errorf("synced: %d %q, want 200 ok", rec.Code, rec.Body.String())
	}

	d.src.(*server.LocalSource).Leap = ntpwire.LeapAlarm
	rec := get(t, h, "/healthz", "")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "not synchronized") {
		t.Errorf("leap alarm: %d %q, want 503 not synchronized", rec.Code, rec.Body.String())
	}

	d.synced = func() (bool, string) { return false, "no upstream reachable" }
	rec = get(t, h, "/healthz", "")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "no upstream reachable") {
		t.Errorf("hook unsynced: %d %q, want 503 with the hook's reason", rec.Code, rec.Body.String())
	}

	d.synced = nil
	d.src.(*server.LocalSource).Leap = ntpwire.LeapNone
	d.serving.Store(false)
	rec = get(t, h, "/healthz", "")
	if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != "not serving\n" {
		t.Errorf("not serving: %d %q, want 503 not serving", rec.Code, rec.Body.String())
	}
}

func TestStatusAndStats(t *testing.T) {
	d, addr := newTestDaemon(t)
	d.upstreamStatus = func() any { return map[string]any{"sources": []string{"192.0.2.1:123"}} }
	d.middlewareStats = func() any { return map[string]uint64{"denied": 7} }
	h := d.apiHandler("")
	rep := exchange(t, addr)
	if rep.Stratum != 3 {
		t.Fatalf("reply stratum %d, want 3", rep.Stratum)
	}

	rec := get(t, h, "/v1/status", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("/v1/status: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	var st statusJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if !st.Serving || !st.Synchronized || st.Reference.Stratum != 3 || st.Reference.Leap != "none" ||
		st.Reference.RefID != "127.127.1.1" || st.Config.Generation != 1 || len(st.Listen) != 1 || st.Upstream == nil {
		t.Errorf("unexpected status:\n%s", rec.Body.String())
	}
	if got, want := st.Reference.ReferenceTime, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("reference time %v, want %v", got, want)
	}

	// The reply is counted once the worker is done with it.
	var stats statsJSON
	for deadline := time.Now().Add(5 * time.Second); ; {
		rec = get(t, h, "/v1/stats", "")
		stats = statsJSON{}
		if err := json.Unmarshal(rec.Body.Bytes(), &stats); err != nil {
			t.Fatal(err)
		}
		if stats.Server.Replies == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	s := stats.Server
	if s.Requests != 1 || s.Replies != 1 || s.BytesReceived != 48 || s.BytesSent != 48 || s.DroppedTotal != 0 || len(s.Dropped) != 9 {
		t.Errorf("unexpected stats:\n%s", rec.Body.String())
	}
	if stats.Middleware == nil {
		t.Errorf("stats lack the middleware section:\n%s", rec.Body.String())
	}
}

func TestAPIToken(t *testing.T) {
	d, _ := newTestDaemon(t)
	h := d.apiHandler("s3cret")
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
		if path == "/nonexistent" {
			want = http.StatusNotFound
		}
		if rec.Code != want {
			t.Errorf("%s with the token: %d, want %d", path, rec.Code, want)
		}
	}
}

func TestAPIMethods(t *testing.T) {
	d, _ := newTestDaemon(t)
	h := d.apiHandler("")
	req := httptest.NewRequest(http.MethodPost, "/v1/status", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/status: %d, want 405", rec.Code)
	}
}

// TestReload checks that a reload applies a valid file, refuses a bad one
// keeping the configuration in force, and records both.
func TestReload(t *testing.T) {
	d, _ := newTestDaemon(t)
	path := filepath.Join(t.TempDir(), "config.json")
	d.load = func() (Config, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, err
		}
		return ParseConfig(data)
	}
	var applied []Config
	d.applyReloadable = func(c Config) error {
		applied = append(applied, c)
		return nil
	}
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	write(`{"local": {"stratum": 5}}`)
	if err := d.reload(time.Now()); err != nil {
		t.Fatalf("valid reload refused: %v", err)
	}
	if len(applied) != 1 || applied[0].Local.Stratum != DefaultConfig().Local.Stratum {
		t.Errorf("reload applied %+v; want the running stratum kept (it needs a restart)", applied)
	}
	write(`{"local": {"stratum": 99}}`)
	err := d.reload(time.Now())
	if err == nil || !strings.Contains(err.Error(), "local.stratum") {
		t.Fatalf("bad reload: %v, want an error naming local.stratum", err)
	}
	if len(applied) != 1 {
		t.Errorf("a refused reload was applied")
	}
	d.applyReloadable = func(Config) error { return errors.New("access: boom") }
	write(`{}`)
	if err := d.reload(time.Now()); err == nil {
		t.Fatal("reload succeeded although applying failed")
	}
	rs := d.reloads.snapshot()
	if rs.Generation != 2 || rs.Successes != 1 || rs.Failures != 2 || rs.LastError != "access: boom" || rs.LastReload == nil {
		t.Errorf("reload record %+v", rs)
	}
}

// TestMiddlewareAttached serves through real access-control and
// rate-limit middleware and checks their counters in /v1/stats and
// /metrics, with the kiss code.
func TestMiddlewareAttached(t *testing.T) {
	acl, err := policy.Parse([]string{"deny 127.0.0.0/8"}, policy.Allow)
	if err != nil {
		t.Fatal(err)
	}
	ac := server.NewAccessControl(server.AccessOptions{Addrs: acl, Kiss: true})
	rl := server.NewRateLimiter(server.RateLimitOptions{})
	d, addr := newTestDaemon(t, ac.Wrap, rl.Wrap)
	d.attachMiddleware(ac, rl)

	if rep := exchange(t, addr); !rep.IsKiss() || rep.RefID != ntpwire.KissDeny {
		t.Fatalf("denied client got stratum %d refid %v, want a DENY kiss", rep.Stratum, rep.RefID)
	}
	h := d.apiHandler("")
	var e *exposition
	for deadline := time.Now().Add(5 * time.Second); ; {
		var err error
		if e, err = parseExposition(get(t, h, "/metrics", "").Body.String()); err != nil {
			t.Fatal(err)
		}
		if e.samples[`ntpkit_kiss_total{code="DENY"}`] == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for series, want := range map[string]float64{
		`ntpkit_kiss_total{code="DENY"}`:                     1,
		`ntpkit_kiss_total{code="RATE"}`:                     0,
		`ntpkit_kiss_total{code="other"}`:                    0,
		`ntpkit_access_requests_total{result="denied_addr"}`: 1,
		`ntpkit_access_denied_total{action="kissed"}`:        1,
		`ntpkit_ratelimit_requests_total{result="allowed"}`:  0,
	} {
		if got, ok := e.samples[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	var stats struct {
		Middleware struct {
			Access    *accessStatsJSON    `json:"access"`
			RateLimit *rateLimitStatsJSON `json:"rate_limit"`
		} `json:"middleware"`
	}
	if err := json.Unmarshal(get(t, h, "/v1/stats", "").Body.Bytes(), &stats); err != nil {
		t.Fatal(err)
	}
	if stats.Middleware.Access == nil || stats.Middleware.Access.DeniedAddr != 1 || stats.Middleware.RateLimit == nil {
		t.Errorf("middleware stats %+v", stats.Middleware)
	}
}

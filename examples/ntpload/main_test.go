package main

import (
	"encoding/json"
	"errors"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/servertest"
)

// serve runs srv on a loopback socket until the test ends.
func serve(t *testing.T, srv *server.Server) netip.AddrPort {
	t.Helper()
	ts := servertest.NewServer(srv)
	t.Cleanup(func() {
		if err := ts.Close(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts.Addr
}

func loadCfg(t *testing.T, target netip.AddrPort, args ...string) *config {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("ntpload needs Linux")
	}
	args = append(append([]string{"-duration", "300ms", "-sockets", "4"}, args...), target.String())
	cfg, err := parseFlags(args, nopWriter{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestLoadAgainstServer(t *testing.T) {
	addr := serve(t, &server.Server{})
	cfg := loadCfg(t, addr, "-rate", "2000")
	res, err := load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep := res.report(cfg)
	if rep.Sent < 300 || rep.Sent > 700 {
		t.Errorf("sent %d at 2000/s for 0.3 s, want about 600", rep.Sent)
	}
	if rep.Valid != rep.Sent || rep.Replies != rep.Sent || rep.Lost != 0 || len(rep.Invalid) != 0 {
		t.Errorf("want every request answered validly: %+v", rep)
	}
	// Loopback shares one clock; kernel stamps keep the error small.
	if rep.AbsOffset.P50 > 1000 || rep.Proc.P50 < 0 || rep.RTT.P50 < -5 {
		t.Errorf("implausible timing: rtt %+v server %+v offset %+v", rep.RTT, rep.Proc, rep.AbsOffset)
	}
}

func TestLoadFullSpeedFinishes(t *testing.T) {
	addr := serve(t, &server.Server{})
	cfg := loadCfg(t, addr, "-duration", "200ms")
	start := time.Now()
	res, err := load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 200*time.Millisecond+cfg.timeout+time.Second {
		t.Errorf("200ms run took %v", d)
	}
	if res.valid == 0 || res.replies > res.sent || res.valid+res.lost+sumBad(res) != res.sent {
		t.Errorf("sent %d replies %d valid %d lost %d invalid %v: counts do not add up", res.sent, res.replies, res.valid, res.lost, res.invalid)
	}
}

func sumBad(r *result) uint64 {
	var n uint64
	for _, v := range r.invalid {
		n += v
	}
	for _, v := range r.kod {
		n += v
	}
	return n
}

func TestLoadCountsBadRepliesAndKoD(t *testing.T) {
	n := 0
	h := server.HandlerFunc(func(w server.ResponseWriter, r *server.Request) {
		n++ // one worker: no race
		switch n % 3 {
		case 0:
			_ = w.Kiss(ntpwire.KissRate)
		case 1:
			p := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 2, OrigTime: r.Packet.XmitTime + 1<<20}
			_ = w.Reply(p)
		default:
			p := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeBroadcast, Stratum: 2, OrigTime: r.Packet.XmitTime}
			_ = w.Reply(p)
		}
	})
	addr := serve(t, &server.Server{Handler: h})
	cfg := loadCfg(t, addr, "-rate", "1000", "-timeout", "100ms")
	res, err := load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.valid != 0 || res.invalid[badOrigin] == 0 || res.invalid[badMode] == 0 || res.kod[ntpwire.KissRate] == 0 {
		t.Fatalf("valid %d invalid %v kod %v: want origin, mode and RATE counted", res.valid, res.invalid, res.kod)
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for v := int64(-1000); v < 9000; v++ {
		h.add(v)
	}
	for _, c := range []struct{ q, want float64 }{{0.5, 4000}, {0.01, -900}, {0.99, 8900}} {
		if got := h.quantile(c.q); math.Abs(got-c.want) > 0.04*math.Abs(c.want)+2 {
			t.Errorf("quantile(%v) = %v, want about %v", c.q, got, c.want)
		}
	}
	// |v| below 1000 occurs twice, so a tenth of the values lie below 500.
	if got := h.absQuantile(0.1); got < 480 || got > 520 {
		t.Errorf("absQuantile(0.1) = %v, want about 500", got)
	}
	for i := 0; i < histBuckets; i++ {
		if b := bucketOf(lowOf(i)); b != i {
			t.Fatalf("bucketOf(lowOf(%d)) = %d", i, b)
		}
	}
}

func TestFlags(t *testing.T) {
	for _, bad := range [][]string{
		{"127.0.0.1:1", "extra"},
		{"-duration", "11m", "127.0.0.1:1"},
		{"-duration", "0s", "127.0.0.1:1"},
		{"localhost:123"},
		{"-src", "127.0.0.5-127.0.0.2", "127.0.0.1:1"},
		{"-src", "::1", "127.0.0.1:1"},
	} {
		if _, err := parseFlags(bad, nopWriter{}); err == nil {
			t.Errorf("parseFlags(%q) succeeded", bad)
		}
	}
	cfg, err := parseFlags([]string{"-src", "127.0.0.2-127.0.0.4,127.0.0.9", "127.0.0.1:123"}, nopWriter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.srcs) != 4 || cfg.srcs[3] != netip.MustParseAddr("127.0.0.9") {
		t.Errorf("srcs %v", cfg.srcs)
	}
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }

// A reply that comes after its request timed out is "late", not an origin
// mismatch.
func TestLoadLabelsLateReplies(t *testing.T) {
	var (
		mu       sync.Mutex   // the test reads answered while the server runs
		held     ntpwire.Time // the first request's transmit stamp, answered late
		heldAt   time.Time
		answered bool
		n        int
	)
	h := server.HandlerFunc(func(w server.ResponseWriter, r *server.Request) {
		mu.Lock()
		defer mu.Unlock()
		n++
		switch {
		case n == 1:
			held, heldAt = r.Packet.XmitTime, r.Received
			return
		case !answered && r.Received.Sub(heldAt) > 200*time.Millisecond:
			// Well after ntpload's 50ms timeout, by the server's receive
			// stamps: answer the held request instead of this one.
			answered = true
			_ = w.Reply(ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 2, OrigTime: held, RecvTime: held, XmitTime: held})
			return
		}
		p := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 2, OrigTime: r.Packet.XmitTime,
			RecvTime: ntpwire.TimeOf(r.Received), XmitTime: ntpwire.TimeOf(r.Received)}
		_ = w.Reply(p)
	})
	addr := serve(t, &server.Server{Handler: h})
	cfg := loadCfg(t, addr, "-rate", "1000", "-timeout", "50ms", "-duration", "400ms", "-sockets", "1")
	res, err := load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	ok := answered
	mu.Unlock()
	if !ok {
		t.Skip("the run ended before the server answered the held request")
	}
	if res.invalid[badLate] != 1 || res.invalid[badOrigin] != 0 {
		t.Errorf("invalid %v: want exactly one late reply and no origin mismatch", res.invalid)
	}
	rep := res.report(cfg)
	if rep.Invalid["late"] != 1 || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "after -timeout 50ms") {
		t.Errorf("report invalid %v notes %q: want late=1 explained", rep.Invalid, rep.Notes)
	}
}

func TestLoadExplainsRateLimiting(t *testing.T) {
	h := server.HandlerFunc(func(w server.ResponseWriter, r *server.Request) { _ = w.Kiss(ntpwire.KissRate) })
	addr := serve(t, &server.Server{Handler: h})
	cfg := loadCfg(t, addr, "-rate", "1000", "-timeout", "100ms")
	res, err := load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep := res.report(cfg)
	var out strings.Builder
	rep.writeText(&out)
	for _, want := range []string{"kod RATE=", "note: the server rate-limits this client", `"rate_limit": {"enabled": false}`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	// A server that answers normally gets no such note.
	addr = serve(t, &server.Server{})
	cfg = loadCfg(t, addr, "-rate", "1000")
	if res, err = load(cfg); err != nil {
		t.Fatal(err)
	}
	if rep := res.report(cfg); len(rep.Notes) != 0 {
		t.Errorf("notes for a clean run: %q", rep.Notes)
	}
}

func TestHelpAndVersion(t *testing.T) {
	var out, errb strings.Builder
	if err := run([]string{"-h"}, &out, &errb); !errors.Is(err, errHelp) {
		t.Errorf("-h: %v, want errHelp (exit 0)", err)
	}
	if !strings.Contains(errb.String(), "-rate requests/s") {
		t.Errorf("usage lacks \"-rate requests/s\":\n%s", errb.String())
	}
	if err := run([]string{"-bogus"}, &out, &errb); !errors.Is(err, errUsageShown) {
		t.Errorf("-bogus: %v, want errUsageShown (exit 2)", err)
	}
	out.Reset()
	if err := run([]string{"-version"}, &out, &errb); err != nil || !strings.HasPrefix(out.String(), "ntpload ") {
		t.Errorf("-version: %v, output %q", err, out.String())
	}
}

// The README's performance command must work against the daemon it tells
// the reader to start: the configuration it names turns rate limiting off
// and serves the address ntpload is pointed at.
func TestReadmePerformanceCommand(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s+go run \./examples/standalone -config (\S+)\s*&?\n\s+go run \./examples/ntpload .*?(\S+)\n`).FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no performance command of the form \"go run ./examples/standalone -config FILE\" followed by \"go run ./examples/ntpload ... ip:port\"")
	}
	data, err := os.ReadFile(filepath.Join("../..", string(m[1])))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Listen    []string `json:"listen"`
		RateLimit struct {
			Enabled *bool `json:"enabled"`
		} `json:"rate_limit"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("%s: %v", m[1], err)
	}
	if cfg.RateLimit.Enabled == nil || *cfg.RateLimit.Enabled {
		t.Errorf("%s does not set rate_limit.enabled to false", m[1])
	}
	// Without "listen" the daemon's default applies: 127.0.0.1:12300.
	listen := cfg.Listen
	if listen == nil {
		listen = []string{"127.0.0.1:12300", "[::1]:12300"}
	}
	if target := string(m[2]); !slices.Contains(listen, target) {
		t.Errorf("ntpload targets %s, the daemon listens on %v", target, listen)
	}
}

package main

import (
	"math"
	"net/netip"
	"runtime"
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

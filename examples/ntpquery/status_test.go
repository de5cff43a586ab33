package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/kernelsync"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/ops"
	"github.com/ntpkit/ntpkit/upstream"
)

// fakeDaemon is an ops.Source with fixed, upstream-synchronised state,
// so that the rendered views can be compared exactly.
type fakeDaemon struct{}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func (fakeDaemon) Health() daemon.Health {
	return daemon.Health{Serving: true, Synchronized: true}
}

func (fakeDaemon) Status() daemon.Status {
	up := &upstream.Status{
		Synchronized: true, Stratum: 2, RefID: ntpwire.RefID{192, 0, 2, 1}, LastUpdate: t0.Add(-40 * time.Second),
		Offset: 12 * time.Microsecond, Correction: -1500 * time.Microsecond, Frequency: -7.25,
		RootDelay: 10 * time.Millisecond, RootDispersion: 2 * time.Millisecond, RootDistance: 7 * time.Millisecond,
		Steps: 1, Updates: 42,
		Sources: []upstream.SourceStatus{
			{Name: "192.0.2.1:123", Addr: netip.MustParseAddrPort("192.0.2.1:123"), State: upstream.StateSelected, Reach: 0377,
				Poll: 64 * time.Second, Stratum: 1, RefID: ntpwire.RefIDString("GPS"), LastSample: t0.Add(-40 * time.Second),
				Offset: -250 * time.Microsecond, Delay: 8 * time.Millisecond, Jitter: 90 * time.Microsecond, RootDistance: 4500 * time.Microsecond,
				Samples: 40, Rejects: upstream.Rejects{Timeout: 2}},
			{Name: "time.example.net:123", Addr: netip.MustParseAddrPort("198.51.100.7:123"), State: upstream.StateUnreachable, Reach: 0,
				Poll: 1024 * time.Second, Samples: 0, Rejects: upstream.Rejects{Timeout: 8, KissRate: 1}},
		},
	}
	return daemon.Status{
		Time: t0, Version: "v0.9.0", GoVersion: "go1.26.8", Started: t0.Add(-time.Hour), Serving: true,
		Listen: []string{"127.0.0.1:123"}, Synchronized: true,
		Reference: ntpwire.Reference{Stratum: 2, RefID: ntpwire.RefID{192, 0, 2, 1}, Precision: -24,
			RootDelay: ntpwire.ShortOf(10 * time.Millisecond), RootDispersion: ntpwire.ShortOf(2 * time.Millisecond)},
		ReferenceTime: t0.Add(-40 * time.Second),
		Reloads:       daemon.ReloadStatus{Generation: 1, LastSuccess: t0.Add(-time.Hour)},
		Upstream:      up,
		Kernel:        &kernelsync.State{Synchronized: true, MaxError: 1500 * time.Microsecond, EstError: 20 * time.Microsecond, FrequencyPPM: -7.25},
	}
}

func (fakeDaemon) Stats() daemon.Stats {
	st := fakeDaemon{}.Status()
	return daemon.Stats{
		Server: server.Stats{Received: 1000, Replies: 990, Kisses: 5, BytesReceived: 48000, BytesSent: 47520,
			Dropped: server.DropStats{Handler: 10}},
		Access:    &server.AccessStats{Allowed: 995, DeniedAddr: 5, Kissed: 5},
		RateLimit: &server.RateLimitStats{Allowed: 990, Limited: 5, Dropped: 5},
		Upstream:  st.Upstream,
	}
}

func serveAPI(t *testing.T, src ops.Source, token string) string {
	t.Helper()
	web := httptest.NewServer(ops.Handler(src, ops.Options{Token: token}))
	t.Cleanup(web.Close)
	return web.URL
}

func view(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(args, &out, &errb); err != nil {
		t.Fatalf("ntpquery %q: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

func TestViews(t *testing.T) {
	url := serveAPI(t, fakeDaemon{}, "")
	tests := map[string]string{
		"tracking": `Reference ID    : 192.0.2.1 (the selected upstream's address)
Stratum         : 2
Ref time (UTC)  : Sun Mar 01 11:59:20 2026
Served time     : 12.0µs slow of NTP time (still being slewed away)
Correction      : -1.500ms (served time minus the system clock)
Frequency       : 7.250 ppm slow
Root distance   : 7.000ms
Last update     : 40s ago (42 updates, 1 steps)
Root delay      : 9.995ms
Root dispersion : 1.999ms
Precision       : 59ns (2^-24 s)
Leap status     : Normal
Kernel clock    : synchronized (TIME_OK), max error 1.500ms, estimated error 20.0µs, frequency -7.250 ppm
Healthy         : yes
`,
		"sources": `MS Name/IP address             Stratum  Poll Reach LastRx  Last sample
===============================================================================
^* 192.0.2.1:123                     1     6   377    40s  -250.0µs +/- 4.500ms
^? time.example.net:123 (198.…       0    10     0      -  -
`,
		"sourcestats": `Name/IP address             Samples Failures    Offset   Jitter    Delay Root dist  Failures by reason
====================================================================================================
192.0.2.1:123                    40        2  -250.0µs   90.0µs  8.000ms   4.500ms  timeout=2
time.example.net:123              0        9         -        -        -         -  kiss_rate=1 timeout=8
`,
	}
	for v, want := range tests {
		if got := view(t, "-status", url, v); got != want {
			t.Errorf("view %s:\n%s\nwant:\n%s", v, got, want)
		}
	}

	sv := view(t, "-status", url, "-v", "sources")
	if !strings.Contains(sv, "Source state '*' = selected") || !strings.Contains(sv, "^* 192.0.2.1:123") {
		t.Errorf("sources -v lacks the legend or the rows:\n%s", sv)
	}
	ss := view(t, "-status", url, "serverstats")
	for _, want := range []string{
		"NTP packets received              : 1000\n",
		"NTP packets dropped               : 10\n",
		"  dropped: handler                : 10\n",
		"Rate limit: limited (per client)  : 5\n",
	} {
		if !strings.Contains(ss, want) {
			t.Errorf("serverstats lacks %q:\n%s", want, ss)
		}
	}
	st := view(t, "-status", url)
	for _, want := range []string{"version         v0.9.0 go1.26.8", "synchronized    yes", "root delay      9.995ms",
		"kernel clock    synchronized (TIME_OK)", "upstream        2 sources, 1 reachable, 42 updates, 1 steps"} {
		if !strings.Contains(st, want) {
			t.Errorf("status lacks %q:\n%s", want, st)
		}
	}

	// -json gives the API's JSON, which scripts decode with ops' types.
	var js ops.Status
	if err := json.Unmarshal([]byte(view(t, "-status", url, "-json", "sources")), &js); err != nil || len(js.Upstream.Sources) != 2 {
		t.Errorf("sources -json: %v %+v", err, js)
	}
	var both struct {
		Status ops.Status
		Stats  ops.Stats
	}
	if err := json.Unmarshal([]byte(view(t, "-status", url, "-json", "sourcestats")), &both); err != nil || both.Stats.Upstream == nil || both.Status.Upstream == nil {
		t.Errorf("sourcestats -json: %v %+v", err, both)
	}
}

// The views of a real daemon serving the local clock with a simulated
// unsynchronised kernel.
func TestViewsLocalClock(t *testing.T) {
	unsynced := kernelsync.ReaderFunc(func() (kernelsync.State, error) {
		return kernelsync.State{ClockState: kernelsync.StateError, Status: kernelsync.StatusUnsync, MaxError: 16 * time.Second, EstError: 16 * time.Second}, nil
	})
	d, err := daemon.New(daemon.Options{Listen: []string{"127.0.0.1:0"}, Local: daemon.Local{Kernel: unsynced}})
	if err != nil {
		t.Fatal(err)
	}
	url := serveAPI(t, d, "tok")
	t.Setenv("NTPKIT_API_TOKEN", "tok")
	tr := view(t, "-status", url, "tracking")
	for _, want := range []string{
		"Reference ID    : 127.127.1.1 (the local clock, as chrony and ntpd name it)\n",
		"Stratum         : 10\n",
		"Served time     : the system clock itself (no upstream)\n",
		"Kernel clock    : unsynchronized (TIME_ERROR), max error 16.000s, estimated error 16.000s, frequency +0.000 ppm\n",
		"Healthy         : no: the kernel reports the system clock unsynchronized",
	} {
		if !strings.Contains(tr, want) {
			t.Errorf("tracking lacks %q:\n%s", want, tr)
		}
	}
	if got := view(t, "-status", url, "sources"); !strings.HasPrefix(got, "no upstream sources: the daemon serves the local clock (stratum 10, refid 127.127.1.1)") {
		t.Errorf("sources of a local clock: %q", got)
	}

	var out, errb bytes.Buffer
	if err := run([]string{"-status", url, "bogus"}, &out, &errb); exitCode(err) != exitUsage || !strings.Contains(err.Error(), "tracking") {
		t.Errorf("unknown view: %v (exit %d), want a usage error listing the views", err, exitCode(err))
	}
	t.Setenv("NTPKIT_API_TOKEN", "")
	if err := run([]string{"-status", url + "/v1/status"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("without the token: %v, want a 401 error", err)
	}
	if err := run([]string{"-status", "ftp://x"}, &out, &errb); err == nil {
		t.Error("accepted an ftp URL")
	}
}

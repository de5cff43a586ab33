package daemon

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/ratelimit"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/servertest"
	"github.com/ntpkit/ntpkit/upstream"
)

// start runs d until the test ends and waits until it serves.
func start(t *testing.T, d *Daemon) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- d.Run(ctx) }()
	select {
	case <-d.Ready():
	case err := <-errc:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	stopped := false
	var err error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-errc
		}
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestNewRefusesBadOptions(t *testing.T) {
	ok := Options{Listen: []string{"127.0.0.1:0"}}
	for _, tc := range []struct {
		name string
		edit func(o *Options)
		want string
	}{
		{"no listen", func(o *Options) { o.Listen = nil }, "Listen"},
		{"listen host name", func(o *Options) { o.Listen = []string{"localhost:123"} }, "Listen[0]"},
		{"stratum", func(o *Options) { o.Local.Stratum = 16 }, "Local.Stratum"},
		{"workers", func(o *Options) { o.Tuning.Workers = -1 }, "Tuning"},
		{"interleaved table", func(o *Options) { o.Tuning.InterleavedTableSize = 1 << 25 }, "InterleavedTableSize"},
		{"kiss budget", func(o *Options) { o.Access.Kiss = true }, "KissPerSecond"},
		{"kiss code", func(o *Options) { o.Access.KissCode = ntpwire.KissRate }, "KissCode"},
		{"rate table", func(o *Options) { o.RateLimit = RateLimit{Enabled: true, Client: ratelimit.Config{Burst: -1}} }, "RateLimit.Client"},
		{"nts without cert", func(o *Options) { o.NTS.Enabled = true }, "CertFile"},
		{"nts cert missing", func(o *Options) {
			o.NTS = NTS{Enabled: true, CertFile: "/nonexistent/cert.pem", KeyFile: "/nonexistent/key.pem"}
		}, "nonexistent"},
		{"upstream", func(o *Options) { o.Upstream.Servers = []upstream.Source{{Address: "192.0.2.1:0"}} }, "upstream"},
	} {
		o := ok
		tc.edit(&o)
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New: %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
	if _, err := New(ok); err != nil {
		t.Errorf("New(%+v): %v", ok, err)
	}
}

// TestRunServesAndStops checks a daemon's life: not serving before Run,
// serving the local reference on a bound port, stopped after its context
// ends, and refusing a second Run.
func TestRunServesAndStops(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	d, err := New(Options{
		Listen: []string{"127.0.0.1:0"},
		Local:  Local{Stratum: 4, RefID: ntpwire.RefIDString("GPS")},
		Tuning: Tuning{Sockets: 1},
		Clock:  clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	if h := d.Health(); h.Serving || !h.Synchronized || h.OK() {
		t.Errorf("health before Run %+v", h)
	}
	if st := d.Status(); len(st.Listen) != 0 || st.Serving {
		t.Errorf("status before Run %+v", st)
	}
	stop := start(t, d)
	if h := d.Health(); !h.OK() {
		t.Errorf("health while serving %+v", h)
	}
	st := d.Status()
	if len(st.Listen) != 1 || strings.HasSuffix(st.Listen[0], ":0") {
		t.Fatalf("listen %q, want the bound address", st.Listen)
	}
	want := Status{
		Time: clk.Now(), Version: st.Version, GoVersion: st.GoVersion, Started: clk.Now(), Serving: true,
		Listen: st.Listen, Listeners: []Listener{{Kind: "ntp", Addr: st.Listen[0], Serving: true}},
		Synchronized: true, Reference: d.Source().Reference(), ReferenceTime: clk.Now(),
		Reloads:     ReloadStatus{Generation: 1, LastSuccess: clk.Now()},
		KernelError: errNoKernel.Error(), // a fake clock: the kernel is not consulted
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if st.Reference.Stratum != 4 || st.Reference.RefID != ntpwire.RefIDString("GPS") {
		t.Errorf("reference %+v", st.Reference)
	}
	rep := exchange(t, st.Listen[0])
	if rep.Stratum != 4 || rep.RefID != ntpwire.RefIDString("GPS") {
		t.Errorf("reply stratum %d refid %v", rep.Stratum, rep.RefID)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if h := d.Health(); h.Serving {
		t.Errorf("health after Run %+v", h)
	}
	if s := d.Stats(); s.Server.Received != 1 || s.Server.Replies != 1 {
		t.Errorf("stats after Run %+v", s.Server)
	}
	if err := d.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
}

// TestRunBindFailure checks that a daemon that cannot bind every address
// does not serve.
func TestRunBindFailure(t *testing.T) {
	busy, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	d, err := New(Options{Listen: []string{"127.0.0.1:0", busy.LocalAddr().String()}, Tuning: Tuning{Sockets: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(context.Background()); err == nil {
		t.Fatal("Run served although an address was taken")
	}
	select {
	case <-d.Ready():
		t.Error("Ready closed although Run failed")
	default:
	}
	if d.Health().Serving {
		t.Error("serving after a failed Run")
	}
}

// TestReload checks that Reload applies valid options, refuses bad ones
// keeping those in force, and records both, as does ReloadFailed.
func TestReload(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	a, r := guardOptions(t)
	d, err := New(Options{Listen: []string{"127.0.0.1:0"}, Access: a, RateLimit: r, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t0 := clk.Now()
	clk.Advance(time.Minute)
	a.Kiss = false
	if err := d.Reload(Options{Access: a, RateLimit: r}); err != nil {
		t.Fatalf("valid reload refused: %v", err)
	}
	if d.guards.ac.Options().Kiss {
		t.Error("the reload did not reach the access control")
	}
	t1 := clk.Now()
	clk.Advance(time.Minute)
	bad := r
	bad.Client.Burst = -1
	if err := d.Reload(Options{Access: Access{Kiss: true}, RateLimit: bad}); err == nil {
		t.Fatal("bad reload accepted")
	}
	if d.guards.ac.Options().Kiss || d.guards.rl.Options().Table.Config().Burst != 2 {
		t.Error("a refused reload changed the options in force")
	}
	clk.Advance(time.Minute)
	d.ReloadFailed(errors.New("config: bogus"))
	want := ReloadStatus{Generation: 2, Successes: 1, Failures: 2, LastAttempt: clk.Now(), LastSuccess: t1, LastError: "config: bogus"}
	if diff := cmp.Diff(want, d.Status().Reloads); diff != "" {
		t.Errorf("reloads (-want +got):\n%s", diff)
	}
	if t0.Equal(t1) {
		t.Fatal("the fake clock did not move")
	}
}

// TestRunWaitsForDiscipliner checks that Run, with an upstream, returns
// only after the Discipliner has stopped and written its drift file.
func TestRunWaitsForDiscipliner(t *testing.T) {
	up := &server.Server{Source: server.NewLocalSource(nil, 1)}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upErr := make(chan error, 1)
	go func() { upErr <- up.Serve(context.Background(), pc) }()
	defer func() {
		up.Shutdown(context.Background())
		<-upErr
	}()

	drift := filepath.Join(t.TempDir(), "drift")
	d, err := New(Options{
		Listen: []string{"127.0.0.1:0"},
		Tuning: Tuning{Sockets: 1},
		Upstream: Upstream{
			Servers: []upstream.Source{{Address: pc.LocalAddr().String()}},
			Options: upstream.Options{MinPoll: 100 * time.Millisecond, MaxPoll: 100 * time.Millisecond, DriftFile: drift},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, d)
	// Wait for the first clock update: only then has the Discipliner a
	// frequency estimate to save.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st := d.Status(); st.Upstream != nil && st.Upstream.Updates > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no upstream update in 20s: %+v", d.Status().Upstream)
		}
	}
	if h := d.Health(); !h.Synchronized {
		t.Errorf("health %+v after an upstream update", h)
	}
	if _, err := os.Stat(drift); err == nil {
		os.Remove(drift) // written while running; the test wants the final write
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(drift); err != nil {
		t.Fatalf("Run returned before the Discipliner wrote its drift file: %v", err)
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

// TestTuningInterleaved checks that the interleaved-mode and send-batch
// options reach the NTP server, and that a send batch out of range is
// refused.
func TestTuningInterleaved(t *testing.T) {
	for _, tun := range []Tuning{
		{Sockets: 1},
		{Sockets: 1, DisableInterleaved: true, InterleavedTableSize: 128, SendBatch: 1},
	} {
		d, err := New(Options{Listen: []string{"127.0.0.1:0"}, Tuning: tun})
		if err != nil {
			t.Fatal(err)
		}
		if d.srv.DisableInterleaved != tun.DisableInterleaved || d.srv.InterleavedTableSize != tun.InterleavedTableSize {
			t.Errorf("Tuning %+v: server has DisableInterleaved %v, InterleavedTableSize %d", tun, d.srv.DisableInterleaved, d.srv.InterleavedTableSize)
		}
		if d.srv.SendBatch != tun.SendBatch {
			t.Errorf("Tuning %+v: server has SendBatch %d", tun, d.srv.SendBatch)
		}
	}
	if _, err := New(Options{Listen: []string{"127.0.0.1:0"}, Tuning: Tuning{SendBatch: -1}}); err == nil {
		t.Error("Tuning.SendBatch -1 accepted")
	}
}

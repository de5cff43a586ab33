package upstream_test

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/upstream"
	"github.com/ntpkit/ntpkit/upstream/internal/simnet"
)

// Upstream faults on the loopback simulation. Every test watches Now from
// another goroutine for time going backwards, and checks that the served
// time stays within bounds of the truth or that the reference data says
// unsynchronised.

const tenYears = 10 * 365 * 24 * time.Hour

// watchNow reads d.Now every half millisecond until the returned function
// is called, which fails the test if a reading was earlier than the one
// before.
func watchNow(t *testing.T, d *upstream.Discipliner) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var backs int
	var worst time.Duration
	var reads int
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(500 * time.Microsecond)
		defer tick.Stop()
		last := d.Now()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			now := d.Now()
			reads++
			if now.Before(last) {
				backs++
				worst = max(worst, last.Sub(now))
			}
			last = now
		}
	}()
	var once sync.Once
	stop = func() {
		t.Helper()
		once.Do(func() {
			close(done)
			wg.Wait()
			if backs > 0 {
				t.Errorf("Now went backwards %d times (by up to %v) in %d readings", backs, worst, reads)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// servedError measures the served time minus the truth, retrying readings
// the scheduler interrupted.
func servedError(t *testing.T, d *upstream.Discipliner, truth simnet.Truth) time.Duration {
	t.Helper()
	var best time.Duration
	bracket := time.Hour
	for range 20 {
		s0 := time.Now()
		v := d.Now()
		s1 := time.Now()
		if w := s1.Sub(s0); w < bracket {
			bracket = w
			best = v.Sub(truth.At(s0.Add(w / 2)))
		}
		if bracket < 100*time.Microsecond {
			break
		}
	}
	return best
}

// probe samples the served error for dur and fails if it ever exceeds
// bound while the clock says it is synchronised.
func probe(t *testing.T, ctx context.Context, d *upstream.Discipliner, truth simnet.Truth, dur, bound time.Duration) simnet.Stats {
	t.Helper()
	pctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	var p simnet.Probe
	p.Run(pctx, d, truth, 2*time.Millisecond)
	st, err := p.Summarise(0, bound)
	if err != nil {
		t.Fatal(err)
	}
	if st.MaxSynced > bound {
		t.Errorf("served time up to %v off the truth while synchronised (rms %v)", st.MaxSynced, st.RMS)
	}
	return st
}

// TestSimFaultyReplies: a majority of good sources and one source for
// each kind of bad reply. Each bad source is rejected and counted by its
// reason, never used, and the clock stays on the good ones.
func TestSimFaultyReplies(t *testing.T) {
	type fault struct {
		name   string
		mangle func(p *ntpwire.Packet)
		count  func(r upstream.Rejects) uint64
	}
	faults := []fault{
		{"wrong origin", func(p *ntpwire.Packet) { p.OrigTime++ }, func(r upstream.Rejects) uint64 { return r.BadOrigin }},
		{"zero transmit", func(p *ntpwire.Packet) { p.XmitTime = 0 }, func(r upstream.Rejects) uint64 { return r.BadTime }},
		// Stratum 0 is a kiss-o'-death; "SIM" is no code we know.
		{"stratum 0", func(p *ntpwire.Packet) { p.Stratum = 0 }, func(r upstream.Rejects) uint64 { return r.KissOther }},
		{"stratum 16", func(p *ntpwire.Packet) { p.Stratum = 16 }, func(r upstream.Rejects) uint64 { return r.BadStratum }},
		{"leap 3", func(p *ntpwire.Packet) { p.Leap = ntpwire.LeapAlarm }, func(r upstream.Rejects) uint64 { return r.LeapAlarm }},
		{"huge root dispersion", func(p *ntpwire.Packet) { p.RootDispersion = ntpwire.ShortOf(30 * time.Second) }, func(r upstream.Rejects) uint64 { return r.BadDistance }},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	truth := simnet.Truth{Epoch: time.Now(), Offset: 20 * time.Millisecond}
	var peers []simnet.Peer
	for _, f := range faults {
		peers = append(peers, simnet.Peer{Mangle: f.mangle, Offset: 300 * time.Millisecond})
	}
	const good = 7 // a majority of the 13
	for range good {
		peers = append(peers, simnet.Peer{Jitter: 100 * time.Microsecond})
	}
	_, addrs := startPeers(t, ctx, truth, peers...)
	d := runDiscipliner(t, ctx, addrs, upstream.Options{MinPoll: 100 * time.Millisecond, MaxPoll: 100 * time.Millisecond})
	stop := watchNow(t, d)
	waitFor(t, 15*time.Second, "synchronisation on the good sources", d.Synchronized)
	waitFor(t, 15*time.Second, "every bad source to be counted", func() bool {
		st := d.Status()
		for i, f := range faults {
			if f.count(st.Sources[i].Rejects) < 3 {
				return false
			}
		}
		return true
	})
	stats := probe(t, ctx, d, truth, 1500*time.Millisecond, 5*time.Millisecond)
	stop()
	st := d.Status()
	for i, f := range faults {
		s := st.Sources[i]
		if s.Samples != 0 || s.Reach != 0 || s.State == upstream.StateSelected || s.State == upstream.StateCandidate {
			t.Errorf("%s: source used: %+v", f.name, s)
		}
		t.Logf("%-20s rejected %d times, state %v", f.name, f.count(s.Rejects), s.State)
	}
	t.Logf("served error while 6 of 13 sources misbehave: rms %v, max %v", stats.RMS, stats.Max)
}

// TestSimBadTimeMinority: a source 10 years off and one flipping between
// two times 200 ms apart, among four good ones: neither is followed.
func TestSimBadTimeMinority(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	truth := simnet.Truth{Epoch: time.Now(), Offset: 15 * time.Millisecond}
	g := simnet.Peer{Jitter: 100 * time.Microsecond}
	_, addrs := startPeers(t, ctx, truth,
		simnet.Peer{Offset: tenYears},
		simnet.Peer{Mangle: simnet.Flip(200 * time.Millisecond)},
		g, g, g, g)
	d := runDiscipliner(t, ctx, addrs, upstream.Options{MinPoll: 100 * time.Millisecond, MaxPoll: 100 * time.Millisecond})
	stop := watchNow(t, d)
	waitFor(t, 15*time.Second, "synchronisation", d.Synchronized)
	stats := probe(t, ctx, d, truth, 2*time.Second, 5*time.Millisecond)
	stop()
	st := d.Status()
	if s := st.Sources[0]; s.State != upstream.StateFalseticker && s.State != upstream.StateUnreachable {
		t.Errorf("10-year source in state %v, want falseticker", s.State)
	}
	if s := st.Sources[1]; s.State == upstream.StateSelected {
		t.Errorf("flipping source selected: %+v", s)
	}
	if st.Steps > 1 {
		t.Errorf("%d steps", st.Steps)
	}
	t.Logf("10-year source: %v; flipping source: %v (jitter %v); served error rms %v max %v",
		st.Sources[0].State, st.Sources[1].State, st.Sources[1].Jitter, stats.RMS, stats.Max)
}

// failingResolver fails every lookup of broken names until fixed.
type failingResolver struct {
	mu    sync.Mutex
	names map[string]netip.Addr
}

func (r *failingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.names[host]; ok {
		return []netip.Addr{a}, nil
	}
	return nil, errors.New("SERVFAIL")
}

// TestSimDNSFailure: one configured name does not resolve. The
// Discipliner synchronises on the others, lists the name as unresolved
// with its error, and adds it once it resolves.
func TestSimDNSFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	truth := simnet.Truth{Epoch: time.Now()}
	srvs, addrs := startPeers(t, ctx, truth, simnet.Peer{}, simnet.Peer{}, simnet.Peer{})
	port := netip.MustParseAddrPort(srvs[2].Addr).Port()
	res := &failingResolver{names: map[string]netip.Addr{}}
	name := "broken.test:" + strconv.Itoa(int(port))
	d := runDiscipliner(t, ctx, []string{addrs[0], addrs[1], name}, upstream.Options{Resolver: res, MinPoll: 100 * time.Millisecond, MaxPoll: 100 * time.Millisecond})
	stop := watchNow(t, d)
	waitFor(t, 15*time.Second, "synchronisation without the broken name", d.Synchronized)
	st := d.Status()
	if len(st.Unresolved) != 1 || st.Unresolved[0].Name != name || st.Unresolved[0].Failures == 0 || st.Unresolved[0].LastError == "" {
		t.Fatalf("unresolved %+v, want %s with its error", st.Unresolved, name)
	}
	if len(st.Sources) != 2 {
		t.Fatalf("%d sources, want 2", len(st.Sources))
	}
	res.mu.Lock()
	res.names["broken.test"] = netip.MustParseAddr("127.0.0.1")
	res.mu.Unlock()
	waitFor(t, 15*time.Second, "the name to resolve and be used", func() bool {
		st := d.Status()
		return len(st.Sources) == 3 && st.Sources[2].Samples > 0 && len(st.Unresolved) == 0
	})
	stop()
	if e := servedError(t, d, truth); e.Abs() > 5*time.Millisecond {
		t.Fatalf("served time %v off", e)
	}
}

package upstream

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// rig drives a Discipliner on a fake clock by handing it samples directly.
type rig struct {
	t    *testing.T
	clk  *clocktest.Fake
	d    *Discipliner
	srcs []*source
	rng  *rand.Rand
	// truth returns the true time at raw time e: raw + truthOffset(e).
	truthOffset func(e time.Duration) time.Duration
}

func newRig(t *testing.T, n int, o Options) *rig {
	t.Helper()
	clk := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	o.Clock = clk
	var servers []string
	for i := range n {
		servers = append(servers, netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 123).String())
	}
	d, err := New(Addresses(servers...), o)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, clk: clk, d: d, rng: rand.New(rand.NewPCG(7, 8)), truthOffset: func(time.Duration) time.Duration { return 0 }}
	r.srcs = d.sources
	return r
}

// reply feeds source i a sample showing the truth plus extra, with
// gaussian noise of sigma.
func (r *rig) reply(i int, extra, sigma time.Duration, p ntpwire.Packet) {
	r.t.Helper()
	if p.Stratum == 0 {
		p.Stratum = 1
	}
	if p.Precision == 0 {
		p.Precision = -20
	}
	now := r.d.rawNow()
	noise := time.Duration(r.rng.NormFloat64() * float64(sigma))
	smp := sample{at: now, offset: r.truthOffset(now) + extra + noise, delay: 200 * time.Microsecond, disp: time.Microsecond}
	d := r.d
	d.mu.Lock()
	s := r.srcs[i]
	s.reach <<= 1
	s.polls++
	d.queryDoneLocked(context.Background(), s, outSample, p, smp)
	d.mu.Unlock()
}

// timeout records a lost reply from source i.
func (r *rig) timeout(i int) {
	d := r.d
	d.mu.Lock()
	s := r.srcs[i]
	s.reach <<= 1
	s.polls++
	d.queryDoneLocked(context.Background(), s, outTimeout, ntpwire.Packet{}, sample{})
	d.mu.Unlock()
}

// err returns the served time minus the true time.
func (r *rig) err() time.Duration {
	now := r.d.rawNow()
	return r.d.Now().Sub(r.clk.Now().Add(r.truthOffset(now)))
}

func TestMinorityNeverSynchronises(t *testing.T) {
	r := newRig(t, 5, Options{})
	const truth = 40 * time.Millisecond
	r.truthOffset = func(time.Duration) time.Duration { return truth }
	steps := []struct {
		src  int
		off  time.Duration
		sync bool
	}{
		{4, 500 * time.Millisecond, false}, // the falseticker answers first
		{0, 0, false},
		{1, 0, false}, // 3 of 5 answered, but only 2 agree: no majority of 5
		{2, 0, true},  // 3 agree
	}
	for i, st := range steps {
		r.clk.Advance(10 * time.Millisecond)
		r.reply(st.src, st.off, 0, ntpwire.Packet{})
		ref := r.d.Reference()
		if ref.Synchronized() != st.sync {
			t.Fatalf("after reply %d: synchronised = %v, want %v (ref %+v)", i, ref.Synchronized(), st.sync, ref)
		}
		if !st.sync && (ref.Leap != ntpwire.LeapAlarm || ref.Stratum != ntpwire.MaxStratum) {
			t.Fatalf("unsynchronised reference %+v, want leap alarm and stratum 16", ref)
		}
	}
	if e := r.err(); e.Abs() > time.Millisecond {
		t.Fatalf("served time is %v off the truth after the first update", e)
	}
	st := r.d.Status()
	if st.Sources[4].State != StateFalseticker {
		t.Fatalf("falseticker state %v", st.Sources[4].State)
	}
	for i := range 3 {
		if s := st.Sources[i].State; s != StateSelected && s != StateCandidate {
			t.Fatalf("source %d state %v, want selected or candidate", i, s)
		}
	}
}

// startBurst puts every source of r at the start of a start-up burst, as
// pollLoop does.
func (r *rig) startBurst() {
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	for _, s := range r.srcs {
		s.burst = ibursts
	}
}

func TestStartupBurstWaitsForSamples(t *testing.T) {
	r := newRig(t, 3, Options{})
	r.truthOffset = func(time.Duration) time.Duration { return 30 * time.Millisecond }
	r.startBurst()
	// Round robin: two of three sources agree once two have three
	// samples each, at the eighth reply (source 1's third).
	for i := range 8 {
		r.clk.Advance(100 * time.Millisecond)
		r.reply(i%3, 0, 50*time.Microsecond, ntpwire.Packet{})
		if got, want := r.d.Synchronized(), i == 7; got != want {
			t.Fatalf("after reply %d (source %d): synchronised = %v, want %v", i, i%3, got, want)
		}
	}
	if e := r.err(); e.Abs() > time.Millisecond {
		t.Fatalf("served time is %v off the truth after the first update", e)
	}
}

func TestStartupBurstLossyEnds(t *testing.T) {
	r := newRig(t, 2, Options{})
	r.truthOffset = func(time.Duration) time.Duration { return 20 * time.Millisecond }
	r.startBurst()
	// Source 1 answers its whole burst; source 0 only its first query.
	// Both are needed (2 of 2), so the clock waits for source 0's
	// burst to end, and synchronises on the lost reply that ends it.
	for q := range ibursts {
		r.clk.Advance(100 * time.Millisecond)
		r.reply(1, 0, 50*time.Microsecond, ntpwire.Packet{})
		if q == 0 {
			r.reply(0, 0, 50*time.Microsecond, ntpwire.Packet{})
		} else {
			r.timeout(0)
		}
		if got, want := r.d.Synchronized(), q == ibursts-1; got != want {
			t.Fatalf("after query %d: synchronised = %v, want %v", q, got, want)
		}
	}
	if e := r.err(); e.Abs() > time.Millisecond {
		t.Fatalf("served time is %v off the truth after the first update", e)
	}
}

func TestReferenceFields(t *testing.T) {
	r := newRig(t, 3, Options{})
	r.clk.Set(time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)) // leaps are accepted in June
	pk := func(leap ntpwire.Leap) ntpwire.Packet {
		return ntpwire.Packet{Stratum: 1, Leap: leap, RootDelay: ntpwire.ShortOf(2 * time.Millisecond), RootDispersion: ntpwire.ShortOf(time.Millisecond)}
	}
	r.reply(0, 0, 0, pk(ntpwire.LeapInsert))
	r.reply(1, 0, 0, pk(ntpwire.LeapInsert))
	r.reply(2, 0, 0, pk(ntpwire.LeapNone))
	ref := r.d.Reference()
	st := r.d.Status()
	var peer SourceStatus
	for _, s := range st.Sources {
		if s.State == StateSelected {
			peer = s
		}
	}
	if !peer.Addr.IsValid() {
		t.Fatalf("no selected source: %+v", st.Sources)
	}
	if ref.Stratum != 2 || ref.Leap != ntpwire.LeapInsert || ref.RefID != ntpwire.RefIDFromAddr(peer.Addr.Addr()) {
		t.Fatalf("reference %+v, want stratum 2, leap insert (2 of 3), refid %v", ref, peer.Addr.Addr())
	}
	if got := ref.RefTime.In(r.clk.Now()); got.Sub(r.d.Now()).Abs() > time.Millisecond {
		t.Fatalf("reference time %v, want the update time %v", got, r.d.Now())
	}
	if rd := ref.RootDelay.Duration(); rd < 2200*time.Microsecond-50*time.Microsecond || rd > 2200*time.Microsecond+50*time.Microsecond {
		t.Fatalf("root delay %v, want upstream's 2 ms plus the 200 µs path", rd)
	}
	disp0 := ref.RootDispersion.Duration()
	if disp0 < time.Millisecond {
		t.Fatalf("root dispersion %v is below the upstream's 1 ms", disp0)
	}
	r.clk.Advance(1000 * time.Second)
	disp1 := r.d.Reference().RootDispersion.Duration()
	if grow := disp1 - disp0; grow < 14*time.Millisecond || grow > 16*time.Millisecond {
		t.Fatalf("root dispersion grew by %v in 1000 s, want 15 ms (15 ppm)", grow)
	}
}

func TestRefIDForIPv6Peer(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	d, err := New(Addresses("[2001:db8::1]:123"), Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	s := d.sources[0]
	s.polls = 1
	d.handleLocked(context.Background(), s, outSample, ntpwire.Packet{Stratum: 3, Precision: -20}, sample{at: d.rawNow(), delay: time.Millisecond})
	d.mu.Unlock()
	ref := d.Reference()
	if want := ntpwire.RefIDFromAddr(netip.MustParseAddr("2001:db8::1")); ref.RefID != want || ref.Stratum != 4 {
		t.Fatalf("reference %+v, want refid %v (MD5 of the address) and stratum 4", ref, want)
	}
}

func TestHoldoverThenRecovery(t *testing.T) {
	r := newRig(t, 2, Options{Holdover: 10 * time.Minute})
	r.reply(0, 0, 0, ntpwire.Packet{})
	r.reply(1, 0, 0, ntpwire.Packet{})
	if !r.d.Synchronized() {
		t.Fatal("not synchronised")
	}
	r.clk.Advance(9 * time.Minute)
	if !r.d.Synchronized() {
		t.Fatal("lost synchronisation within the holdover")
	}
	r.clk.Advance(2 * time.Minute)
	ref := r.d.Reference()
	if ref.Leap != ntpwire.LeapAlarm || ref.Stratum != ntpwire.MaxStratum {
		t.Fatalf("after the holdover: %+v, want leap alarm and stratum 16", ref)
	}
	r.d.housekeep()
	if r.d.Status().Synchronized {
		t.Fatal("status still synchronised")
	}
	r.reply(0, 0, 0, ntpwire.Packet{})
	if !r.d.Synchronized() {
		t.Fatal("did not recover")
	}
}

func TestSlewBelowThresholdStepAbove(t *testing.T) {
	r := newRig(t, 1, Options{})
	r.reply(0, 0, 0, ntpwire.Packet{})
	extra := 50 * time.Millisecond // below the 128 ms step threshold
	r.clk.Advance(time.Second)
	r.reply(0, extra, 0, ntpwire.Packet{})
	prev := r.d.Now()
	for range 20 {
		r.clk.Advance(100 * time.Millisecond)
		now := r.d.Now()
		rate := float64(now.Sub(prev)-100*time.Millisecond) / float64(100*time.Millisecond)
		if rate < -1e-9 || rate > DefaultMaxSlewRate+maxFreq+1e-6 {
			t.Fatalf("served clock runs %.0f ppm fast while slewing", rate*1e6)
		}
		prev = now
	}
	if st := r.d.Status(); st.Steps != 0 {
		t.Fatalf("stepped %d times for a %v offset", st.Steps, extra)
	}
	// Far beyond the threshold, backwards: a step, but readers never
	// see time go back.
	r.truthOffset = func(time.Duration) time.Duration { return -time.Second }
	before := r.d.Now()
	// The estimate fits a line through the recent samples, so a sudden
	// change takes a few samples to be believed (the runs test then
	// drops the older ones).
	for range 10 {
		r.clk.Advance(10 * time.Millisecond)
		r.reply(0, 0, 0, ntpwire.Packet{})
	}
	if st := r.d.Status(); st.Steps == 0 {
		t.Fatal("no step after a -1 s offset")
	}
	last := before
	for i := range 100 {
		now := r.d.Now()
		if now.Before(last) {
			t.Fatalf("time went backwards: %v after %v", now, last)
		}
		last = now
		r.clk.Advance(100 * time.Millisecond)
		if i%2 == 0 {
			r.reply(0, 0, 0, ntpwire.Packet{})
		}
	}
	if e := r.err(); e.Abs() > time.Millisecond {
		t.Fatalf("after the backward step and its hold, error %v", e)
	}
}

func TestTracksFrequencyError(t *testing.T) {
	r := newRig(t, 4, Options{MinPoll: 250 * time.Millisecond, MaxPoll: 250 * time.Millisecond})
	// The sources run 20 ppm fast against the local clock.
	r.truthOffset = func(e time.Duration) time.Duration { return 3*time.Millisecond + time.Duration(float64(e)*20e-6) }
	var worst time.Duration
	for i := range 4 * 240 { // 60 s, each source every 250 ms
		r.clk.Advance(62500 * time.Microsecond)
		r.reply(i%4, 0, 200*time.Microsecond, ntpwire.Packet{})
		if i > 4*120 {
			worst = max(worst, r.err().Abs())
		}
	}
	st := r.d.Status()
	// 256 samples over 16 s with 200 µs of noise: a standard error of
	// about 3 ppm.
	if st.Frequency < 12 || st.Frequency > 28 {
		t.Fatalf("frequency %.2f ppm, want about 20", st.Frequency)
	}
	if worst > 250*time.Microsecond {
		t.Fatalf("worst error in the second half %v", worst)
	}
}

func TestFromSystemMatchesNow(t *testing.T) {
	r := newRig(t, 1, Options{})
	r.truthOffset = func(time.Duration) time.Duration { return 5 * time.Second }
	r.reply(0, 0, 0, ntpwire.Packet{})
	r.clk.Advance(time.Second)
	if a, b := r.d.FromSystem(r.clk.Now()), r.d.Now(); !a.Equal(b) {
		t.Fatalf("FromSystem(now) = %v, Now = %v", a, b)
	}
	if e := r.err(); e.Abs() > time.Microsecond {
		t.Fatalf("error %v after stepping to a 5 s offset", e)
	}
}

func TestKissHandling(t *testing.T) {
	r := newRig(t, 2, Options{MinPoll: time.Second, MaxPoll: 8 * time.Second})
	d := r.d
	d.mu.Lock()
	stop, _ := d.handleLocked(context.Background(), r.srcs[0], outRate, ntpwire.Packet{Poll: 4}, sample{})
	if stop || r.srcs[0].pollFloor != 16*time.Second {
		t.Errorf("after RATE asking for 2^4 s: stop=%v poll floor %v, want 16 s (capped at 16·MinPoll)", stop, r.srcs[0].pollFloor)
	}
	stop, _ = d.handleLocked(context.Background(), r.srcs[1], outDeny, ntpwire.NewKiss(&ntpwire.Packet{}, ntpwire.KissDeny), sample{})
	d.mu.Unlock()
	if !stop {
		t.Error("DENY did not stop the source")
	}
	st := d.Status()
	if st.Sources[1].State != StateKoD || st.Rejects.KissDeny != 1 || st.Rejects.KissRate != 1 {
		t.Errorf("status after kisses: %+v", st)
	}
}

func TestBackoffOnLoss(t *testing.T) {
	r := newRig(t, 1, Options{MinPoll: time.Second, MaxPoll: 16 * time.Second})
	for range 4 {
		r.timeout(0)
	}
	if p := r.srcs[0].poll; p != 2*time.Second {
		t.Fatalf("poll after 4 losses %v, want 2 s", p)
	}
	for range 4 {
		r.timeout(0)
	}
	st := r.d.Status().Sources[0]
	if st.State != StateUnreachable || st.Reach != 0 || st.Rejects.Timeout != 8 {
		t.Fatalf("after 8 losses: %+v", st)
	}
	r.reply(0, 0, 0, ntpwire.Packet{})
	if p := r.srcs[0].poll; p != time.Second {
		t.Fatalf("poll after recovery %v, want MinPoll", p)
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		servers []string
		o       Options
		want    string
	}{
		{nil, Options{}, "no sources"},
		{[]string{"a:0"}, Options{}, "sources[0]"},
		{[]string{"ok", "b:99999"}, Options{}, "sources[1]"},
		{[]string{":123"}, Options{}, "empty host"},
		{[]string{"a"}, Options{MinPoll: 10 * time.Second, MaxPoll: time.Second}, "poll"},
		{[]string{"a"}, Options{MaxSlewRate: 2}, "slew"},
	} {
		_, err := New(Addresses(tc.servers...), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %+v) = %v, want an error mentioning %q", tc.servers, tc.o, err, tc.want)
		}
	}
	d, err := New(Addresses("time.example", "192.0.2.1", "[2001:db8::1]:1234"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e := d.entries[0]; e.port != 123 || e.ip.IsValid() {
		t.Errorf("entry %+v", e)
	}
	if e := d.entries[2]; e.port != 1234 || e.ip != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("entry %+v", e)
	}
}

func TestStatusTyped(t *testing.T) {
	r := newRig(t, 1, Options{})
	r.reply(0, 0, 0, ntpwire.Packet{Leap: ntpwire.LeapInsert})
	st := r.d.Status()
	peer := netip.MustParseAddr("192.0.2.1")
	if !st.Synchronized || st.RefID != ntpwire.RefIDFromAddr(peer) || st.Stratum != 2 {
		t.Fatalf("status %+v, want synchronised to %v at stratum 2", st, peer)
	}
	src := st.Sources[0]
	if src.State != StateSelected || src.Reach != 1 || src.Leap != ntpwire.LeapInsert || src.Addr != netip.AddrPortFrom(peer, 123) {
		t.Fatalf("source status %+v", src)
	}
	if b, err := json.Marshal(st); err != nil || strings.Contains(string(b), "frequency_ppm") {
		t.Fatalf("status carries JSON names (%v): %s", err, b)
	}
}

func TestReadersDoNotAllocate(t *testing.T) {
	r := newRig(t, 1, Options{})
	r.reply(0, 0, 0, ntpwire.Packet{})
	sys := time.Unix(1e9, 0)
	if n := testing.AllocsPerRun(100, func() {
		r.d.Now()
		r.d.Reference()
		r.d.FromSystem(sys)
	}); n != 0 {
		t.Fatalf("%v allocations per Now+Reference+FromSystem", n)
	}
}

// TestUnsynchronisedDispersionIsLarge: before the first update the served
// root dispersion says the error is unbounded (RFC 5905's MAXDISP).
func TestUnsynchronisedDispersionIsLarge(t *testing.T) {
	r := newRig(t, 3, Options{})
	if ref := r.d.Reference(); ref.Synchronized() || ref.RootDispersion.Duration() < 15*time.Second {
		t.Fatalf("unsynchronised reference %+v, want root dispersion 16 s", ref)
	}
	for i := range 3 {
		r.reply(i, 0, 0, ntpwire.Packet{})
	}
	if ref := r.d.Reference(); !ref.Synchronized() || ref.RootDispersion.Duration() > time.Second {
		t.Fatalf("synchronised reference %+v, want a small root dispersion", ref)
	}
}

// TestLoopRefused: a stratum-2+ source whose refid names this host is
// synchronised to us; its replies are refused and counted.
func TestLoopRefused(t *testing.T) {
	r := newRig(t, 1, Options{})
	d := r.d
	own := []ntpwire.RefID{ntpwire.RefIDFromAddr(netip.MustParseAddr("198.51.100.7"))}
	p := ntpwire.Packet{Mode: ntpwire.ModeServer, Stratum: 3, RefID: own[0], RecvTime: 1 << 32, XmitTime: 1 << 32}
	if out, _, _ := d.judge(r.srcs[0], &p, 0, time.Millisecond, own, false); out != outRejected {
		t.Fatalf("reply from a source synchronised to us: outcome %v, want rejected", out)
	}
	p.RefID = ntpwire.RefIDFromAddr(netip.MustParseAddr("198.51.100.8"))
	if out, _, _ := d.judge(r.srcs[0], &p, 0, time.Millisecond, own, false); out != outSample {
		t.Fatalf("reply from another server's client: outcome %v, want a sample", out)
	}
	if n := d.Status().Rejects.Loop; n != 1 {
		t.Fatalf("Rejects.Loop = %d, want 1", n)
	}
}

type staticResolver []netip.Addr

func (r staticResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return r, nil
}

// TestPoolSkipsOwnAddress: a pool name that resolves to this host (it
// joined the pool) does not make the host its own source.
func TestPoolSkipsOwnAddress(t *testing.T) {
	own, other := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.8")
	d, err := New(Addresses("pool.example"), Options{Resolver: staticResolver{own, other}})
	if err != nil {
		t.Fatal(err)
	}
	d.localAddrs = func() []netip.Addr { return []netip.Addr{own} }
	var got []netip.AddrPort
	d.resolveEntry(context.Background(), d.entries[0], func(s *source) { got = append(got, s.addr) })
	if len(got) != 1 || got[0].Addr() != other {
		t.Fatalf("sources %v, want only %v", got, other)
	}
}

// TestFromSystemAcrossHostStep: the system clock (wall time) is stepped
// by someone else while the served time runs on the monotonic base clock.
// Until the next refresh, a kernel stamp cannot be told to be before or
// after the step, so FromSystem serves the current time rather than a
// receive timestamp off by the step; after the refresh, stamps map
// exactly again.
func TestFromSystemAcrossHostStep(t *testing.T) {
	r := newRig(t, 1, Options{})
	d := r.d
	var wallShift time.Duration // the system clock minus the base clock
	d.wallNow = func() int64 { return r.clk.Now().Add(wallShift).UnixNano() }
	r.reply(0, 0, 0, ntpwire.Packet{})
	d.housekeep()
	sysNow := func() time.Time { return r.clk.Now().Add(wallShift).Round(0) }

	// No step: a stamp 3 ms old maps to the served time 3 ms ago.
	stamp := sysNow()
	r.clk.Advance(3 * time.Millisecond)
	if got := d.Now().Sub(d.FromSystem(stamp)); got < 2900*time.Microsecond || got > 3100*time.Microsecond {
		t.Fatalf("stamp 3 ms old mapped %v before now", got)
	}
	for _, step := range []time.Duration{-time.Hour, -300 * time.Millisecond, 300 * time.Millisecond, time.Hour} {
		stamp := sysNow() // taken before the step
		r.clk.Advance(time.Millisecond)
		wallShift += step
		now := d.Now()
		got := d.FromSystem(stamp)
		if off := now.Sub(got); off < 0 || off > time.Millisecond {
			t.Fatalf("step %v: stamp taken before it mapped %v before now, want within [0, 1ms]", step, off)
		}
		stamp = sysNow() // taken after the step, before the refresh
		if off := d.Now().Sub(d.FromSystem(stamp)); off < 0 || off > time.Millisecond {
			t.Fatalf("step %v: stamp taken after it mapped %v before now", step, off)
		}
		d.housekeep() // the once-a-second refresh
		stamp = sysNow()
		r.clk.Advance(2 * time.Millisecond)
		if off := d.Now().Sub(d.FromSystem(stamp)); off < 1900*time.Microsecond || off > 2100*time.Microsecond {
			t.Fatalf("step %v: after the refresh a stamp 2 ms old mapped %v before now", step, off)
		}
	}
}

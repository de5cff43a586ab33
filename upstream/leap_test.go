package upstream

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

// The leap tests run a rig of three sources on the fake clock across the
// end of June 2026. The fake clock is the free-running local oscillator:
// it knows nothing of leap seconds. The sources serve UTC as NTP servers
// do (POSIX time): they announce the leap during the last hour, step by
// a second at its moment and stop announcing it.

var leapMidnight = time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)

type leapRun struct {
	r      *rig
	dir    int // +1 insert, -1 delete
	L      int64
	steps0 uint64
}

func newLeapRun(t *testing.T, dir int, o Options) *leapRun {
	t.Helper()
	o.MinPoll, o.MaxPoll = time.Second, time.Second
	r := newRig(t, 3, o)
	lr := &leapRun{r: r, dir: dir, L: leapMidnight.UnixNano()}
	// The sources' POSIX time minus the local clock: 0 before the leap,
	// then ∓1 s (a deleted second starts a second before midnight).
	at := lr.L
	if dir < 0 {
		at -= int64(time.Second)
	}
	epochWall := r.d.epochWall
	r.truthOffset = func(e time.Duration) time.Duration {
		if epochWall+int64(e) >= at {
			return -time.Duration(dir) * time.Second
		}
		return 0
	}
	r.clk.Set(leapMidnight.Add(-time.Hour))
	return lr
}

// posix is the sources' time now.
func (lr *leapRun) posix() time.Time {
	return lr.r.clk.Now().Add(lr.r.truthOffset(lr.r.d.rawNow()))
}

// feed has the next source reply, announcing the leap until it happened.
func (lr *leapRun) feed(i int) {
	leap := ntpwire.LeapNone
	if lr.posix().UnixNano() < lr.L-int64(time.Second) || lr.dir > 0 && lr.posix().UnixNano() < lr.L {
		leap = ntpwire.LeapInsert
		if lr.dir < 0 {
			leap = ntpwire.LeapDelete
		}
	}
	lr.r.reply(i%3, 0, 0, ntpwire.Packet{Leap: leap})
}

// run advances from the current time to until in steps of step, a reply
// every second, calling check after each step with the served time; it
// fails if the served time goes backwards or synchronisation is lost.
func (lr *leapRun) run(t *testing.T, until time.Time, step time.Duration, check func(local, served time.Time)) {
	t.Helper()
	r := lr.r
	last := r.d.Now()
	n := 0
	for r.clk.Now().Before(until) {
		r.clk.Advance(step)
		if r.clk.Now().Sub(leapMidnight)%time.Second < step {
			lr.feed(n)
			n++
		}
		now := r.d.Now()
		if now.Before(last) {
			t.Fatalf("at %v served time went back from %v to %v", r.clk.Now(), last, now)
		}
		if !r.d.Synchronized() {
			t.Fatalf("at %v lost synchronisation: %+v", r.clk.Now(), r.d.Status())
		}
		check(r.clk.Now(), now)
		last = now
	}
}

func (lr *leapRun) start(t *testing.T, want ntpwire.Leap) {
	t.Helper()
	for i := range 6 {
		lr.r.clk.Advance(time.Second)
		lr.feed(i)
	}
	ref := lr.r.d.Reference()
	if !ref.Synchronized() || ref.Leap != want {
		t.Fatalf("an hour before the leap: reference %+v, want synchronised with leap %v", ref, want)
	}
	st := lr.r.d.Status()
	kind := ntpwire.LeapInsert
	if lr.dir < 0 {
		kind = ntpwire.LeapDelete
	}
	if st.LeapSecond != kind || !st.LeapTime.Equal(leapMidnight) {
		t.Fatalf("status leap %q at %v, want %s at %v", st.LeapSecond, st.LeapTime, kind, leapMidnight)
	}
	lr.steps0 = st.Steps
}

func (lr *leapRun) finish(t *testing.T) {
	t.Helper()
	st := lr.r.d.Status()
	if st.Steps != lr.steps0 || st.Leaps != 1 || st.LeapSecond != ntpwire.LeapNone {
		t.Fatalf("after the leap: %d steps (%d before), %d leaps, leap %q scheduled", st.Steps, lr.steps0, st.Leaps, st.LeapSecond)
	}
	for _, s := range st.Sources {
		if s.State != StateSelected && s.State != StateCandidate {
			t.Fatalf("after the leap source %v is %v", s.Addr, s.State)
		}
	}
	if e := lr.r.d.Now().Sub(lr.posix()); e.Abs() > time.Millisecond {
		t.Fatalf("after the leap served time is %v off UTC", e)
	}
	if ref := lr.r.d.Reference(); ref.Leap != ntpwire.LeapNone {
		t.Fatalf("after the leap: leap %v", ref.Leap)
	}
}

// TestLeapInsertFreezes: an inserted second is served as one second of
// frozen time at 00:00:00; the announcement is passed on until then.
func TestLeapInsertFreezes(t *testing.T) {
	lr := newLeapRun(t, 1, Options{})
	lr.start(t, ntpwire.LeapInsert)
	L := leapMidnight
	lr.run(t, L.Add(-10*time.Second), time.Second, func(local, served time.Time) {})
	frozen := 0
	lr.run(t, L.Add(10*time.Second), 10*time.Millisecond, func(local, served time.Time) {
		ref := lr.r.d.Reference()
		switch {
		case local.Before(L):
			if ref.Leap != ntpwire.LeapInsert {
				t.Fatalf("at %v leap %v, want insert", local, ref.Leap)
			}
			if e := served.Sub(local); e.Abs() > time.Millisecond {
				t.Fatalf("at %v served %v", local, served)
			}
		case local.Before(L.Add(time.Second)):
			if ref.Leap != ntpwire.LeapNone {
				t.Fatalf("in the leap second leap %v", ref.Leap)
			}
			if served.Sub(L).Abs() > time.Millisecond {
				t.Fatalf("at %v (23:59:60) served %v, want frozen at %v", local, served, L)
			}
			if local.Sub(L) > 10*time.Millisecond && local.Sub(L) < 990*time.Millisecond {
				if !served.Equal(L) {
					t.Fatalf("at %v served %v, want exactly %v", local, served, L)
				}
				frozen++
			}
		default:
			if e := served.Sub(local.Add(-time.Second)); e.Abs() > time.Millisecond {
				t.Fatalf("at %v served %v, want the local time minus 1 s", local, served)
			}
		}
	})
	if frozen < 90 {
		t.Fatalf("frozen for %d readings", frozen)
	}
	lr.run(t, L.Add(5*time.Minute), time.Second, func(local, served time.Time) {})
	lr.finish(t)
}

// TestLeapDeleteSkips: a deleted second is skipped: 23:59:59 is never
// served.
func TestLeapDeleteSkips(t *testing.T) {
	lr := newLeapRun(t, -1, Options{})
	lr.start(t, ntpwire.LeapDelete)
	L := leapMidnight
	lr.run(t, L.Add(-10*time.Second), time.Second, func(local, served time.Time) {})
	lr.run(t, L.Add(10*time.Second), 10*time.Millisecond, func(local, served time.Time) {
		want := local
		if !local.Before(L.Add(-time.Second)) {
			want = local.Add(time.Second)
		}
		if e := served.Sub(want); e.Abs() > time.Millisecond {
			t.Fatalf("at %v served %v, want %v", local, served, want)
		}
		if s := served.Add(-time.Millisecond); s.After(L.Add(-time.Second)) && s.Before(L.Add(-time.Millisecond)) {
			t.Fatalf("at %v served %v, inside the deleted second", local, served)
		}
	})
	lr.run(t, L.Add(5*time.Minute), time.Second, func(local, served time.Time) {})
	lr.finish(t)
}

// TestLeapSmear: with LeapSmear the leap is spread linearly over the
// window centred on it, and never announced.
func TestLeapSmear(t *testing.T) {
	const window = 40 * time.Minute
	lr := newLeapRun(t, 1, Options{LeapSmear: window})
	lr.start(t, ntpwire.LeapNone)
	L := leapMidnight
	begin := L.Add(-window / 2)
	var prev time.Time
	lr.run(t, L.Add(window/2+time.Minute), time.Second, func(local, served time.Time) {
		if ref := lr.r.d.Reference(); ref.Leap != ntpwire.LeapNone {
			t.Fatalf("at %v a smearing server announced leap %v", local, ref.Leap)
		}
		// The local clock is true elapsed time; before the leap it shows
		// UTC.
		frac := min(max(float64(local.Sub(begin))/float64(window), 0), 1)
		want := local.Add(-time.Duration(frac * float64(time.Second)))
		if e := served.Sub(want); e.Abs() > time.Millisecond {
			t.Fatalf("at %v served %v, want %v (smear %.3f)", local, served, want, frac)
		}
		if !prev.IsZero() {
			rate := float64(served.Sub(prev)) / float64(time.Second)
			if rate < 1-1/window.Seconds()-20e-6 || rate > 1+20e-6 {
				t.Fatalf("at %v served time runs at %.7f", local, rate)
			}
		}
		prev = served
	})
	lr.finish(t)
}

// TestLeapMinorityIgnored: one source of three announcing a leap does not
// schedule it.
func TestLeapMinorityIgnored(t *testing.T) {
	r := newRig(t, 3, Options{})
	r.reply(0, 0, 0, ntpwire.Packet{Leap: ntpwire.LeapInsert})
	r.reply(1, 0, 0, ntpwire.Packet{})
	r.reply(2, 0, 0, ntpwire.Packet{})
	if ref := r.d.Reference(); !ref.Synchronized() || ref.Leap != ntpwire.LeapNone {
		t.Fatalf("reference %+v, want synchronised without a leap", ref)
	}
	if st := r.d.Status(); st.LeapSecond != ntpwire.LeapNone {
		t.Fatalf("leap %q scheduled", st.LeapSecond)
	}
}

// TestLeapOnlyJuneOrDecember: a majority announcing a leap in March is
// ignored (and logged): leap seconds happen only at the end of June or
// December.
func TestLeapOnlyJuneOrDecember(t *testing.T) {
	var log bytes.Buffer
	r := newRig(t, 3, Options{Logger: logTo(&log)}) // 1 March
	for i := range 3 {
		r.reply(i, 0, 0, ntpwire.Packet{Leap: ntpwire.LeapInsert})
	}
	if ref := r.d.Reference(); !ref.Synchronized() || ref.Leap != ntpwire.LeapNone {
		t.Fatalf("reference %+v, want synchronised without a leap", ref)
	}
	if st := r.d.Status(); st.LeapSecond != ntpwire.LeapNone {
		t.Fatalf("leap %v scheduled for %v", st.LeapSecond, st.LeapTime)
	}
	if !strings.Contains(log.String(), "other than June or December") {
		t.Fatalf("the ignored announcement was not logged: %s", log.String())
	}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), false}, // ends November
	} {
		if got := leapMonth(tc.at.UnixNano()); got != tc.want {
			t.Errorf("leapMonth(%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
}

func TestMonthEnd(t *testing.T) {
	for _, tc := range []struct{ now, want time.Time }{
		{time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{time.Date(2027, 2, 10, 5, 0, 0, 0, time.UTC), time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if got := monthEnd(tc.now.UnixNano()); got != tc.want.UnixNano() {
			t.Errorf("monthEnd(%v) = %v, want %v", tc.now, time.Unix(0, got).UTC(), tc.want)
		}
	}
}

// TestLeapWithoutSamples: the leap is carried out by the housekeeping
// tick even when no reply arrives around it (a holdover across the leap).
func TestLeapWithoutSamples(t *testing.T) {
	lr := newLeapRun(t, 1, Options{Holdover: time.Hour})
	lr.start(t, ntpwire.LeapInsert)
	r := lr.r
	last := r.d.Now()
	for r.clk.Now().Before(leapMidnight.Add(5 * time.Second)) {
		r.clk.Advance(250 * time.Millisecond)
		r.d.housekeep()
		now := r.d.Now()
		if now.Before(last) {
			t.Fatalf("served time went back from %v to %v", last, now)
		}
		last = now
	}
	if st := r.d.Status(); st.Leaps != 1 || st.LeapSecond != ntpwire.LeapNone || !st.Synchronized {
		t.Fatalf("after the leap without replies: %d leaps, %q scheduled, synchronised %v", st.Leaps, st.LeapSecond, st.Synchronized)
	}
	lr.feed(0)
	lr.feed(1)
	lr.feed(2)
	lr.finish(t)
}

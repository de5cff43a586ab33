package upstream

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

// TestMaxStep: the first synchronisation may step any amount (the base
// clock may be years off at boot); after it, an update beyond MaxStep is
// refused, logged as an error, counted, and the server says it is
// unsynchronised while its clock runs on.
func TestMaxStep(t *testing.T) {
	var log bytes.Buffer
	r := newRig(t, 3, Options{Logger: logTo(&log), Holdover: time.Hour})
	r.truthOffset = func(time.Duration) time.Duration { return tenYearsIn }
	for i := range 3 {
		r.reply(i, 0, 0, ntpwire.Packet{})
	}
	if !r.d.Synchronized() || r.err().Abs() > time.Millisecond {
		t.Fatalf("first synchronisation to a 10-year offset: synced %v, error %v", r.d.Synchronized(), r.err())
	}
	if !strings.Contains(log.String(), "first synchronisation steps beyond max step") {
		t.Fatalf("no warning for the large first step: %s", log.String())
	}
	before := r.d.Now()
	r.truthOffset = func(time.Duration) time.Duration { return tenYearsIn + 2000*time.Second }
	for i := range 30 {
		r.clk.Advance(time.Second)
		r.reply(i%3, 0, 0, ntpwire.Packet{})
	}
	st := r.d.Status()
	ref := r.d.Reference()
	if st.RefusedSteps == 0 || ref.Leap != ntpwire.LeapAlarm || ref.Stratum != ntpwire.MaxStratum {
		t.Fatalf("after a 2000 s jump: refused %d, reference %+v; want refused and unsynchronised", st.RefusedSteps, ref)
	}
	if got := r.d.Now().Sub(before); got < 29*time.Second || got > 31*time.Second {
		t.Fatalf("served clock moved %v in 30 s", got)
	}
	if !strings.Contains(log.String(), "level=ERROR") {
		t.Fatalf("refusal not logged as an error: %s", log.String())
	}
	// The sources come back: synchronised again (each source's first
	// two samples back are suppressed as popcorn spikes).
	r.truthOffset = func(time.Duration) time.Duration { return tenYearsIn }
	for i := range 45 {
		r.clk.Advance(time.Second)
		r.reply(i%3, 0, 0, ntpwire.Packet{})
	}
	if !r.d.Synchronized() || r.err().Abs() > time.Millisecond {
		t.Fatalf("after the sources returned: synced %v error %v status %+v", r.d.Synchronized(), r.err(), r.d.Status())
	}
}

// TestMaxStepOff: a negative MaxStep follows any step.
func TestMaxStepOff(t *testing.T) {
	r := newRig(t, 1, Options{MaxStep: -1})
	r.reply(0, 0, 0, ntpwire.Packet{})
	r.truthOffset = func(time.Duration) time.Duration { return 5000 * time.Second }
	for range 20 {
		r.clk.Advance(time.Second)
		r.reply(0, 0, 0, ntpwire.Packet{})
	}
	if !r.d.Synchronized() || r.err().Abs() > time.Millisecond || r.d.Status().RefusedSteps != 0 {
		t.Fatalf("MaxStep off: synced %v, error %v", r.d.Synchronized(), r.err())
	}
}

const tenYearsIn = 10 * 365 * 24 * time.Hour

package server

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestSendClockFit checks the per-datagram fit: sends of 3 and 4
// datagrams taking fixed + n*perDatagram give perDatagram as the slope,
// free of the fixed cost, and one stalled send barely moves it.
func TestSendClockFit(t *testing.T) {
	const fixed, per = 5 * time.Microsecond, 2 * time.Microsecond
	var c sendClock
	for i := 0; i < 200; i++ {
		n := 3 + i%2
		c.update(n, time.Duration(n)*40*time.Nanosecond, fixed+time.Duration(n)*per)
	}
	if got := c.offset(1, 4) - c.offset(0, 4); got < per*99/100 || got > per*101/100 {
		t.Fatalf("per-datagram time %v, want %v", got, per)
	}
	if got := c.offset(0, 4); got < 150*time.Nanosecond || got > 170*time.Nanosecond {
		t.Errorf("first of 4 leaves %v after the clock read, want the 160ns stamping takes", got)
	}
	// A send preempted for a millisecond.
	c.update(4, 160*time.Nanosecond, time.Millisecond)
	if got := c.offset(1, 4) - c.offset(0, 4); got < per*9/10 || got > per*12/10 {
		t.Errorf("after one stalled send: per-datagram time %v, want about %v", got, per)
	}
}

// TestSendClockSteadySize checks that while every send has the same size
// the slope is what the duration leaves after the fixed cost learnt
// earlier, not the whole duration spread over the datagrams.
func TestSendClockSteadySize(t *testing.T) {
	const fixed, per = 6 * time.Microsecond, 1500 * time.Nanosecond
	var c sendClock
	for i := 0; i < 200; i++ {
		n := 1 + i%4
		c.update(n, 0, fixed+time.Duration(n)*per)
	}
	for i := 0; i < 500; i++ {
		c.update(4, 0, fixed+4*per)
	}
	if got := c.offset(3, 4) - c.offset(2, 4); got < per*95/100 || got > per*105/100 {
		t.Errorf("per-datagram time %v, want %v (not (fixed+4*per)/4 = %v)", got, per, (fixed+4*per)/4)
	}
}

// TestLeadClockMedian feeds one place of a leadClock residuals around a
// lead of 2.4µs with noise and one probe in ten delayed by 50µs (an
// interrupt, a preemption): the lead settles on the median, not the
// mean, and stays within a few steps of it.
func TestLeadClockMedian(t *testing.T) {
	const lead = 2400 * time.Nanosecond
	var l leadClock
	rng := rand.New(rand.NewPCG(1, 2))
	for k := 0; k < 5000; k++ {
		sample := lead + time.Duration(rng.IntN(601)-300)*time.Nanosecond
		if k%10 == 0 {
			sample += 50 * time.Microsecond
		}
		// The reply carried the prediction plus the current lead.
		l.learn(0, sample-l.correction(0))
	}
	if got := l.correction(0); got < lead-100*time.Nanosecond || got > lead+150*time.Nanosecond {
		t.Errorf("lead %v, want about %v (the median; the delayed probes' mean would be %v)", got, lead, lead+5*time.Microsecond)
	}
	if got := l.correction(1); got != 0 {
		t.Errorf("place 1 lead %v without a probe of its own", got)
	}
	if l.correction(leadPlaces+5) != l.correction(leadPlaces-1) {
		t.Error("places past the last do not share its lead")
	}
}

// TestLeadClockBounded checks that residuals no send can have (a stamp
// matched to the wrong reply) cannot push the lead past the ceiling.
func TestLeadClockBounded(t *testing.T) {
	var l leadClock
	for k := 0; k < 100000; k++ {
		l.learn(2, time.Second)
	}
	if got := l.correction(2); got != sendClockCeiling {
		t.Errorf("lead %v, want the ceiling %v", got, sendClockCeiling)
	}
	for k := 0; k < 200000; k++ {
		l.learn(2, -time.Second)
	}
	if got := l.correction(2); got != -sendClockCeiling {
		t.Errorf("lead %v, want -%v", got, sendClockCeiling)
	}
}

// TestLeadClockProbes checks the probe schedule: one reply in about
// probeEvery under load, each place of a send in turn, and every send
// when they are further apart than probeInterval.
func TestLeadClockProbes(t *testing.T) {
	var l leadClock
	now := time.Unix(1e9, 0)
	l.probe(4, now) // the first send probes: nothing was learnt yet
	var places [4]int
	n := 0
	for k := 0; k < 100*probeEvery/4; k++ {
		now = now.Add(time.Microsecond)
		if p := l.probe(4, now); p >= 0 {
			places[p]++
			n++
		}
	}
	if n != 100 {
		t.Errorf("%d probes in %d replies 1µs apart, want 100", n, 100*probeEvery)
	}
	for p, k := range places {
		if k != 25 {
			t.Errorf("place %d probed %d times, want 25 (places %v)", p, k, places)
		}
	}
	for k := 0; k < 10; k++ {
		now = now.Add(probeInterval)
		if l.probe(1, now) != 0 {
			t.Fatalf("a send %v after the last was not probed", probeInterval)
		}
	}
}

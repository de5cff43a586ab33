package server

import (
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

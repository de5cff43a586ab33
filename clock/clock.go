// Package clock defines where ntpkit gets its time from: the Clock
// interface, the system clock, and helpers to learn a clock's precision.
// Package clocktest has a fake clock for tests.
package clock

import (
	"math"
	"time"
)

// Clock is a source of the current time. Implementations must be safe for
// concurrent use.
type Clock interface {
	Now() time.Time
}

// Timer is a call scheduled with AfterFunc.
type Timer interface {
	// Stop cancels the call and reports whether it was still pending.
	Stop() bool
}

// Timers is implemented by clocks that can schedule calls on their own
// timescale: the system clock (with time.AfterFunc) and the fake clock of
// clocktest, whose timers fire as its time is advanced. Code that waits
// (poll loops, retries) uses it through AfterFunc, so tests can run it in
// virtual time.
type Timers interface {
	// AfterFunc calls f in its own goroutine (the system clock) or on the
	// goroutine that moves the clock (a fake) once d has passed on the
	// clock's timescale.
	AfterFunc(d time.Duration, f func()) Timer
}

// AfterFunc schedules f after d on c's timescale when c implements Timers,
// and with time.AfterFunc otherwise.
func AfterFunc(c Clock, d time.Duration, f func()) Timer {
	if t, ok := c.(Timers); ok {
		return t.AfterFunc(d, f)
	}
	return time.AfterFunc(d, f)
}

// Precisioner is implemented by clocks that know their own precision: the
// log2 of the smallest interval, in seconds, between two distinct readings.
type Precisioner interface {
	Precision() int8
}

// SystemMapper is implemented by clocks derived from the system clock. It
// converts a system-clock reading (such as a kernel receive timestamp) to
// the time this clock showed at that moment. Servers use it to put kernel
// timestamps on the served timescale.
type SystemMapper interface {
	FromSystem(sys time.Time) time.Time
}

// System is the operating system's real-time clock. Its zero value is
// ready to use.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// FromSystem returns sys: the system clock is its own timescale.
func (System) FromSystem(sys time.Time) time.Time { return sys }

// AfterFunc calls time.AfterFunc.
func (System) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Precision measures the system clock's precision; see MeasurePrecision.
func (s System) Precision() int8 { return MeasurePrecision(s) }

// Precision returns c's precision in log2 seconds: from c itself when it
// implements Precisioner, else measured with MeasurePrecision.
func Precision(c Clock) int8 {
	if p, ok := c.(Precisioner); ok {
		return p.Precision()
	}
	return MeasurePrecision(c)
}

// MeasurePrecision estimates c's precision as NTP defines it: log2 of the
// shortest positive step between consecutive readings, which includes the
// cost of reading the clock (RFC 5905 §7.3). It reads the clock a few
// thousand times and takes well under a millisecond on a system clock. A
// clock that never advances reports -30 (about 1 ns).
func MeasurePrecision(c Clock) int8 {
	const samples = 2000
	minStep := time.Duration(math.MaxInt64)
	prev := c.Now()
	for i := 0; i < samples; i++ {
		now := c.Now()
		if d := now.Sub(prev); d > 0 && d < minStep {
			minStep = d
		}
		prev = now
	}
	if minStep == time.Duration(math.MaxInt64) {
		return -30
	}
	p := math.Ceil(math.Log2(minStep.Seconds()))
	return int8(max(-30, min(0, p)))
}

// Package clocktest provides a fake clock for tests that must control time
// instead of waiting for it.
package clocktest

import (
	"sync"
	"time"

	"github.com/ntpkit/ntpkit/clock"
)

// Fake is a settable, advanceable clock. It is safe for concurrent use.
// It implements clock.Clock, clock.Precisioner and clock.Timers; timers
// created with AfterFunc fire when the fake time passes their deadline.
type Fake struct {
	mu        sync.Mutex
	now       time.Time
	horizon   time.Time // where the Advances under way will leave the clock
	precision int8
	seq       uint64
	timers    []*fakeTimer
}

type fakeTimer struct {
	f   *Fake
	at  time.Time
	seq uint64 // creation order: timers due at the same moment fire in it
	fn  func()
}

// New returns a Fake showing t, with a precision of 2^-20 s (about 1 µs).
func New(t time.Time) *Fake {
	return &Fake{now: t, precision: -20}
}

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Precision returns the precision set with SetPrecision (-20 by default).
func (f *Fake) Precision() int8 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.precision
}

// SetPrecision sets what Precision reports.
func (f *Fake) SetPrecision(p int8) {
	f.mu.Lock()
	f.precision = p
	f.mu.Unlock()
}

// Set moves the clock to t, which may be earlier than now, and fires the
// timers that fall due (with the clock showing t).
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	f.now, f.horizon = t, t
	f.mu.Unlock()
	f.fireDue(t)
}

// Advance moves the clock forward by d, firing the timers that fall due
// in deadline order; while a timer's function runs, the clock shows its
// deadline, and timers it schedules within the window fire too.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	// Concurrent Advances add up: each extends the horizon.
	if f.horizon.Before(f.now) {
		f.horizon = f.now
	}
	f.horizon = f.horizon.Add(d)
	end := f.horizon
	f.mu.Unlock()
	f.fireDue(end)
	f.mu.Lock()
	if f.now.Before(end) {
		f.now = end
	}
	f.mu.Unlock()
}

// fireDue fires, one at a time and earliest first, the timers due by end,
// moving the clock forward to each one's deadline.
func (f *Fake) fireDue(end time.Time) {
	for {
		f.mu.Lock()
		next := -1
		for i, t := range f.timers {
			if t.at.After(end) {
				continue
			}
			if next < 0 || t.at.Before(f.timers[next].at) || t.at.Equal(f.timers[next].at) && t.seq < f.timers[next].seq {
				next = i
			}
		}
		if next < 0 {
			f.mu.Unlock()
			return
		}
		t := f.timers[next]
		f.timers = append(f.timers[:next], f.timers[next+1:]...)
		if t.at.After(f.now) {
			f.now = t.at
		}
		f.mu.Unlock()
		t.fn()
	}
}

// AfterFunc arranges for fn to run (on the goroutine that moves the clock)
// once the fake time reaches now+d; with d <= 0 it runs at once, on the
// caller's goroutine.
func (f *Fake) AfterFunc(d time.Duration, fn func()) clock.Timer {
	f.mu.Lock()
	f.seq++
	t := &fakeTimer{f: f, at: f.now.Add(d), seq: f.seq, fn: fn}
	if d <= 0 {
		f.mu.Unlock()
		fn()
		return t
	}
	f.timers = append(f.timers, t)
	f.mu.Unlock()
	return t
}

// Next returns the deadline of the earliest pending timer, and false
// when none is pending. A driver of a simulation advances to it.
func (f *Fake) Next() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var next time.Time
	for i, t := range f.timers {
		if i == 0 || t.at.Before(next) {
			next = t.at
		}
	}
	return next, len(f.timers) > 0
}

// Pending returns how many timers have not fired or been stopped.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

// Stop cancels the timer and reports whether it was still pending.
func (t *fakeTimer) Stop() bool {
	f := t.f
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, u := range f.timers {
		if u == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			return true
		}
	}
	return false
}

// Package clocktest provides a fake clock for tests that must control time
// instead of waiting for it.
package clocktest

import (
	"sync"
	"time"
)

// Fake is a settable, advanceable clock. It is safe for concurrent use.
// It implements clock.Clock and clock.Precisioner; timers created with
// AfterFunc fire when the fake time passes their deadline.
type Fake struct {
	mu        sync.Mutex
	now       time.Time
	precision int8
	timers    []*fakeTimer
}

type fakeTimer struct {
	at time.Time
	f  func()
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
// timers that fall due.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	f.now = t
	due := f.dueLocked()
	f.mu.Unlock()
	for _, tm := range due {
		tm.f()
	}
}

// Advance moves the clock forward by d and fires the timers that fall due,
// in deadline order.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	due := f.dueLocked()
	f.mu.Unlock()
	for _, tm := range due {
		tm.f()
	}
}

// AfterFunc arranges for fn to run (on the goroutine that moves the clock)
// once the fake time reaches now+d. The returned function cancels it and
// reports whether it was still pending.
func (f *Fake) AfterFunc(d time.Duration, fn func()) (cancel func() bool) {
	tm := &fakeTimer{f: fn}
	f.mu.Lock()
	tm.at = f.now.Add(d)
	f.timers = append(f.timers, tm)
	due := f.dueLocked()
	f.mu.Unlock()
	for _, t := range due {
		t.f()
	}
	return func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, t := range f.timers {
			if t == tm {
				f.timers = append(f.timers[:i], f.timers[i+1:]...)
				return true
			}
		}
		return false
	}
}

// dueLocked removes and returns the timers due at f.now, earliest first.
func (f *Fake) dueLocked() []*fakeTimer {
	var due []*fakeTimer
	kept := f.timers[:0]
	for _, t := range f.timers {
		if !t.at.After(f.now) {
			due = append(due, t)
		} else {
			kept = append(kept, t)
		}
	}
	f.timers = kept
	for i := 1; i < len(due); i++ {
		for j := i; j > 0 && due[j].at.Before(due[j-1].at); j-- {
			due[j], due[j-1] = due[j-1], due[j]
		}
	}
	return due
}

// Package kernelsync reads what the operating system kernel knows about
// the synchronisation of the system clock: whether a time daemon (chronyd,
// ntpd, systemd-timesyncd, or ntpkit's own upstream discipline) has marked
// it synchronised, and the error bounds it maintains.
//
// On Linux the state comes from adjtimex(2) in read-only mode (modes 0),
// which needs no privileges. Other platforms report errors.ErrUnsupported:
// the state is unknown there, and callers should say so rather than guess.
//
// Reader is an interface so that code which acts on the state (health
// checks, a server choosing what to announce) can be tested against a
// simulated kernel with ReaderFunc.
package kernelsync

import (
	"fmt"
	"time"
)

// Reader reads the kernel's synchronisation state of the system clock.
// Implementations must be safe for concurrent use.
type Reader interface {
	Read() (State, error)
}

// ReaderFunc adapts a function to Reader; tests use it to simulate a
// kernel.
type ReaderFunc func() (State, error)

// Read returns f().
func (f ReaderFunc) Read() (State, error) { return f() }

// System reads the running kernel's state. Its zero value is ready to use.
// On platforms without support, Read returns an error wrapping
// errors.ErrUnsupported.
type System struct{}

// Read returns the kernel's current state of the system clock.
func (System) Read() (State, error) { return read() }

// ClockState is the kernel clock's state as adjtimex(2) returns it.
type ClockState int

// Clock states, as in the Linux kernel and RFC 1589.
const (
	StateOK       ClockState = 0 // synchronised, no leap second pending
	StateInsert   ClockState = 1 // a leap second will be inserted at midnight UTC
	StateDelete   ClockState = 2 // a leap second will be deleted at midnight UTC
	StateInLeap   ClockState = 3 // a leap second is in progress
	StateLeapDone ClockState = 4 // a leap second has just occurred
	StateError    ClockState = 5 // the clock is not synchronised
)

// String names s as the kernel headers do (TIME_OK, TIME_ERROR, ...).
func (s ClockState) String() string {
	switch s {
	case StateOK:
		return "TIME_OK"
	case StateInsert:
		return "TIME_INS"
	case StateDelete:
		return "TIME_DEL"
	case StateInLeap:
		return "TIME_OOP"
	case StateLeapDone:
		return "TIME_WAIT"
	case StateError:
		return "TIME_ERROR"
	}
	return fmt.Sprintf("ClockState(%d)", int(s))
}

// Status bits of the kernel clock (the STA_* flags of adjtimex(2)) that
// ntpkit looks at; State.Status holds all of them as the kernel reports.
const (
	StatusPLL    uint32 = 0x0001 // STA_PLL: phase-locked loop updates enabled
	StatusInsert uint32 = 0x0010 // STA_INS: insert a leap second at midnight UTC
	StatusDelete uint32 = 0x0020 // STA_DEL: delete a leap second at midnight UTC
	StatusUnsync uint32 = 0x0040 // STA_UNSYNC: the clock is not synchronised
	StatusNano   uint32 = 0x2000 // STA_NANO: offsets are in nanoseconds
)

// State is the kernel's view of the system clock. The zero value means
// "synchronised with no error", so code that builds a State by hand must
// set Synchronized, MaxError and EstError deliberately.
type State struct {
	// Synchronized reports whether the kernel considers the clock
	// synchronised: STA_UNSYNC is clear and the clock state is not
	// TIME_ERROR. A time daemon sets it when it disciplines the clock;
	// the kernel clears it by itself when MaxError reaches 16 s, some
	// time after the daemon stopped.
	Synchronized bool
	// ClockState is the value adjtimex(2) returned (TIME_OK, TIME_ERROR, ...).
	ClockState ClockState
	// Status holds the kernel's STA_* status bits.
	Status uint32
	// MaxError is the kernel's maximum error bound of the clock; a time
	// daemon sets it to its root distance and the kernel adds 500 µs
	// every second. 16 s means "unknown".
	MaxError time.Duration
	// EstError is the estimated error of the clock, as last set by the
	// time daemon.
	EstError time.Duration
	// Offset is the remaining phase offset the kernel is slewing away.
	Offset time.Duration
	// FrequencyPPM is the clock's frequency correction in parts per
	// million.
	FrequencyPPM float64
	// TAIOffset is TAI−UTC in seconds when a daemon has set it, else 0.
	TAIOffset int
}

// LeapInsert reports whether the kernel will insert a leap second at the
// end of the current UTC day.
func (s State) LeapInsert() bool { return s.Status&StatusInsert != 0 }

// LeapDelete reports whether the kernel will delete a leap second at the
// end of the current UTC day.
func (s State) LeapDelete() bool { return s.Status&StatusDelete != 0 }

// String summarises s on one line, the way an operator reads it.
func (s State) String() string {
	sync := "synchronized"
	if !s.Synchronized {
		sync = "unsynchronized"
	}
	return fmt.Sprintf("%s (%v, status %#04x), max error %v, estimated error %v, offset %v, frequency %+.3f ppm",
		sync, s.ClockState, s.Status, s.MaxError, s.EstError, s.Offset, s.FrequencyPPM)
}

package server

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/clock/kernelsync"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// Source is the clock a server serves and what it says about it. Now gives
// the time stamped into replies; Reference gives the header fields that
// describe the clock (stratum, refid, root delay and dispersion, leap).
// A Server has exactly one (Server.Source): handlers see its reference
// data on each Request and never read a clock of their own. LocalSource
// serves a local clock; upstream.Discipliner serves time disciplined to
// upstream servers. Implementations must be safe for concurrent use and
// cheap: Now is called for every reply and Reference once per batch of
// requests.
type Source interface {
	clock.Clock
	Reference() ntpwire.Reference
}

// DefaultLocalStratum is the stratum a LocalSource reports unless told
// otherwise: like chrony's "local stratum 10", high enough that clients
// prefer any properly synchronized server.
const DefaultLocalStratum = 10

// LocalRefID is the reference ID of a LocalSource unless told otherwise:
// 127.127.1.1, the address chrony and ntpd use for the local clock.
var LocalRefID = ntpwire.RefID{127, 127, 1, 1}

// LocalSource serves a local clock (normally the system clock, kept in
// time by the operating system) as a reference of fixed stratum, like
// chrony's "local" directive. Create it with NewLocalSource; the exported
// fields may be changed before the source is first used.
type LocalSource struct {
	// Clock is the clock served.
	Clock clock.Clock
	// Stratum is reported as the server's stratum (1–15).
	Stratum uint8
	// RefID is reported as the reference ID.
	RefID ntpwire.RefID
	// Leap is the leap indicator to announce.
	Leap ntpwire.Leap
	// Precision is the clock's precision in log2 seconds.
	Precision int8
	// RootDelay and RootDispersion are reported as they are.
	RootDelay, RootDispersion time.Duration
	// Kernel, when not nil, tells the source what the kernel knows about
	// the synchronisation of Clock; set it only when Clock is the system
	// clock. It is read at most once per second of Clock. While the
	// kernel reports the clock synchronised, the root dispersion served
	// is at least the kernel's maximum error (which the time daemon
	// disciplining the clock keeps at its root distance) and a leap
	// second the kernel has scheduled is announced. While the kernel
	// reports it unsynchronised, WhenUnsynchronized decides. When the
	// state cannot be read (an unsupported platform) the source serves
	// as configured. Nil: the kernel is not consulted.
	Kernel kernelsync.Reader
	// WhenUnsynchronized is what the source announces while Kernel
	// reports the clock unsynchronised. The zero value, ServeLocalClock,
	// keeps serving it as a local clock at Stratum.
	WhenUnsynchronized UnsyncPolicy

	kernel atomic.Pointer[kernelSample]
}

// UnsyncPolicy is what a LocalSource announces while the kernel reports
// the served clock unsynchronised.
type UnsyncPolicy uint8

const (
	// ServeLocalClock serves the clock as configured: a local clock at
	// its fixed stratum (10 by default), which is what chrony's and ntpd's
	// local-clock modes do. Clients accept the time; the high stratum tells
	// them to prefer any synchronised server. Use it for an isolated
	// network whose reference is this host's clock.
	ServeLocalClock UnsyncPolicy = iota
	// AnnounceUnsynchronized answers with leap indicator 3 (alarm) and
	// stratum 16, the RFC 5905 way of saying "do not use my time";
	// clients keep asking but do not synchronise to the server.
	AnnounceUnsynchronized
)

// String names p as the daemon's configuration does.
func (p UnsyncPolicy) String() string {
	switch p {
	case ServeLocalClock:
		return "serve"
	case AnnounceUnsynchronized:
		return "unsynchronized"
	}
	return "UnsyncPolicy(" + strconv.Itoa(int(p)) + ")"
}

// kernelSample is the kernel state read during one second of the clock.
type kernelSample struct {
	sec   int64
	state kernelsync.State
	ok    bool // the state could be read
}

// NewLocalSource returns a LocalSource serving c (the system clock when c
// is nil) at the given stratum (DefaultLocalStratum when 0), with refid
// LocalRefID and c's measured precision.
func NewLocalSource(c clock.Clock, stratum uint8) *LocalSource {
	if c == nil {
		c = clock.System{}
	}
	if stratum == 0 {
		stratum = DefaultLocalStratum
	}
	p := clock.Precision(c)
	return &LocalSource{
		Clock:          c,
		Stratum:        stratum,
		RefID:          LocalRefID,
		Precision:      p,
		RootDispersion: ntpwire.LogToDuration(p),
	}
}

// Now returns the local clock's time.
func (s *LocalSource) Now() time.Time { return s.Clock.Now() }

// canMapSystem reports whether kernel (system-clock) timestamps can be put
// on s's timescale.
func canMapSystem(s Source) (clock.SystemMapper, bool) {
	if ls, ok := s.(*LocalSource); ok {
		m, ok := ls.Clock.(clock.SystemMapper)
		return m, ok
	}
	m, ok := s.(clock.SystemMapper)
	return m, ok
}

// Reference returns the fixed reference data, with the reference time set
// to the current second: a local clock is always "just set". With Kernel
// set, the kernel's state adjusts it as Kernel's documentation says.
func (s *LocalSource) Reference() ntpwire.Reference {
	now := s.Clock.Now().Truncate(time.Second)
	ref := ntpwire.Reference{
		Leap:           s.Leap,
		Stratum:        s.Stratum,
		Precision:      s.Precision,
		RefID:          s.RefID,
		RefTime:        ntpwire.TimeOf(now),
		RootDelay:      ntpwire.ShortOf(s.RootDelay),
		RootDispersion: ntpwire.ShortOf(s.RootDispersion),
	}
	if s.Kernel == nil {
		return ref
	}
	k := s.kernelState(now.Unix())
	switch {
	case !k.ok:
	case !k.state.Synchronized:
		if s.WhenUnsynchronized == AnnounceUnsynchronized {
			ref.Leap, ref.Stratum = ntpwire.LeapAlarm, ntpwire.MaxStratum
		}
	default:
		ref.RootDispersion = ntpwire.ShortOf(max(s.RootDispersion, k.state.MaxError))
		if ref.Leap == ntpwire.LeapNone {
			if k.state.LeapInsert() {
				ref.Leap = ntpwire.LeapInsert
			} else if k.state.LeapDelete() {
				ref.Leap = ntpwire.LeapDelete
			}
		}
	}
	return ref
}

// kernelState returns the kernel state for second sec of the clock,
// reading it when the cached one is from another second.
func (s *LocalSource) kernelState(sec int64) *kernelSample {
	if k := s.kernel.Load(); k != nil && k.sec == sec {
		return k
	}
	st, err := s.Kernel.Read()
	k := &kernelSample{sec: sec, state: st, ok: err == nil}
	s.kernel.Store(k)
	return k
}

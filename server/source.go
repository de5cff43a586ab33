package server

import (
	"time"

	"github.com/ntpkit/ntpkit/clock"
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
// to the current second: a local clock is always "just set".
func (s *LocalSource) Reference() ntpwire.Reference {
	now := s.Clock.Now().Truncate(time.Second)
	return ntpwire.Reference{
		Leap:           s.Leap,
		Stratum:        s.Stratum,
		Precision:      s.Precision,
		RefID:          s.RefID,
		RefTime:        ntpwire.TimeOf(now),
		RootDelay:      ntpwire.ShortOf(s.RootDelay),
		RootDispersion: ntpwire.ShortOf(s.RootDispersion),
	}
}

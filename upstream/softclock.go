package upstream

import (
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

// snapshot is the immutable state readers of a Discipliner use: the
// correction curve of the software clock and the reference data. A new one
// is published atomically at every update, so Now, FromSystem and
// Reference never lock and never allocate.
//
// Times are raw: the base clock's elapsed time since the Discipliner was
// created (monotonic when the base clock gives monotonic readings). The
// served time at raw time e is epochWall + e + corr(e), where corr starts
// at c0 at e0, changes at rate slewRate until e1 and at freq after it.
type snapshot struct {
	e0, e1   time.Duration
	c0       float64 // correction at e0, nanoseconds
	slewRate float64 // d corr / d e while slewing (frequency plus the slew)
	freq     float64 // d corr / d e after the slew
	floor    int64   // Unix nanoseconds Now never goes below (after a backward step)
	wallMono time.Duration

	synced    bool
	updated   time.Duration // raw time of the last clock update
	holdover  time.Duration
	ref       ntpwire.Reference
	rootDisp  float64 // seconds, at updated; grows at phi after it
	precision int8

	// A scheduled leap second (leap.go). leapAt is the Unix time, in
	// nanoseconds on the timescale without this leap, of the midnight
	// that ends the leap's day; leapDir is +1 to insert a second, -1 to
	// delete one, 0 when none is scheduled; leapDone says the correction
	// curve already includes the leap (readers still see its freeze or
	// smear until it ends).
	epochWall int64
	leapAt    int64
	leapDir   int8
	leapDone  bool
	smear     time.Duration
}

// maxDisp is RFC 5905's MAXDISP: the root dispersion of a clock that is
// not synchronised.
const maxDisp = 16 * time.Second

// corr returns the correction at raw time e, in nanoseconds.
func (s *snapshot) corr(e time.Duration) float64 {
	if e <= s.e1 {
		return s.c0 + s.slewRate*float64(e-s.e0)
	}
	return s.c0 + s.slewRate*float64(s.e1-s.e0) + s.freq*float64(e-s.e1)
}

// served returns the software clock's reading at raw time e, as Unix
// nanoseconds, never below the floor, with a scheduled leap second's
// freeze or smear applied.
func (s *snapshot) served(epochWall int64, e time.Duration) int64 {
	t := epochWall + int64(e) + int64(s.corr(e))
	if s.leapDir != 0 {
		t = s.leapView(t)
	}
	return max(t, s.floor)
}

// reference returns the reference data at raw time e: with the root
// dispersion grown since the last update and the leap warning, or
// unsynchronised (leap alarm, stratum 16) before the first update and
// after the holdover.
func (s *snapshot) reference(e time.Duration) ntpwire.Reference {
	r := s.ref
	r.Precision = s.precision
	age := e - s.updated
	if !s.synced || age > s.holdover {
		r.Leap = ntpwire.LeapAlarm
		r.Stratum = ntpwire.MaxStratum
		// Say the truth about an unsynchronised clock: its error is
		// unbounded, so the largest dispersion RFC 5905 knows.
		r.RootDispersion = ntpwire.ShortOf(maxDisp)
		return r
	}
	r.RootDispersion = ntpwire.ShortOf(seconds(s.rootDisp + phi*max(age, 0).Seconds()))
	r.Leap = s.announce(e)
	return r
}

// retarget returns the correction curve that leaves from corr(now) and
// heads for target (nanoseconds) at frequency freq: a step when the gap is
// above stepAt (or step is set), else a slew at a rate that removes the gap
// within max(gap/maxSlew, minSlew) and never exceeds maxSlew beyond freq.
// It reports whether it stepped.
func (s *snapshot) retarget(now time.Duration, target, freq float64, step bool, stepAt time.Duration, maxSlew float64, minSlew time.Duration) (next snapshot, stepped bool) {
	next = *s
	cur := s.corr(now)
	gap := target - cur
	next.e0, next.freq = now, freq
	if step || abs(gap) > float64(stepAt) {
		next.c0, next.slewRate, next.e1 = target, freq, now
		return next, true
	}
	dur := max(time.Duration(abs(gap)/maxSlew), minSlew)
	next.c0 = cur
	next.e1 = now + dur
	next.slewRate = freq + gap/float64(dur)
	return next, false
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

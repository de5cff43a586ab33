package upstream

import (
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

// Leap seconds.
//
// When a majority of the combined sources announce a leap (leap indicator
// 1 or 2), the Discipliner schedules it for the next midnight UTC that
// ends a month (servers announce it for the whole last month, or day) and
// passes the announcement on in Reference until then. Like chrony, it
// accepts an announcement only in June and December: every leap second so
// far has been at the end of one of them, the IERS announces them six
// months ahead, and a source announcing one at the end of another month
// (a misconfigured or malicious server, or one whose leap bits are stuck)
// would otherwise make the server step its clients by a second. Such an
// announcement is logged and ignored. The system's leap-second list
// (tzdata's leap-seconds.list) is not read: the vote of a majority of
// authenticated or independent sources, restricted to the two possible
// dates, is the only source of the schedule. At the leap the served time is
// never stepped back:
//
//   - By default an inserted second is a frozen second: the served time
//     stays at 00:00:00.000 of the next day from the start of 23:59:60
//     until the true 00:00:00, then runs on (up to 1 s off during that
//     second, never backwards). A deleted second is skipped: the served
//     time jumps from 23:59:59 to 00:00:00.
//   - With Options.LeapSmear the leap is smeared linearly over a window
//     centred on it (slope 1∓1/window), and the leap is never announced.
//
// Either way the Discipliner then shifts its own correction and its
// sources' earlier samples by the leap, so the upstream servers' 1 s step
// is not taken for a falseticker's jump or a clock error: the clock stays
// synchronised and is not stepped.

// leapGuard is how close to the leap a sample may be taken and still be
// used: closer ones may come from a server that has not stepped yet (or
// already has), so they are dropped.
const leapGuard = time.Second

// leapQuiet is how long after a leap announcements are ignored: servers
// may keep announcing the leap that just happened for a while.
const leapQuiet = 24 * time.Hour

// leapCancel is how long before the leap an announcement withdrawn by the
// majority cancels it; closer to the leap, withdrawals are taken for
// sources that have already applied it.
const leapCancel = 10 * time.Minute

// unleaped returns the time at raw time e on the timescale without the
// scheduled leap, in Unix nanoseconds (no freeze, smear or floor).
func (s *snapshot) unleaped(e time.Duration) int64 {
	u := s.epochWall + int64(e) + int64(s.corr(e))
	if s.leapDone {
		u += int64(s.leapDir) * int64(time.Second)
	}
	return u
}

// leapView returns what readers see at t (Unix nanoseconds on the
// correction curve) while a leap is scheduled or under way.
func (s *snapshot) leapView(t int64) int64 {
	dir := int64(s.leapDir)
	u := t
	if s.leapDone {
		u = t + dir*int64(time.Second)
	}
	at := s.leapAt
	if s.smear > 0 {
		half := int64(s.smear / 2)
		switch {
		case u <= at-half:
			return u
		case u >= at+half:
			return u - dir*int64(time.Second)
		}
		return u - dir*int64(float64(u-(at-half))/float64(s.smear)*float64(time.Second))
	}
	if dir > 0 {
		if u >= at {
			return max(u-int64(time.Second), at) // the frozen second
		}
		return u
	}
	if u >= at-int64(time.Second) {
		return u + int64(time.Second) // 23:59:59 never happens
	}
	return u
}

// announce returns the leap indicator to serve at raw time e: the
// scheduled leap until it happens, unless it is smeared.
func (s *snapshot) announce(e time.Duration) ntpwire.Leap {
	if s.leapDir == 0 || s.leapDone || s.smear > 0 {
		return ntpwire.LeapNone
	}
	if s.unleaped(e) >= s.leapMoment() {
		return ntpwire.LeapNone
	}
	if s.leapDir > 0 {
		return ntpwire.LeapInsert
	}
	return ntpwire.LeapDelete
}

// leapMoment returns when (on the timescale without the leap) the sources
// step: at midnight for an inserted second, a second before for a deleted
// one.
func (s *snapshot) leapMoment() int64 {
	if s.leapDir < 0 {
		return s.leapAt - int64(time.Second)
	}
	return s.leapAt
}

// leapEnd returns when (on the timescale without the leap) readers stop
// seeing the leap's freeze or smear.
func (s *snapshot) leapEnd() int64 {
	return s.leapAt + max(int64(s.smear/2), int64(time.Second))
}

// monthEnd returns the midnight UTC that ends the month of t (Unix
// nanoseconds).
func monthEnd(t int64) int64 {
	u := time.Unix(0, t).UTC()
	return time.Date(u.Year(), u.Month()+1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
}

// leapMonth reports whether the midnight at (Unix nanoseconds) ends June
// or December, the only months a leap second is accepted for.
func leapMonth(at int64) bool {
	m := time.Unix(0, at-1).UTC().Month()
	return m == time.June || m == time.December
}

// scheduleLeapLocked updates the leap schedule of next, the snapshot apply
// is about to publish, from the survivors' vote at raw time now.
func (d *Discipliner) scheduleLeapLocked(next *snapshot, now time.Duration, vote ntpwire.Leap) {
	u := next.unleaped(now)
	switch {
	case next.leapDir == 0 && (vote == ntpwire.LeapInsert || vote == ntpwire.LeapDelete):
		if d.lastLeap != 0 && u < d.lastLeap+int64(leapQuiet) {
			return
		}
		at := monthEnd(u)
		if !leapMonth(at) {
			if d.leapIgnoredAt != at {
				d.leapIgnoredAt = at
				d.log.Warn("upstream: leap second announced for the end of a month other than June or December; ignored", "vote", vote.String(), "month_end", time.Unix(0, at).UTC())
			}
			return
		}
		next.leapAt, next.leapDone = at, false
		next.leapDir = 1
		kind := "insert"
		if vote == ntpwire.LeapDelete {
			next.leapDir, kind = -1, "delete"
		}
		d.log.Info("upstream: leap second scheduled", "kind", kind, "at", time.Unix(0, next.leapAt).UTC(), "smear", d.o.LeapSmear)
	case next.leapDir != 0 && !next.leapDone && vote == ntpwire.LeapNone && u < next.leapAt-int64(leapCancel):
		d.log.Info("upstream: leap second cancelled: no longer announced", "at", time.Unix(0, next.leapAt).UTC())
		next.leapAt, next.leapDir = 0, 0
	}
}

// leapTickLocked carries out a scheduled leap once its moment has come:
// the correction curve and every source's earlier samples move by the
// leap, so the sources' step is no jump to the clock. Once the freeze or
// smear is over the schedule is cleared. It also drops samples taken too
// close to the last leap to tell on which side of it they were.
func (d *Discipliner) leapTickLocked(now time.Duration) {
	if d.leapRawSet && now-d.leapRaw < 10*time.Second {
		for _, s := range d.sources {
			s.filt.drop(d.leapRaw-leapGuard, d.leapRaw+leapGuard)
		}
	}
	s := d.snap.Load()
	if s.leapDir == 0 {
		return
	}
	u := s.unleaped(now)
	if s.leapDone {
		if u >= s.leapEnd() {
			next := *s
			next.leapAt, next.leapDir, next.leapDone = 0, 0, false
			d.publishLocked(next)
		}
		return
	}
	m := s.leapMoment()
	if u < m {
		return
	}
	shift := -time.Duration(s.leapDir) * time.Second
	next := *s
	next.c0 += float64(shift)
	next.leapDone = true
	// The raw time the leap happened at; corr hardly changes in the
	// moments since.
	eL := time.Duration(m-s.epochWall) - time.Duration(s.corr(now))
	eL = time.Duration(m-s.epochWall) - time.Duration(s.corr(eL))
	for _, src := range d.sources {
		src.filt.shift(eL, shift)
		src.filt.drop(eL-leapGuard, eL+leapGuard)
		src.leap = ntpwire.LeapNone
	}
	d.leapRaw, d.leapRawSet = eL, true
	d.lastLeap = s.leapAt
	d.leaps++
	d.log.Info("upstream: leap second", "inserted", s.leapDir > 0, "at", time.Unix(0, s.leapAt).UTC(), "smear", d.o.LeapSmear)
	d.publishLocked(next)
}

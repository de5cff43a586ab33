package ntpwire

import (
	"math"
	"time"
)

// Time is an NTP timestamp: 32 bits of seconds and 32 bits of fraction,
// counted from the start of an NTP era (era 0 began 1900-01-01 UTC). The era
// itself is not on the wire; In recovers it from a pivot time.
type Time uint64

// Short is the NTP short format: 16 bits of seconds and 16 bits of fraction,
// used for root delay and root dispersion.
type Short uint32

const (
	// eraSeconds is the length of one NTP era in seconds (2^32).
	eraSeconds = 1 << 32
	// unixToNTP is the number of seconds from 1900-01-01 to 1970-01-01.
	unixToNTP      = 2208988800
	nanosPerSecond = 1_000_000_000
)

// TimeOf returns the NTP timestamp of t, rounded to the nearest 2^-32 s.
// The era is dropped: times 2^32 s apart map to the same Time.
func TimeOf(t time.Time) Time {
	if t.IsZero() {
		return 0
	}
	secs := t.Unix() + unixToNTP
	nanos := uint64(t.Nanosecond())
	frac := (nanos<<32 + nanosPerSecond/2) / nanosPerSecond
	return Time(uint64(secs)<<32 + frac) // frac may carry into seconds; the add handles it
}

// StampOf returns the timestamp a packet should carry for t: TimeOf(t),
// except that it is never 0. A zero timestamp means "unset" to every NTP
// implementation, yet the first instant of each era (such as 2036-02-07
// 06:28:16 UTC) encodes as 0; StampOf sends it as 1, one 2^-32 s unit
// (233 ps) later. Use it for every receive and transmit timestamp written
// into a packet; the zero time.Time still gives 0.
func StampOf(t time.Time) Time {
	if v := TimeOf(t); v != 0 || t.IsZero() {
		return v
	}
	return 1
}

// Seconds returns the whole-second part of t.
func (t Time) Seconds() uint32 { return uint32(t >> 32) }

// Fraction returns the fractional part of t in units of 2^-32 s.
func (t Time) Fraction() uint32 { return uint32(t) }

// IsZero reports whether t is the all-zero timestamp, which NTP uses for
// "unknown" or "not set".
func (t Time) IsZero() bool { return t == 0 }

// In returns the time.Time that t denotes in the NTP era that puts it
// nearest to pivot (within ±2^31 s, about 68 years). Pass a recent clock
// reading as pivot; that makes timestamps on both sides of the 2036-02-07
// era rollover come out right. The zero Time maps to the zero time.Time.
func (t Time) In(pivot time.Time) time.Time {
	if t == 0 {
		return time.Time{}
	}
	pivotSecs := pivot.Unix() + unixToNTP
	// Signed distance, in seconds mod 2^32, from the pivot to t.
	delta := int64(int32(uint32(t>>32) - uint32(pivotSecs)))
	secs := pivotSecs + delta - unixToNTP
	nanos := (uint64(uint32(t))*nanosPerSecond + 1<<31) >> 32
	return time.Unix(secs, int64(nanos)).UTC()
}

// Sub returns the duration t-u. The subtraction wraps, so the result is
// right whenever the true difference is within ±68 years, including across
// an era rollover.
func (t Time) Sub(u Time) time.Duration {
	return fixedToDuration(int64(t - u))
}

// Add returns t+d.
func (t Time) Add(d time.Duration) Time {
	return t + Time(durationToFixed(d))
}

// fixedToDuration converts a signed 32.32 fixed-point number of seconds to
// a Duration, rounding to the nearest nanosecond and saturating.
func fixedToDuration(v int64) time.Duration {
	secs := v >> 32 // arithmetic shift: floor
	frac := uint64(uint32(v))
	if secs > math.MaxInt64/nanosPerSecond-1 {
		return math.MaxInt64
	}
	if secs < math.MinInt64/nanosPerSecond+1 {
		return math.MinInt64
	}
	return time.Duration(secs*nanosPerSecond + int64((frac*nanosPerSecond+1<<31)>>32))
}

// durationToFixed converts d to signed 32.32 fixed-point seconds, rounding
// to the nearest 2^-32 s.
func durationToFixed(d time.Duration) int64 {
	secs := int64(d / nanosPerSecond)
	rem := int64(d % nanosPerSecond)
	if rem < 0 {
		secs--
		rem += nanosPerSecond
	}
	frac := (uint64(rem)<<32 + nanosPerSecond/2) / nanosPerSecond
	return secs<<32 + int64(frac)
}

// ShortOf returns d in NTP short format, rounded to the nearest 2^-16 s.
// Negative durations become 0 and durations of 65536 s or more saturate.
func ShortOf(d time.Duration) Short {
	if d <= 0 {
		return 0
	}
	if d >= 65536*time.Second {
		return math.MaxUint32
	}
	v := (uint64(d)<<16 + nanosPerSecond/2) / nanosPerSecond
	if v > math.MaxUint32 {
		return math.MaxUint32
	}
	return Short(v)
}

// Duration returns s as a Duration, rounded to the nearest nanosecond.
func (s Short) Duration() time.Duration {
	return time.Duration((uint64(s)*nanosPerSecond + 1<<15) >> 16)
}

// Seconds returns s in seconds as a float64.
func (s Short) Seconds() float64 { return float64(s) / 65536 }

// LogToDuration converts a log2-seconds value, as carried by the poll and
// precision fields, to a Duration.
func LogToDuration(l int8) time.Duration {
	if l >= 0 {
		if l > 33 {
			l = 33
		}
		return time.Duration(1<<uint(l)) * time.Second
	}
	if l < -40 {
		return 0
	}
	return time.Duration(float64(time.Second) * math.Ldexp(1, int(l)))
}

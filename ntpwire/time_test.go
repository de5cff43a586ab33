package ntpwire

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func utc(year int, month time.Month, day, hour, min, sec, nsec int) time.Time {
	return time.Date(year, month, day, hour, min, sec, nsec, time.UTC)
}

// rollover is the start of NTP era 1, where the 32-bit seconds wrap.
var rollover = utc(2036, 2, 7, 6, 28, 16, 0)

func TestTimeOfExact(t *testing.T) {
	for _, tt := range []struct {
		in   time.Time
		want Time
	}{
		{utc(1970, 1, 1, 0, 0, 0, 0), 2208988800 << 32},
		{utc(1970, 1, 1, 0, 0, 0, 500_000_000), 2208988800<<32 | 1<<31},
		{utc(1970, 1, 1, 0, 0, 0, 250_000_000), 2208988800<<32 | 1<<30},
		{utc(2000, 1, 1, 0, 0, 0, 0), 3155673600 << 32},
		{utc(1900, 1, 1, 0, 0, 1, 0), 1 << 32},
		{utc(1900, 1, 1, 0, 0, 0, 500_000_000), 1 << 31},
		{utc(2036, 2, 7, 6, 28, 15, 0), 0xffffffff << 32},
		{utc(2036, 2, 7, 6, 28, 16, 500_000_000), 1 << 31},
		{utc(2036, 2, 7, 6, 28, 17, 0), 1 << 32},
		// 1 ns is 4.294967296 units of 2^-32 s: rounds to 4.
		{utc(2000, 1, 1, 0, 0, 0, 1), 3155673600<<32 | 4},
		// 999999999 ns rounds to 2^32-4, not into the next second.
		{utc(2000, 1, 1, 0, 0, 0, 999_999_999), 3155673600<<32 | 0xfffffffc},
		// Zones do not matter, only the instant.
		{time.Date(1970, 1, 1, 1, 0, 0, 0, time.FixedZone("CET", 3600)), 2208988800 << 32},
	} {
		got := TimeOf(tt.in)
		if got != tt.want {
			t.Errorf("TimeOf(%v) = %#x, want %#x", tt.in, uint64(got), uint64(tt.want))
		}
		if got.Seconds() != uint32(tt.want>>32) || got.Fraction() != uint32(tt.want) {
			t.Errorf("TimeOf(%v): Seconds, Fraction = %d, %d; want %d, %d",
				tt.in, got.Seconds(), got.Fraction(), uint32(tt.want>>32), uint32(tt.want))
		}
	}
}

// NTP uses the all-zero timestamp for "not set". The two instants that
// encode to it (the starts of eras 0 and 1) therefore do not round trip.
func TestTimeZero(t *testing.T) {
	for _, in := range []time.Time{{}, utc(1900, 1, 1, 0, 0, 0, 0), rollover} {
		if got := TimeOf(in); !got.IsZero() {
			t.Errorf("TimeOf(%v) = %#x, want 0", in, uint64(got))
		}
	}
	for _, pivot := range []time.Time{{}, utc(1900, 1, 1, 0, 0, 0, 0), rollover, captureDay} {
		if got := Time(0).In(pivot); !got.IsZero() {
			t.Errorf("Time(0).In(%v) = %v, want the zero time.Time", pivot, got)
		}
	}
	if Time(1).IsZero() || Time(1<<32).IsZero() {
		t.Error("IsZero true for a non-zero Time")
	}
}

func TestTimeInRoundTrip(t *testing.T) {
	tests := []struct {
		t, pivot time.Time
	}{
		{utc(1900, 1, 1, 0, 0, 0, 1), utc(1900, 1, 1, 0, 0, 0, 0)},
		{utc(1900, 1, 1, 0, 0, 0, 500_000_000), utc(1900, 6, 1, 0, 0, 0, 0)},
		{utc(1900, 1, 1, 0, 0, 1, 0), utc(1899, 12, 1, 0, 0, 0, 0)},
		{utc(1899, 12, 31, 23, 59, 59, 999_999_999), utc(1900, 1, 1, 0, 0, 0, 0)},
		{utc(1970, 1, 1, 0, 0, 0, 0), utc(1970, 1, 1, 0, 0, 0, 0)},
		{utc(1970, 1, 1, 0, 0, 0, 0), utc(1975, 3, 1, 0, 0, 0, 0)},
		{utc(1969, 12, 31, 23, 59, 59, 999_999_999), utc(1970, 1, 1, 0, 0, 0, 0)},
		{utc(2000, 1, 1, 0, 0, 0, 0), utc(2000, 1, 1, 0, 0, 0, 0)},
		{utc(2000, 2, 29, 12, 0, 0, 123_456_789), utc(1999, 12, 31, 0, 0, 0, 0)},
		{utc(2026, 11, 23, 18, 16, 8, 608_205_060), captureDay},
		// Both sides of the era rollover, pivot on either side.
		{utc(2036, 2, 7, 6, 28, 15, 999_999_999), utc(2030, 1, 1, 0, 0, 0, 0)},
		{utc(2036, 2, 7, 6, 28, 15, 999_999_999), utc(2040, 1, 1, 0, 0, 0, 0)},
		{utc(2036, 2, 7, 6, 28, 16, 1), utc(2030, 1, 1, 0, 0, 0, 0)},
		{utc(2036, 2, 7, 6, 28, 16, 1), utc(2040, 1, 1, 0, 0, 0, 0)},
		{utc(2036, 2, 7, 6, 28, 15, 999_999_999), rollover},
		{utc(2036, 2, 7, 6, 28, 16, 1), rollover},
		{utc(2036, 2, 7, 6, 28, 16, 1), utc(2036, 2, 7, 6, 28, 15, 0)},
		{utc(2036, 2, 7, 6, 28, 15, 0), utc(2036, 2, 7, 6, 28, 17, 0)},
		{utc(2036, 2, 7, 6, 28, 17, 0), utc(2000, 1, 1, 0, 0, 0, 0)},
		{utc(2100, 1, 1, 0, 0, 0, 0), utc(2100, 1, 1, 0, 0, 0, 0)},
		{utc(2100, 1, 1, 0, 0, 0, 0), utc(2099, 6, 1, 0, 0, 0, 0)},
		{utc(2100, 12, 31, 23, 59, 59, 999_999_999), utc(2101, 1, 1, 0, 0, 0, 0)},
		// Far from the pivot, but within the ±68-year window.
		{utc(1970, 1, 1, 0, 0, 0, 1), utc(2030, 1, 1, 0, 0, 0, 0)},
		{utc(2090, 1, 1, 0, 0, 0, 1), utc(2030, 1, 1, 0, 0, 0, 0)},
		{utc(2160, 5, 5, 5, 5, 5, 5), utc(2200, 1, 1, 0, 0, 0, 0)},
		// Pivot in another zone.
		{utc(2036, 2, 7, 6, 28, 16, 1), time.Date(2036, 2, 7, 0, 0, 0, 0, time.FixedZone("EST", -5*3600))},
	}
	for _, tt := range tests {
		ts := TimeOf(tt.t)
		got := ts.In(tt.pivot)
		if d := absDur(got.Sub(tt.t)); d > time.Nanosecond {
			t.Errorf("TimeOf(%v).In(%v) = %v, off by %v", tt.t, tt.pivot, got, d)
		}
		if got.Location() != time.UTC {
			t.Errorf("TimeOf(%v).In(%v) is in %v, want UTC", tt.t, tt.pivot, got.Location())
		}
	}
}

func TestTimeInRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2036))
	lo := utc(1850, 1, 1, 0, 0, 0, 0).Unix()
	hi := utc(2250, 1, 1, 0, 0, 0, 0).Unix()
	const window = int64(1<<31-2) * int64(time.Second) // about how far In reaches
	for i := 0; i < 100_000; i++ {
		tm := time.Unix(lo+rng.Int64N(hi-lo), rng.Int64N(nanosPerSecond)).UTC()
		// A pivot anywhere in the window, most near the edges or near t.
		var off int64
		switch i % 3 {
		case 0:
			off = rng.Int64N(2*window) - window
		case 1:
			off = rng.Int64N(2*int64(time.Hour)) - int64(time.Hour)
		case 2:
			off = window - rng.Int64N(int64(time.Hour))
			if i%2 == 0 {
				off = -off
			}
		}
		pivot := tm.Add(time.Duration(off))
		ts := TimeOf(tm)
		if ts == 0 {
			continue
		}
		got := ts.In(pivot)
		if d := absDur(got.Sub(tm)); d > time.Nanosecond {
			t.Fatalf("TimeOf(%v).In(%v) = %v, off by %v", tm, pivot, got, d)
		}
	}
}

// A pivot more than 2^31 s away puts the timestamp in the neighbouring era.
func TestTimeInWrongEra(t *testing.T) {
	tm := utc(2000, 1, 1, 0, 0, 0, 0)
	pivot := tm.Add(70 * 365 * 24 * time.Hour)
	got := TimeOf(tm).In(pivot)
	if want := tm.Add(eraSeconds * time.Second); !got.Equal(want) {
		t.Errorf("In(%v) = %v, want %v (one era later)", pivot, got, want)
	}
}

func TestTimeSub(t *testing.T) {
	tests := []struct {
		t, u time.Time
		want time.Duration
	}{
		// t after the rollover, u before: small and positive.
		{utc(2036, 2, 7, 6, 28, 16, 250_000_000), utc(2036, 2, 7, 6, 28, 15, 500_000_000), 750 * time.Millisecond},
		{utc(2036, 2, 7, 6, 28, 16, 1), utc(2036, 2, 7, 6, 28, 15, 999_999_999), 2 * time.Nanosecond},
		{utc(2036, 2, 7, 6, 28, 15, 500_000_000), utc(2036, 2, 7, 6, 28, 16, 250_000_000), -750 * time.Millisecond},
		{utc(2036, 2, 8, 0, 0, 0, 0), utc(2036, 2, 6, 0, 0, 0, 0), 48 * time.Hour},
		{utc(2026, 11, 23, 0, 0, 0, 0), utc(2026, 11, 23, 0, 0, 0, 0), 0},
		{utc(2026, 11, 23, 0, 0, 1, 0), utc(2026, 11, 23, 0, 0, 0, 999_999_999), time.Nanosecond},
		{utc(2026, 11, 23, 0, 0, 0, 0), utc(2026, 11, 23, 0, 0, 0, 1), -time.Nanosecond},
		// Decades apart, still within ±68 years.
		{utc(2060, 1, 1, 0, 0, 0, 0), utc(2000, 1, 1, 0, 0, 0, 0), utc(2060, 1, 1, 0, 0, 0, 0).Sub(utc(2000, 1, 1, 0, 0, 0, 0))},
		{utc(1990, 1, 1, 0, 0, 0, 0), utc(2050, 1, 1, 0, 0, 0, 0), utc(1990, 1, 1, 0, 0, 0, 0).Sub(utc(2050, 1, 1, 0, 0, 0, 0))},
	}
	for _, tt := range tests {
		got := TimeOf(tt.t).Sub(TimeOf(tt.u))
		if d := absDur(got - tt.want); d > time.Nanosecond {
			t.Errorf("TimeOf(%v).Sub(TimeOf(%v)) = %v, want %v", tt.t, tt.u, got, tt.want)
		}
	}

	// Exact values of the fixed-point difference.
	for _, tt := range []struct {
		t, u Time
		want time.Duration
	}{
		{1 << 32, 0, time.Second},
		{0, 1 << 32, -time.Second},
		{1 << 31, 0, 500 * time.Millisecond},
		{0, 0xffffffff << 32, time.Second}, // across the wrap
		{0xffffffff << 32, 0, -time.Second},
		{1<<63 - 1, 0, (math.MaxInt32 + 1) * time.Second}, // 2^31 s less 2^-32 s
		{1 << 63, 0, math.MinInt32 * time.Second},
	} {
		got := tt.t.Sub(tt.u)
		if d := absDur(got - tt.want); d > time.Nanosecond {
			t.Errorf("Time(%#x).Sub(%#x) = %v, want %v", uint64(tt.t), uint64(tt.u), got, tt.want)
		}
	}
}

func TestTimeAdd(t *testing.T) {
	tests := []struct {
		t     time.Time
		d     time.Duration
		pivot time.Time
	}{
		{utc(2036, 2, 7, 6, 28, 15, 0), 2 * time.Second, rollover},
		{utc(2036, 2, 7, 6, 28, 17, 0), -1500 * time.Millisecond, rollover},
		{utc(2036, 2, 7, 6, 28, 15, 999_999_999), 2 * time.Nanosecond, rollover},
		{utc(2026, 11, 23, 18, 16, 8, 0), time.Nanosecond, captureDay},
		{utc(2026, 11, 23, 18, 16, 8, 0), -time.Nanosecond, captureDay},
		{utc(2026, 11, 23, 18, 16, 8, 0), 40 * 365 * 24 * time.Hour, utc(2066, 1, 1, 0, 0, 0, 0)},
		{utc(2026, 11, 23, 18, 16, 8, 0), -100 * 365 * 24 * time.Hour, utc(1926, 1, 1, 0, 0, 0, 0)},
		{utc(1970, 1, 1, 0, 0, 0, 0), 0, utc(1970, 1, 1, 0, 0, 0, 0)},
	}
	for _, tt := range tests {
		want := tt.t.Add(tt.d)
		got := TimeOf(tt.t).Add(tt.d).In(tt.pivot)
		if d := absDur(got.Sub(want)); d > time.Nanosecond {
			t.Errorf("TimeOf(%v).Add(%v).In(%v) = %v, want %v", tt.t, tt.d, tt.pivot, got, want)
		}
	}
	for _, tt := range []struct {
		t    Time
		d    time.Duration
		want Time
	}{
		{1 << 32, 500 * time.Millisecond, 3 << 31},
		{1 << 32, -500 * time.Millisecond, 1 << 31},
		{0xffffffff << 32, time.Second, 0},
		{0, -time.Second, 0xffffffff << 32},
		{0, -time.Nanosecond, 1<<64 - 4},
	} {
		if got := tt.t.Add(tt.d); got != tt.want {
			t.Errorf("Time(%#x).Add(%v) = %#x, want %#x", uint64(tt.t), tt.d, uint64(got), uint64(tt.want))
		}
	}

	// Add and Sub are inverse, to within rounding.
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 10_000; i++ {
		ts := Time(rng.Uint64())
		d := time.Duration(rng.Int64N(2*int64(60*365*24*time.Hour)) - int64(60*365*24*time.Hour))
		if got := ts.Add(d).Sub(ts); absDur(got-d) > time.Nanosecond {
			t.Fatalf("Time(%#x).Add(%v).Sub(t) = %v", uint64(ts), d, got)
		}
	}
}

// shortTolerance is half a unit of the short format (2^-17 s), plus the
// half nanosecond lost converting back to a Duration.
const shortTolerance = time.Second/(1<<17) + 1

func TestShort(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want Short
	}{
		{0, 0},
		{-1, 0},
		{-time.Hour, 0},
		{math.MinInt64, 0},
		{time.Second, 1 << 16},
		{500 * time.Millisecond, 1 << 15},
		{1500 * time.Millisecond, 3 << 15},
		{time.Second / (1 << 16), 1},
		{7629 * time.Nanosecond, 0}, // just under half a unit rounds down
		{7630 * time.Nanosecond, 1}, // just over rounds up
		{65535 * time.Second, 65535 << 16},
		{65536*time.Second - 7629*time.Nanosecond, math.MaxUint32},
		{65536*time.Second - time.Nanosecond, math.MaxUint32}, // rounds to 2^32: saturates
		{65536 * time.Second, math.MaxUint32},
		{1_000_000 * time.Second, math.MaxUint32},
		{math.MaxInt64, math.MaxUint32},
	} {
		if got := ShortOf(tt.d); got != tt.want {
			t.Errorf("ShortOf(%v) = %#x, want %#x", tt.d, uint32(got), uint32(tt.want))
		}
	}

	for _, tt := range []struct {
		s    Short
		want time.Duration
		secs float64
	}{
		{0, 0, 0},
		{1, 15259 * time.Nanosecond, 1.0 / 65536},
		{1 << 15, 500 * time.Millisecond, 0.5},
		{3 << 15, 1500 * time.Millisecond, 1.5},
		{1 << 16, time.Second, 1},
		{math.MaxUint32, 65535*time.Second + 999984741*time.Nanosecond, 65535.9999847412109375},
	} {
		if got := tt.s.Duration(); got != tt.want {
			t.Errorf("Short(%#x).Duration() = %v, want %v", uint32(tt.s), got, tt.want)
		}
		if got := tt.s.Seconds(); got != tt.secs {
			t.Errorf("Short(%#x).Seconds() = %v, want %v", uint32(tt.s), got, tt.secs)
		}
	}

	// Round trip within half a unit.
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 100_000; i++ {
		d := time.Duration(rng.Int64N(int64(65535 * time.Second)))
		if i%4 == 0 {
			d = time.Duration(rng.Int64N(int64(time.Second)))
		}
		if got := ShortOf(d).Duration(); absDur(got-d) > shortTolerance {
			t.Fatalf("ShortOf(%v).Duration() = %v, off by %v", d, got, absDur(got-d))
		}
	}
	// And Short -> Duration -> Short is exact.
	for i := 0; i < 100_000; i++ {
		s := Short(rng.Uint32())
		if got := ShortOf(s.Duration()); got != s {
			t.Fatalf("ShortOf(Short(%#x).Duration()) = %#x", uint32(s), uint32(got))
		}
	}
}

func TestLogToDuration(t *testing.T) {
	for _, tt := range []struct {
		l    int8
		want time.Duration
	}{
		{0, time.Second},
		{1, 2 * time.Second},
		{6, 64 * time.Second},
		{10, 1024 * time.Second},
		{17, 131072 * time.Second},
		{33, (1 << 33) * time.Second},
		{34, (1 << 33) * time.Second}, // saturates below MaxInt64
		{127, (1 << 33) * time.Second},
		{-1, 500 * time.Millisecond},
		{-6, 15625 * time.Microsecond},
		{-10, 976562500 * time.Nanosecond / 1000},
		{-20, 953 * time.Nanosecond}, // 953.67 ns
		{-25, 29 * time.Nanosecond},  // 29.8 ns
		{-30, 0},
		{-40, 0},
		{-41, 0},
		{-128, 0},
	} {
		got := LogToDuration(tt.l)
		if absDur(got-tt.want) > time.Nanosecond {
			t.Errorf("LogToDuration(%d) = %v, want %v", tt.l, got, tt.want)
		}
	}
	// Never negative, never decreasing.
	prev := time.Duration(-1)
	for l := math.MinInt8; l <= math.MaxInt8; l++ {
		got := LogToDuration(int8(l))
		if got < 0 || got < prev {
			t.Errorf("LogToDuration(%d) = %v after %v", l, got, prev)
		}
		prev = got
	}
}

func TestStampOfNeverZero(t *testing.T) {
	era1 := time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC)
	for _, tt := range []struct {
		t    time.Time
		want Time
	}{
		{era1, 1},
		{era1.Add(-time.Nanosecond), TimeOf(era1.Add(-time.Nanosecond))},
		{era1.Add(time.Nanosecond), TimeOf(era1.Add(time.Nanosecond))},
		{time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), 1},
		{time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC), TimeOf(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))},
		{time.Time{}, 0},
	} {
		if got := StampOf(tt.t); got != tt.want {
			t.Errorf("StampOf(%v) = %#x, want %#x", tt.t, got, tt.want)
		}
		if !tt.t.IsZero() && StampOf(tt.t) == 0 {
			t.Errorf("StampOf(%v) = 0", tt.t)
		}
	}
	if TimeOf(era1) != 0 {
		t.Fatalf("TimeOf(%v) = %#x; the test assumes it encodes as 0", era1, TimeOf(era1))
	}
}

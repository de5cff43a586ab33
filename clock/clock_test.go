package clock_test

import (
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/clock/clocktest"
)

func TestSystemPrecision(t *testing.T) {
	p := clock.Precision(clock.System{})
	// Any real system clock reads somewhere between 1 ns and 1 ms.
	if p < -30 || p > -10 {
		t.Fatalf("system clock precision = %d, want within [-30, -10]", p)
	}
}

func TestPrecisionUsesPrecisioner(t *testing.T) {
	f := clocktest.New(time.Unix(0, 0))
	f.SetPrecision(-7)
	if got := clock.Precision(f); got != -7 {
		t.Fatalf("Precision = %d, want -7", got)
	}
}

// stepClock advances by a fixed step on every reading.
type stepClock struct {
	t    time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time { c.t = c.t.Add(c.step); return c.t }

func TestMeasurePrecision(t *testing.T) {
	for _, tc := range []struct {
		step time.Duration
		want int8
	}{
		{time.Microsecond, -19}, // 2^-20 < 1 µs <= 2^-19
		{time.Millisecond, -9},
		{20 * time.Nanosecond, -25},
	} {
		c := &stepClock{t: time.Unix(0, 0), step: tc.step}
		if got := clock.MeasurePrecision(c); got != tc.want {
			t.Errorf("step %v: precision %d, want %d", tc.step, got, tc.want)
		}
	}
	if got := clock.MeasurePrecision(clocktest.New(time.Unix(0, 0))); got != -30 {
		t.Errorf("frozen clock: precision %d, want -30", got)
	}
}

func TestSystemFromSystem(t *testing.T) {
	now := time.Now()
	if got := (clock.System{}).FromSystem(now); !got.Equal(now) {
		t.Fatalf("FromSystem changed the time: %v -> %v", now, got)
	}
}

func TestAfterFuncUsesClockTimers(t *testing.T) {
	f := clocktest.New(time.Unix(0, 0))
	fired := false
	clock.AfterFunc(f, time.Hour, func() { fired = true })
	if fired {
		t.Fatal("fired before the fake clock moved")
	}
	f.Advance(time.Hour)
	if !fired {
		t.Fatal("did not fire when the fake clock reached the deadline")
	}
	done := make(chan struct{})
	tm := clock.AfterFunc(clock.System{}, time.Millisecond, func() { close(done) })
	<-done
	if tm.Stop() {
		t.Fatal("Stop after firing returned true")
	}
}

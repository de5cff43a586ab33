package upstream

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestFilterPicksLowestDelay(t *testing.T) {
	var f filter
	delays := []time.Duration{5, 3, 9, 1, 7} // ms
	for i, d := range delays {
		f.add(sample{at: time.Duration(i) * time.Second, offset: time.Duration(i) * time.Millisecond, delay: d * time.Millisecond})
	}
	out := f.output(5*time.Second, 0, 0)
	if !out.ok || out.best.delay != time.Millisecond || out.best.offset != 3*time.Millisecond {
		t.Fatalf("best = %+v, want the 1 ms delay sample (offset 3 ms)", out.best)
	}
	// Jitter: RMS of offsets 0,1,2,4 ms about 3 ms.
	want := math.Sqrt((9+4+1+1)/4.0) * 1e-3
	if got := out.jitter.Seconds(); math.Abs(got-want) > 1e-9 {
		t.Fatalf("jitter = %v, want %v", got, want)
	}
	if out.minDelay != time.Millisecond {
		t.Fatalf("minDelay = %v", out.minDelay)
	}
}

func TestFilterKeepsHistory(t *testing.T) {
	var f filter
	for i := range 100 {
		f.add(sample{at: time.Duration(i)})
	}
	if len(f.hist) != histLen || f.hist[0].at != 100-histLen {
		t.Fatalf("history has %d samples from %v; want the last %d", len(f.hist), f.hist[0].at, histLen)
	}
	if out := (&filter{}).output(0, 0, 0); out.ok {
		t.Fatal("empty filter gave an output")
	}
}

func TestMarzullo(t *testing.T) {
	ms := func(off, dist float64) interval { return interval{off * 1e-3, dist * 1e-3} }
	tests := []struct {
		name      string
		iv        []interval
		ok        bool
		agree     int
		low, high float64 // ms
	}{
		{"one", []interval{ms(1, 2)}, true, 1, -1, 3},
		{"four agree one falseticker", []interval{ms(0, 2), ms(1, 2), ms(-1, 2), ms(0.5, 2), ms(500, 2)}, true, 4, -1, 1},
		{"two disagree", []interval{ms(0, 1), ms(500, 1)}, false, 0, 0, 0},
		{"two minorities and a third", []interval{ms(0, 1), ms(100, 1), ms(200, 1)}, false, 0, 0, 0},
		{"three of five, two liars agreeing elsewhere", []interval{ms(0, 2), ms(1, 2), ms(-1, 2), ms(300, 2), ms(301, 2)}, true, 3, -1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			low, high, agree, ok := marzullo(tc.iv)
			if ok != tc.ok || agree != tc.agree {
				t.Fatalf("ok=%v agree=%d, want %v %d", ok, agree, tc.ok, tc.agree)
			}
			if ok && (math.Abs(low*1e3-tc.low) > 1e-9 || math.Abs(high*1e3-tc.high) > 1e-9) {
				t.Fatalf("intersection [%g, %g] ms, want [%g, %g]", low*1e3, high*1e3, tc.low, tc.high)
			}
		})
	}
}

func TestClusterDropsOutlier(t *testing.T) {
	items := []clusterItem{
		{offset: 0.000, jitter: 0.002},
		{offset: 0.001, jitter: 0.002},
		{offset: -0.001, jitter: 0.002},
		{offset: 0.0005, jitter: 0.002},
		{offset: 0.050, jitter: 0.002}, // a truechimer with a wide interval, far from the rest
	}
	alive := cluster(items, 3)
	for _, i := range alive {
		if i == 4 {
			t.Fatalf("survivors %v include the outlier", alive)
		}
	}
	if len(alive) != 4 {
		t.Fatalf("survivors %v; want the four close ones (their spread is below their jitter)", alive)
	}
}

func TestRegressRecoversOffsetAndFrequency(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const off, freq, sigma = 0.010, 20e-6, 0.0007
	var pts []point
	for i := range 256 {
		x := -float64(255-i) * 0.0625
		pts = append(pts, point{x: x, y: off + freq*x + sigma*rng.NormFloat64(), w: 1 / (sigma * sigma)})
	}
	f := regress(pts, 0)
	// The end-point estimate has a standard error of about
	// 2σ/√n = 87 µs, the slope about 9.5 ppm: allow 4 of them.
	if math.Abs(f.offset-off) > 350e-6 || math.Abs(f.freq-freq) > 40e-6 {
		t.Fatalf("fit offset %.6f freq %.2f ppm; want %.6f %.2f ppm", f.offset, f.freq*1e6, off, freq*1e6)
	}
	if f.used != 256 {
		t.Fatalf("used %d points of a straight line, want all", f.used)
	}
}

func TestRegressDropsOldSegmentAfterFrequencyChange(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var pts []point
	// The frequency changed from 0 to 100 ppm 20 s ago.
	for i := range 200 {
		x := -float64(199-i) * 0.5
		y := 0.0
		if x > -20 {
			y = 100e-6 * (x + 20)
		}
		y -= 100e-6 * 20 // offset now: 0
		pts = append(pts, point{x: x, y: y + 50e-6*rng.NormFloat64(), w: 1 / (50e-6 * 50e-6)})
	}
	f := regress(pts, 0)
	if f.used >= 100 {
		t.Fatalf("used %d points, want the fit to drop the old segment", f.used)
	}
	if math.Abs(f.offset) > 200e-6 || math.Abs(f.freq-100e-6) > 30e-6 {
		t.Fatalf("fit offset %v freq %.1f ppm; want ~0 and ~100 ppm", f.offset, f.freq*1e6)
	}
}

func TestRegressPriorTamesShortSpans(t *testing.T) {
	// Three samples 10 ms apart with 1 ms of noise would give a slope of
	// tens of thousands of ppm without the prior.
	pts := []point{{x: -0.02, y: 0.001, w: 1e6}, {x: -0.01, y: -0.001, w: 1e6}, {x: 0, y: 0.001, w: 1e6}}
	f := regress(pts, 0)
	if math.Abs(f.freq) > 1e-6 {
		t.Fatalf("freq %.1f ppm from 20 ms of data", f.freq*1e6)
	}
}

func TestFilterFloorIsFastSamplesScatter(t *testing.T) {
	var f filter
	// Four fast exchanges within ±10 µs of each other, four slow ones
	// (a leg 1 ms late) ±400 µs off.
	offs := []time.Duration{10, -400, -10, 400, 5, -400, -5, 400}
	for i, o := range offs {
		delay := 100 * time.Microsecond
		if i%2 == 1 {
			delay += time.Millisecond
		}
		f.add(sample{at: time.Duration(i) * time.Second, offset: o * time.Microsecond, delay: delay})
	}
	out := f.output(8*time.Second, 1e-9, 0)
	if out.floor > 20*time.Microsecond || out.jitter < 200*time.Microsecond {
		t.Fatalf("floor %v, jitter %v: want the fast samples' scatter (≤ 20 µs) and the whole register's (≥ 200 µs)", out.floor, out.jitter)
	}
	// Noise the delay does not explain: the floor is the jitter's size.
	f.reset()
	for i, o := range offs {
		f.add(sample{at: time.Duration(i) * time.Second, offset: o * time.Microsecond, delay: 100*time.Microsecond + time.Duration(i)*time.Microsecond})
	}
	out = f.output(8*time.Second, 1e-9, 0)
	if out.floor < out.jitter/2 {
		t.Fatalf("floor %v with delays that do not explain the noise, want near the jitter %v", out.floor, out.jitter)
	}
}

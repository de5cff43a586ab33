package upstream

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// phi is the frequency tolerance RFC 5905 assumes of a clock (15 ppm): the
// rate at which the dispersion of a sample grows with its age.
const phi = 15e-6

// filterLen is the length of the RFC 5905 clock filter's shift register.
const filterLen = 8

// histLen is how many samples of each source the frequency and offset
// estimate may use (chrony keeps 64).
const histLen = 64

// sample is one measurement of a source, on the raw timescale: offset is
// what must be added to the raw clock to get the source's time.
type sample struct {
	at     time.Duration // raw time of the measurement (midpoint of T1 and T4)
	offset time.Duration // θ
	delay  time.Duration // δ, never negative
	disp   time.Duration // ε at the time of the measurement
	// interleaved: the sample came from an interleaved reply (of the
	// exchange before it).
	interleaved bool
}

// filter is a source's sample history: the last histLen samples, oldest
// first. Its last filterLen samples are the RFC 5905 clock filter.
type filter struct {
	hist []sample
}

func (f *filter) add(s sample) {
	if len(f.hist) == histLen {
		copy(f.hist, f.hist[1:])
		f.hist = f.hist[:histLen-1]
	}
	f.hist = append(f.hist, s)
}

func (f *filter) reset() { f.hist = f.hist[:0] }

// shift adds by to the offsets of the samples taken before raw time
// before (a leap second: the source's timescale moved).
func (f *filter) shift(before, by time.Duration) {
	for i := range f.hist {
		if f.hist[i].at < before {
			f.hist[i].offset += by
		}
	}
}

// drop removes the samples taken between raw times from and to.
func (f *filter) drop(from, to time.Duration) {
	f.hist = slices.DeleteFunc(f.hist, func(s sample) bool { return s.at >= from && s.at <= to })
}

// filterOutput is what the clock filter says about a source at a moment.
type filterOutput struct {
	ok       bool
	best     sample        // the lowest-delay sample of the register
	minDelay time.Duration // lowest delay of the whole history
	disp     time.Duration // filter dispersion at now
	jitter   time.Duration // RMS of the register's residuals about best, after the frequency correction
	// floor is the jitter of the lowest-delay half of the register
	// alone: the noise that a sample's delay does not explain (the
	// server's timestamps, the precision), as opposed to the noise of
	// slow legs, which the delay shows.
	floor time.Duration
}

// output runs the RFC 5905 §10 clock filter at raw time now: the sample of
// least delay among the last filterLen, the filter dispersion (the
// samples' dispersions, grown with age, weighted 1/2, 1/4, ...) and the
// jitter. Unlike RFC 5905, slots not yet filled add nothing: a young
// source is not made to look uncertain, since selection already needs a
// majority of the sources to agree before the clock is trusted. precision
// is the sum of both ends' precisions, in seconds, used as the jitter's
// floor. freq is the current estimate of the base clock's frequency
// error: the jitter is taken over the samples' residuals after it (each
// offset carried to best's time at rate freq), so a base clock that is
// hundreds of ppm off does not look jittery (RFC 5905 takes it over raw
// offsets because its samples are of a clock already disciplined).
func (f *filter) output(now time.Duration, precision, freq float64) filterOutput {
	n := len(f.hist)
	if n == 0 {
		return filterOutput{}
	}
	reg := f.hist[max(0, n-filterLen):]
	// Sort the register by the distance RFC 5905 uses: delay, with the
	// samples' dispersions as a tie-break, newest first.
	idx := make([]int, len(reg))
	for i := range idx {
		idx[i] = len(reg) - 1 - i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(reg[a].delay, reg[b].delay) })
	out := filterOutput{ok: true, best: reg[idx[0]]}
	var disp, w float64 = 0, 0.5
	for _, i := range idx {
		age := (now - reg[i].at).Seconds()
		disp += w * (reg[i].disp.Seconds() + phi*max(age, 0))
		w /= 2
	}
	out.disp = seconds(disp)
	var j, fl float64
	half := len(idx) / 2
	for k, i := range idx[1:] {
		d := (reg[i].offset - out.best.offset).Seconds() + freq*(out.best.at-reg[i].at).Seconds()
		j += d * d
		if k+1 < half {
			fl += d * d
		}
	}
	if len(idx) > 1 {
		j = math.Sqrt(j / float64(len(idx)-1))
	}
	if len(reg) == filterLen {
		fl = math.Sqrt(fl / float64(half-1))
	} else {
		fl = j // too few samples to tell the fast from the slow
	}
	out.jitter = seconds(max(j, precision))
	out.floor = seconds(max(fl, precision))
	out.minDelay = out.best.delay
	for _, s := range f.hist {
		out.minDelay = min(out.minDelay, s.delay)
	}
	return out
}

// popcornMin is the smallest deviation judged a popcorn spike: below it a
// sample is always used (a millisecond: far above the jitter of a good
// path, far below the spikes queues and busy servers produce).
const popcornMin = time.Millisecond

// popcornRun is how many spikes in a row are suppressed; the next sample
// that deviates as much is taken as a real change of the source's offset.
const popcornRun = 2

// popcorn reports whether smp is a popcorn spike (RFC 5905 §10's popcorn
// spike suppressor, with chrony's robust statistics): its offset,
// carried at rate freq to the time of the register's samples, deviates
// from their median by more than five robust standard deviations (1.4826
// times the median absolute deviation) and more than popcornMin. One leg
// of an exchange delayed by a queue moves the offset by half the extra
// delay, and a server's glitch moves it by its own error; both are judged
// by how far the sample falls from what the source has been saying. It
// needs four samples to judge.
//
// freqErr is the uncertainty of freq: the deviation it may explain over
// the time since the register's last sample is never judged a spike.
func (f *filter) popcorn(smp sample, freq, freqErr float64) bool {
	n := len(f.hist)
	if n < 4 {
		return false
	}
	reg := f.hist[max(0, n-filterLen):]
	var res [filterLen]float64
	for i, r := range reg {
		res[i] = (r.offset - smp.offset).Seconds() + freq*(smp.at-r.at).Seconds()
	}
	med := median(res[:len(reg)])
	var dev [filterLen]float64
	for i := range reg {
		dev[i] = math.Abs(res[i] - med)
	}
	mad := median(dev[:len(reg)])
	drift := 5 * freqErr * (smp.at - reg[len(reg)-1].at).Seconds()
	return math.Abs(med) > max(5*1.4826*mad, popcornMin.Seconds())+drift
}

// median returns the median of v, reordering it.
func median(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func seconds(s float64) time.Duration { return time.Duration(s * 1e9) }

// interval is a source's correctness interval for selection: the offset
// (extrapolated to a common moment) and the root distance around it.
type interval struct {
	offset, dist float64 // seconds
}

// marzullo runs the RFC 5905 §11.2.1 selection: it finds the smallest
// number of falsetickers f < n/2 for which n-f of the intervals share a
// point, and returns the intersection [low, high] and n-f, or ok false
// when no majority agrees.
func marzullo(iv []interval) (low, high float64, agree int, ok bool) {
	n := len(iv)
	if n == 0 {
		return 0, 0, 0, false
	}
	type edge struct {
		v   float64
		typ int // -1 lower end, 0 midpoint, +1 upper end
	}
	edges := make([]edge, 0, 3*n)
	for _, c := range iv {
		edges = append(edges, edge{c.offset - c.dist, -1}, edge{c.offset, 0}, edge{c.offset + c.dist, +1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := cmp.Compare(a.v, b.v); c != 0 {
			return c
		}
		return cmp.Compare(a.typ, b.typ)
	})
	for allow := 0; 2*allow < n; allow++ {
		found, chime := 0, 0
		low, high = math.Inf(1), math.Inf(-1)
		for _, e := range edges {
			chime -= e.typ
			if chime >= n-allow {
				low = e.v
				break
			}
			if e.typ == 0 {
				found++
			}
		}
		chime = 0
		for i := len(edges) - 1; i >= 0; i-- {
			e := edges[i]
			chime += e.typ
			if chime >= n-allow {
				high = e.v
				break
			}
			if e.typ == 0 {
				found++
			}
		}
		if found > allow {
			continue
		}
		if high >= low {
			return low, high, n - allow, true
		}
	}
	return 0, 0, 0, false
}

// clusterItem is a truechimer as the cluster algorithm sees it.
type clusterItem struct {
	offset float64 // seconds, at the common moment
	jitter float64 // the source's own jitter, seconds
}

// cluster runs the RFC 5905 §11.2.2 cluster algorithm on the truechimers
// and returns the indices of the survivors: while more than minSurvivors
// remain, it drops the one whose offsets disagree most with the others
// (largest selection jitter), unless that is already below the smallest
// source jitter.
func cluster(items []clusterItem, minSurvivors int) []int {
	alive := make([]int, len(items))
	for i := range alive {
		alive[i] = i
	}
	for len(alive) > minSurvivors {
		worst, worstJ := -1, -1.0
		minPeerJ := math.Inf(1)
		for _, i := range alive {
			var s float64
			for _, j := range alive {
				d := items[j].offset - items[i].offset
				s += d * d
			}
			sj := math.Sqrt(s / float64(len(alive)-1))
			if sj > worstJ {
				worst, worstJ = i, sj
			}
			minPeerJ = min(minPeerJ, items[i].jitter)
		}
		if worstJ <= minPeerJ {
			break
		}
		alive = slices.DeleteFunc(alive, func(i int) bool { return i == worst })
	}
	return alive
}

// point is one sample in the combined estimate, on the raw timescale.
type point struct {
	x, y, w float64 // seconds since the estimate's reference time, offset in seconds, weight
}

// fit is the result of a weighted least-squares line through points:
// offset at x=0 and frequency (slope), with the residuals' weighted RMS and
// how many of the newest points were used.
type fit struct {
	offset, freq, rms float64
	freqErr           float64 // standard error of freq
	used              int
}

// freqPrior is the standard deviation, as a fraction, of the frequency
// error assumed before any data (1000 ppm). It regularises the slope when
// the samples span too short a time to estimate it, so a few noisy iburst
// samples cannot set a wild frequency.
const freqPrior = 1000e-6

// regress fits offset(x) = a + b·x through pts (sorted by x, oldest
// first; x ≤ 0 with x = 0 now) by weighted least squares with a weak prior
// pulling b towards prior. Like chrony, it tests the residuals' signs for
// runs: too few runs mean the points no longer lie on one line (the
// frequency wandered), and the oldest quarter is dropped until they do or
// only minPoints remain. A slope beyond maxFreq (the sources jumped) is
// treated the same way.
func regress(pts []point, prior float64) fit {
	const minPoints = 6
	for start := 0; ; {
		use := pts[start:]
		f := fitLine(use, prior)
		if len(use) <= minPoints || runsOK(use, f) && math.Abs(f.freq) <= maxFreq {
			return f
		}
		start += max(1, len(use)/4)
		if len(pts)-start < minPoints {
			start = len(pts) - minPoints
		}
	}
}

// fixedSlope fits offset(x) = a + b·x through pts with b given: a is
// the weighted mean of y - b·x, which stays within the range of the
// points.
func fixedSlope(pts []point, b float64) fit {
	var sw, sy float64
	for _, p := range pts {
		sw += p.w
		sy += p.w * (p.y - b*p.x)
	}
	f := fit{freq: b, used: len(pts), freqErr: freqPrior}
	if sw == 0 {
		return f
	}
	f.offset = sy / sw
	var r float64
	for _, p := range pts {
		d := p.y - f.offset - b*p.x
		r += p.w * d * d
	}
	f.rms = math.Sqrt(r / sw)
	return f
}

// fitLine is one weighted least-squares fit with the frequency prior.
func fitLine(pts []point, prior float64) fit {
	var sw, sx, sy, sxx, sxy float64
	for _, p := range pts {
		sw += p.w
		sx += p.w * p.x
		sy += p.w * p.y
		sxx += p.w * p.x * p.x
		sxy += p.w * p.x * p.y
	}
	f := fit{used: len(pts)}
	if sw == 0 {
		return f
	}
	// Weights are inverse variances (1/s²), so the prior enters the
	// normal equations as one more observation of b.
	lp := 1 / (freqPrior * freqPrior)
	// [sw  sx ] [a]   [sy          ]
	// [sx  sxx+lp] [b] = [sxy + lp·prior]
	det := sw*(sxx+lp) - sx*sx
	f.offset = (sy*(sxx+lp) - sx*(sxy+lp*prior)) / det
	f.freq = (sw*(sxy+lp*prior) - sx*sy) / det
	f.freqErr = math.Sqrt(sw / det)
	var r float64
	for _, p := range pts {
		d := p.y - f.offset - f.freq*p.x
		r += p.w * d * d
	}
	f.rms = math.Sqrt(r / sw)
	return f
}

// runsOK applies the Wald–Wolfowitz runs test to the signs of the
// residuals: it reports false when there are significantly fewer runs
// than random noise would give (3 standard deviations).
func runsOK(pts []point, f fit) bool {
	var pos, neg, runs int
	prev := 0
	for _, p := range pts {
		s := 1
		if p.y-f.offset-f.freq*p.x < 0 {
			s = -1
		}
		if s > 0 {
			pos++
		} else {
			neg++
		}
		if s != prev {
			runs++
			prev = s
		}
	}
	n := float64(pos + neg)
	if pos == 0 || neg == 0 {
		return n < 6
	}
	mu := 2*float64(pos)*float64(neg)/n + 1
	v := (mu - 1) * (mu - 2) / (n - 1)
	return float64(runs) >= mu-3*math.Sqrt(v)
}

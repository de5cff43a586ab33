package main

import "math/bits"

// hist is a log-linear histogram of signed nanosecond values: exact below
// 64 ns, then 32 buckets per power of two (about 3% relative error).
// Recording allocates nothing.
type hist struct {
	pos, neg [histBuckets]uint64
	n        uint64
	max      int64
}

const (
	histSub     = 32 // buckets per power of two
	histBuckets = 64 + 58*histSub
)

func bucketOf(v uint64) int {
	if v < 64 {
		return int(v)
	}
	e := bits.Len64(v) - 6 // v>>e is in [32, 64)
	return 64 + (e-1)*histSub + int(v>>e) - histSub
}

// lowOf returns the smallest value in bucket i.
func lowOf(i int) uint64 {
	if i < 64 {
		return uint64(i)
	}
	e := (i-64)/histSub + 1
	m := uint64((i-64)%histSub + histSub)
	return m << e
}

// midOf returns the middle of bucket i.
func midOf(i int) float64 {
	if i < 64 {
		return float64(i)
	}
	e := (i-64)/histSub + 1
	return float64(lowOf(i)) + float64(uint64(1)<<e)/2
}

func (h *hist) add(v int64) {
	h.n++
	if v > h.max || h.n == 1 {
		h.max = v
	}
	if v < 0 {
		h.neg[min(bucketOf(uint64(-v)), histBuckets-1)]++
		return
	}
	h.pos[min(bucketOf(uint64(v)), histBuckets-1)]++
}

func (h *hist) merge(o *hist) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	for i := range h.pos {
		h.pos[i] += o.pos[i]
		h.neg[i] += o.neg[i]
	}
}

// quantile returns the q-quantile (0 < q <= 1) in nanoseconds, from the
// most negative value up.
func (h *hist) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(1, min(rank, h.n))
	var seen uint64
	for i := histBuckets - 1; i >= 0; i-- {
		if seen += h.neg[i]; seen >= rank {
			return -midOf(i)
		}
	}
	for i := 0; i < histBuckets; i++ {
		if seen += h.pos[i]; seen >= rank {
			return midOf(i)
		}
	}
	return float64(h.max)
}

// absQuantile returns the q-quantile of |v|.
func (h *hist) absQuantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(1, min(rank, h.n))
	var seen uint64
	for i := 0; i < histBuckets; i++ {
		if seen += h.pos[i] + h.neg[i]; seen >= rank {
			return midOf(i)
		}
	}
	return midOf(histBuckets - 1)
}

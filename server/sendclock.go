package server

import "time"

// sendClock predicts when each reply of a batch leaves, so that a batch
// can go out in one system call and every basic-mode reply still carries
// the time it was sent, not the time the batch started.
//
// A batched send (sendmmsg) hands its datagrams to the network stack one
// after another inside the call, each taking about the same time. The
// worker reads the clock once before stamping a batch (t0), once before
// the send (t1) and once after it (t2). Reply i of n is stamped
//
//	t0 + n*stamp + i*perDatagram
//
// where stamp is what stamping one reply takes (so the first reply
// carries the moment the send starts, as if it had been stamped just
// before its own send) and perDatagram is the marginal cost of one more
// datagram in a send. The send's duration is fixed + n*perDatagram: the
// fixed part (entering and leaving the kernel) is the same for one
// datagram or many, and a reply stamped just before its own send does
// not include it either. perDatagram is the slope of a least-squares
// line through recent batches' (n, t2-t1), with older batches' weight
// decaying; while batch sizes hardly vary (a steady full load) the slope
// is ill-defined and the line is pinned to the last known fixed part.
// A sample far above the line (the thread preempted mid-send, an
// interrupt) is clipped, so one stall does not skew the stamps of the
// batches after it.
//
// Kernel transmit stamps measure the prediction's error
// (sendclock_linux_test.go).
type sendClock struct {
	stamp time.Duration // per reply stamped

	// Decayed sums for the regression of send time (ns) on n.
	sw, sn, snn, sd, snd float64
	fixed, slope         float64 // ns; the current line
}

const (
	// sendClockDecay is the weight kept by past batches at each new
	// one: about the last 64 batches count.
	sendClockDecay = 1 - 1.0/64
	// sendClockOutlier caps a sample at this many times the predicted
	// duration.
	sendClockOutlier = 1.5
	// sendClockCeiling bounds any per-datagram estimate: no datagram
	// takes 100 µs to hand to the kernel, whatever a preempted
	// measurement says.
	sendClockCeiling = 100 * time.Microsecond
	// sendClockMinSpread is the least variance of batch sizes for which
	// the slope is fitted rather than derived from the fixed part.
	sendClockMinSpread = 0.2
)

// offset returns how long after t0 reply i of a batch of n is predicted
// to leave.
func (c *sendClock) offset(i, n int) time.Duration {
	return time.Duration(n)*c.stamp + time.Duration(float64(i)*c.slope)
}

// update learns from one batch of n datagrams whose stamping took
// stamping and whose send took sending.
func (c *sendClock) update(n int, stamping, sending time.Duration) {
	if n <= 0 {
		return
	}
	ps := min(max(stamping/time.Duration(n), 0), sendClockCeiling)
	if c.stamp == 0 {
		c.stamp = ps
	} else {
		c.stamp += (min(ps, 3*c.stamp) - c.stamp) / 16
	}

	x := float64(n)
	y := float64(min(max(sending, 0), time.Duration(n)*sendClockCeiling))
	if c.sw > 0 {
		y = min(y, sendClockOutlier*(c.fixed+c.slope*x))
	}
	c.sw = c.sw*sendClockDecay + 1
	c.sn = c.sn*sendClockDecay + x
	c.snn = c.snn*sendClockDecay + x*x
	c.sd = c.sd*sendClockDecay + y
	c.snd = c.snd*sendClockDecay + x*y
	mx, my := c.sn/c.sw, c.sd/c.sw
	vx := c.snn/c.sw - mx*mx
	if vx >= sendClockMinSpread {
		c.slope = (c.snd/c.sw - mx*my) / vx
		c.fixed = my - c.slope*mx
	} else {
		c.slope = (my - c.fixed) / mx
	}
	c.slope = min(max(c.slope, 0), float64(sendClockCeiling))
	c.fixed = max(c.fixed, 0)
}

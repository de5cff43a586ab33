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

// A prediction is the time a reply is handed to the kernel; the moment it
// leaves comes later by the system call's entry and the network stack's
// path to the device, which no clock reading in user space sees. Where
// the kernel reports transmit stamps (Linux, SO_TIMESTAMPING), the
// worker asks for one on an occasional basic reply (a probe: at most
// probeEvery replies apart, or probeInterval, so a quiet server
// calibrates too; the probed reply's place in its send turns round, so
// every place is calibrated) and learns, for each place in a send, how
// far the kernel's stamp lies from the time the reply carried: the lead.
// Later replies carry the prediction plus the lead. The lead is a running
// median: each probe moves it one step towards its sample, the step a
// small fraction of the samples' recent spread (a mean absolute
// deviation, each sample clipped at four times it), so a probe delayed by
// an interrupt or a preemption moves it no more than any other, a fresh
// or changed lead is found in a few dozen probes, and a settled one
// wanders by a fraction of the noise. It is bounded by ±sendClockCeiling.
const (
	// probeEvery is the most replies between two probes: at 50 000
	// replies a second, about 1 500 error-queue reads a second.
	probeEvery = 32
	// probeInterval is the longest time between probes while replies
	// are sent.
	probeInterval = time.Millisecond
	// leadPlaces is how many places in a send have a lead of their own;
	// later places share the last one.
	leadPlaces = 8
	// leadSealed, leadSealedFirst and leadSealedSecond are the leads of
	// replies sealed (NTS, MACs), whose transmit time is read before the
	// sealing, not just before the send: one sent alone, and the first
	// and second of a pair sent together (the first waits while the
	// next request is answered; see ReplySealed).
	leadSealed       = leadPlaces
	leadSealedFirst  = leadPlaces + 1
	leadSealedSecond = leadPlaces + 2
	// leadSlots counts the leads: the places, then the sealed ones.
	leadSlots = leadPlaces + 3
	// leadMinStep and leadMaxStep bound how far one probe moves a lead.
	leadMinStep = 2 * time.Nanosecond
	leadMaxStep = time.Microsecond
	// leadClipFloor is the least clip of a sample's deviation, so that
	// the spread can grow from zero.
	leadClipFloor = time.Microsecond
)

// leadClock is the calibration of a worker's predictions against the
// kernel's transmit stamps.
type leadClock struct {
	lead   [leadSlots]time.Duration
	spread [leadSlots]time.Duration
	// since counts replies since the last probe, last is when it was,
	// and turn picks the place of the next.
	since int
	last  time.Time
	turn  int
	// sealedSince and sealedLast are since and last for each kind of
	// sealed reply, probed on their own: replies alone and in pairs
	// alternate in step with any count.
	sealedSince [leadSlots - leadPlaces]int
	sealedLast  [leadSlots - leadPlaces]time.Time
}

// place is the lead index of reply i of a send.
func place(i int) int { return min(i, leadPlaces-1) }

// correction is the lead to add to the prediction of reply i of a send.
func (l *leadClock) correction(i int) time.Duration { return l.lead[place(i)] }

// probe reports which reply of a send of n, stamped at now, should ask
// for a kernel transmit stamp, or -1 for none.
func (l *leadClock) probe(n int, now time.Time) int {
	l.since += n
	if l.since < probeEvery && now.Sub(l.last) < probeInterval {
		return -1
	}
	l.since, l.last = 0, now
	l.turn++
	return l.turn % min(n, leadPlaces)
}

// probeSealed reports whether a sealed reply of the given slot
// (leadSealed, leadSealedFirst or leadSealedSecond), stamped at now,
// should ask for a kernel transmit stamp.
func (l *leadClock) probeSealed(slot int, now time.Time) bool {
	k := slot - leadPlaces
	l.sealedSince[k]++
	if l.sealedSince[k] < probeEvery && now.Sub(l.sealedLast[k]) < probeInterval {
		return false
	}
	l.sealedSince[k], l.sealedLast[k] = 0, now
	return true
}

// learn moves the lead of reply i's place (or, for i ≥ leadSealed, of
// that kind of sealed reply) one step towards residual, the kernel's
// stamp minus the time the reply carried.
func (l *leadClock) learn(i int, residual time.Duration) {
	p := place(i)
	if i >= leadSealed && i < leadSlots {
		p = i
	}
	dev := min(residual.Abs(), max(4*l.spread[p], leadClipFloor))
	l.spread[p] += (dev - l.spread[p]) / 16
	step := min(max(l.spread[p]/8, leadMinStep), leadMaxStep)
	switch {
	case residual > 0:
		l.lead[p] = min(l.lead[p]+step, sendClockCeiling)
	case residual < 0:
		l.lead[p] = max(l.lead[p]-step, -sendClockCeiling)
	}
}

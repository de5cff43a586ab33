package server

import (
	"errors"
	"os"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

// worker owns one reader goroutine's buffers. Nothing in it is shared with
// other workers, so the hot path takes no locks and allocates nothing. It
// is padded at both ends: a worker writes its Request and send state for
// every request, and an object next to it in memory (another worker's,
// or a part of the handler chain that every worker reads) must not share
// those cache lines.
type worker struct {
	_       [cacheLine]byte
	s       *Server
	io      packetIO
	c       *counters
	in      []inMsg
	out     []outMsg
	nout    int
	req     Request
	rw      responseWriter
	handler Handler
	// sendClock predicts each staged reply's transmit time; leads
	// calibrates the prediction against kernel transmit stamps when
	// calibrate is set.
	sendClock sendClock
	leads     leadClock
	calibrate bool
	odd       bool // the next chunk is one reply shorter
	sendBatch int  // most replies per send system call
	// nextSealed says the request after the current one in the batch
	// looks authenticated (pairMinLen); held says a sealed reply is
	// staged, waiting to leave with the next request's reply.
	nextSealed bool
	held       bool
	_          [cacheLine]byte
}

// cacheLine is the size of a CPU cache line on the usual server
// processors (x86-64, most arm64), by which hot structures are padded.
const cacheLine = 64

func (s *Server) newWorker(io packetIO, batch int) *worker {
	c, lane := s.stats.add()
	w := &worker{
		s:         s,
		io:        io,
		c:         c,
		in:        make([]inMsg, batch),
		out:       make([]outMsg, batch),
		handler:   s.handler,
		sendBatch: s.SendBatch,
	}
	if w.sendBatch <= 0 {
		w.sendBatch = DefaultSendBatch
	}
	for i := range w.in {
		w.in[i].buf = make([]byte, MaxPacket)
	}
	for i := range w.out {
		w.out[i].buf = make([]byte, 0, MaxPacket)
	}
	w.rw.w = w
	w.req.lane = lane
	if st, ok := io.(txStamper); ok && s.mapper != nil && st.txStamps() {
		st.setTxSink(w.kernelTxStamp)
		w.calibrate = !s.uncalibrated
	}
	return w
}

// run reads and answers batches until the socket's read deadline is
// moved into the past (Shutdown, context end) or reading fails.
func (w *worker) run() error {
	for {
		n, err := w.io.read(w.in)
		if n > 0 {
			w.handleBatch(n)
		}
		if err != nil {
			if isTemporary(err) {
				continue
			}
			return err
		}
	}
}

// isTemporary reports whether a read error leaves the socket usable: ICMP
// errors reported on a later read, for instance.
func isTemporary(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed) {
		return false
	}
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// handleBatch answers in[:n] and sends the replies in one batch.
func (w *worker) handleBatch(n int) {
	src := w.s.src
	// A user-space receive stamp, used where the kernel gave none. It is
	// read once per batch, right after the read returned.
	var userRx time.Time
	haveUserRx := false
	// The reference data, read once per batch when the first request
	// passes classification (junk alone costs no Reference call).
	var ref ntpwire.Reference
	haveRef := false
	var bytesIn uint64
	for i := 0; i < n; i++ {
		m := &w.in[i]
		bytesIn += uint64(m.n)
		// A sealed reply held for this request's leaves once it is
		// answered (or found to need no answer).
		wasHeld := w.held
		if !classify(w.c, m, &w.req.Packet) {
			if wasHeld {
				w.flush()
			}
			continue
		}
		w.nextSealed = i+1 < n && w.in[i+1].n >= pairMinLen
		if m.rxNanos != 0 && w.s.mapper != nil {
			w.req.Received = w.s.mapper.FromSystem(time.Unix(0, m.rxNanos))
		} else {
			if !haveUserRx {
				userRx, haveUserRx = src.Now(), true
			}
			w.req.Received = userRx
		}
		if !haveRef {
			ref, haveRef = src.Reference(), true
		}
		w.req.Reference = ref
		w.req.Raw = m.buf[:m.n]
		w.req.Src = m.src
		w.req.Dst = netipAddrPort(m.dst, w.s.localPort(w))
		w.rw.m = m
		w.rw.replied = false
		w.handler.ServeNTP(&w.rw, &w.req)
		if !w.rw.replied {
			w.c.handler.Add(1)
		}
		w.req.Raw = nil
		if wasHeld && w.held {
			w.flush()
		}
	}
	// One atomic add per counter per batch, not per datagram.
	w.c.received.Add(uint64(n))
	w.c.bytesIn.Add(bytesIn)
	w.flush()
}

// flush sends the staged replies, up to w.sendBatch per system call
// (sendmmsg on Linux). Each basic-mode reply is stamped with the time it
// is predicted to leave: the clock read just before its send's replies
// are stamped, plus what stamping and the sends of the replies ahead of
// it in the same call take (sendClock). One system call per reply would stamp each from its own
// clock reading, but on a small machine the system calls cost more than
// answering the requests; internal/bench measures both the throughput
// and the timestamps' error (README's Performance section).
func (w *worker) flush() {
	if w.nout == 0 {
		return
	}
	src := w.s.src
	var bytes uint64
	failed := 0
	interleaved := 0
	for start := 0; start < w.nout; {
		// Chunks alternate between sendBatch and one less, so that
		// even a steady full load shows sendClock sends of two sizes:
		// the per-datagram time is the difference, free of the system
		// call's fixed cost.
		w.odd = !w.odd
		k := w.sendBatch
		if w.odd && k > 1 {
			k--
		}
		out := w.out[start:min(start+k, w.nout)]
		start += len(out)
		// A send of sealed replies and kisses alone, which carry
		// their times already, reads no clock and teaches sendClock
		// nothing (their stamping was done elsewhere).
		stamped := needsStamp(out)
		var t0, t1 time.Time
		probe := -1
		if stamped {
			t0 = src.Now()
			if w.calibrate {
				probe = w.leads.probe(len(out), t0)
			}
		}
		ilv := 0
		for i := range out {
			o := &out[i]
			if o.stampXmit || o.save {
				at := t0.Add(w.sendClock.offset(i, len(out)))
				if w.calibrate {
					at = at.Add(w.leads.correction(i))
				}
				// The low bit of a transmit timestamp is always clear,
				// so a client echoing it as origin never looks
				// interleaved.
				now := xmitStamp(at)
				if o.stampXmit {
					ntpwire.PutXmitTime(o.buf, now)
					if i == probe && !o.save {
						o.probe, o.place, o.daemonTx = true, uint8(place(i)), now
					}
				}
				if o.save {
					// Saved before the send, so the kernel's stamp,
					// read after it, finds the entry to replace. The
					// saved time is the clock reading, not the
					// prediction: it must not be later than the
					// kernel's stamp (which then replaces it), nor
					// than the client's next request.
					at := xmitStamp(t0)
					w.s.xtable.save(o.key, at)
					o.daemonTx = at
				}
			}
			if o.interleaved {
				ilv++
			}
			bytes += uint64(len(o.buf))
		}
		if stamped {
			t1 = src.Now()
		}
		f := w.io.write(out)
		failed += f
		// Which datagrams of a failed send were lost is not known:
		// count the interleaved replies as sent only when all were.
		if f == 0 {
			interleaved += ilv
		}
		if stamped {
			w.sendClock.update(len(out), t1.Sub(t0), src.Now().Sub(t1))
		}
	}
	if interleaved > 0 {
		w.c.interleaved.Add(uint64(interleaved))
	}
	w.c.replies.Add(uint64(w.nout - failed))
	w.c.sendError.Add(uint64(failed))
	w.c.bytesOut.Add(bytes)
	w.nout = 0
	w.held = false
}

// pairMinLen is the least length of a request after which a sealed
// reply waits for that request's reply, to leave with it in one send: NTS
// requests carry a cookie and an authenticator (over 200 bytes); plain
// requests have 48 bytes and symmetric-key ones 68 or 72, and are
// answered too fast for the wait to be worth a send.
const pairMinLen = 2 * ntpwire.HeaderLen

// needsStamp reports whether any of out is stamped at send time.
func needsStamp(out []outMsg) bool {
	for i := range out {
		if out[i].stampXmit || out[i].save {
			return true
		}
	}
	return false
}

// DefaultSendBatch is the most replies a worker sends per system call
// when Server.SendBatch is zero. A batched send's prediction error grows
// with a reply's place in it: a stall in the kernel (an interrupt, the
// thread preempted, on loopback the delivery to a busy client) delays
// every reply after it. Measured on loopback (internal/bench; kernel
// transmit stamps in sendclock_linux_test.go), sends of 3 and 4 replies
// answered about 1.5 times the replies per CPU-second of one per call,
// at a cost of a few µs in the clients' |offset| p99 on a busy machine
// and about 1 µs on a quieter one; 32 per call had three to four times
// the p99.
const DefaultSendBatch = 4

// responseWriter stages one reply into the worker's outgoing batch.
type responseWriter struct {
	w       *worker
	m       *inMsg
	replied bool
}

func (rw *responseWriter) stage(p *ntpwire.Packet, stampXmit bool) error {
	if rw.replied {
		return ErrReplied
	}
	o := &rw.w.out[rw.w.nout]
	o.save, o.interleaved = false, false
	if stampXmit {
		o.save, o.interleaved = rw.interleave(p)
		o.key = p.RecvTime
		// An interleaved reply carries the previous transmit time.
		stampXmit = !o.interleaved
	}
	o.buf = p.AppendTo(o.buf[:0])
	return rw.commit(o, stampXmit)
}

// interleave applies interleaved mode to p, a reply to the current
// request about to be encoded: a mode-4 reply that is not a KoD gets the
// low bit of its receive timestamp set; when the request asks for
// interleaved mode, save reports that the reply's transmit time must be
// recorded (under p.RecvTime), and when the table holds the transmit time
// of the client's previous reply, p becomes an interleaved reply
// (origin = the request's receive timestamp, transmit = that previous
// transmit time) and interleaved is true.
func (rw *responseWriter) interleave(p *ntpwire.Packet) (save, interleaved bool) {
	if p.Mode != ntpwire.ModeServer || p.IsKiss() {
		return false, false
	}
	p.RecvTime |= 1
	t := rw.w.s.xtable
	req := &rw.w.req.Packet
	if t == nil || !wantsInterleaved(req) || p.Version != 4 {
		return false, false
	}
	// The origin must be a receive time before this one (wrapped
	// subtraction); anything else is not a previous reply of ours.
	if int64(p.RecvTime-req.OrigTime) > 0 {
		if tx, _, ok := t.take(req.OrigTime); ok {
			p.OrigTime = req.RecvTime
			p.XmitTime = tx
			return true, true
		}
	}
	return true, false
}

// commit queues the reply encoded in o, unless it is longer than the
// request; either way the request counts as answered.
func (rw *responseWriter) commit(o *outMsg, stampXmit bool) error {
	rw.replied = true
	if len(o.buf) > rw.m.n {
		rw.w.c.oversize.Add(1) // counted as oversize, not as a handler drop
		return ErrReplyTooLong
	}
	o.probe = false
	o.dst = rw.m.src
	o.src = rw.m.dst
	o.ifindex = rw.m.ifindex
	o.stampXmit = stampXmit
	rw.w.nout++
	return nil
}

// Reply stages p; its transmit timestamp is set when the batch is sent.
func (rw *responseWriter) Reply(p ntpwire.Packet) error {
	return rw.stage(&p, true)
}

// ReplySealed stamps p's transmit time, lets seal append its trailer and
// sends the result (with any replies staged before it), without stamping
// it again. Where transmit times are calibrated (kernel transmit stamps,
// sends of two or more), a sealed reply whose successor in the batch
// looks authenticated too (pairMinLen) waits for that request's reply,
// and the two leave in one send: the system call, about half of what an
// NTS reply costs, is shared. Each kind of sealed reply (alone, first or
// second of a pair) carries its own calibrated lead: the first's covers
// the answering of the next request.
func (rw *responseWriter) ReplySealed(p ntpwire.Packet, seal func(pkt []byte) ([]byte, error)) error {
	if rw.replied {
		return ErrReplied
	}
	w := rw.w
	o := &w.out[w.nout]
	save, interleaved := rw.interleave(&p)
	slot := -1
	if w.calibrate {
		switch {
		case w.nout == 0 && w.nextSealed && w.sendBatch >= 2:
			slot = leadSealedFirst
		case w.nout == 0:
			slot = leadSealed
		case w.nout == 1 && w.held:
			slot = leadSealedSecond
		}
	}
	probe := false
	if !interleaved {
		now := w.s.src.Now()
		if p.Mode == ntpwire.ModeServer && !p.IsKiss() {
			if slot >= 0 {
				now = now.Add(w.leads.lead[slot])
				probe = !save && w.leads.probeSealed(slot, now)
			}
			p.XmitTime = xmitStamp(now)
		} else {
			p.XmitTime = ntpwire.StampOf(now)
		}
	}
	o.save, o.interleaved, o.key = save, interleaved, p.RecvTime
	out, err := seal(p.AppendTo(o.buf[:0]))
	if err != nil {
		return err
	}
	if len(out) > rw.m.n {
		o.buf = o.buf[:0]
		o.save, o.interleaved = false, false
		rw.replied = true
		rw.w.c.oversize.Add(1)
		return ErrReplyTooLong
	}
	// seal normally appends in place; copy when it did not (a no-op
	// otherwise). len(out) <= rw.m.n <= MaxPacket = cap(o.buf).
	o.buf = o.buf[:len(out)]
	copy(o.buf, out)
	if err := rw.commit(o, false); err != nil {
		return err
	}
	if probe {
		o.probe, o.place, o.daemonTx = true, uint8(slot), p.XmitTime
	}
	if slot == leadSealedFirst {
		w.held = true
		return nil
	}
	// The transmit time is sealed in: send now, not after the rest of
	// the batch is handled, or the reply would leave late by however
	// long that took.
	w.flush()
	return nil
}

// Kiss stages a kiss-o'-death answering the current request.
func (rw *responseWriter) Kiss(code ntpwire.RefID) error {
	k := ntpwire.NewKiss(&rw.w.req.Packet, code)
	if err := rw.stage(&k, false); err != nil {
		return err
	}
	rw.w.c.kisses.Add(1)
	return nil
}

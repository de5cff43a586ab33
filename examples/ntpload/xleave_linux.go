//go:build linux

package main

import (
	"encoding/binary"
	"time"

	"github.com/ntpkit/ntpkit/internal/txstamp"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// Interleaved mode (-interleaved), as chrony's client does it
// (draft-ietf-ntp-interleaved-modes): a request quotes an earlier reply
// of the same server, origin = that reply's receive timestamp (T2') and
// receive = a value standing for our receive time of it (T4'). A server
// that still holds the transmit time of that earlier reply answers
// interleaved: origin = the receive field we sent, transmit = when the
// earlier reply really left (its kernel stamp). That completes the
// EARLIER exchange (T1', T2', T3 of this reply, T4'). A server without
// that state answers basic: origin = our transmit timestamp.
//
// Each socket keeps the exchanges it has completed (reply received) in a
// small stack and quotes the freshest one in its next request, so at any
// rate nearly every request is in interleaved form and each reply is
// quoted once, as the server's state is used once. A request finding the
// stack empty goes out in basic form (origin and receive 0).
//
// T1 is the kernel's transmit stamp of each request for basic and
// interleaved replies alike, and T4 the kernel's receive stamp, so the
// two classes differ only in how the server stamped T3.
//
// The receive field we send is not our receive time: the server only
// echoes it, and ntpload keeps the exact T4 itself. It is T4' in NTP
// format with its low ringBits bits replaced by the request's ring
// index, so an interleaved reply finds its request like a basic one.

// stampBatch is how many kernel transmit stamps one error-queue read
// takes.
const stampBatch = 64

// maxStampSkew bounds how far a kernel transmit stamp may lie from the
// send time ntpload estimated for its request (spread over the
// sendmmsg call, which a busy machine may stretch to milliseconds); a
// stamp further off belongs to another datagram.
const maxStampSkew = int64(time.Second)

// exchange is a completed request/reply pair that a later request quotes.
type exchange struct {
	t1 int64        // our kernel transmit time of the request (Unix ns); 0: unknown
	t2 ntpwire.Time // the server's receive timestamp, as sent
	t4 int64        // our receive time of the reply (Unix ns)
}

// xleaveSock is one socket's interleaved-mode state.
type xleaveSock struct {
	pending *txstamp.Pending[uint64] // stamp IDs -> request sequence numbers
	// done is a ring used as a stack: the freshest exchange is quoted
	// first; when it is full the oldest is overwritten.
	done       [ringSize]exchange
	top, floor uint64
}

func newXleaveSock() *xleaveSock {
	return &xleaveSock{pending: txstamp.NewPending[uint64](ringSize)}
}

func (x *xleaveSock) push(e exchange) {
	if x.top-x.floor == ringSize {
		x.floor++
	}
	x.done[x.top&ringMask] = e
	x.top++
}

func (x *xleaveSock) pop() (exchange, bool) {
	if x.top == x.floor {
		return exchange{}, false
	}
	x.top--
	return x.done[x.top&ringMask], true
}

// quote writes the origin and receive fields of the request in b (slot
// sl, sequence seq, transmit timestamp cookie): the freshest completed
// exchange, or zeros when there is none.
func (x *xleaveSock) quote(sl *slot, b []byte, seq, cookie uint64) {
	e, ok := x.pop()
	if !ok {
		sl.ref = exchange{}
		binary.BigEndian.PutUint64(b[24:], 0)
		binary.BigEndian.PutUint64(b[32:], 0)
		return
	}
	xc := uint64(ntpwire.TimeOf(time.Unix(0, e.t4)))&^ringMask | seq&ringMask
	if xc == cookie || xc == 0 {
		xc ^= ringSize // receive must differ from transmit, and 0 means unset
	}
	sl.ref, sl.xcookie = e, xc
	binary.BigEndian.PutUint64(b[24:], uint64(e.t2))
	binary.BigEndian.PutUint64(b[32:], xc)
}

// unquote gives back the exchanges quoted by the requests from..to-1
// past s.head, which were not sent, for later requests to quote.
func unquote(s *sock, from, to int) {
	for i := from; i < to; i++ {
		if sl := &s.ring[(s.head+uint64(i))&ringMask]; sl.xcookie != 0 {
			s.xl.push(sl.ref)
			sl.xcookie = 0
		}
	}
}

// readStamps reads the kernel transmit stamps waiting on s's error
// queue and gives each to its request. The work is bounded: at most
// ringSize stamps per call.
func (l *loader) readStamps(s *sock) {
	r := &l.res
	for n := 0; n < ringSize; {
		st, err := l.stamps.Read(uintptr(s.fd))
		if err != nil || st == nil {
			return
		}
		n += max(len(st), 1)
		for _, ts := range st {
			seq, ok := s.xl.pending.Take(ts.ID)
			if !ok {
				r.stampStray++
				continue
			}
			sl := &s.ring[seq&ringMask]
			if sl.seq != seq || ts.Time < sl.t1-maxStampSkew || ts.Time > sl.t1+maxStampSkew {
				r.stampStray++
				continue
			}
			sl.ktx = ts.Time
		}
		if len(st) < stampBatch {
			return // drained: spare the read that would say so
		}
	}
}

// resetStamps restarts s's stamp IDs after a send whose datagrams may or
// may not have used some, keeping the stamps already queued.
func (l *loader) resetStamps(s *sock) {
	l.readStamps(s)
	if err := txstamp.Reset(uintptr(s.fd)); err != nil {
		l.res.sendErrors++
	}
	s.xl.pending.Reset()
	l.res.stampResets++
}

// sampleInterleaved records a valid, non-kiss reply p to the request in
// sl, received at t4: basic or interleaved, and the exchange it
// completes.
func (l *loader) sampleInterleaved(s *sock, sl *slot, p *ntpwire.Packet, t4 int64, interleaved bool) {
	r := &l.res
	e := exchange{t1: sl.ktx, t2: p.RecvTime, t4: t4}
	h := &r.offBasic
	if interleaved {
		e, h = sl.ref, &r.offXleave
	}
	if p.XmitTime.Sub(e.t2) < 0 {
		r.invalid[badT3BeforeT2]++
		return
	}
	r.valid++
	if interleaved {
		r.xleaveReplies++
	} else {
		r.basicReplies++
		if sl.xcookie != 0 {
			r.fallbacks++ // the server had no transmit time for the reply quoted
		}
	}
	// This reply starts the exchange a later request quotes.
	s.xl.push(exchange{t1: sl.ktx, t2: p.RecvTime, t4: t4})
	if e.t1 == 0 {
		r.stampMissing++ // no kernel T1: no sample rather than a worse one
		return
	}
	pivot := time.Unix(0, e.t1)
	t2 := e.t2.In(pivot).UnixNano()
	t3 := p.XmitTime.In(pivot).UnixNano()
	r.rtt.add((e.t4 - e.t1) - (t3 - t2))
	r.proc.add(t3 - t2)
	off := ((t2 - e.t1) + (t3 - e.t4)) / 2
	r.offset.add(off)
	h.add(off)
}

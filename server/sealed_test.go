package server

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// TestReplySealed checks the writer's contract for authenticated
// replies: the transmit time is stamped before seal sees the header and
// never again, seal's trailer goes out as is, and a result longer than
// the request is refused.
func TestReplySealed(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC))
	var mu sync.Mutex // the handler runs on a worker goroutine
	var sealErr, sizeErr error
	var seen ntpwire.Time
	h := HandlerFunc(func(w ResponseWriter, r *Request) {
		mu.Lock()
		defer mu.Unlock()
		reply := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 2, OrigTime: r.Packet.XmitTime}
		err := w.ReplySealed(reply, func(pkt []byte) ([]byte, error) {
			var p ntpwire.Packet
			p.Decode(pkt)
			seen = p.XmitTime
			clk.Advance(time.Second) // sealing takes time; the stamp must not move
			return append(pkt, 0xde, 0xad, 0xbe, 0xef), nil
		})
		if len(r.Raw) == ntpwire.HeaderLen {
			sizeErr = err
		} else if err != nil {
			sealErr = err
		}
	})
	s := &Server{Handler: h, Source: NewLocalSource(clk, 2)}
	addr := startServer(t, s, "udp4")
	req := clientRequest(clk.Now())
	raw := append(req.AppendTo(nil), 0, 0, 0, 0) // a crypto-NAK-sized trailer: 52 bytes
	got := exchange(t, addr, raw, 2*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if sealErr != nil || len(got) != 52 || string(got[48:]) != "\xde\xad\xbe\xef" {
		t.Fatalf("reply % x, err %v", got, sealErr)
	}
	var p ntpwire.Packet
	p.Decode(got)
	if p.XmitTime != seen || seen != ntpwire.TimeOf(clk.Now().Add(-time.Second)) {
		t.Fatalf("transmit time %v, seal saw %v", p.XmitTime, seen)
	}
	mu.Unlock()
	if got := exchange(t, addr, req.AppendTo(nil), 200*time.Millisecond); got != nil {
		t.Fatalf("a 52-byte reply to a 48-byte request went out: % x", got)
	}
	waitFor(t, func() bool { return s.Stats().Dropped.Oversize == 1 }, "oversize count")
	mu.Lock()
	if !errors.Is(sizeErr, ErrReplyTooLong) {
		t.Fatalf("oversized seal: %v", sizeErr)
	}
}

// countingSource counts its clock readings.
type countingSource struct {
	Source
	reads int
}

func (c *countingSource) Now() time.Time {
	c.reads++
	return c.Source.Now()
}

// TestSealedSendsReadNoClock checks that sending replies sealed in the
// handler reads the clock only for their own transmit times: one reading
// per sealed reply, none per send (there is nothing left to stamp), while
// a send of plain replies reads it to stamp them.
func TestSealedSendsReadNoClock(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC))
	src := &countingSource{Source: NewLocalSource(clk, 2)}
	sealed := true
	h := HandlerFunc(func(w ResponseWriter, r *Request) {
		reply := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 2, OrigTime: r.Packet.XmitTime}
		if !sealed {
			_ = w.Reply(reply)
			return
		}
		_ = w.ReplySealed(reply, func(pkt []byte) ([]byte, error) { return pkt, nil })
	})
	s := &Server{Handler: h, Source: src}
	s.init()
	io := &memIO{src: netip.MustParseAddrPort("192.0.2.1:40000"), keep: true}
	w := s.newWorker(io, DefaultBatch)
	for i := 0; i < 5; i++ {
		io.reqs = append(io.reqs, reqBytes())
	}
	// Receive stamps: memIO gives none, so one user-space reading per
	// batch comes first.
	const rx = 1
	n, _ := w.io.read(w.in)
	w.handleBatch(n)
	if len(io.written) != 5 {
		t.Fatalf("%d sealed replies sent, want 5", len(io.written))
	}
	if want := rx + 5; src.reads != want {
		t.Errorf("5 sealed replies read the clock %d times, want %d", src.reads, want)
	}

	sealed = false
	src.reads = 0
	n, _ = w.io.read(w.in)
	w.handleBatch(n)
	if src.reads <= rx {
		t.Errorf("5 plain replies read the clock %d times, want more than %d (their transmit times)", src.reads, rx)
	}
}

// sendsIO is a memIO that records how many replies each send carried.
type sendsIO struct {
	memIO
	sends []int
}

func (m *sendsIO) write(out []outMsg) int {
	m.sends = append(m.sends, len(out))
	return m.memIO.write(out)
}

// authLike returns a client request padded with one 52-byte extension
// field to 104 bytes: long enough (pairMinLen) to look authenticated.
func authLike() []byte {
	ef := make([]byte, 52)
	ef[0], ef[1], ef[3] = 0x01, 0x04, 52 // NTS unique identifier, length 52
	return append(reqBytes(), ef...)
}

// TestSealedRepliesPaired checks when a sealed reply waits for the next
// request's reply to leave with it: where transmit times are calibrated
// and the next request in the batch looks authenticated, and never past
// that next request; and that each kind of sealed reply carries its own
// lead.
func TestSealedRepliesPaired(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC))
	h := HandlerFunc(func(w ResponseWriter, r *Request) {
		reply := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 2, OrigTime: r.Packet.XmitTime}
		_ = w.ReplySealed(reply, func(pkt []byte) ([]byte, error) { return pkt, nil })
	})
	junk := make([]byte, 104) // version 0: dropped
	auth, plain := authLike(), reqBytes()
	leads := map[int]time.Duration{leadSealed: 3 * time.Microsecond, leadSealedFirst: 5 * time.Microsecond, leadSealedSecond: 7 * time.Microsecond}
	for _, c := range []struct {
		name      string
		reqs      [][]byte
		calibrate bool
		sendBatch int
		sends     []int
		leads     []int // each reply's lead slot
	}{
		{"authenticated", [][]byte{auth, auth, auth, auth, auth}, true, 4, []int{2, 2, 1},
			[]int{leadSealedFirst, leadSealedSecond, leadSealedFirst, leadSealedSecond, leadSealed}},
		{"plain next", [][]byte{auth, plain, auth, auth}, true, 4, []int{1, 2, 1},
			[]int{leadSealed, leadSealedFirst, leadSealedSecond, leadSealed}},
		{"dropped next", [][]byte{auth, junk, auth}, true, 4, []int{1, 1},
			[]int{leadSealedFirst, leadSealed}},
		{"uncalibrated", [][]byte{auth, auth, auth}, false, 4, []int{1, 1, 1}, nil},
		{"send batch 1", [][]byte{auth, auth, auth}, true, 1, []int{1, 1, 1},
			[]int{leadSealed, leadSealed, leadSealed}},
	} {
		s := &Server{Handler: h, Source: NewLocalSource(clk, 2), SendBatch: c.sendBatch}
		s.init()
		io := &sendsIO{memIO: memIO{src: netip.MustParseAddrPort("192.0.2.1:40000"), keep: true, reqs: c.reqs}}
		w := s.newWorker(io, DefaultBatch)
		w.calibrate = c.calibrate
		for slot, d := range leads {
			w.leads.lead[slot] = d
		}
		n, _ := w.io.read(w.in)
		w.handleBatch(n)
		if !slices.Equal(io.sends, c.sends) {
			t.Errorf("%s: sends of %v replies, want %v", c.name, io.sends, c.sends)
		}
		if w.held {
			t.Errorf("%s: a reply still held after the batch", c.name)
		}
		for i, raw := range io.written {
			var p ntpwire.Packet
			if err := p.Decode(raw); err != nil {
				t.Fatal(err)
			}
			want := time.Duration(0)
			if c.leads != nil {
				want = leads[c.leads[i]]
			}
			if got := p.XmitTime.In(clk.Now()).Sub(clk.Now()); got < want-time.Nanosecond || got > want+time.Nanosecond {
				t.Errorf("%s: reply %d carries a lead of %v, want %v", c.name, i, got, want)
			}
		}
	}
}

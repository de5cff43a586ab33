package server

import (
	"errors"
	"net/netip"
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

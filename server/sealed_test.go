package server

import (
	"errors"
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

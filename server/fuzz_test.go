package server

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// FuzzRequestPath feeds arbitrary datagrams through the whole request
// path (classify, decode, Responder, encode, transmit stamp) with a fake
// clock, and checks that it never panics, never replies with more bytes
// than it received, and answers only well-formed client requests with a
// well-formed server reply that echoes the request's transmit time.
// eraBoundary is 2036-02-07 06:28:16 UTC, the start of NTP era 1, whose
// timestamp is 0 on the wire.
var eraBoundary = time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC)

func FuzzRequestPath(f *testing.F) {
	seeds, _ := filepath.Glob("../ntpwire/testdata/fuzz/FuzzDecode/*")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(b) // the corpus file's text is itself an odd datagram
		}
	}
	req := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, XmitTime: 0x1234}
	f.Add(req.AppendTo(nil))
	f.Add(append(req.AppendTo(nil), make([]byte, 24)...))
	f.Add([]byte{0x17, 0x00, 0x03, 0x2a})

	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > MaxPacket {
			raw = raw[:MaxPacket]
		}
		// Everything is built anew for each input, so the outcome depends
		// on the input alone. The clock stands at the first instant of NTP
		// era 1, which encodes as 0: no reply may carry that.
		fake := clocktest.New(eraBoundary)
		s := &Server{Source: NewLocalSource(fake, 2)}
		s.init()
		io := &memIO{src: netip.MustParseAddrPort("192.0.2.9:4567"), keep: true, reqs: [][]byte{raw}}
		w := s.newWorker(io, 1)
		n, _ := w.io.read(w.in)
		w.handleBatch(n)
		if len(io.written) == 0 {
			return
		}
		rep := io.written[0]
		if len(rep) > len(raw) {
			t.Fatalf("%d-byte reply to %d-byte request", len(rep), len(raw))
		}
		var in, out ntpwire.Packet
		if err := in.Decode(raw); err != nil {
			t.Fatalf("replied to an undecodable request: %v", err)
		}
		if in.Mode != ntpwire.ModeClient || in.Version < 1 || in.Version > 4 {
			t.Fatalf("replied to mode %d version %d", in.Mode, in.Version)
		}
		if err := out.Decode(rep); err != nil || out.Mode != ntpwire.ModeServer || out.OrigTime != in.XmitTime || out.Version != in.Version {
			t.Fatalf("bad reply %+v to %+v", out, in)
		}
		if out.RecvTime == 0 || out.XmitTime == 0 {
			t.Fatalf("reply carries a zero timestamp: receive %#x, transmit %#x", out.RecvTime, out.XmitTime)
		}
		if got := out.XmitTime.In(fake.Now()); !got.Equal(fake.Now().Round(0)) && got.Sub(fake.Now()).Abs() > time.Nanosecond {
			t.Fatalf("transmit time %v, clock %v", got, fake.Now())
		}
	})
}

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
		// A small table: a fresh default one (1 MiB) per input would
		// slow the fuzzer down for nothing.
		s := &Server{Source: NewLocalSource(fake, 2), InterleavedTableSize: 64}
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

// FuzzInterleaved sends an arbitrary datagram three times, the way a
// chrony client in interleaved mode would: the second and third copies
// carry, as origin, the receive timestamp of the reply before and a
// receive timestamp different from their transmit timestamp. It checks
// that replies never grow, keep the low bits of interleaved mode, and that
// a reply is either basic (origin = the request's transmit timestamp,
// transmit = now) or interleaved (origin = the request's receive
// timestamp, transmit = when the previous reply was sent), the latter
// only for version 4 and only when the previous request asked for
// interleaved mode (so that its reply's transmit time was kept).
func FuzzInterleaved(f *testing.F) {
	req := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, XmitTime: 0x1234}
	f.Add(req.AppendTo(nil))
	f.Add(append(req.AppendTo(nil), make([]byte, 24)...))
	req.Version = 3
	f.Add(req.AppendTo(nil))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > MaxPacket {
			raw = raw[:MaxPacket]
		}
		fake := clocktest.New(time.Date(2026, 12, 2, 22, 0, 0, 0, time.UTC))
		s := &Server{Source: NewLocalSource(fake, 2), InterleavedTableSize: 64}
		s.init()
		io := &memIO{src: netip.MustParseAddrPort("192.0.2.9:4567"), keep: true}
		w := s.newWorker(io, 1)
		buf := append([]byte(nil), raw...)
		var prevSent ntpwire.Time
		prevAsked := false
		for i := 0; i < 3; i++ {
			io.reqs, io.written = [][]byte{buf}, nil
			n, _ := w.io.read(w.in)
			w.handleBatch(n)
			sent := xmitStamp(fake.Now())
			if len(io.written) == 0 {
				return
			}
			rep := io.written[0]
			if len(rep) > len(buf) {
				t.Fatalf("%d-byte reply to %d-byte request", len(rep), len(buf))
			}
			var in, out ntpwire.Packet
			if err := in.Decode(buf); err != nil {
				t.Fatalf("replied to an undecodable request: %v", err)
			}
			if err := out.Decode(rep); err != nil || out.Mode != ntpwire.ModeServer {
				t.Fatalf("bad reply %+v to %+v", out, in)
			}
			if out.RecvTime&1 != 1 || out.XmitTime&1 != 0 {
				t.Fatalf("reply low bits: receive %#x, transmit %#x", out.RecvTime, out.XmitTime)
			}
			switch {
			case out.OrigTime == in.XmitTime && out.XmitTime == sent:
				// basic
			case prevAsked && in.Version == 4 && out.OrigTime == in.RecvTime && out.XmitTime == prevSent:
				// interleaved: the previous request asked for it, so
				// its reply's transmit time was kept
			default:
				t.Fatalf("reply %d is neither basic nor interleaved: %+v to %+v (sent %#x, previous %#x)", i+1, out, in, sent, prevSent)
			}
			prevSent, prevAsked = sent, wantsInterleaved(&in)
			// The next copy asks for interleaved mode.
			if len(buf) >= ntpwire.HeaderLen {
				copy(buf[24:32], rep[32:40])
				buf[39] = buf[47] + 1
			}
			fake.Advance(time.Second)
		}
	})
}

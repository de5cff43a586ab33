package ntpclient

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

func TestRequest(t *testing.T) {
	p, err := Request(bytes.NewReader(make([]byte, 8)), 4)
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != ntpwire.ModeClient || p.Version != 4 || p.XmitTime == 0 {
		t.Fatalf("request %+v: want client mode, version 4, a non-zero transmit timestamp from all-zero randomness", p)
	}
	p, err = Request(bytes.NewReader([]byte{1, 2, 3, 4, 5, 6, 7, 8}), 3)
	if err != nil || p.XmitTime != 0x0102030405060709 {
		t.Fatalf("transmit timestamp %#x, %v: want the random bytes with the low bit set", uint64(p.XmitTime), err)
	}
	if _, err := Request(bytes.NewReader([]byte{1, 2}), 4); err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short randomness: error %v, want one wrapping io.ErrUnexpectedEOF", err)
	}
	a, _ := Request(nil, 4)
	b, _ := Request(nil, 4)
	if a.XmitTime == b.XmitTime {
		t.Fatal("two requests from crypto/rand share a transmit timestamp")
	}
}

func TestReadReply(t *testing.T) {
	const origin = ntpwire.Time(0xabcdef)
	reply := func(orig ntpwire.Time) []byte {
		p := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 1, OrigTime: orig, RecvTime: 1, XmitTime: 2}
		return p.AppendTo(nil)
	}
	stamp := time.Unix(1000, 0)
	queue := [][]byte{{1, 2, 3}, reply(origin + 1), reply(origin)}
	read := func(b []byte) (int, time.Time, error) {
		if len(queue) == 0 {
			return 0, time.Time{}, io.EOF
		}
		n := copy(b, queue[0])
		queue = queue[1:]
		return n, stamp, nil
	}
	var skips []Skip
	p, n, rx, err := ReadReply(read, make([]byte, 512), origin, func(s Skip) { skips = append(skips, s) })
	if err != nil || p.OrigTime != origin || n != ntpwire.HeaderLen || !rx.Equal(stamp) {
		t.Fatalf("ReadReply = %+v, %d, %v, %v; want the echoing reply", p, n, rx, err)
	}
	if len(skips) != 2 || skips[0] != SkipMalformed || skips[1] != SkipOrigin {
		t.Fatalf("skipped %v, want [malformed origin]", skips)
	}
	if _, _, _, err := ReadReply(read, make([]byte, 512), origin, nil); !errors.Is(err, io.EOF) {
		t.Fatalf("read error: got %v, want io.EOF", err)
	}
}

func TestReadReplyEither(t *testing.T) {
	const xmit, recv = ntpwire.Time(0x1111), ntpwire.Time(0x2222)
	reply := func(orig ntpwire.Time) []byte {
		p := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 1, OrigTime: orig, RecvTime: 1, XmitTime: 2}
		return p.AppendTo(nil)
	}
	queue := [][]byte{reply(0x3333), reply(recv), reply(xmit)}
	read := func(b []byte) (int, time.Time, error) {
		if len(queue) == 0 {
			return 0, time.Time{}, io.EOF
		}
		n := copy(b, queue[0])
		queue = queue[1:]
		return n, time.Time{}, nil
	}
	skips := 0
	buf := make([]byte, 512)
	for _, want := range []ntpwire.Time{recv, xmit} {
		p, _, _, err := ReadReplyEither(read, buf, xmit, recv, func(Skip) { skips++ })
		if err != nil || p.OrigTime != want {
			t.Fatalf("ReadReplyEither = origin %#x, %v; want %#x", uint64(p.OrigTime), err, uint64(want))
		}
	}
	if skips != 1 {
		t.Fatalf("skipped %d datagrams, want 1 (the one echoing neither)", skips)
	}
}

func TestInterleave(t *testing.T) {
	req, err := Request(bytes.NewReader([]byte{1, 2, 3, 4, 5, 6, 7, 8}), 4)
	if err != nil {
		t.Fatal(err)
	}
	const prevRecv, prevRx = ntpwire.Time(0xe000000100000001), ntpwire.Time(0xe0000001_12345678)
	if err := Interleave(&req, bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}), prevRecv, prevRx); err != nil {
		t.Fatal(err)
	}
	if req.OrigTime != prevRecv || req.RecvTime != 0xe0000001_123fffff {
		t.Fatalf("origin %#x receive %#x: want the previous receive timestamp and the local rx with 20 random low bits", uint64(req.OrigTime), uint64(req.RecvTime))
	}
	// Randomness that would make the receive timestamp equal the
	// transmit timestamp is drawn again.
	req.XmitTime = 0xe0000001_12300000
	if err := Interleave(&req, bytes.NewReader([]byte{0, 0, 0, 0, 0, 0, 0, 1}), prevRecv, prevRx); err != nil || req.RecvTime != 0xe0000001_12300001 {
		t.Fatalf("receive %#x, %v: want the second draw", uint64(req.RecvTime), err)
	}
	if err := Interleave(&req, bytes.NewReader(nil), prevRecv, prevRx); !errors.Is(err, io.EOF) {
		t.Fatalf("failing randomness: %v, want an error wrapping io.EOF", err)
	}
}

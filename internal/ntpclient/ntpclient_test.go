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

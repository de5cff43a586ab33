package ntpwire

import (
	"testing"
	"time"
)

func BenchmarkDecode(b *testing.B) {
	pkt := readHex(b, "chrony_server.hex")
	var p Packet
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if err := p.Decode(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendTo(b *testing.B) {
	var p Packet
	if err := p.Decode(readHex(b, "chrony_server.hex")); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, HeaderLen)
	b.ReportAllocs()
	b.SetBytes(HeaderLen)
	for b.Loop() {
		buf = p.AppendTo(buf[:0])
	}
}

func BenchmarkParseTrailer(b *testing.B) {
	pkt := readHex(b, "ext_mac.hex")
	trailer := pkt[HeaderLen:]
	b.ReportAllocs()
	b.SetBytes(int64(len(trailer)))
	for b.Loop() {
		if _, err := ParseTrailer(4, trailer); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTimeOfIn(b *testing.B) {
	now := time.Date(2026, 11, 23, 18, 16, 8, 608205060, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		now = TimeOf(now).In(now)
	}
}

package ntpwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecode is seeded with every testdata/*.hex capture; the go tool adds
// testdata/fuzz/FuzzDecode on its own.
func FuzzDecode(f *testing.F) {
	for _, name := range hexFiles(f) {
		f.Add(readHex(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Packet
		if err := p.Decode(b); err != nil {
			if !errors.Is(err, ErrShort) || len(b) >= HeaderLen {
				t.Fatalf("Decode(%d bytes) = %v", len(b), err)
			}
			return
		}
		if len(b) < HeaderLen {
			t.Fatalf("Decode(%d bytes) succeeded", len(b))
		}
		enc := p.AppendTo(nil)
		if !bytes.Equal(enc, b[:HeaderLen]) {
			t.Fatalf("AppendTo(Decode(b)) =\n%x\nwant\n%x", enc, b[:HeaderLen])
		}
		var p2 Packet
		if err := p2.Decode(enc); err != nil {
			t.Fatalf("Decode(AppendTo(p)) = %v", err)
		}
		// Packet is comparable; cmp.Diff (slow, by reflection) only explains.
		if p != p2 {
			t.Fatalf("Decode(AppendTo(p)) mismatch (-first +second):\n%s", cmp.Diff(p, p2))
		}
		if enc2 := p2.AppendTo(nil); !bytes.Equal(enc2, enc) {
			t.Fatalf("second AppendTo =\n%x\nwant\n%x", enc2, enc)
		}

		trailer := b[HeaderLen:]
		tr, err := ParseTrailer(p.Version, trailer)
		if err != nil {
			if !errors.Is(err, ErrExtension) {
				t.Fatalf("ParseTrailer error %v is not ErrExtension", err)
			}
			if tr.Extensions != 0 || tr.MAC != nil {
				t.Fatalf("ParseTrailer failed but returned %+v", tr)
			}
			return
		}
		if p.Version < 4 {
			// Older versions carry a MAC only: the whole trailer.
			if tr.Extensions != 0 || !bytes.Equal(tr.MAC, trailer) || (len(trailer) > 0) != (tr.MAC != nil) {
				t.Fatalf("ParseTrailer(NTPv%d) = %+v for a %d-byte trailer", p.Version, tr, len(trailer))
			}
			if n := len(trailer); n > MaxLegacyMACLen || n%4 != 0 {
				t.Fatalf("ParseTrailer(NTPv%d) accepted a %d-byte MAC", p.Version, n)
			}
			return
		}
		// The fields and the MAC account for every trailer byte.
		consumed, n := 0, 0
		it := Extensions(trailer)
		for it.Next() {
			consumed += it.Extension().Len()
			n++
		}
		if it.Err() != nil {
			t.Fatalf("ParseTrailer succeeded but the walk failed: %v", it.Err())
		}
		consumed += len(tr.MAC)
		if consumed != len(trailer) {
			t.Fatalf("extensions and MAC cover %d bytes of a %d-byte trailer", consumed, len(trailer))
		}
		if n != tr.Extensions || !bytes.Equal(it.MAC(), tr.MAC) {
			t.Fatalf("ParseTrailer = %+v, walk found %d fields and MAC %x", tr, n, it.MAC())
		}
	})
}

// FuzzExtensions checks the extension walker alone.
func FuzzExtensions(f *testing.F) {
	for _, name := range hexFiles(f) {
		if b := readHex(f, name); len(b) > HeaderLen {
			f.Add(b[HeaderLen:])
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0})
	f.Add(AppendExtension(AppendExtension(nil, 0x0104, make([]byte, 32)), 0x0204, make([]byte, 100)))
	f.Add(AppendExtension(seq(0, 0), 0xf323, make([]byte, 24)))
	f.Add(concat(AppendExtension(nil, 0x0104, seq(0, 32)), seq(0, 20)))
	f.Add(rawEF(0x0104, 0, seq(0, 28)))
	f.Fuzz(func(t *testing.T, trailer []byte) {
		it := Extensions(trailer)
		off, n := 0, 0
		for it.Next() {
			e := it.Extension()
			if l := e.Len(); l < MinExtensionLen || l%4 != 0 || off+l > len(trailer) {
				t.Fatalf("field %d at offset %d has length %d in a %d-byte trailer", n, off, l, len(trailer))
			}
			if e.Type != binary.BigEndian.Uint16(trailer[off:]) || int(binary.BigEndian.Uint16(trailer[off+2:])) != e.Len() {
				t.Fatalf("field %d at offset %d: type %#x len %d do not match the bytes % x", n, off, e.Type, e.Len(), trailer[off:off+4])
			}
			if len(e.Value) > 0 && &e.Value[0] != &trailer[off+4] {
				t.Fatalf("field %d Value does not alias the trailer at offset %d", n, off+4)
			}
			if cap(e.Value) != len(e.Value) {
				t.Fatalf("field %d: cap(Value) %d > len %d", n, cap(e.Value), len(e.Value))
			}
			off += e.Len()
			n++
			if n > len(trailer)/MinExtensionLen {
				t.Fatalf("%d fields in %d bytes", n, len(trailer))
			}
		}
		if it.Next() {
			t.Fatal("Next returned true after returning false")
		}
		mac := it.MAC()
		if it.Err() != nil {
			if !errors.Is(it.Err(), ErrExtension) {
				t.Fatalf("Err() = %v, want ErrExtension", it.Err())
			}
			if mac != nil {
				t.Fatalf("malformed trailer, yet MAC %x", mac)
			}
			if off == len(trailer) {
				t.Fatal("error after consuming the whole trailer")
			}
			return
		}
		if mac != nil {
			if !isMACLen(len(mac)) {
				t.Fatalf("MAC of %d bytes", len(mac))
			}
			if !bytes.Equal(mac, trailer[off:]) {
				t.Fatalf("MAC %x is not the rest of the trailer %x", mac, trailer[off:])
			}
			off += len(mac)
		}
		if off != len(trailer) {
			t.Fatalf("walk covered %d of %d bytes without an error", off, len(trailer))
		}
		tr, err := ParseTrailer(4, trailer)
		if err != nil || tr.Extensions != n || !bytes.Equal(tr.MAC, mac) {
			t.Fatalf("ParseTrailer = %+v, %v; walk found %d fields and MAC %x", tr, err, n, mac)
		}
	})
}

// FuzzTime checks TimeOf and In for any time.Time that int64 Unix
// nanoseconds reach (1677–2262) and a pivot within ±60 years of it.
func FuzzTime(f *testing.F) {
	const sixtyYears = int64(60 * 365 * 24 * time.Hour)
	f.Add(rollover.UnixNano()-1, int64(0))
	f.Add(rollover.UnixNano()+1, int64(0))
	f.Add(rollover.UnixNano()-1, int64(10*365*24*time.Hour))
	f.Add(rollover.UnixNano()+1, -int64(10*365*24*time.Hour))
	f.Add(int64(0), int64(0))
	f.Add(int64(-1), sixtyYears)
	f.Add(captureDay.UnixNano(), -sixtyYears)
	f.Fuzz(func(t *testing.T, nanos, offset int64) {
		off := time.Duration(offset % (sixtyYears + 1))
		tm := time.Unix(0, nanos).UTC()
		pivot := tm.Add(off)
		ts := TimeOf(tm)
		got := ts.In(pivot)
		if ts.IsZero() {
			// Only the instants that start an NTP era encode to zero.
			if !got.IsZero() || tm.Nanosecond() != 0 || (tm.Unix()+unixToNTP)%eraSeconds != 0 {
				t.Fatalf("TimeOf(%v) = 0, In = %v", tm, got)
			}
			return
		}
		if d := absDur(got.Sub(tm)); d > time.Nanosecond {
			t.Fatalf("TimeOf(%v).In(%v) = %v, off by %v", tm, pivot, got, d)
		}
		// The wrapped difference of the timestamps is the true one.
		if d := TimeOf(pivot).Sub(ts); absDur(d-off) > time.Nanosecond {
			t.Fatalf("TimeOf(%v).Sub(TimeOf(%v)) = %v, want %v", pivot, tm, d, off)
		}
		if got := ts.Add(off).Sub(TimeOf(pivot)); absDur(got) > time.Nanosecond {
			t.Fatalf("TimeOf(%v).Add(%v) is %v away from TimeOf(%v)", tm, off, got, pivot)
		}
	})
}

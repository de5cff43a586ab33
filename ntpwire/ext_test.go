package ntpwire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// seq returns n bytes counting up from start.
func seq(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// rawEF is an extension field header with any length value, followed by body.
func rawEF(typ, length uint16, body []byte) []byte {
	return append([]byte{byte(typ >> 8), byte(typ), byte(length >> 8), byte(length)}, body...)
}

// walk runs an ExtensionIter to the end and collects what it saw.
type walked struct {
	Exts []Extension
	MAC  []byte
	Err  error
}

func walk(trailer []byte) walked {
	var w walked
	it := Extensions(trailer)
	for it.Next() {
		w.Exts = append(w.Exts, it.Extension())
	}
	w.MAC = it.MAC()
	w.Err = it.Err()
	return w
}

func TestExtensions(t *testing.T) {
	uid := seq(0, 32)
	ef1 := AppendExtension(nil, 0x0104, uid)            // 36 bytes
	ef2 := AppendExtension(nil, 0x0204, seq(0x40, 100)) // 104 bytes
	ef28 := AppendExtension(nil, 0xf323, seq(0x80, 24)) // 28 bytes, the shortest EF allowed without a MAC
	mac20 := concat([]byte{0, 0, 0, 5}, seq(0xa0, 16))
	mac24 := concat([]byte{0, 0, 0, 6}, seq(0xb0, 20))
	nak := []byte{0, 0, 0, 0}

	tests := []struct {
		name    string
		trailer []byte
		want    walked
	}{{
		name: "no trailer",
	}, {
		name:    "one EF",
		trailer: ef1,
		want:    walked{Exts: []Extension{{Type: 0x0104, Value: uid}}},
	}, {
		name:    "two EFs",
		trailer: concat(ef1, ef2),
		want: walked{Exts: []Extension{
			{Type: 0x0104, Value: uid},
			{Type: 0x0204, Value: seq(0x40, 100)},
		}},
	}, {
		name:    "28-byte EF",
		trailer: ef28,
		want:    walked{Exts: []Extension{{Type: 0xf323, Value: seq(0x80, 24)}}},
	}, {
		name:    "EF and 20-byte MAC",
		trailer: concat(ef1, mac20),
		want:    walked{Exts: []Extension{{Type: 0x0104, Value: uid}}, MAC: mac20},
	}, {
		name:    "EF and 24-byte MAC",
		trailer: concat(ef1, mac24),
		want:    walked{Exts: []Extension{{Type: 0x0104, Value: uid}}, MAC: mac24},
	}, {
		name:    "two EFs and 24-byte MAC",
		trailer: concat(ef1, ef2, mac24),
		want: walked{Exts: []Extension{
			{Type: 0x0104, Value: uid},
			{Type: 0x0204, Value: seq(0x40, 100)},
		}, MAC: mac24},
	}, {
		name:    "20-byte MAC",
		trailer: mac20,
		want:    walked{MAC: mac20},
	}, {
		name:    "24-byte MAC",
		trailer: mac24,
		want:    walked{MAC: mac24},
	}, {
		name:    "crypto-NAK",
		trailer: nak,
		want:    walked{MAC: nak},
	}, {
		name:    "EF and crypto-NAK",
		trailer: concat(ef1, nak),
		want:    walked{Exts: []Extension{{Type: 0x0104, Value: uid}}, MAC: nak},
	}, {
		// RFC 7822: without a MAC the last EF must be at least 28 bytes,
		// because a 20- or 24-byte remainder is read as a MAC.
		name:    "24-byte EF-shaped remainder is a MAC",
		trailer: rawEF(0x0104, 24, seq(0, 20)),
		want:    walked{MAC: rawEF(0x0104, 24, seq(0, 20))},
	}, {
		name:    "EF length not a multiple of 4",
		trailer: rawEF(0x0104, 18, seq(0, 24)),
		want:    walked{Err: ErrExtension},
	}, {
		name:    "EF length below 16",
		trailer: rawEF(0x0104, 12, seq(0, 24)),
		want:    walked{Err: ErrExtension},
	}, {
		name:    "EF length 0",
		trailer: rawEF(0x0104, 0, seq(0, 24)),
		want:    walked{Err: ErrExtension},
	}, {
		name:    "EF length beyond the trailer",
		trailer: rawEF(0x0104, 48, seq(0, 28)),
		want:    walked{Err: ErrExtension},
	}, {
		name:    "EF length 0xfffc",
		trailer: rawEF(0x0104, 0xfffc, seq(0, 28)),
		want:    walked{Err: ErrExtension},
	}, {
		name:    "8 stray bytes",
		trailer: seq(1, 8),
		want:    walked{Err: ErrExtension},
	}, {
		name:    "12 stray bytes",
		trailer: seq(1, 12),
		want:    walked{Err: ErrExtension},
	}, {
		name:    "22-byte remainder",
		trailer: seq(1, 22),
		want:    walked{Err: ErrExtension},
	}, {
		name:    "EF then 8 stray bytes",
		trailer: concat(ef1, seq(1, 8)),
		want:    walked{Exts: []Extension{{Type: 0x0104, Value: uid}}, Err: ErrExtension},
	}, {
		name:    "EF then truncated EF",
		trailer: concat(ef1, ef2[:40]),
		want:    walked{Exts: []Extension{{Type: 0x0104, Value: uid}}, Err: ErrExtension},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := walk(tt.trailer)
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b error) bool { return errors.Is(a, b) })); diff != "" {
				t.Errorf("walk mismatch (-want +got):\n%s", diff)
			}
			// Once over, the walk stays over.
			it := Extensions(tt.trailer)
			for it.Next() {
			}
			if it.Next() {
				t.Error("Next returned true after returning false")
			}

			tr, err := ParseTrailer(4, tt.trailer)
			if !errors.Is(err, tt.want.Err) {
				t.Fatalf("ParseTrailer(4) error = %v, want %v", err, tt.want.Err)
			}
			wantTr := Trailer{}
			if tt.want.Err == nil {
				wantTr = Trailer{Extensions: len(tt.want.Exts), MAC: tt.want.MAC}
			}
			if diff := cmp.Diff(wantTr, tr); diff != "" {
				t.Errorf("ParseTrailer(4) mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExtensionValueAliases(t *testing.T) {
	trailer := concat(AppendExtension(nil, 0x0104, seq(0, 32)), AppendExtension(nil, 0x0204, seq(0x40, 12)))
	it := Extensions(trailer)
	if !it.Next() {
		t.Fatal("no first extension")
	}
	e := it.Extension()
	if e.Len() != 36 {
		t.Errorf("Len() = %d, want 36", e.Len())
	}
	if &e.Value[0] != &trailer[4] {
		t.Error("Value does not alias the trailer")
	}
	// Appending to Value must not overwrite the next field.
	if cap(e.Value) != len(e.Value) {
		t.Errorf("cap(Value) = %d, want len %d", cap(e.Value), len(e.Value))
	}
	_ = append(e.Value, 0xff)
	if !it.Next() {
		t.Fatal("no second extension")
	}
	if e2 := it.Extension(); e2.Type != 0x0204 || !bytes.Equal(e2.Value, seq(0x40, 12)) {
		t.Errorf("second extension = %+v", e2)
	}
	if it.Next() || it.Err() != nil || it.MAC() != nil {
		t.Errorf("after the last field: Err %v, MAC %x", it.Err(), it.MAC())
	}
}

func TestParseTrailerVersion(t *testing.T) {
	// 84 bytes: longer than any legacy MAC, so never read as one.
	ef := AppendExtension(nil, 0x0104, seq(0, 80))
	mac := concat([]byte{0, 0, 0, 1}, seq(0xa0, 20))
	sha256 := concat([]byte{0, 0, 0, 2}, seq(0xb0, 32))
	sha384 := concat([]byte{0, 0, 0, 3}, seq(0xc0, 48))
	sha512 := concat([]byte{0, 0, 0, 4}, seq(0xd0, 64))
	for _, tt := range []struct {
		name    string
		version uint8
		trailer []byte
		want    Trailer
		wantErr error
	}{
		{"v3 empty", 3, nil, Trailer{}, nil},
		{"v3 MAC", 3, mac, Trailer{MAC: mac}, nil},
		{"v3 crypto-NAK", 3, []byte{0, 0, 0, 0}, Trailer{MAC: []byte{0, 0, 0, 0}}, nil},
		{"v3 SHA-256 MAC", 3, sha256, Trailer{MAC: sha256}, nil},
		{"v3 SHA-384 MAC", 3, sha384, Trailer{MAC: sha384}, nil},
		{"v3 SHA-512 MAC", 3, sha512, Trailer{MAC: sha512}, nil},
		{"v1 SHA-512 MAC", 1, sha512, Trailer{MAC: sha512}, nil},
		{"v3 MAC too long", 3, concat(sha512, []byte{0, 0, 0, 0}), Trailer{}, ErrExtension},
		{"v3 MAC unaligned", 3, sha256[:35], Trailer{}, ErrExtension},
		{"v3 stray 8 bytes", 3, seq(0, 8), Trailer{}, ErrExtension},
		// NTPv4 truncates digests to 20 bytes: a 36-byte trailer is
		// an extension field there, and this one is malformed.
		{"v4 SHA-256 MAC", 4, sha256, Trailer{}, ErrExtension},
		{"v3 EF", 3, ef, Trailer{}, ErrExtension},
		{"v3 EF and MAC", 3, concat(ef, mac), Trailer{}, ErrExtension},
		{"v2 EF", 2, ef, Trailer{}, ErrExtension},
		{"v4 EF and MAC", 4, concat(ef, mac), Trailer{Extensions: 1, MAC: mac}, nil},
		{"v5 EF", 5, ef, Trailer{Extensions: 1}, nil},
	} {
		got, err := ParseTrailer(tt.version, tt.trailer)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: ParseTrailer error = %v, want %v", tt.name, err, tt.wantErr)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: ParseTrailer mismatch (-want +got):\n%s", tt.name, diff)
		}
	}

	// An NTPv3 packet (chronyd's v3 request) with an extension field appended.
	pkt := concat(readHex(t, "chrony_client_v3.hex"), ef)
	var p Packet
	if err := p.Decode(pkt); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseTrailer(p.Version, pkt[HeaderLen:]); !errors.Is(err, ErrExtension) {
		t.Errorf("ParseTrailer on NTPv3 with an EF = %v, want ErrExtension", err)
	}
}

func TestAppendExtension(t *testing.T) {
	for _, tt := range []struct {
		value   []byte
		wantLen int
	}{
		{nil, 16},
		{seq(1, 1), 16},
		{seq(1, 11), 16},
		{seq(1, 12), 16},
		{seq(1, 13), 20},
		{seq(1, 16), 20},
		{seq(1, 17), 24},
		{seq(1, 24), 28},
		{seq(1, 32), 36},
		{seq(1, 33), 40},
	} {
		prefix := []byte{0xee, 0xee}
		got := AppendExtension(prefix, 0xabcd, tt.value)
		if !bytes.Equal(got[:2], prefix) {
			t.Errorf("AppendExtension(%d bytes) clobbered the prefix: %x", len(tt.value), got[:2])
		}
		got = got[2:]
		want := concat([]byte{0xab, 0xcd, byte(tt.wantLen >> 8), byte(tt.wantLen)}, tt.value, make([]byte, tt.wantLen-4-len(tt.value)))
		if !bytes.Equal(got, want) {
			t.Errorf("AppendExtension(%d bytes) =\n%x\nwant\n%x", len(tt.value), got, want)
		}
		// And it parses back, padding included in Value (the 24-byte EF
		// would be read as a MAC, so follow each field with a MAC).
		w := walk(concat(got, seq(0, 24)))
		if w.Err != nil || len(w.Exts) != 1 || w.Exts[0].Type != 0xabcd || !bytes.Equal(w.Exts[0].Value, want[4:]) {
			t.Errorf("AppendExtension(%d bytes) parsed back as %+v", len(tt.value), w)
		}
	}
}

func TestAppendExtensionLimit(t *testing.T) {
	// The largest value whose field length still fits the 16-bit length.
	const max = 0xfffc - 4
	got := AppendExtension(nil, 1, make([]byte, max))
	if len(got) != 0xfffc || got[2] != 0xff || got[3] != 0xfc {
		t.Errorf("AppendExtension(%d bytes): len %d, length field %x", max, len(got), got[2:4])
	}
	defer func() {
		if recover() == nil {
			t.Error("AppendExtension with a value too long for the length field did not panic")
		}
	}()
	AppendExtension(nil, 1, make([]byte, max+1))
}

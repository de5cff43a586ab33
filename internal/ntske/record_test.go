package ntske

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func chronyRequest() []byte {
	var b []byte
	b = AppendUint16s(b, true, RecNextProtocol, ProtocolNTPv4)
	b = AppendUint16s(b, true, RecAEAD, AEADAESSIVCMAC256, 30)
	return AppendEnd(b)
}

func TestChronyRequestBytes(t *testing.T) {
	// What chronyd 4.3 sends: Next Protocol {0}, AEAD {15, 30}, End.
	want := []byte{0x80, 1, 0, 2, 0, 0, 0x80, 4, 0, 4, 0, 15, 0, 30, 0x80, 0, 0, 0}
	if got := chronyRequest(); !bytes.Equal(got, want) {
		t.Fatalf("request % x, want % x", got, want)
	}
	req, err := ParseRequest(want)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Request{Protocols: []uint16{0}, AEADs: []uint16{15, 30}}, req); diff != "" {
		t.Fatal(diff)
	}
	if !req.OffersNTPv4() || !req.OffersAESSIV() {
		t.Fatal("offers not recognised")
	}
}

func TestParseRequestErrors(t *testing.T) {
	end := AppendEnd(nil)
	proto := AppendUint16s(nil, true, RecNextProtocol, 0)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name string
		msg  []byte
		code uint16
	}{
		{"empty", nil, ErrCodeBadRequest},
		{"no end", proto, ErrCodeBadRequest},
		{"no protocol", end, ErrCodeBadRequest},
		{"two protocols", cat(proto, proto, end), ErrCodeBadRequest},
		{"odd protocol list", cat(AppendRecord(nil, true, RecNextProtocol, []byte{0}), end), ErrCodeBadRequest},
		{"unknown critical", cat(proto, AppendRecord(nil, true, 99, nil), end), ErrCodeUnrecognizedCritical},
		{"client error record", cat(proto, AppendUint16s(nil, true, RecError, 1), end), ErrCodeBadRequest},
		{"after end", cat(proto, end, proto), ErrCodeBadRequest},
		{"truncated", cat(proto, []byte{0x80, 0, 0}), ErrCodeBadRequest},
		{"end with body", cat(proto, AppendRecord(nil, true, 0, []byte{1, 2})), ErrCodeBadRequest},
	} {
		_, err := ParseRequest(tc.msg)
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Code != tc.code {
			t.Errorf("%s: error %v, want code %d", tc.name, err, tc.code)
		}
	}
	// An unknown non-critical record is ignored.
	if _, err := ParseRequest(cat(proto, AppendRecord(nil, false, 99, []byte("x")), end)); err != nil {
		t.Errorf("non-critical unknown record: %v", err)
	}
}

func TestResponseRoundTrip(t *testing.T) {
	in := Response{AEAD: AEADAESSIVCMAC256, Cookies: [][]byte{[]byte("cookie-1"), []byte("cookie-2")}, Server: "ntp.example", Port: 1123}
	out, err := ParseResponse(AppendResponse(nil, &in))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Fatal(diff)
	}
	_, err = ParseResponse(AppendError(nil, ErrCodeBadRequest))
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Code != ErrCodeBadRequest {
		t.Fatalf("error response: %v", err)
	}
}

func TestReadMessage(t *testing.T) {
	msg := chronyRequest()
	got, err := ReadMessage(bytes.NewReader(append(msg, 0xde, 0xad)), nil, 0)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("ReadMessage = % x, %v", got, err)
	}
	if _, err := ReadMessage(bytes.NewReader(msg[:7]), nil, 0); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated: %v", err)
	}
	big := AppendRecord(nil, false, 99, make([]byte, 100))
	if _, err := ReadMessage(bytes.NewReader(append(big, msg...)), nil, 64); !errors.Is(err, ErrTooLong) {
		t.Fatalf("too long: %v", err)
	}
}

func TestExporterContext(t *testing.T) {
	if got := ExporterContext(15, false); !bytes.Equal(got, []byte{0, 0, 0, 15, 0}) {
		t.Fatalf("C2S context % x", got)
	}
	if got := ExporterContext(15, true); !bytes.Equal(got, []byte{0, 0, 0, 15, 1}) {
		t.Fatalf("S2C context % x", got)
	}
}

// FuzzRecords checks that the record iterator never panics, that the
// records it yields re-encode to exactly the bytes it consumed, and that
// the request and response parsers cope with anything.
func FuzzRecords(f *testing.F) {
	f.Add(chronyRequest())
	f.Add(AppendResponse(nil, &Response{AEAD: 15, Cookies: [][]byte{make([]byte, 104)}, Server: "a", Port: 123}))
	f.Add(AppendError(nil, 1))
	f.Add([]byte{0x80, 1, 0xff, 0xff, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		it := Records(b)
		var re []byte
		for it.Next() {
			r := it.Record()
			re = AppendRecord(re, r.Critical, r.Type, r.Body)
		}
		consumed := len(b) - len(it.Rest())
		if !bytes.Equal(re, b[:consumed]) {
			t.Fatalf("re-encoded % x, consumed % x", re, b[:consumed])
		}
		if it.Err() == nil && consumed != len(b) {
			t.Fatalf("stopped early without error")
		}
		if req, err := ParseRequest(b); err == nil && len(req.Protocols) > len(b) {
			t.Fatal("impossible protocol list")
		}
		_, _ = ParseResponse(b)
		if msg, err := ReadMessage(bytes.NewReader(b), nil, 1024); err == nil && !bytes.HasPrefix(b, msg) {
			t.Fatal("ReadMessage invented bytes")
		}
	})
}

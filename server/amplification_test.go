package server

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// answerOne runs raw through a worker of s and returns the reply, if any.
func answerOne(s *Server, raw []byte) []byte {
	io := &memIO{src: netip.MustParseAddrPort("198.51.100.7:123"), keep: true, reqs: [][]byte{raw}}
	w := s.newWorker(io, 1)
	n, _ := w.io.read(w.in)
	w.handleBatch(n)
	if len(io.written) == 0 {
		return nil
	}
	return io.written[0]
}

// trailers are the kinds of bytes an attacker might put after the header.
func trailers() map[string][]byte {
	ef := func(typ uint16, n int) []byte { return ntpwire.AppendExtension(nil, typ, make([]byte, n)) }
	badLen := ef(0x0104, 32)
	binary.BigEndian.PutUint16(badLen[2:], 200)
	odd := ef(0x0104, 32)
	binary.BigEndian.PutUint16(odd[2:], 34)
	return map[string][]byte{
		"none":          nil,
		"ef":            ef(0x0104, 32),
		"two-efs":       append(ef(0x0104, 32), ef(0x0204, 100)...),
		"ef+md5-mac":    append(ef(0x0104, 32), make([]byte, 20)...),
		"ef+sha1-mac":   append(ef(0x0104, 32), make([]byte, 24)...),
		"md5-mac":       make([]byte, 20),
		"sha1-mac":      make([]byte, 24),
		"crypto-nak":    make([]byte, 4),
		"ef-bad-length": badLen,
		"ef-odd-length": odd,
		"stray-8":       make([]byte, 8),
		"stray-13":      make([]byte, 13),
		"big-ef":        ef(0xffff, 1400),
	}
}

// TestNoAmplification sends every mode, every version, every kind of
// trailer and lengths from 0 to 1500 bytes and checks that each request
// gets no reply or a reply no longer than itself, and a reply only when
// it is a well-formed client request.
func TestNoAmplification(t *testing.T) {
	fake := clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	handlers := map[string]Handler{
		"responder": nil,
		"kiss-everything": HandlerFunc(func(w ResponseWriter, r *Request) {
			_ = w.Kiss(ntpwire.KissRate)
		}),
	}
	for hname, h := range handlers {
		s := &Server{Source: NewLocalSource(fake, 2), Handler: h}
		s.init()
		checked := 0
		check := func(name string, raw []byte, wantReply bool) {
			t.Helper()
			checked++
			rep := answerOne(s, raw)
			if len(rep) > len(raw) {
				t.Fatalf("%s/%s: %d-byte reply to a %d-byte request", hname, name, len(rep), len(raw))
			}
			if (rep != nil) != wantReply {
				t.Fatalf("%s/%s: replied=%v, want %v", hname, name, rep != nil, wantReply)
			}
			if rep != nil {
				var p ntpwire.Packet
				if err := p.Decode(rep); err != nil || p.Mode != ntpwire.ModeServer {
					t.Fatalf("%s/%s: reply is not a server packet: %v %+v", hname, name, err, p)
				}
			}
		}
		for mode := 0; mode < 8; mode++ {
			for version := 0; version < 8; version++ {
				for tname, tr := range trailers() {
					p := ntpwire.Packet{Mode: ntpwire.Mode(mode), Version: uint8(version), XmitTime: ntpwire.TimeOf(fake.Now())}
					raw := append(p.AppendTo(nil), tr...)
					validTrailer := tname != "ef-bad-length" && tname != "ef-odd-length" && tname != "stray-8" && tname != "stray-13"
					if version < 4 && (tname == "ef" || tname == "two-efs" || tname == "ef+md5-mac" || tname == "ef+sha1-mac" || tname == "big-ef") {
						validTrailer = false // only NTPv4 has extension fields
					}
					want := mode == int(ntpwire.ModeClient) && version >= 1 && version <= 4 && validTrailer
					check(fmt.Sprintf("mode%d/v%d/%s", mode, version, tname), raw, want)
				}
				// Every length from 0 to 1500 bytes of this mode and version.
				for n := 0; n <= 1500; n += 1 + n/16 {
					raw := make([]byte, n)
					if n > 0 {
						raw[0] = byte(version)<<3 | byte(mode)
					}
					for i := 1; i < n; i++ {
						raw[i] = byte(i * 7)
					}
					_, err := ntpwire.ParseTrailer(uint8(version), raw[min(n, ntpwire.HeaderLen):])
					want := n >= ntpwire.HeaderLen && mode == int(ntpwire.ModeClient) && version >= 1 && version <= 4 && err == nil
					check(fmt.Sprintf("mode%d/v%d/len%d", mode, version, n), raw, want)
				}
			}
		}
		// Control queries: ntpq's READVAR (mode 6) and ntpdc's monlist
		// (mode 7, request code 42), the classic amplification vectors.
		readvar := []byte{0x16, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}
		monlist := append([]byte{0x17, 0x00, 0x03, 0x2a}, make([]byte, 44)...)
		check("ntpq-readvar", readvar, false)
		check("monlist", monlist, false)
		check("monlist-v3", append([]byte{0x1f, 0x00, 0x03, 0x2a}, make([]byte, 188)...), false)
		// Packets that look like a KoD or a server reply are not requests.
		kod := ntpwire.NewKiss(&ntpwire.Packet{Version: 4, XmitTime: 1}, ntpwire.KissDeny)
		check("kod", kod.AppendTo(nil), false)
		t.Logf("%s: %d requests checked", hname, checked)
	}
}

package ntske

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ntpkit/ntpkit/internal/aessiv"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// response builds a KE response with the given cookies and, when set,
// Server and Port records (port < 0: none).
func response(cookies [][]byte, server []byte, port int) []byte {
	var b []byte
	b = AppendUint16s(b, true, RecNextProtocol, ProtocolNTPv4)
	b = AppendUint16s(b, true, RecAEAD, AEADAESSIVCMAC256)
	if server != nil {
		b = AppendRecord(b, true, RecServer, server)
	}
	if port >= 0 {
		b = AppendUint16s(b, true, RecPort, uint16(port))
	}
	for _, c := range cookies {
		b = AppendRecord(b, false, RecNewCookie, c)
	}
	return AppendEnd(b)
}

func cookies(n, size int) [][]byte {
	var cs [][]byte
	for i := range n {
		cs = append(cs, bytes.Repeat([]byte{byte(i + 1)}, size))
	}
	return cs
}

// TestParseResponseBounds checks what a client accepts from a KE server:
// at most MaxCookies cookies of 1 to MaxCookieLen bytes, a host name or
// address of at most MaxServerNameLen bytes, a port other than 0.
func TestParseResponseBounds(t *testing.T) {
	resp, err := ParseResponse(response(cookies(40, 100), nil, -1))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Cookies) != MaxCookies {
		t.Errorf("kept %d of 40 cookies, want %d", len(resp.Cookies), MaxCookies)
	}
	if _, err := ParseResponse(response(cookies(1, MaxCookieLen), nil, -1)); err != nil {
		t.Errorf("cookie of %d bytes refused: %v", MaxCookieLen, err)
	}
	for _, tc := range []struct {
		name    string
		cookies [][]byte
		server  []byte
		port    int
	}{
		{"oversized cookie", cookies(1, MaxCookieLen+1), nil, -1},
		{"64 KB cookie", cookies(1, 60000), nil, -1},
		{"empty cookie", [][]byte{{}}, nil, -1},
		{"port 0", cookies(1, 100), nil, 0},
		{"empty server", cookies(1, 100), []byte{}, -1},
		{"long server", cookies(1, 100), []byte(strings.Repeat("a.", 127) + "ab"), -1},
		{"server with space", cookies(1, 100), []byte("ntp example.com"), -1},
		{"server with NUL", cookies(1, 100), []byte("ntp\x00.example.com"), -1},
		{"server label too long", cookies(1, 100), []byte(strings.Repeat("a", 64) + ".example"), -1},
		{"server empty label", cookies(1, 100), []byte("ntp..example"), -1},
		{"server hyphen", cookies(1, 100), []byte("-ntp.example"), -1},
		{"server with port", cookies(1, 100), []byte("192.0.2.1:123"), -1},
	} {
		if _, err := ParseResponse(response(tc.cookies, tc.server, tc.port)); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	for _, name := range []string{"ntp.example.com", "ntp.example.com.", "time_1.example", "192.0.2.1", "2001:db8::123", "localhost"} {
		resp, err := ParseResponse(response(cookies(1, 100), []byte(name), 4123))
		if err != nil || resp.Server != name || resp.Port != 4123 {
			t.Errorf("server %q: %+v, %v", name, resp, err)
		}
	}
}

// TestVerifyKeepsBoundedCookies checks that fresh cookies from NTP
// replies never take a session beyond MaxCookies, and that oversized
// ones are ignored, so requests (a cookie plus placeholders of its size)
// stay small.
func TestVerifyKeepsBoundedCookies(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeyLen)
	s2c, err := aessiv.New(key)
	if err != nil {
		t.Fatal(err)
	}
	sess := &Session{C2S: key, S2C: key, Cookies: cookies(1, 100)}
	p := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient}
	_, pr, err := sess.AppendRequest(nil, &p)
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.Cookies) != 0 {
		t.Fatalf("%d cookies left", len(sess.Cookies))
	}
	reply := func(cs [][]byte) []byte {
		hdr := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 2}
		pkt := hdr.AppendTo(nil)
		pkt = ntpwire.AppendExtension(pkt, EFUniqueID, pr.uid[:])
		var pt []byte
		for _, c := range cs {
			pt = ntpwire.AppendExtension(pt, EFCookie, c)
		}
		return AppendAuthenticator(pkt, s2c, pt)
	}
	big := append(cookies(3, 1000), cookies(20, 100)...)
	if err := pr.Verify(reply(big)); err != nil {
		t.Fatal(err)
	}
	if len(sess.Cookies) != MaxCookies {
		t.Fatalf("session holds %d cookies, want %d", len(sess.Cookies), MaxCookies)
	}
	for _, c := range sess.Cookies {
		if len(c) > MaxCookieLen {
			t.Fatalf("kept a %d-byte cookie", len(c))
		}
	}
	out, _, err := sess.AppendRequest(nil, &p)
	if err != nil {
		t.Fatal(err)
	}
	if max := ntpwire.HeaderLen + 8*CookieFieldLen(MaxCookieLen) + 200; len(out) > max {
		t.Errorf("request of %d bytes, want at most %d", len(out), max)
	}
}

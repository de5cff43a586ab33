package server

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/policy"
	"github.com/ntpkit/ntpkit/ratelimit"
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
		"sha256-mac":    make([]byte, 36),
		"sha384-mac":    make([]byte, 52),
		"sha512-mac":    make([]byte, 68),
		"over-long-mac": make([]byte, 72),
		"crypto-nak":    make([]byte, 4),
		"ef-bad-length": badLen,
		"ef-odd-length": odd,
		"stray-8":       make([]byte, 8),
		"stray-13":      make([]byte, 13),
		"big-ef":        ef(0xffff, 1400),
	}
}

// ampCase is one datagram of the amplification table.
type ampCase struct {
	name string
	raw  []byte
	// client is true for a well-formed client request, the only kind a
	// server may answer.
	client bool
}

// amplificationCases returns every mode, every version, every kind of
// trailer, lengths from 0 to 1500 bytes, and the classic control-query
// amplification vectors, each marked with whether it is a well-formed
// client request.
func amplificationCases(now time.Time) []ampCase {
	var cases []ampCase
	add := func(name string, raw []byte, client bool) {
		cases = append(cases, ampCase{name: name, raw: raw, client: client})
	}
	for mode := 0; mode < 8; mode++ {
		for version := 0; version < 8; version++ {
			for tname, tr := range trailers() {
				p := ntpwire.Packet{Mode: ntpwire.Mode(mode), Version: uint8(version), XmitTime: ntpwire.TimeOf(now)}
				raw := append(p.AppendTo(nil), tr...)
				validTrailer := tname != "ef-bad-length" && tname != "ef-odd-length" && tname != "stray-8" && tname != "stray-13" &&
					// NTPv4 MACs stop at 24 bytes; these zeros are no
					// extension field either.
					tname != "sha256-mac" && tname != "sha384-mac" && tname != "sha512-mac" && tname != "over-long-mac"
				if version < 4 {
					// Only NTPv4 has extension fields; older versions
					// read the whole trailer as a MAC, up to a key ID and
					// a 64-byte SHA-512 digest.
					n := len(tr)
					validTrailer = n == 0 || n == 4 || (n >= 20 && n <= 68 && n%4 == 0)
				}
				want := mode == int(ntpwire.ModeClient) && version >= 1 && version <= 4 && validTrailer
				add(fmt.Sprintf("mode%d/v%d/%s", mode, version, tname), raw, want)
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
				add(fmt.Sprintf("mode%d/v%d/len%d", mode, version, n), raw, want)
			}
		}
	}
	// Control queries: ntpq's READVAR (mode 6) and ntpdc's monlist
	// (mode 7, request code 42), the classic amplification vectors.
	add("ntpq-readvar", []byte{0x16, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}, false)
	add("monlist", append([]byte{0x17, 0x00, 0x03, 0x2a}, make([]byte, 44)...), false)
	add("monlist-v3", append([]byte{0x1f, 0x00, 0x03, 0x2a}, make([]byte, 188)...), false)
	// Packets that look like a KoD or a server reply are not requests.
	kod := ntpwire.NewKiss(&ntpwire.Packet{Version: 4, XmitTime: 1}, ntpwire.KissDeny)
	add("kod", kod.AppendTo(nil), false)
	return cases
}

// checkReply checks one reply (nil for none) to req: never longer than
// the request, only to a well-formed client request, a server packet,
// and a 48-byte KoD whose code is in kisses when it is a KoD. It returns
// whether the reply was a KoD.
func checkReply(req ampCase, rep []byte, kisses ...ntpwire.RefID) (kiss bool, err error) {
	if rep == nil {
		return false, nil
	}
	if len(rep) > len(req.raw) {
		return false, fmt.Errorf("%d-byte reply to a %d-byte request", len(rep), len(req.raw))
	}
	if !req.client {
		return false, fmt.Errorf("%d-byte reply to a request that is not a well-formed client request", len(rep))
	}
	var p ntpwire.Packet
	if err := p.Decode(rep); err != nil || p.Mode != ntpwire.ModeServer {
		return false, fmt.Errorf("reply is not a server packet: %v %+v", err, p)
	}
	if !p.IsKiss() {
		return false, nil
	}
	if len(rep) != ntpwire.HeaderLen {
		return true, fmt.Errorf("%d-byte KoD, want %d", len(rep), ntpwire.HeaderLen)
	}
	for _, k := range kisses {
		if p.RefID == k {
			return true, nil
		}
	}
	return true, fmt.Errorf("KoD %v, want one of %v", p.RefID, kisses)
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
		cases := amplificationCases(fake.Now())
		for _, c := range cases {
			rep := answerOne(s, c.raw)
			if _, err := checkReply(c, rep, ntpwire.KissRate); err != nil {
				t.Fatalf("%s/%s: %v", hname, c.name, err)
			}
			if (rep != nil) != c.client {
				t.Fatalf("%s/%s: replied=%v, want %v", hname, c.name, rep != nil, c.client)
			}
		}
		t.Logf("%s: %d requests checked", hname, len(cases))
	}
}

// middlewareChains returns the middleware setups of the amplification
// tests: a server whose ACL denies every source with KoD DENY, and one
// whose rate limiter (burst 1, one token an hour, leak 1 in 2, KoD RATE,
// no KoD budget) refuses nearly every request.
func middlewareChains(t testing.TB, deny string) map[string]Handler {
	t.Helper()
	acl, err := policy.Parse([]string{"deny " + deny}, policy.Allow)
	if err != nil {
		t.Fatal(err)
	}
	table, err := ratelimit.New(ratelimit.Config{Interval: time.Hour, Burst: 1, MemoryBytes: ratelimit.MinMemoryBytes})
	if err != nil {
		t.Fatal(err)
	}
	deny1 := NewAccessControl(AccessOptions{Addrs: acl, Kiss: true, KissCode: ntpwire.KissDeny})
	rl1 := NewRateLimiter(RateLimitOptions{Table: table, Leak: 1, Kiss: true})
	allowAll := NewAccessControl(AccessOptions{})
	table2, err := ratelimit.New(ratelimit.Config{Interval: time.Hour, Burst: 1, MemoryBytes: ratelimit.MinMemoryBytes})
	if err != nil {
		t.Fatal(err)
	}
	rl2 := NewRateLimiter(RateLimitOptions{Table: table2, Leak: 1, Kiss: true})
	return map[string]Handler{
		"acl-deny":       Chain(Responder(), deny1.Wrap, rl1.Wrap),
		"ratelimit-leak": Chain(Responder(), allowAll.Wrap, rl2.Wrap),
	}
}

// TestNoAmplificationBehindMiddleware runs the whole amplification table
// through a server with the access-control and rate-limit middleware in
// front: replies go only to well-formed client requests and are never
// longer than the request, and every KoD is 48 bytes.
func TestNoAmplificationBehindMiddleware(t *testing.T) {
	fake := clocktest.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	src := NewLocalSource(fake, 2)
	for name, h := range middlewareChains(t, "198.51.100.0/24") {
		s := &Server{Source: src, Handler: h}
		s.init()
		var replies, kisses, clients int
		cases := amplificationCases(fake.Now())
		for _, c := range cases {
			rep := answerOne(s, c.raw)
			wantKiss := ntpwire.KissRate
			if name == "acl-deny" {
				wantKiss = ntpwire.KissDeny
			}
			kiss, err := checkReply(c, rep, wantKiss)
			if err != nil {
				t.Fatalf("%s/%s: %v", name, c.name, err)
			}
			if c.client {
				clients++
			}
			if rep != nil {
				replies++
			}
			if kiss {
				kisses++
			}
			if name == "acl-deny" && rep != nil && !kiss {
				t.Fatalf("%s/%s: a denied client got time", name, c.name)
			}
		}
		// Every well-formed request reaches the middleware, and each
		// refuses it with a KoD (the ACL always, the rate limiter on the
		// 1st, 2nd, 4th... refusal) or lets it through (the leak).
		if replies == 0 || kisses == 0 || replies > clients {
			t.Errorf("%s: %d replies (%d KoDs) to %d well-formed requests", name, replies, kisses, clients)
		}
		t.Logf("%s: %d requests, %d well-formed, %d replies, %d KoDs", name, len(cases), clients, replies, kisses)
	}
}

// TestNoAmplificationOverSockets sends a sample of the table (every mode,
// a few versions and trailers) over real loopback sockets to a server
// with the middleware in front, from an allowed but rate-limited source
// and, where the system lets it bind 127.0.0.2, from a denied one, and
// checks every reply that comes back within a deadline.
func TestNoAmplificationOverSockets(t *testing.T) {
	src := NewLocalSource(nil, 2)
	chains := middlewareChains(t, "127.0.0.2/32")
	// acl-deny's chain denies 127.0.0.2 and rate-limits everyone else.
	s := &Server{Source: src, Handler: chains["acl-deny"]}
	addr := startServer(t, s, "udp4")
	tr := trailers()
	var cases []ampCase
	for mode := 0; mode < 8; mode++ {
		for _, version := range []int{0, 3, 4} {
			for _, tname := range []string{"none", "ef", "sha1-mac", "sha512-mac", "big-ef", "stray-13"} {
				p := ntpwire.Packet{Mode: ntpwire.Mode(mode), Version: uint8(version)}
				// The transmit time names the case: replies echo it.
				p.XmitTime = ntpwire.Time(uint64(len(cases)+1) << 32)
				// A 36-byte "ef" is an NTPv3 SHA-256 MAC's length; a
				// 68-byte trailer is a MAC only before NTPv4.
				valid := tname != "stray-13" && (tname != "big-ef" || version == 4) && (tname != "sha512-mac" || version < 4)
				cases = append(cases, ampCase{
					name:   fmt.Sprintf("mode%d/v%d/%s", mode, version, tname),
					raw:    append(p.AppendTo(nil), tr[tname]...),
					client: mode == int(ntpwire.ModeClient) && version >= 1 && version <= 4 && valid,
				})
			}
		}
	}
	for _, from := range []string{"127.0.0.1", "127.0.0.2"} {
		c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(from), 0)), net.UDPAddrFromAddrPort(addr))
		if err != nil {
			if from == "127.0.0.1" {
				t.Fatal(err)
			}
			t.Logf("no second source: %v", err)
			continue
		}
		defer c.Close()
		for _, cs := range cases {
			if _, err := c.Write(cs.raw); err != nil {
				t.Fatalf("send %s: %v", cs.name, err)
			}
		}
		wantKiss := ntpwire.KissRate
		if from == "127.0.0.2" {
			wantKiss = ntpwire.KissDeny
		}
		// Collect replies until none comes for 300 ms, at most 5 s and
		// at most one per request.
		buf := make([]byte, 2048)
		replies, kisses, clients := 0, 0, 0
		for _, cs := range cases {
			if cs.client {
				clients++
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for replies < len(cases) {
			rd := time.Now().Add(300 * time.Millisecond)
			if rd.After(deadline) {
				rd = deadline
			}
			_ = c.SetReadDeadline(rd)
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			replies++
			var p ntpwire.Packet
			if err := p.Decode(buf[:n]); err != nil {
				t.Fatalf("from %s: undecodable %d-byte reply: %v", from, n, err)
			}
			i := int(uint64(p.OrigTime)>>32) - 1
			if i < 0 || i >= len(cases) {
				t.Fatalf("from %s: reply echoes no request (origin %v)", from, p.OrigTime)
			}
			kiss, err := checkReply(cases[i], buf[:n], wantKiss)
			if err != nil {
				t.Fatalf("from %s: %s: %v", from, cases[i].name, err)
			}
			if kiss {
				kisses++
			}
		}
		if replies > clients || kisses == 0 {
			t.Errorf("from %s: %d replies (%d KoDs) to %d datagrams, %d well-formed", from, replies, kisses, len(cases), clients)
		}
		t.Logf("from %s: %d datagrams, %d well-formed, %d replies, %d KoDs", from, len(cases), clients, replies, kisses)
	}
}

package nts

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/internal/aessiv"
	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/servertest"
)

type fixture struct {
	clk      *clocktest.Fake
	keys     *KeyStore
	mw       *Middleware
	h        server.Handler
	c2s, s2c *aessiv.SIV
	cookie   []byte
}

func newFixture(t testing.TB) *fixture {
	clk := clocktest.New(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
	keys, err := NewKeyStore(nil, time.Hour, clk)
	if err != nil {
		t.Fatal(err)
	}
	c2sKey, s2cKey := testKeys()
	cookie, err := keys.SealCookie(nil, c2sKey, s2cKey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{clk: clk, keys: keys, mw: NewMiddleware(keys), cookie: cookie}
	f.c2s, _ = aessiv.New(c2sKey)
	f.s2c, _ = aessiv.New(s2cKey)
	f.h = server.Chain(server.Responder(), f.mw.Wrap)
	return f
}

// serveUDP serves h on pc with a server of one socket until the test
// ends.
func serveUDP(t testing.TB, h server.Handler, pc net.PacketConn) {
	t.Helper()
	srv := &server.Server{Handler: h, Sockets: 1}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), pc) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		<-done
	})
}

var uid = bytes.Repeat([]byte{0xab}, 32)

func (f *fixture) do(raw []byte) *servertest.Recorder {
	var p ntpwire.Packet
	if err := p.Decode(raw); err != nil {
		panic(err)
	}
	req := &server.Request{Packet: p, Raw: raw, Received: f.clk.Now(), Src: netip.MustParseAddrPort("192.0.2.1:123")}
	rec := &servertest.Recorder{Clock: f.clk}
	rec.Reset(req)
	f.h.ServeNTP(rec, req)
	return rec
}

func clientPacket(f *fixture) ntpwire.Packet {
	return servertest.ClientPacket(f.clk.Now())
}

func TestNTSRequestGetsSealedReply(t *testing.T) {
	f := newFixture(t)
	for placeholders := 0; placeholders <= 9; placeholders++ {
		p := clientPacket(f)
		raw := ntske.ClientRequest(nil, &p, uid, f.cookie, placeholders, f.c2s)
		rec := f.do(raw)
		if !rec.Replied || rec.Sealed == nil {
			t.Fatalf("%d placeholders: no sealed reply", placeholders)
		}
		if len(rec.Sealed) > len(raw) {
			t.Fatalf("reply %d bytes, request %d", len(rec.Sealed), len(raw))
		}
		cookies, err := ntske.VerifyReply(rec.Sealed, uid, f.s2c)
		if err != nil {
			t.Fatal(err)
		}
		if want := min(1+placeholders, maxReplyCookies); len(cookies) != want {
			t.Fatalf("%d placeholders: %d cookies, want %d", placeholders, len(cookies), want)
		}
		for _, c := range cookies {
			if _, _, err := f.keys.OpenCookie(c); err != nil {
				t.Fatalf("fresh cookie does not open: %v", err)
			}
		}
		var reply ntpwire.Packet
		reply.Decode(rec.Sealed)
		if reply.OrigTime != p.XmitTime || reply.XmitTime != ntpwire.TimeOf(f.clk.Now()) || reply.Mode != ntpwire.ModeServer {
			t.Fatalf("reply header %+v", reply)
		}
	}
	if st := f.mw.Stats(); st.Authenticated != 10 || st.NAKs != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNTSNAKAndDrops(t *testing.T) {
	f := newFixture(t)
	p := clientPacket(f)
	// A cookie from another server: NAK with the UID, no authenticator.
	other, _ := NewKeyStore(nil, time.Hour, f.clk)
	k1, k2 := testKeys()
	foreign, _ := other.SealCookie(nil, k1, k2)
	rec := f.do(ntske.ClientRequest(nil, &p, uid, foreign, 0, f.c2s))
	if !rec.Replied {
		t.Fatal("no NAK")
	}
	if _, err := ntske.VerifyReply(rec.Sealed, uid, f.s2c); !errors.Is(err, ntske.ErrNAK) {
		t.Fatalf("VerifyReply(NAK) = %v", err)
	}
	var kod ntpwire.Packet
	kod.Decode(rec.Sealed)
	if kod.XmitTime != p.XmitTime || kod.RefID != ntpwire.KissNTSN {
		t.Fatalf("NAK header %+v", kod)
	}
	// An authenticator sealed with the wrong key: dropped.
	wrong, _ := aessiv.New(bytes.Repeat([]byte{9}, 32))
	if rec := f.do(ntske.ClientRequest(nil, &p, uid, f.cookie, 0, wrong)); rec.Replied {
		t.Fatal("bad authenticator answered")
	}
	// Tampered header: dropped.
	raw := ntske.ClientRequest(nil, &p, uid, f.cookie, 0, f.c2s)
	raw[2] ^= 1
	if rec := f.do(raw); rec.Replied {
		t.Fatal("tampered request answered")
	}
	// No unique identifier: dropped.
	raw = p.AppendTo(nil)
	raw = ntpwire.AppendExtension(raw, ntske.EFCookie, f.cookie)
	raw = ntske.AppendAuthenticator(raw, f.c2s, nil)
	if rec := f.do(raw); rec.Replied {
		t.Fatal("request without UID answered")
	}
	st := f.mw.Stats()
	if st.NAKs != 1 || st.AuthFailures != 2 || st.Malformed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNonNTSPassesThrough(t *testing.T) {
	f := newFixture(t)
	p := clientPacket(f)
	for name, raw := range map[string][]byte{
		"plain":     p.AppendTo(nil),
		"uid only":  ntpwire.AppendExtension(p.AppendTo(nil), ntske.EFUniqueID, uid),
		"mac":       append(p.AppendTo(nil), make([]byte, 20)...),
		"unknown":   ntpwire.AppendExtension(p.AppendTo(nil), 0x2005, make([]byte, 12)),
		"crypt-nak": append(p.AppendTo(nil), 0, 0, 0, 0),
	} {
		rec := f.do(raw)
		if !rec.Replied || rec.Sealed != nil || rec.IsKiss {
			t.Errorf("%s: not answered plainly (%+v)", name, rec)
		}
	}
	if st := f.mw.Stats(); st.Requests != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNTSKissIsAuthenticated(t *testing.T) {
	f := newFixture(t)
	deny := server.HandlerFunc(func(w server.ResponseWriter, r *server.Request) { w.Kiss(ntpwire.KissRate) })
	h := f.mw.Wrap(deny)
	p := clientPacket(f)
	raw := ntske.ClientRequest(nil, &p, uid, f.cookie, 0, f.c2s)
	var req server.Request
	req.Packet, req.Raw = p, raw
	rec := &servertest.Recorder{Clock: f.clk}
	rec.Reset(&req)
	h.ServeNTP(rec, &req)
	cookies, err := ntske.VerifyReply(rec.Sealed, uid, f.s2c)
	if err != nil || len(cookies) != 0 {
		t.Fatalf("kiss: %d cookies, %v", len(cookies), err)
	}
	var kod ntpwire.Packet
	kod.Decode(rec.Sealed)
	if !kod.IsKiss() || kod.RefID != ntpwire.KissRate {
		t.Fatalf("kiss header %+v", kod)
	}
}

// FuzzNTSExtensions feeds arbitrary trailers, and mutations of a real NTS
// request, to the NTS request parser and the middleware: they must never
// panic, and never answer with more bytes than the request.
func FuzzNTSExtensions(f *testing.F) {
	fx := newFixture(f)
	p := servertest.ClientPacket(fx.clk.Now())
	f.Add(ntske.ClientRequest(nil, &p, uid, fx.cookie, 3, fx.c2s)[ntpwire.HeaderLen:])
	f.Add(ntpwire.AppendExtension(nil, ntske.EFUniqueID, uid))
	f.Add(ntpwire.AppendExtension(nil, ntske.EFCookie, fx.cookie))
	f.Add([]byte{4, 4, 0, 16, 0, 16, 0, 16, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, trailer []byte) {
		raw := append(p.AppendTo(nil), trailer...)
		if _, err := ntpwire.ParseTrailer(4, trailer); err != nil {
			return // the server drops these before any handler
		}
		q, err := parseRequest(raw)
		if err == nil && q.isNTS && (q.authOff < ntpwire.HeaderLen || q.authOff > len(raw)) {
			t.Fatalf("authenticator offset %d", q.authOff)
		}
		// A fresh middleware for each input: its counters and NAK budget
		// must not carry one input's outcome into the next. The key
		// store is only read (the fixture's clock never moves).
		call := *fx
		call.mw = NewMiddleware(fx.keys)
		call.h = server.Chain(server.Responder(), call.mw.Wrap)
		rec := call.do(raw)
		if len(rec.Sealed) > len(raw) {
			t.Fatalf("reply %d bytes > request %d", len(rec.Sealed), len(raw))
		}
	})
}

// TestNTSCookiesAcrossRotation follows one client, cached by the
// middleware, through master key rotations: the cookies its replies
// carry are sealed with the part of S2V kept for its keys, which must be
// recomputed when the sealing key changes. Every fresh cookie must open
// to the client's keys, carry the current key ID, and be usable for the
// next request.
func TestNTSCookiesAcrossRotation(t *testing.T) {
	f := newFixture(t)
	c2sKey, s2cKey := testKeys()
	cookie := f.cookie
	for round := range 6 {
		for range 2 {
			p := clientPacket(f)
			rec := f.do(ntske.ClientRequest(nil, &p, uid, cookie, 1, f.c2s))
			if !rec.Replied || rec.Sealed == nil {
				t.Fatalf("round %d: no sealed reply (stats %+v)", round, f.mw.Stats())
			}
			cookies, err := ntske.VerifyReply(rec.Sealed, uid, f.s2c)
			if err != nil || len(cookies) != 2 {
				t.Fatalf("round %d: %d cookies, %v", round, len(cookies), err)
			}
			for _, c := range cookies {
				c2s, s2c, err := f.keys.OpenCookie(c)
				if err != nil || !bytes.Equal(c2s, c2sKey) || !bytes.Equal(s2c, s2cKey) {
					t.Fatalf("round %d: fresh cookie opens to %x, %x, %v", round, c2s, s2c, err)
				}
				if id, want := binary.BigEndian.Uint32(c), f.keys.epoch(f.clk.Now()); id != want {
					t.Fatalf("round %d: cookie key ID %d, want %d", round, id, want)
				}
			}
			cookie = cookies[round%2]
		}
		f.clk.Advance(time.Hour) // the fixture's rotation period
	}
	if st := f.mw.Stats(); st.Authenticated != 12 || st.NAKs != 0 {
		t.Fatalf("stats %+v", st)
	}
}

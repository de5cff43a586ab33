package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/internal/aessiv"
	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/internal/ntske/ntsketest"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/nts"
)

// TestNTSLoad runs ntpload's NTS mode against an in-process NTS server:
// every socket runs NTS-KE, every reply must authenticate, and the
// server must have verified every request it answered.
func TestNTSLoad(t *testing.T) {
	pki := ntsketest.New(t)
	keys, err := nts.NewKeyStore(nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	mw := nts.NewMiddleware(keys)
	addr := serve(t, &server.Server{Handler: server.Chain(server.Responder(), mw.Wrap)})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ke := &nts.KEServer{TLSConfig: pki.ServerConfig(), Keys: keys, NTPPort: int(addr.Port())}
	keDone := make(chan error, 1)
	go func() { keDone <- ke.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ke.Shutdown(ctx)
		if err := <-keDone; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("KE Serve: %v", err)
		}
	})
	for _, placeholders := range []string{"0", "3"} {
		cfg := loadCfg(t, addr, "-rate", "2000", "-nts", ln.Addr().String(), "-nts-ca", pki.CAFile,
			"-nts-name", "localhost", "-nts-placeholders", placeholders)
		before := mw.Stats()
		res, err := load(cfg)
		if err != nil {
			t.Fatal(err)
		}
		rep := res.report(cfg)
		st := mw.Stats()
		if rep.Sent < 300 || rep.Valid < rep.Sent*9/10 {
			t.Errorf("placeholders %s: sent %d, valid %d: want about 600, nearly all valid", placeholders, rep.Sent, rep.Valid)
		}
		if len(rep.Invalid) != 0 {
			t.Errorf("placeholders %s: invalid replies %v", placeholders, rep.Invalid)
		}
		if got := st.Authenticated - before.Authenticated; got < rep.Valid {
			t.Errorf("placeholders %s: server authenticated %d requests, client got %d valid replies", placeholders, got, rep.Valid)
		}
		if st.NAKs != 0 || st.AuthFailures != 0 || st.Malformed != 0 {
			t.Errorf("server NTS stats %+v", st)
		}
	}
}

// TestNTSVerifyRejectsForgery checks the client side: a reply is
// accepted, and its cookie kept, only when it echoes the request's Unique
// Identifier and its authenticator verifies with the S2C key.
func TestNTSVerifyRejectsForgery(t *testing.T) {
	s2cKey := bytes.Repeat([]byte{2}, 32)
	ns := &ntsSock{}
	ns.s2c, _ = aessiv.New(s2cKey)
	ns.c2s, _ = aessiv.New(bytes.Repeat([]byte{1}, 32))
	ns.uidTail[0] = 7
	const origin = 0x0123456789abcdef
	p := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, OrigTime: origin}
	reply := p.AppendTo(nil)
	reply = appendUID(reply, origin, &ns.uidTail)
	fresh := bytes.Repeat([]byte{0xcc}, 100)
	reply = ntske.AppendAuthenticator(reply, ns.s2c, ntpwire.AppendExtension(nil, ntske.EFCookie, fresh))
	if !ns.verify(reply, origin) {
		t.Fatal("genuine reply rejected")
	}
	if ns.have != 1 || !bytes.Equal(ns.cookies[0], fresh) {
		t.Fatalf("cookie jar %d cookies, first %x", ns.have, ns.cookies[0])
	}
	if ns.verify(reply, origin+1) {
		t.Error("reply to another request (other Unique Identifier) accepted")
	}
	for _, i := range []int{2, ntpwire.HeaderLen + 10, len(reply) - 1} {
		bad := bytes.Clone(reply)
		bad[i] ^= 1
		if ns.verify(bad, origin) {
			t.Errorf("reply with byte %d flipped accepted", i)
		}
	}
	other, _ := aessiv.New(bytes.Repeat([]byte{3}, 32))
	forged := ntske.AppendAuthenticator(appendUID(p.AppendTo(nil), origin, &ns.uidTail), other, nil)
	if ns.verify(forged, origin) {
		t.Error("reply sealed with another key accepted")
	}
	if ns.verify(p.AppendTo(nil), origin) {
		t.Error("reply without NTS fields accepted")
	}
}

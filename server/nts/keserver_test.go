package nts

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/internal/ntske/ntsketest"
	"github.com/ntpkit/ntpkit/server"
)

func startKE(t *testing.T, ke *KEServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ke.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ke.Shutdown(ctx)
		if err := <-done; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestKEExchange(t *testing.T) {
	pki := ntsketest.New(t)
	keys, _ := NewKeyStore(nil, 0, nil)
	ke := &KEServer{TLSConfig: pki.ServerConfig(), Keys: keys, NTPServer: "127.0.0.1", NTPPort: 1234}
	addr := startKE(t, ke)
	cfg := pki.ClientConfig()
	cfg.ServerName = "localhost"
	sess, err := ntske.Exchange(context.Background(), addr, cfg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.Cookies) != DefaultCookies || sess.Address() != "127.0.0.1:1234" {
		t.Fatalf("got %d cookies, NTP server %s", len(sess.Cookies), sess.Address())
	}
	for _, c := range sess.Cookies {
		c2s, s2c, err := keys.OpenCookie(c)
		if err != nil || string(c2s) != string(sess.C2S) || string(s2c) != string(sess.S2C) {
			t.Fatalf("cookie does not hold the session keys: %v", err)
		}
	}
	if st := ke.Stats(); st.Served != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// rawSession dials addr with ALPN ntske/1, sends req, and returns what
// the server answered before closing.
func rawSession(t *testing.T, pki *ntsketest.PKI, addr string, alpn []string, req []byte) ([]byte, error) {
	t.Helper()
	cfg := pki.ClientConfig()
	cfg.ServerName = "localhost"
	cfg.NextProtos = alpn
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if req != nil {
		if _, err := c.Write(req); err != nil {
			return nil, err
		}
	}
	return ntske.ReadMessage(c, nil, 0)
}

func TestKEErrors(t *testing.T) {
	pki := ntsketest.New(t)
	keys, _ := NewKeyStore(nil, 0, nil)
	ke := &KEServer{TLSConfig: pki.ServerConfig(), Keys: keys, Timeout: 500 * time.Millisecond}
	addr := startKE(t, ke)
	alpn := []string{ntske.ALPN}
	errCode := func(msg []byte) int {
		_, err := ntske.ParseResponse(msg)
		var pe *ntske.ProtocolError
		if errors.As(err, &pe) {
			return int(pe.Code)
		}
		return -1
	}
	// Unknown critical record.
	req := ntske.AppendUint16s(nil, true, ntske.RecNextProtocol, 0)
	req = ntske.AppendRecord(req, true, 77, nil)
	msg, err := rawSession(t, pki, addr, alpn, ntske.AppendEnd(req))
	if err != nil || errCode(msg) != ntske.ErrCodeUnrecognizedCritical {
		t.Fatalf("unknown critical: % x, %v", msg, err)
	}
	// Oversized request: a record announcing 65535 bytes is refused as
	// soon as its header arrives.
	big := []byte{0, 77, 0xff, 0xff, 1, 2, 3, 4}
	msg, err = rawSession(t, pki, addr, alpn, big)
	if err != nil || errCode(msg) != ntske.ErrCodeBadRequest {
		t.Fatalf("oversized: % x, %v", msg, err)
	}
	// Unsupported AEAD: an empty AEAD record, no cookies.
	req = ntske.AppendUint16s(nil, true, ntske.RecNextProtocol, 0)
	req = ntske.AppendUint16s(req, true, ntske.RecAEAD, 30)
	msg, err = rawSession(t, pki, addr, alpn, ntske.AppendEnd(req))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ntske.ParseResponse(msg); err == nil {
		t.Fatal("unsupported AEAD got cookies")
	}
	// Slow loris: a client that sends nothing is cut off by the timeout.
	start := time.Now()
	_, err = rawSession(t, pki, addr, alpn, nil)
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("silent client: err %v after %v", err, time.Since(start))
	}
	// A client without ALPN gets nothing.
	if msg, err := rawSession(t, pki, addr, nil, ntske.AppendEnd(ntske.AppendUint16s(nil, true, 1, 0))); err == nil {
		t.Fatalf("client without ALPN got % x", msg)
	}
	st := ke.Stats()
	if st.RequestErrors < 3 || st.HandshakeErrors < 1 || st.Unsupported != 1 || st.Served != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestKESessionLimit(t *testing.T) {
	pki := ntsketest.New(t)
	keys, _ := NewKeyStore(nil, 0, nil)
	ke := &KEServer{TLSConfig: pki.ServerConfig(), Keys: keys, MaxSessions: 1, Timeout: 300 * time.Millisecond}
	addr := startKE(t, ke)
	// Hold the only session with an idle TCP connection.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	cfg := pki.ClientConfig()
	cfg.ServerName = "localhost"
	if _, err := ntske.Exchange(context.Background(), addr, cfg, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Fatalf("second session ran after %v, before the first timed out", waited)
	}
}

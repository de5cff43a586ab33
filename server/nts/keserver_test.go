package nts

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
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

// idleFlood opens idle TCP connections to addr from the loopback address
// from, up to max of them, one every 5 ms, until stop is closed; it
// returns when all are closed again.
func idleFlood(t *testing.T, addr, from string, max int, stop <-chan struct{}) func() {
	t.Helper()
	var conns []net.Conn
	done := make(chan struct{})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: time.Second}
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for len(conns) < max {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			c, err := d.Dial("tcp", addr)
			if err != nil {
				continue
			}
			conns = append(conns, c)
		}
	}()
	return func() {
		<-done
		for _, c := range conns {
			c.Close()
		}
	}
}

// TestKEIdleFlood floods the KE server with idle connections from two
// loopback addresses, enough to hold every session slot of a server
// without per-source limits for its whole 10 s session timeout, while a
// real client from a third address runs six exchanges with a 3 s timeout:
// all must succeed.
func TestKEIdleFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods for a few seconds")
	}
	pki := ntsketest.New(t)
	keys, _ := NewKeyStore(nil, 0, nil)
	ke := &KEServer{TLSConfig: pki.ServerConfig(), Keys: keys}
	addr := startKE(t, ke)
	stop := make(chan struct{})
	var waits []func()
	for _, from := range []string{"127.0.0.2", "127.0.0.3"} {
		waits = append(waits, idleFlood(t, addr, from, 300, stop))
	}
	defer func() {
		close(stop)
		for _, w := range waits {
			w()
		}
	}()
	// Let the flood take the slots a server without limits would give it.
	deadline := time.Now().Add(5 * time.Second)
	for ke.Stats().Sessions < DefaultMaxSessions && ke.Stats().RateLimited+ke.Stats().SourceBusy < DefaultMaxSessions {
		if time.Now().After(deadline) {
			t.Fatalf("flood did not start: %+v", ke.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cfg := pki.ClientConfig()
	cfg.ServerName = "localhost"
	ok := 0
	const tries = 6
	for range tries {
		if _, err := ntske.Exchange(context.Background(), addr, cfg, 3*time.Second); err != nil {
			t.Logf("exchange during flood: %v", err)
			continue
		}
		ok++
	}
	st := ke.Stats()
	t.Logf("real client: %d of %d exchanges; server %+v", ok, tries, st)
	if ok != tries {
		t.Errorf("real client got keys %d of %d times during an idle flood", ok, tries)
	}
	if st.SourceBusy+st.RateLimited == 0 {
		t.Errorf("no flood connection refused: %+v", st)
	}
}

// TestKEHandshakeTimeout checks that a connection that never starts its
// TLS handshake is closed after HandshakeTimeout, not the session Timeout,
// and that a fifth concurrent connection from one source is closed at
// once.
func TestKEHandshakeTimeout(t *testing.T) {
	pki := ntsketest.New(t)
	keys, _ := NewKeyStore(nil, 0, nil)
	ke := &KEServer{TLSConfig: pki.ServerConfig(), Keys: keys, Timeout: time.Minute, HandshakeTimeout: 200 * time.Millisecond}
	addr := startKE(t, ke)
	var conns []net.Conn
	for range DefaultMaxSessionsPerSource + 1 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	start := time.Now()
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("conn %d: read %v, want the server to close it", i, err)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("idle connections held for %v", d)
	}
	st := ke.Stats()
	if st.SourceBusy != 1 || st.HandshakeErrors != DefaultMaxSessionsPerSource {
		t.Errorf("stats %+v, want 1 source-busy refusal and %d handshake errors", st, DefaultMaxSessionsPerSource)
	}
}

func TestSourceOf(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.7:4460", "192.0.2.7/32"},
		{"[::ffff:192.0.2.7]:4460", "192.0.2.7/32"},
		{"[2001:db8:1:2:aaaa::1]:4460", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:4460", "fe80::/64"},
	} {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := sourceOf(a).String(); got != tc.want {
			t.Errorf("sourceOf(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

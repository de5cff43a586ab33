package nts

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/internal/ntske/ntsketest"
	"github.com/ntpkit/ntpkit/server"
)

// faultyListener fails its first fails Accept calls with err, then
// accepts from the listener it wraps.
type faultyListener struct {
	net.Listener
	mu     sync.Mutex
	fails  int
	err    error
	closed atomic.Bool
}

func (l *faultyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, l.err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func (l *faultyListener) Close() error {
	l.closed.Store(true)
	return l.Listener.Close()
}

func emfile() error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

func newTestKE(t *testing.T, logger *slog.Logger) (*KEServer, *ntsketest.PKI) {
	t.Helper()
	pki := ntsketest.New(t)
	keys, _ := NewKeyStore(nil, 0, nil)
	return &KEServer{TLSConfig: pki.ServerConfig(), Keys: keys, Logger: logger}, pki
}

func exchange(pki *ntsketest.PKI, addr string) error {
	cfg := pki.ClientConfig()
	cfg.ServerName = "localhost"
	_, err := ntske.Exchange(context.Background(), addr, cfg, 5*time.Second)
	return err
}

// TestKEAcceptRetriesTemporary checks that accept failing with "too many
// open files" is logged and retried, and the server then serves.
func TestKEAcceptRetriesTemporary(t *testing.T) {
	var logs bytes.Buffer
	ke, pki := newTestKE(t, slog.New(slog.NewTextHandler(&logs, nil)))
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &faultyListener{Listener: inner, fails: 5, err: emfile()}
	done := make(chan error, 1)
	go func() { done <- ke.Serve(context.Background(), ln) }()
	if err := exchange(pki, inner.Addr().String()); err != nil {
		t.Fatalf("exchange after temporary accept errors: %v", err)
	}
	if got := ke.Stats().AcceptErrors; got != 5 {
		t.Errorf("AcceptErrors = %d, want 5", got)
	}
	if !strings.Contains(logs.String(), "too many open files") {
		t.Errorf("accept errors not logged: %q", logs.String())
	}
	if ls := ke.Listeners(); len(ls) != 1 || !ls[0].Serving || ls[0].Err != nil || !ke.Healthy() {
		t.Errorf("Listeners() = %+v after recovery, want one serving", ls)
	}
	ke.Shutdown(context.Background())
	if err := <-done; !errors.Is(err, server.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	if !ln.closed.Load() {
		t.Error("Serve returned without closing its listener")
	}
}

// TestKEAcceptFails checks that a permanent accept error ends Serve with
// that error and leaves the listener reported as not serving.
func TestKEAcceptFails(t *testing.T) {
	ke, _ := newTestKE(t, nil)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	ln := &faultyListener{Listener: inner, fails: 1, err: boom}
	if err := ke.Serve(context.Background(), ln); !errors.Is(err, boom) {
		t.Fatalf("Serve = %v, want boom", err)
	}
	ls := ke.Listeners()
	if len(ls) != 1 || ls[0].Serving || !errors.Is(ls[0].Err, boom) || ke.Healthy() {
		t.Errorf("Listeners() = %+v, Healthy %v; want one dead listener", ls, ke.Healthy())
	}
	if !ln.closed.Load() {
		t.Error("Serve returned without closing its listener")
	}
}

// TestKEServeContract checks what Serve returns and that it closes its
// listener: ctx.Err() when its context ends, ErrServerClosed after Close
// and after Shutdown, also for a Serve called afterwards.
func TestKEServeContract(t *testing.T) {
	listen := func() *faultyListener {
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return &faultyListener{Listener: inner}
	}
	check := func(name string, ln *faultyListener, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Errorf("%s: Serve = %v, want %v", name, err, want)
		}
		if !ln.closed.Load() {
			t.Errorf("%s: listener not closed", name)
		}
	}

	ke, _ := newTestKE(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ln := listen()
	done := make(chan error, 1)
	go func() { done <- ke.Serve(ctx, ln) }()
	cancel()
	check("context canceled", ln, <-done, context.Canceled)
	if ls := ke.Listeners(); len(ls) != 0 {
		t.Errorf("Listeners() after an orderly end = %+v", ls)
	}

	ln = listen()
	go func() { done <- ke.Serve(context.Background(), ln) }()
	for len(ke.Listeners()) == 0 {
		time.Sleep(time.Millisecond) // wait for Serve to register ln
	}
	ke.Close()
	check("Close", ln, <-done, server.ErrServerClosed)
	ln = listen()
	check("Serve after Close", ln, ke.Serve(context.Background(), ln), server.ErrServerClosed)

	ke, _ = newTestKE(t, nil)
	ln = listen()
	go func() { done <- ke.Serve(context.Background(), ln) }()
	for len(ke.Listeners()) == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := ke.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	check("Shutdown", ln, <-done, server.ErrServerClosed)
}

package nts

import (
	"crypto/tls"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntske"
)

// TestKEAcceptEMFILE runs the KE server out of file descriptors for real:
// a client connects while the process is at RLIMIT_NOFILE, so accept
// fails with EMFILE; once descriptors are freed the pending client must
// get its keys and the listener must still be serving.
func TestKEAcceptEMFILE(t *testing.T) {
	ke, pki := newTestKE(t, nil)
	addr := startKE(t, ke)
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	// The client's socket exists before the descriptors run out; it
	// connects after, so the server's accept needs a descriptor it cannot
	// have.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	// Hold descriptors until opening one more fails.
	var hold []*os.File
	release := func() {
		for _, f := range hold {
			f.Close()
		}
		hold = nil
	}
	defer release()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	lim := syscall.Rlimit{Cur: uint64(len(ents) + 64), Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		hold = append(hold, f)
		if len(hold) > 1000 {
			t.Fatal("descriptors did not run out")
		}
	}
	if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		release()
		syscall.Close(fd)
		t.Fatalf("connect: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for ke.Stats().AcceptErrors == 0 {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("accept never failed: %+v", ke.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	release()
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	f := os.NewFile(uintptr(fd), "ke client")
	raw, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()

	cfg := pki.ClientConfig()
	cfg.ServerName = "localhost"
	cfg.NextProtos = []string{ntske.ALPN}
	cfg.MinVersion = tls.VersionTLS13
	tc := tls.Client(raw, cfg)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	var req []byte
	req = ntske.AppendUint16s(req, true, ntske.RecNextProtocol, ntske.ProtocolNTPv4)
	req = ntske.AppendUint16s(req, true, ntske.RecAEAD, ntske.AEADAESSIVCMAC256)
	req = ntske.AppendEnd(req)
	if _, err := tc.Write(req); err != nil {
		t.Fatalf("write after EMFILE: %v", err)
	}
	msg, err := ntske.ReadMessage(tc, nil, 0)
	if err != nil {
		t.Fatalf("read after EMFILE: %v", err)
	}
	if _, err := ntske.ParseResponse(msg); err != nil {
		t.Fatal(err)
	}
	if !ke.Healthy() {
		t.Errorf("listener not serving after EMFILE: %+v", ke.Listeners())
	}
	if err := exchange(pki, addr); err != nil {
		t.Errorf("new client after EMFILE: %v", err)
	}
	t.Logf("stats %+v", ke.Stats())
}

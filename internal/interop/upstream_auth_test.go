package interop

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntske/ntsketest"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server/servertest"
	"github.com/ntpkit/ntpkit/server/symkey"
	"github.com/ntpkit/ntpkit/upstream"
)

// runAuthDiscipliner runs a Discipliner for servers, polling every
// 500 ms, until the test ends, logging to log unless it is nil.
func runAuthDiscipliner(t *testing.T, servers []upstream.Source, log *syncBuffer) *upstream.Discipliner {
	t.Helper()
	o := upstream.Options{MinPoll: 500 * time.Millisecond, MaxPoll: 500 * time.Millisecond}
	if log != nil {
		o.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	d, err := upstream.New(servers, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return d
}

// waitSynced waits up to 20 s for d to synchronise to chronyd and checks
// the reference data: stratum 11 (chronyd's local stratum 10 + 1), refid
// 127.0.0.1, and the served time close to chronyd's (the system clock).
func waitSynced(t *testing.T, d *upstream.Discipliner) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !d.Synchronized() {
		if time.Now().After(deadline) {
			t.Fatalf("not synchronised to chronyd after 20 s: %+v", d.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ref := d.Reference()
	if ref.Stratum != 11 || ref.RefID != ntpwire.RefIDFromAddr(netip.MustParseAddr("127.0.0.1")) || ref.Leap != ntpwire.LeapNone {
		t.Fatalf("reference %+v, want stratum 11, refid 127.0.0.1, no leap", ref)
	}
	if e := time.Until(d.Now()); e.Abs() > 5*time.Millisecond {
		t.Fatalf("disciplined time is %v off chronyd's (the system clock)", e)
	}
}

// TestDisciplinerSyncsToChronydOverNTS: chronyd -x serves NTS with a
// certificate from a test CA; our Discipliner runs NTS-KE with it
// (trusting that CA), polls the NTP port chronyd names, and synchronises
// on authenticated replies only.
func TestDisciplinerSyncsToChronydOverNTS(t *testing.T) {
	pki := ntsketest.New(t)
	ntpPort, kePort := FreeUDPPort(t), freeTCPPort(t)
	StartChronydServer(t, ntpPort,
		fmt.Sprintf("ntsport %d", kePort),
		"ntsserverkey "+pki.KeyFile,
		"ntsservercert "+pki.CertFile,
		"ntsdumpdir "+t.TempDir(),
	)
	keAddr := fmt.Sprintf("127.0.0.1:%d", kePort)
	waitTCP(t, keAddr)
	var log syncBuffer
	d := runAuthDiscipliner(t, []upstream.Source{{Address: keAddr, NTS: true, TLSConfig: pki.ClientConfig()}}, &log)
	waitSynced(t, d)
	// More exchanges than the 8 cookies of the first session: chronyd's
	// fresh cookies must keep the one session going.
	deadline := time.Now().Add(20 * time.Second)
	for d.Status().Sources[0].Samples < 12 {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than 12 samples after 20 s: %+v\n%s", d.Status(), log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := strings.Count(log.String(), "NTS-KE done"); n != 1 {
		t.Fatalf("%d NTS-KE sessions, want 1:\n%s", n, log.String())
	}
	s := d.Status().Sources[0]
	if s.Addr != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ntpPort)) || s.Stratum != 10 || s.Samples == 0 {
		t.Fatalf("source %+v: want chronyd's NTP port from NTS-KE, stratum 10, samples", s)
	}
	if r := s.Rejects; r.Auth != 0 || r.NTSNAK != 0 || r.KEFailed != 0 || r.BadOrigin != 0 || r.Timeout != 0 {
		t.Fatalf("rejects %+v", r)
	}
	t.Logf("synchronised over NTS: %d authenticated samples, offset %v, delay %v", s.Samples, s.Offset, s.Delay)
}

// waitTCP waits up to 10 s for a TCP listener at addr.
func waitTCP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never accepted a connection: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDisciplinerSyncsToChronydWithKey: chronyd -x with a key file
// answers our MACed requests with MACed replies, and our Discipliner
// synchronises with SHA1 and AES128 keys; with a secret chronyd does
// not share it never does.
func TestDisciplinerSyncsToChronydWithKey(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "chrony.keys")
	if err := os.WriteFile(keyFile, []byte(
		"1 SHA1 HEX:933F62BE1D604E68A81B557F18CFA200483F5B70\n"+
			"2 AES128 HEX:6FEA9A2D4C3F7E1A0B9C8D7E6F5A4B3C\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := symkey.LoadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	port := FreeUDPPort(t)
	StartChronydServer(t, port, "keyfile "+keyFile)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitNTP(t, addr)

	for _, id := range []uint32{1, 2} {
		key, _ := keys.Lookup(id)
		t.Run(key.Type.String(), func(t *testing.T) {
			d := runAuthDiscipliner(t, []upstream.Source{{Address: addr, Key: key}}, nil)
			waitSynced(t, d)
			s := d.Status().Sources[0]
			if s.Rejects.Auth != 0 || s.Samples == 0 {
				t.Fatalf("source %+v", s)
			}
			t.Logf("key %d (%v): %d authenticated samples, offset %v", id, key.Type, s.Samples, s.Offset)
		})
	}
	t.Run("wrong key", func(t *testing.T) {
		wrong, err := symkey.NewKey(1, symkey.SHA1, []byte("not chronyd's secret"))
		if err != nil {
			t.Fatal(err)
		}
		d := runAuthDiscipliner(t, []upstream.Source{{Address: addr, Key: wrong}}, nil)
		time.Sleep(4 * time.Second) // eight polls and more
		s := d.Status().Sources[0]
		// chronyd drops requests with a bad MAC: they time out.
		if d.Synchronized() || s.Samples != 0 || s.Reach != 0 || s.Rejects.Timeout+s.Rejects.Auth == 0 {
			t.Fatalf("used chronyd's replies to requests with a wrong key: %+v", s)
		}
		t.Logf("wrong key: rejects %+v", s.Rejects)
	})
}

// waitNTP waits up to 10 s for an NTP server at addr to answer.
func waitNTP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := servertest.Query(addr, time.Second)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no NTP server at %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDaemonSyncsToChronydOverNTSAndKey runs the daemon with two
// authenticated upstreams from its config, chronyd -x over NTS (trusting
// the test CA through nts_trusted_certs) and chronyd -x with a key from
// keys_file, and checks that it serves their time at stratum 11.
func TestDaemonSyncsToChronydOverNTSAndKey(t *testing.T) {
	pki := ntsketest.New(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys")
	if err := os.WriteFile(keyFile, []byte("7 AES128 HEX:6FEA9A2D4C3F7E1A0B9C8D7E6F5A4B3C\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ntsNTP, kePort, macNTP := FreeUDPPort(t), freeTCPPort(t), FreeUDPPort(t)
	StartChronydServer(t, ntsNTP,
		fmt.Sprintf("ntsport %d", kePort),
		"ntsserverkey "+pki.KeyFile,
		"ntsservercert "+pki.CertFile,
		"ntsdumpdir "+t.TempDir(),
	)
	StartChronydServer(t, macNTP, "keyfile "+keyFile)
	waitTCP(t, fmt.Sprintf("127.0.0.1:%d", kePort))

	port := FreeUDPPort(t)
	cfgPath := filepath.Join(dir, "config.json")
	cfg := fmt.Sprintf(`{
  "listen": ["127.0.0.1:%d"], "api": {"listen": ""}, "keys_file": %q,
  "upstream": {"sources": [{"address": "127.0.0.1:%d", "nts": true}, {"address": "127.0.0.1:%d", "key": 7}],
               "nts_trusted_certs": %q, "min_poll": "500ms", "max_poll": "500ms", "min_sources": 2}
}`, port, keyFile, kePort, macNTP, pki.CAFile)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	dm := StartDaemon(t, BuildDaemon(t), "-config", cfgPath)
	dm.WaitLog(t, "msg=serving", 10*time.Second)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := servertest.Query(addr, time.Second)
		if err == nil && r.Stratum == 11 && r.Leap == ntpwire.LeapNone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not synchronised after 20 s (last reply %+v, err %v); log:\n%s", r, err, dm.Stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if log := dm.Stderr.String(); !strings.Contains(log, "NTS-KE done") {
		t.Fatalf("no NTS-KE in the log:\n%s", log)
	}
	dm.Stop(t)
}

package interop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/internal/ntske/ntsketest"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/nts"
	"github.com/ntpkit/ntpkit/server/servertest"
)

// ntsServer runs the library as an NTS server on 127.0.0.1: an NTS-KE
// listener and an NTP server behind nts.Middleware. It returns the KE
// port, the middleware and the KE server.
func ntsServer(t *testing.T, pki *ntsketest.PKI) (int, *nts.Middleware, *nts.KEServer) {
	t.Helper()
	keys, err := nts.NewKeyStore(nil, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	mw := nts.NewMiddleware(keys)
	src := server.NewLocalSource(clock.System{}, 10)
	ts := servertest.NewServer(&server.Server{Source: src, Handler: server.Chain(server.Responder(), mw.Wrap)})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ke := &nts.KEServer{TLSConfig: pki.ServerConfig(), Keys: keys, NTPPort: int(ts.Addr.Port())}
	keDone := make(chan error, 1)
	go func() { keDone <- ke.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ke.Shutdown(ctx)
		if err := <-keDone; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("KE Serve: %v", err)
		}
		if err := ts.Close(); err != nil {
			t.Errorf("NTP Serve: %v", err)
		}
	})
	return ln.Addr().(*net.TCPAddr).Port, mw, ke
}

// TestChronydSyncsOverNTS has chronyd -Q run NTS-KE with our KE server,
// trusting a test CA, and take time from our NTS-protected NTP replies.
func TestChronydSyncsOverNTS(t *testing.T) {
	chronyd := RequireTool(t, "chronyd")
	pki := ntsketest.New(t)
	kePort, mw, ke := ntsServer(t, pki)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, chronyd, chronyArgs("-Q", "-t", "15",
		fmt.Sprintf("server 127.0.0.1 iburst nts ntsport %d maxsamples 4", kePort),
		"ntstrustedcerts "+pki.CAFile,
		"ntsdumpdir "+dir,
		"pidfile "+dir+"/chronyd.pid",
	)...).CombinedOutput()
	m := chronyOffsetRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("chronyd accepted no time (err %v), KE %+v, NTS %+v:\n%s", err, ke.Stats(), mw.Stats(), out)
	}
	t.Logf("chronyd -Q over NTS: %s; KE %+v; NTS %+v", m[0], ke.Stats(), mw.Stats())
	if st := ke.Stats(); st.Served < 1 {
		t.Fatalf("KE stats %+v", st)
	}
	if st := mw.Stats(); st.Authenticated < 1 || st.Cookies < 1 || st.NAKs != 0 {
		t.Fatalf("NTS stats %+v", st)
	}
}

// freeTCPPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestDaemonServesNTSAndMACs runs the standalone daemon with NTS and a
// symmetric key file and has chronyd -Q sync over each.
func TestDaemonServesNTSAndMACs(t *testing.T) {
	chronyd := RequireTool(t, "chronyd")
	pki := ntsketest.New(t)
	dir := t.TempDir()
	ntpPort, kePort := FreeUDPPort(t), freeTCPPort(t)
	keyFile := filepath.Join(dir, "keys")
	os.WriteFile(keyFile, []byte("5 AES128 HEX:6FEA9A2D4C3F7E1A0B9C8D7E6F5A4B3C\n"), 0o600)
	seedFile := filepath.Join(dir, "seed")
	os.WriteFile(seedFile, []byte("0123456789abcdef0123456789abcdef-fleet"), 0o600)
	cfgFile := filepath.Join(dir, "config.json")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`{
		"listen": ["127.0.0.1:%d"], "api": {"listen": ""}, "keys_file": %q,
		"nts": {"enabled": true, "listen": "127.0.0.1:%d", "cert_file": %q, "key_file": %q, "key_seed_file": %q}
	}`, ntpPort, keyFile, kePort, pki.CertFile, pki.KeyFile, seedFile)), 0o600)
	d := StartDaemon(t, BuildDaemon(t), "-config", cfgFile) // with the API on a free port
	d.WaitLog(t, "nts-ke listening", 10*time.Second)
	api := d.APIURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	chrony := func(name, caFile string) {
		t.Helper()
		args := map[string][]string{
			"nts": {fmt.Sprintf("server 127.0.0.1 iburst nts ntsport %d maxsamples 4", kePort), "ntstrustedcerts " + caFile, "ntsdumpdir " + t.TempDir()},
			"mac": {fmt.Sprintf("server 127.0.0.1 port %d iburst key 5 maxsamples 4", ntpPort), "keyfile " + keyFile},
		}[name]
		args = append([]string{"-Q", "-t", "15", "pidfile " + filepath.Join(dir, name+".pid")}, args...)
		out, err := exec.CommandContext(ctx, chronyd, chronyArgs(args...)...).CombinedOutput()
		if m := chronyOffsetRE.FindSubmatch(out); m == nil {
			t.Fatalf("%s: chronyd accepted no time (err %v):\n%s\ndaemon log:\n%s", name, err, out, d.Stderr.String())
		} else {
			t.Logf("%s: %s", name, m[0])
		}
	}
	chrony("nts", pki.CAFile)
	chrony("mac", "")

	// The authentication counters show in /v1/stats and /metrics.
	var stats struct {
		Auth struct {
			NTS struct{ Authenticated, Cookies uint64 } `json:"nts"`
			KE  struct{ Served uint64 }                 `json:"nts_ke"`
			MAC struct{ Authenticated uint64 }          `json:"mac"`
		} `json:"auth"`
	}
	getJSON(t, api+"/v1/stats", "", &stats)
	if a := stats.Auth; a.NTS.Authenticated == 0 || a.NTS.Cookies == 0 || a.KE.Served == 0 || a.MAC.Authenticated == 0 {
		t.Fatalf("auth stats do not count the sessions: %+v", a)
	}
	_, _, metrics := apiGet(t, api+"/metrics", "")
	if v := metricValue(t, string(metrics), `ntpkit_nts_requests_total{result="authenticated"}`); v != float64(stats.Auth.NTS.Authenticated) {
		t.Errorf("metrics say %v NTS requests authenticated, stats %d", v, stats.Auth.NTS.Authenticated)
	}
	if v := metricValue(t, string(metrics), `ntpkit_mac_requests_total{result="authenticated"}`); v == 0 {
		t.Error("metrics count no MAC-authenticated request")
	}

	// SIGHUP re-reads the certificate: a certificate from a new CA
	// replaces the old one, and clients trusting only the new CA sync.
	pki2 := ntsketest.New(t)
	for src, dst := range map[string]string{pki2.CertFile: pki.CertFile, pki2.KeyFile: pki.KeyFile} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d.Signal(t, syscall.SIGHUP)
	d.WaitLog(t, "nts certificate reloaded", 10*time.Second)
	chrony("nts", pki2.CAFile)

	// A broken certificate is refused and the one in force keeps serving.
	if err := os.WriteFile(pki.CertFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.Signal(t, syscall.SIGHUP)
	d.WaitLog(t, `msg="config reload refused" reason="daemon: NTS certificate`, 10*time.Second)
	chrony("nts", pki2.CAFile)
	d.Stop(t)
}

// TestNTSClientAgainstOurServer runs the ntske client (what the upstream
// Discipliner would use) against the library's NTS server.
func TestNTSClientAgainstOurServer(t *testing.T) {
	pki := ntsketest.New(t)
	kePort, mw, _ := ntsServer(t, pki)
	ntsQuery(t, pki, fmt.Sprintf("127.0.0.1:%d", kePort), "127.0.0.1")
	if st := mw.Stats(); st.Authenticated < 3 {
		t.Fatalf("NTS stats %+v", st)
	}
}

// ntsQuery runs NTS-KE with keAddr, then three authenticated NTP
// exchanges, and checks the time and the cookie supply.
func ntsQuery(t *testing.T, pki *ntsketest.PKI, keAddr, serverName string) {
	t.Helper()
	cfg := pki.ClientConfig()
	cfg.ServerName = serverName
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sess, err := ntske.Exchange(ctx, keAddr, cfg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("KE: %d cookies of %d bytes, NTP server %s", len(sess.Cookies), len(sess.Cookies[0]), sess.Address())
	conn, err := net.Dial("udp", sess.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 3 {
		qctx, qcancel := context.WithTimeout(ctx, 2*time.Second)
		res, err := sess.Query(qctx, conn, nil)
		qcancel()
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		t2, t3 := res.Reply.RecvTime.In(res.Sent), res.Reply.XmitTime.In(res.Sent)
		offset := (t2.Sub(res.Sent) + t3.Sub(res.Received)) / 2
		if offset.Abs() > 50*time.Millisecond {
			t.Fatalf("query %d: offset %v", i, offset)
		}
		if len(sess.Cookies) != 8 {
			t.Fatalf("query %d: %d cookies after the reply, want 8", i, len(sess.Cookies))
		}
		t.Logf("query %d: stratum %d, offset %v", i, res.Reply.Stratum, offset)
	}
}

// TestNTSClientAgainstChronyd runs the ntske client against chronyd -x
// serving NTS with the test certificate.
func TestNTSClientAgainstChronyd(t *testing.T) {
	pki := ntsketest.New(t)
	dir := t.TempDir()
	ntpPort, kePort := FreeUDPPort(t), freeTCPPort(t)
	log := StartChronydServer(t, ntpPort,
		fmt.Sprintf("ntsport %d", kePort),
		"ntsserverkey "+pki.KeyFile,
		"ntsservercert "+pki.CertFile,
		"ntsdumpdir "+dir,
	)
	// Wait for the KE port.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", kePort))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chronyd's NTS-KE port never opened:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ntsQuery(t, pki, fmt.Sprintf("127.0.0.1:%d", kePort), "localhost")
	if t.Failed() {
		t.Log(log.String())
	}
}

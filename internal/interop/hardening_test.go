package interop

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/internal/ntske/ntsketest"
)

// TestDaemonRefusesTakenPort starts the daemon, then a second one on the
// same address: the second must exit with an error saying the address is
// in use, instead of joining the first one's SO_REUSEPORT group and taking
// part of its traffic; the first must keep serving.
func TestDaemonRefusesTakenPort(t *testing.T) {
	bin := BuildDaemon(t)
	port := FreeUDPPort(t)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	first := StartDaemon(t, bin, "-listen", listen, "-stratum", "4")
	first.WaitLog(t, "msg=serving", 10*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-api", "127.0.0.1:0", "-listen", listen, "-stratum", "9").CombinedOutput()
	if err == nil {
		t.Fatalf("second daemon on %s started:\n%s", listen, out)
	}
	if !strings.Contains(string(out), "already in use") {
		t.Errorf("second daemon's error does not say the address is in use:\n%s", out)
	}
	first.Stop(t)
}

// TestDaemonNTSKEUnderIdleFlood runs the daemon with NTS and holds idle
// TCP connections to its NTS-KE port from two loopback addresses, more
// than its 128 session slots, while a real client on a third address runs
// six key exchanges with a 3 s timeout: every one must succeed.
func TestDaemonNTSKEUnderIdleFlood(t *testing.T) {
	pki := ntsketest.New(t)
	dir := t.TempDir()
	ntpPort, kePort := FreeUDPPort(t), freeTCPPort(t)
	cfgFile := filepath.Join(dir, "config.json")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`{
		"listen": ["127.0.0.1:%d"],
		"nts": {"enabled": true, "listen": "127.0.0.1:%d", "cert_file": %q, "key_file": %q}
	}`, ntpPort, kePort, pki.CertFile, pki.KeyFile)), 0o600)
	d := StartDaemon(t, BuildDaemon(t), "-config", cfgFile)
	d.WaitLog(t, "nts-ke listening", 10*time.Second)
	keAddr := fmt.Sprintf("127.0.0.1:%d", kePort)

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for _, from := range []string{"127.0.0.2", "127.0.0.3"} {
		dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: time.Second}
		for range 200 {
			c, err := dialer.Dial("tcp", keAddr)
			if err != nil {
				continue
			}
			conns = append(conns, c)
		}
	}
	t.Logf("%d idle connections open", len(conns))
	cfg := pki.ClientConfig()
	cfg.ServerName = "localhost"
	ok := 0
	for range 6 {
		if _, err := ntske.Exchange(context.Background(), keAddr, cfg, 3*time.Second); err != nil {
			t.Logf("exchange: %v", err)
			continue
		}
		ok++
	}
	if ok != 6 {
		t.Errorf("a real client got keys %d of 6 times during an idle flood", ok)
	}
	// The listener's liveness is part of the status and the metrics.
	resp, err := http.Get(d.APIURL(t) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`ntpkit_listener_up{kind="nts-ke",addr="%s"} 1`, keAddr); !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s", want)
	}
	d.Stop(t)
}

// TestDaemonAPIRefusesRebindingAndOpenExposure checks the built daemon's
// management API: a request carrying another name in Host, as a browser
// sends after DNS rebinding, gets 421; the daemon refuses to start with
// the API on every interface and no token.
func TestDaemonAPIRefusesRebindingAndOpenExposure(t *testing.T) {
	bin := BuildDaemon(t)
	port := FreeUDPPort(t)
	d := StartDaemon(t, bin, "-listen", fmt.Sprintf("127.0.0.1:%d", port))
	api := d.APIURL(t)
	get := func(host string) int {
		req, err := http.NewRequest(http.MethodGet, api+"/v1/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("rebind.attacker.example"); got != http.StatusMisdirectedRequest {
		t.Errorf("Host rebind.attacker.example: %d, want 421", got)
	}
	if got := get(strings.TrimPrefix(api, "http://")); got != http.StatusOK {
		t.Errorf("Host %s: %d, want 200", api, got)
	}
	d.Stop(t)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-api", "0.0.0.0:0", "-listen", fmt.Sprintf("127.0.0.1:%d", port)).CombinedOutput()
	// The address came from the -api flag, so the error names the flag.
	if err == nil || !strings.Contains(string(out), "flag -api") || !strings.Contains(string(out), "allow_no_token") {
		t.Errorf("daemon with the API on 0.0.0.0 and no token: err %v, output:\n%s", err, out)
	}
}

package interop

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests run the daemon with access-control and rate-limit settings
// in its configuration and query it with ntpdig, a real client, on port
// 123 (ntpdig has no port option). ntpdig -ddd dumps the packets it
// receives, so the test sees the kiss code itself, and it reports a
// kiss-o'-death as "Response dropped: stratum 0, probable KOD packet".

const ntpdigKoD = "probable KOD packet"

// startPolicyDaemon writes cfg to a file and runs the daemon with it.
func startPolicyDaemon(t *testing.T, cfg string) (*Daemon, string) {
	t.Helper()
	RequireTool(t, "ntpdig")
	RequireRoot(t)
	bin := BuildDaemon(t)
	path := filepath.Join(t.TempDir(), "ntpkit.json")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	d := StartDaemon(t, bin, "-config", path)
	d.WaitLog(t, "msg=serving", 10*time.Second)
	return d, path
}

// ntpdigDump runs ntpdig with packet dumps against 127.0.0.1:123.
func ntpdigDump(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, out, _ := Ntpdig(ctx, t, "127.0.0.1", "-4", "-ddd")
	return out
}

func TestDaemonDeniesNtpdigWithKoD(t *testing.T) {
	d, path := startPolicyDaemon(t, `{
		"listen": ["127.0.0.1:123"],
		"api": {"listen": ""},
		"access": {"allow": ["all"], "deny": ["127.0.0.1"], "kiss": true, "kiss_code": "DENY"}
	}`)
	out := ntpdigDump(t)
	if !strings.Contains(out, ntpdigKoD) || !strings.Contains(out, "DENY") {
		t.Fatalf("ntpdig did not see a KoD DENY:\n%s", out)
	}

	// Reload (SIGHUP) with silent drops: ntpdig now hears nothing.
	silent := `{"listen": ["127.0.0.1:123"], "api": {"listen": ""},
		"access": {"allow": ["all"], "deny": ["127.0.0.1"], "kiss": false}}`
	if err := os.WriteFile(path, []byte(silent), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Cmd.Process.Signal(syscall.SIGHUP)
	d.WaitLog(t, "config reloaded", 10*time.Second)
	out = ntpdigDump(t)
	if strings.Contains(out, ntpdigKoD) || !strings.Contains(out, "no eligible servers") {
		t.Fatalf("ntpdig got an answer from a server that drops it silently:\n%s", out)
	}

	// And allowing it again serves it time.
	allow := `{"listen": ["127.0.0.1:123"], "api": {"listen": ""}, "access": {"deny": ["192.0.2.0/24"]}}`
	if err := os.WriteFile(path, []byte(allow), 0o644); err != nil {
		t.Fatal(err)
	}
	d.Cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(10 * time.Second); strings.Count(d.Stderr.String(), "config reloaded") < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("second reload not logged:\n%s", d.Stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, out, err := Ntpdig(ctx, t, "127.0.0.1", "-4")
	if err != nil || res.Stratum == 0 {
		t.Fatalf("allowed again, ntpdig got no time (%v):\n%s", err, out)
	}
	d.Stop(t)
}

func TestDaemonRateLimitsNtpdigWithKoD(t *testing.T) {
	d, _ := startPolicyDaemon(t, `{
		"listen": ["127.0.0.1:123"],
		"api": {"listen": ""},
		"rate_limit": {"enabled": true, "interval": "1h", "burst": 2, "leak": 0, "kiss": true, "kiss_per_second": 10}
	}`)
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		res, out, err := Ntpdig(ctx, t, "127.0.0.1", "-4")
		cancel()
		if err != nil || res.Stratum == 0 {
			t.Fatalf("request %d, within the burst, got no time (%v):\n%s", i+1, err, out)
		}
	}
	out := ntpdigDump(t)
	if !strings.Contains(out, ntpdigKoD) || !strings.Contains(out, "RATE") {
		t.Fatalf("ntpdig over its limit did not see a KoD RATE:\n%s", out)
	}
	d.Stop(t)
}

package interop

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BuildDaemon builds examples/standalone into a temporary directory and
// returns the binary's path.
func BuildDaemon(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "standalone")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/ntpkit/ntpkit/examples/standalone")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build daemon: %v\n%s", err, out)
	}
	return bin
}

// FreeUDPPort returns a UDP port on 127.0.0.1 and ::1 that was free a
// moment ago.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if c6, err := net.ListenPacket("udp6", fmt.Sprintf("[::1]:%d", port)); err == nil {
			c6.Close()
			return port
		}
	}
	t.Fatal("no free UDP port")
	return 0
}

// Daemon is a running standalone process.
type Daemon struct {
	Cmd    *exec.Cmd
	Stderr *syncBuffer
}

// StartDaemon runs bin with args and stops it at cleanup. Unless args
// choose the management API's address with -api, the API listens on a
// free loopback port (see APIURL), so daemons never fight over the
// default 127.0.0.1:8080.
func StartDaemon(t testing.TB, bin string, args ...string) *Daemon {
	t.Helper()
	if !slices.ContainsFunc(args, func(a string) bool {
		return a == "-api" || a == "--api" || strings.HasPrefix(a, "-api=") || strings.HasPrefix(a, "--api=")
	}) {
		args = append([]string{"-api", "127.0.0.1:0"}, args...)
	}
	d := &Daemon{Cmd: exec.Command(bin, args...), Stderr: &syncBuffer{}}
	d.Cmd.Stderr = d.Stderr
	d.Cmd.Stdout = d.Stderr
	if err := d.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.Cmd.ProcessState == nil {
			d.Cmd.Process.Kill()
			d.Cmd.Wait()
		}
	})
	return d
}

// WaitLog waits until the daemon's log contains s.
func (d *Daemon) WaitLog(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(d.Stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not log %q within %v; log:\n%s", s, timeout, d.Stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// apiListeningRE matches the daemon's log line giving the API's address.
var apiListeningRE = regexp.MustCompile(`msg="api listening" addr=(\S+)`)

// APIURL waits for the daemon's management API and returns its base URL,
// such as http://127.0.0.1:41234.
func (d *Daemon) APIURL(t testing.TB) string {
	t.Helper()
	d.WaitLog(t, `msg="api listening"`, 10*time.Second)
	m := apiListeningRE.FindStringSubmatch(d.Stderr.String())
	if m == nil {
		t.Fatalf("no API address in the log:\n%s", d.Stderr.String())
	}
	return "http://" + m[1]
}

// CountLog returns how many times the daemon's log contains s.
func (d *Daemon) CountLog(s string) int { return strings.Count(d.Stderr.String(), s) }

// WaitLogCount waits until the daemon's log contains s at least n times.
func (d *Daemon) WaitLogCount(t testing.TB, s string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for d.CountLog(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not log %q %d times within %v; log:\n%s", s, n, timeout, d.Stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Signal sends sig to the daemon.
func (d *Daemon) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := d.Cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// Stop sends SIGTERM and waits for a clean exit.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	d.Cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.Cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("daemon exited with %v; log:\n%s", err, d.Stderr.String())
		}
	case <-time.After(10 * time.Second):
		d.Cmd.Process.Kill()
		t.Fatalf("daemon did not stop on SIGTERM; log:\n%s", d.Stderr.String())
	}
}

func TestDaemonServesChronyd(t *testing.T) {
	RequireTool(t, "chronyd")
	bin := BuildDaemon(t)
	port := FreeUDPPort(t)
	d := StartDaemon(t, bin, "-listen", fmt.Sprintf("127.0.0.1:%d,[::1]:%d", port, port), "-stratum", "4")
	d.WaitLog(t, "msg=serving", 10*time.Second)
	for _, host := range []string{"127.0.0.1", "::1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		off, out, err := ChronyQuery(ctx, t, host, port)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if off.Abs() > maxOffset {
			t.Fatalf("%s: offset %v, want under %v:\n%s", host, off, maxOffset, out)
		}
	}
	d.Stop(t)
	if log := d.Stderr.String(); !strings.Contains(log, "msg=stopped") {
		t.Fatalf("no clean stop in the log:\n%s", log)
	}
}

func TestDaemonRefusesBadConfig(t *testing.T) {
	bin := BuildDaemon(t)
	cfg := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(cfg, []byte(`{"local": {"stratum": 99}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-config", cfg).CombinedOutput()
	if err == nil {
		t.Fatalf("daemon started with a bad config:\n%s", out)
	}
	if !strings.Contains(string(out), "local.stratum") {
		t.Fatalf("error does not name the field:\n%s", out)
	}
}

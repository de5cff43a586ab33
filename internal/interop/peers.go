package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireTool returns the path of the named program. When it is missing
// the test is skipped, or failed when the CI environment variable is set:
// CI must run every interop test.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; CI needs it (bash internal/scripts/test.sh installs it)", name)
		}
		t.Skipf("%s is not installed: %v", name, err)
	}
	return path
}

// RequireRoot skips (or fails in CI) a test that needs root, such as one
// binding port 123 for ntpdig, which has no port option.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root (to bind port 123) and CI must run it")
		}
		t.Skip("needs root to bind port 123")
	}
}

var chronyOffsetRE = regexp.MustCompile(`System clock wrong by (-?[0-9.]+) seconds`)

// ChronyQuery runs `chronyd -Q` against host:port, which never touches
// the system clock, and returns the offset chronyd measured, or an error
// with chronyd's output when it accepted no time.
func ChronyQuery(ctx context.Context, t testing.TB, host string, port int, extra ...string) (time.Duration, string, error) {
	t.Helper()
	chronyd := RequireTool(t, "chronyd")
	dir := t.TempDir()
	args := []string{"-Q", "-t", "10",
		fmt.Sprintf("server %s port %d iburst maxsamples 4", host, port),
		"pidfile " + dir + "/chronyd.pid",
	}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, chronyd, args...)
	out, err := cmd.CombinedOutput()
	m := chronyOffsetRE.FindSubmatch(out)
	if m == nil {
		return 0, string(out), fmt.Errorf("chronyd accepted no time (err %v):\n%s", err, out)
	}
	secs, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return 0, string(out), err
	}
	return time.Duration(secs * float64(time.Second)), string(out), nil
}

// NtpdigResult is ntpdig's JSON output.
type NtpdigResult struct {
	Offset    float64 `json:"offset"`
	Precision float64 `json:"precision"`
	Host      string  `json:"host"`
	Stratum   int     `json:"stratum"`
	Leap      string  `json:"leap"`
	Adjusted  bool    `json:"adjusted"`
}

// Ntpdig queries host on port 123 with ntpdig (never -S or -s, so it does
// not touch the clock) and returns its JSON report.
func Ntpdig(ctx context.Context, t testing.TB, host string, extra ...string) (NtpdigResult, string, error) {
	t.Helper()
	ntpdig := RequireTool(t, "ntpdig")
	args := append([]string{"-j", "-t", "3"}, extra...)
	args = append(args, host)
	out, err := exec.CommandContext(ctx, ntpdig, args...).CombinedOutput()
	var res NtpdigResult
	line := bytes.TrimSpace(out)
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	if jerr := json.Unmarshal(line, &res); jerr != nil {
		return res, string(out), fmt.Errorf("ntpdig gave no JSON result (err %v): %s", err, out)
	}
	return res, string(out), nil
}

// StartChronydServer runs chronyd -x (it never touches the system clock)
// as a stratum-10 server of its local clock on 127.0.0.1:port, loopback
// clients only, with a config of its own in a temporary directory plus
// the extra directives (NTS or key file settings). It never reads
// Debian's default configuration. It is stopped at cleanup, with its log
// shown if the test failed; the log is returned.
func StartChronydServer(t *testing.T, port int, extra ...string) *syncBuffer {
	t.Helper()
	chronyd := RequireTool(t, "chronyd")
	dir := t.TempDir()
	lines := append([]string{
		fmt.Sprintf("port %d", port),
		"bindaddress 127.0.0.1",
		"allow 127.0.0.1",
		"local stratum 10",
		"cmdport 0",
		"pidfile " + filepath.Join(dir, "chronyd.pid"),
	}, extra...)
	return runChronyd(t, chronyd, dir, lines)
}

// runChronyd writes lines as chrony.conf in dir and runs chronyd -x -d
// on it (never Debian's configuration). chronyd is stopped at cleanup,
// with its log shown if the test failed; the log is returned.
func runChronyd(t *testing.T, chronyd, dir string, lines []string) *syncBuffer {
	t.Helper()
	conf := filepath.Join(dir, "chrony.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chronyd, chronyArgs("-x", "-d", "-f", conf)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("chronyd log:\n%s", out.String())
		}
	})
	return out
}

// chronyArgs prepends "-u root" when running as root: chronyd would
// otherwise drop to its own user, which cannot read the test's private
// temporary files (certificates, key files).
func chronyArgs(args ...string) []string {
	if os.Geteuid() == 0 {
		return append([]string{"-u", "root"}, args...)
	}
	return args
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads: a
// child process writes its output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
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

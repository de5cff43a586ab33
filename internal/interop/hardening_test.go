package interop

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
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

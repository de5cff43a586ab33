package ops_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/kernelsync"
	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/ops"
)

// /healthz, /v1/status and /metrics report a simulated kernel that says
// the system clock is unsynchronised.
func TestKernelStateInAPI(t *testing.T) {
	unsynced := kernelsync.ReaderFunc(func() (kernelsync.State, error) {
		return kernelsync.State{ClockState: kernelsync.StateError, Status: kernelsync.StatusUnsync,
			MaxError: 16 * time.Second, EstError: 16 * time.Second}, nil
	})
	d, err := daemon.New(daemon.Options{Listen: []string{"127.0.0.1:0"}, Local: daemon.Local{Kernel: unsynced}})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(ops.Handler(d, ops.Options{}))
	defer web.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(web.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	// Not serving yet: the daemon was not Run, so health is 503 either
	// way; the reason given by Status is the kernel's.
	var st ops.Status
	code, body := get("/v1/status")
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("/v1/status: %d %s", code, body)
	}
	want := ops.Kernel{Known: true, ClockState: "TIME_ERROR", Status: 0x40, MaxErrorSeconds: 16, EstimatedErrorSeconds: 16}
	if st.Kernel != want || st.Synchronized || !strings.Contains(st.SyncReason, "kernel reports the system clock unsynchronized") {
		t.Errorf("/v1/status kernel %+v synchronized %v reason %q", st.Kernel, st.Synchronized, st.SyncReason)
	}
	if !strings.Contains(body, `"max_error_seconds": 16,`) {
		t.Errorf("/v1/status lacks max_error_seconds in seconds: %s", body)
	}
	_, metrics := get("/metrics")
	for _, line := range []string{"ntpkit_kernel_synchronized 0", "ntpkit_kernel_max_error_seconds 16", "ntpkit_synchronized 0"} {
		if !strings.Contains(metrics, "\n"+line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

package ops

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ntpkit/ntpkit/server/daemon"
)

// TestHealthReportsDeadListener checks that a listener that stopped
// accepting (the NTS-KE one after "too many open files", say) turns
// /healthz to 503 naming it, and shows in /metrics and /v1/status.
func TestHealthReportsDeadListener(t *testing.T) {
	ls := []daemon.Listener{
		{Kind: "ntp", Addr: "127.0.0.1:123", Serving: true},
		{Kind: "nts-ke", Addr: "127.0.0.1:4460", Err: "accept tcp 127.0.0.1:4460: accept4: too many open files"},
	}
	f := &fake{
		h:  daemon.Health{Serving: true, Synchronized: true, Listeners: ls},
		st: daemon.Status{Serving: true, Synchronized: true, Listeners: ls},
	}
	h := Handler(f, Options{})
	rec := get(t, h, "/healthz", "")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "nts-ke listener 127.0.0.1:4460 not serving: accept tcp") {
		t.Errorf("/healthz: %d %q, want 503 naming the NTS-KE listener", rec.Code, rec.Body.String())
	}
	m := get(t, h, "/metrics", "").Body.String()
	for _, want := range []string{
		`ntpkit_listener_up{kind="ntp",addr="127.0.0.1:123"} 1`,
		`ntpkit_listener_up{kind="nts-ke",addr="127.0.0.1:4460"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if s := get(t, h, "/v1/status", "").Body.String(); !strings.Contains(s, `"too many open files`) && !strings.Contains(s, `too many open files"`) {
		t.Errorf("/v1/status does not show the listener's error:\n%s", s)
	}
	ls[1].Serving, ls[1].Err = true, ""
	if rec := get(t, h, "/healthz", ""); rec.Code != http.StatusOK {
		t.Errorf("/healthz with every listener serving: %d %q", rec.Code, rec.Body.String())
	}
}

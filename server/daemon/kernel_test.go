package daemon

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/clock/kernelsync"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
)

// simKernel is a simulated kernel whose state the test changes.
type simKernel struct {
	mu sync.Mutex
	s  kernelsync.State
}

func (k *simKernel) Read() (kernelsync.State, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.s, nil
}

func (k *simKernel) set(s kernelsync.State) {
	k.mu.Lock()
	k.s = s
	k.mu.Unlock()
}

var (
	kernelUnsynced = kernelsync.State{ClockState: kernelsync.StateError, Status: kernelsync.StatusUnsync,
		MaxError: 16 * time.Second, EstError: 16 * time.Second}
	kernelSynced = kernelsync.State{Synchronized: true, MaxError: 3 * time.Millisecond, EstError: 40 * time.Microsecond}
)

// Health, Status and the replies follow the kernel's state of the system
// clock, for both policies.
func TestHealthFollowsKernel(t *testing.T) {
	for _, policy := range []server.UnsyncPolicy{server.ServeLocalClock, server.AnnounceUnsynchronized} {
		t.Run(policy.String(), func(t *testing.T) {
			clk := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
			k := &simKernel{s: kernelSynced}
			d, err := New(Options{
				Listen: []string{"127.0.0.1:0"},
				Local:  Local{Kernel: k, WhenUnsynchronized: policy},
				Tuning: Tuning{Sockets: 1},
				Clock:  clk,
			})
			if err != nil {
				t.Fatal(err)
			}
			stop := start(t, d)
			defer stop()
			addr := d.Status().Listen[0]

			if h := d.Health(); !h.OK() {
				t.Errorf("synced kernel: health %+v", h)
			}
			if st := d.Status(); st.Kernel == nil || *st.Kernel != kernelSynced || st.KernelError != "" {
				t.Errorf("synced kernel: status kernel %+v %q", st.Kernel, st.KernelError)
			}
			if rep := exchange(t, addr); rep.Stratum != server.DefaultLocalStratum || rep.RootDispersion != ntpwire.ShortOf(3*time.Millisecond) {
				t.Errorf("synced kernel: reply stratum %d root dispersion %v, want 10 and the kernel's 3ms max error", rep.Stratum, rep.RootDispersion.Duration())
			}

			k.set(kernelUnsynced)
			clk.Advance(time.Second) // the source reads the kernel once a second
			h := d.Health()
			if h.OK() || h.Synchronized || !h.Serving {
				t.Errorf("unsynced kernel: health %+v, want serving but not synchronized", h)
			}
			if !strings.Contains(h.Reason, "kernel reports the system clock unsynchronized (TIME_ERROR, max error 16s)") {
				t.Errorf("unsynced kernel: reason %q", h.Reason)
			}
			rep := exchange(t, addr)
			switch policy {
			case server.ServeLocalClock:
				if rep.Stratum != server.DefaultLocalStratum || rep.Leap != ntpwire.LeapNone || !strings.Contains(h.Reason, "served as a local clock anyway") {
					t.Errorf("serve policy: reply leap %v stratum %d, reason %q", rep.Leap, rep.Stratum, h.Reason)
				}
			case server.AnnounceUnsynchronized:
				if rep.Stratum != ntpwire.MaxStratum || rep.Leap != ntpwire.LeapAlarm || !strings.Contains(h.Reason, "replies say unsynchronized") {
					t.Errorf("unsynchronized policy: reply leap %v stratum %d, reason %q", rep.Leap, rep.Stratum, h.Reason)
				}
			}
			if st := d.Status(); st.Synchronized || st.Kernel == nil || st.Kernel.Synchronized {
				t.Errorf("unsynced kernel: status synchronized %v kernel %+v", st.Synchronized, st.Kernel)
			}

			k.set(kernelSynced)
			clk.Advance(time.Second)
			if h := d.Health(); !h.OK() {
				t.Errorf("kernel synced again: health %+v", h)
			}
		})
	}
}

func TestUnknownUnsyncPolicyRefused(t *testing.T) {
	_, err := New(Options{Listen: []string{"127.0.0.1:0"}, Local: Local{WhenUnsynchronized: 7}})
	if err == nil || !strings.Contains(err.Error(), "WhenUnsynchronized") {
		t.Errorf("New: %v, want an error naming WhenUnsynchronized", err)
	}
}

package server_test

import (
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/clock/kernelsync"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/servertest"
)

// simKernel is a simulated kernel whose state a test sets, counting reads.
type simKernel struct {
	mu    sync.Mutex
	state kernelsync.State
	err   error
	reads int
}

func (k *simKernel) Read() (kernelsync.State, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.reads++
	return k.state, k.err
}

func (k *simKernel) set(s kernelsync.State, err error) {
	k.mu.Lock()
	k.state, k.err = s, err
	k.mu.Unlock()
}

var (
	kernelUnsynced = kernelsync.State{ClockState: kernelsync.StateError, Status: kernelsync.StatusUnsync,
		MaxError: 16 * time.Second, EstError: 16 * time.Second}
	kernelSynced = kernelsync.State{Synchronized: true, MaxError: 2 * time.Millisecond, EstError: 50 * time.Microsecond}
)

// serve answers one client request with src's reference data, as a
// Server does, and returns the reply.
func serve(t *testing.T, src server.Source, now time.Time) ntpwire.Packet {
	t.Helper()
	req := servertest.NewRequest(servertest.ClientPacket(now), netip.MustParseAddrPort("192.0.2.1:123"), now, nil)
	req.Reference = src.Reference()
	var w servertest.Recorder
	w.Reset(req)
	server.Responder().ServeNTP(&w, req)
	if !w.Replied {
		t.Fatal("no reply")
	}
	return w.Packet
}

func TestLocalSourceKernel(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	type hdr struct {
		Leap           ntpwire.Leap
		Stratum        uint8
		RootDispersion ntpwire.Short
	}
	ms := func(n int) ntpwire.Short { return ntpwire.ShortOf(time.Duration(n) * time.Millisecond) }
	configured := hdr{ntpwire.LeapNone, 10, ms(1)}
	tests := []struct {
		name   string
		policy server.UnsyncPolicy
		state  kernelsync.State
		err    error
		want   hdr
	}{
		{"unsynced, serve local clock", server.ServeLocalClock, kernelUnsynced, nil, configured},
		{"unsynced, announce", server.AnnounceUnsynchronized, kernelUnsynced, nil, hdr{ntpwire.LeapAlarm, ntpwire.MaxStratum, ms(1)}},
		{"synced, announce policy unused", server.AnnounceUnsynchronized, kernelSynced, nil, hdr{ntpwire.LeapNone, 10, ms(2)}},
		{"synced, small max error keeps own dispersion", server.ServeLocalClock,
			kernelsync.State{Synchronized: true, MaxError: 100 * time.Microsecond}, nil, configured},
		{"synced, leap insert scheduled", server.ServeLocalClock,
			kernelsync.State{Synchronized: true, ClockState: kernelsync.StateInsert, Status: kernelsync.StatusInsert, MaxError: 3 * time.Millisecond}, nil,
			hdr{ntpwire.LeapInsert, 10, ms(3)}},
		{"synced, leap delete scheduled", server.ServeLocalClock,
			kernelsync.State{Synchronized: true, Status: kernelsync.StatusDelete}, nil,
			hdr{ntpwire.LeapDelete, 10, ms(1)}},
		{"unknown state serves as configured", server.AnnounceUnsynchronized, kernelsync.State{}, errors.ErrUnsupported, configured},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := server.NewLocalSource(clocktest.New(t0), 10)
			src.RootDispersion = time.Millisecond
			src.Kernel = &simKernel{state: tt.state, err: tt.err}
			src.WhenUnsynchronized = tt.policy
			p := serve(t, src, t0)
			got := hdr{p.Leap, p.Stratum, p.RootDispersion}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("reply header (-want +got):\n%s", diff)
			}
			if want := tt.state.Synchronized || tt.err != nil || tt.policy == server.ServeLocalClock; src.Reference().Synchronized() != want {
				t.Errorf("Reference().Synchronized() = %v, want %v", !want, want)
			}
		})
	}
}

// The kernel is read once per second of the source's clock, and a change
// of the kernel's state shows in the next second.
func TestLocalSourceKernelFollowsChanges(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	fake := clocktest.New(t0)
	k := &simKernel{state: kernelSynced}
	src := server.NewLocalSource(fake, 0)
	src.Kernel = k
	src.WhenUnsynchronized = server.AnnounceUnsynchronized
	for range 100 {
		if p := serve(t, src, fake.Now()); p.Stratum != server.DefaultLocalStratum {
			t.Fatalf("synced kernel: stratum %d", p.Stratum)
		}
	}
	if k.reads != 1 {
		t.Errorf("%d kernel reads in one second, want 1", k.reads)
	}
	k.set(kernelUnsynced, nil)
	fake.Advance(time.Second)
	if p := serve(t, src, fake.Now()); p.Stratum != ntpwire.MaxStratum || p.Leap != ntpwire.LeapAlarm {
		t.Errorf("after the kernel lost sync: leap %v stratum %d, want alarm and 16", p.Leap, p.Stratum)
	}
	k.set(kernelSynced, nil)
	fake.Advance(time.Second)
	if p := serve(t, src, fake.Now()); p.Stratum != server.DefaultLocalStratum || p.Leap != ntpwire.LeapNone {
		t.Errorf("after the kernel regained sync: leap %v stratum %d", p.Leap, p.Stratum)
	}
	if k.reads != 3 {
		t.Errorf("%d kernel reads over three seconds, want 3", k.reads)
	}
}

func TestUnsyncPolicyString(t *testing.T) {
	for p, want := range map[server.UnsyncPolicy]string{server.ServeLocalClock: "serve", server.AnnounceUnsynchronized: "unsynchronized", 7: "UnsyncPolicy(7)"} {
		if got := p.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", p, got, want)
		}
	}
}

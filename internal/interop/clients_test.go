package interop

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/server"
)

// serveLib runs an ntpkit server (the library, default responder, system
// clock at stratum 10) on network/addr and returns its port.
func serveLib(t *testing.T, network, addr string) int {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	s := &server.Server{}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), pc) }()
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		if err := <-done; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		pc.Close()
	})
	return pc.LocalAddr().(*net.UDPAddr).Port
}

const maxOffset = 10 * time.Millisecond

func TestChronydAcceptsOurTime(t *testing.T) {
	for _, tc := range []struct{ network, addr, host string }{
		{"udp4", "127.0.0.1:0", "127.0.0.1"},
		{"udp6", "[::1]:0", "::1"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			port := serveLib(t, tc.network, tc.addr)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			off, out, err := ChronyQuery(ctx, t, tc.host, port)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("chronyd -Q offset %v", off)
			if off.Abs() > maxOffset {
				t.Fatalf("chronyd measured offset %v, want under %v:\n%s", off, maxOffset, out)
			}
		})
	}
}

func TestNtpdigAcceptsOurTime(t *testing.T) {
	RequireTool(t, "ntpdig")
	RequireRoot(t)
	for _, tc := range []struct{ network, addr, host, flag string }{
		{"udp4", "127.0.0.1:123", "127.0.0.1", "-4"},
		{"udp6", "[::1]:123", "::1", "-6"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			serveLib(t, tc.network, tc.addr)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res, out, err := Ntpdig(ctx, t, tc.host, tc.flag)
			if err != nil {
				t.Fatal(err)
			}
			off := time.Duration(res.Offset * float64(time.Second))
			t.Logf("ntpdig offset %v stratum %d leap %s", off, res.Stratum, res.Leap)
			if res.Stratum != server.DefaultLocalStratum || res.Leap != "no-leap" || res.Adjusted {
				t.Errorf("unexpected ntpdig report: %s", out)
			}
			if off.Abs() > maxOffset {
				t.Fatalf("ntpdig measured offset %v, want under %v:\n%s", off, maxOffset, out)
			}
		})
	}
}

package server_test

import (
	"context"
	"errors"
	"net"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/servertest"
)

// TestOneClockPerServer is the mistake issue 11 found: a Server whose
// Source was the system clock behind a Responder built from a fake clock
// set to 2000 served a stratum-2 reference time of 2000 with transmit
// times of today. Now the Responder takes no clock, so the only clock
// there is to give is the Server's Source, and every field of the reply
// comes from it: the reference data, the receive and the transmit time.
func TestOneClockPerServer(t *testing.T) {
	if n := reflect.TypeOf(server.Responder).NumIn(); n != 0 {
		t.Fatalf("Responder takes %d arguments: a handler must not bring its own clock", n)
	}
	y2k := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	src := server.NewLocalSource(clocktest.New(y2k), 2)
	handlers := map[string]server.Handler{
		"default":   nil,
		"responder": server.Responder(),
		"chain": server.Chain(server.Responder(), func(next server.Handler) server.Handler {
			return server.HandlerFunc(func(w server.ResponseWriter, r *server.Request) { next.ServeNTP(w, r) })
		}),
	}
	for name, h := range handlers {
		t.Run(name, func(t *testing.T) {
			ts := servertest.NewServer(&server.Server{Source: src, Handler: h})
			defer ts.Close()
			rep, err := ts.Query(5 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Stratum != 2 || rep.RefID != server.LocalRefID {
				t.Errorf("stratum %d refid %v, want 2 %v", rep.Stratum, rep.RefID, server.LocalRefID)
			}
			for field, v := range map[string]ntpwire.Time{"reference": rep.RefTime, "receive": rep.RecvTime, "transmit": rep.XmitTime} {
				if got := v.In(y2k); !got.Equal(y2k) {
					t.Errorf("%s time %v, want %v (the Source's clock)", field, got, y2k)
				}
			}
		})
	}
}

// TestMiddlewareSeesReference checks that the reference data reaches
// handlers on the Request and that what a middleware does to it is what
// the Responder serves.
func TestMiddlewareSeesReference(t *testing.T) {
	src := server.NewLocalSource(clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)), 3)
	var seen ntpwire.Reference
	unsync := func(next server.Handler) server.Handler {
		return server.HandlerFunc(func(w server.ResponseWriter, r *server.Request) {
			seen = r.Reference
			r.Reference.Stratum = ntpwire.MaxStratum // serve this client as unsynchronized
			next.ServeNTP(w, r)
		})
	}
	ts := servertest.NewServer(&server.Server{Source: src, Handler: server.Chain(server.Responder(), unsync)})
	rep, err := ts.Query(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if want := src.Reference(); seen != want {
		t.Errorf("middleware saw %+v, want the Source's %+v", seen, want)
	}
	if rep.Stratum != ntpwire.MaxStratum || rep.Leap != ntpwire.LeapAlarm {
		t.Errorf("reply stratum %d leap %v, want the middleware's unsynchronized reference", rep.Stratum, rep.Leap)
	}
}

// isClosed reports whether pc has been closed.
func isClosed(pc net.PacketConn) bool {
	_, err := pc.WriteTo([]byte{0}, pc.LocalAddr())
	return errors.Is(err, net.ErrClosed)
}

// TestServeContract checks the rule Serve shares with nts.KEServer.Serve:
// Serve owns its conn and closes it when it returns; it returns
// ErrServerClosed after Shutdown and ctx.Err() when its context ends.
func TestServeContract(t *testing.T) {
	listen := func(t *testing.T) net.PacketConn {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		return pc
	}
	// serve starts s on pc, waits until it answers and returns Serve's
	// result channel.
	serve := func(t *testing.T, ctx context.Context, s *server.Server, pc net.PacketConn) <-chan error {
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, pc) }()
		if _, err := servertest.Query(pc.LocalAddr().String(), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		return done
	}
	wait := func(t *testing.T, done <-chan error) error {
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return")
			return nil
		}
	}

	for _, tc := range []struct {
		name string
		stop func(s *server.Server, cancel context.CancelFunc)
		want error
	}{
		{"cancel", func(_ *server.Server, cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"shutdown", func(s *server.Server, _ context.CancelFunc) {
			if err := s.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		}, server.ErrServerClosed},
		{"shutdown-then-cancel", func(s *server.Server, cancel context.CancelFunc) {
			if err := s.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			cancel()
		}, server.ErrServerClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &server.Server{Workers: 2}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pc := listen(t)
			done := serve(t, ctx, s, pc)
			tc.stop(s, cancel)
			if err := wait(t, done); !errors.Is(err, tc.want) {
				t.Errorf("Serve = %v, want %v", err, tc.want)
			}
			if !isClosed(pc) {
				t.Error("Serve returned without closing its conn")
			}
		})
	}

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		pc := listen(t)
		if err := wait(t, serve(t, ctx, &server.Server{}, pc)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Serve = %v, want context.DeadlineExceeded", err)
		}
		if !isClosed(pc) {
			t.Error("Serve returned without closing its conn")
		}
	})

	t.Run("after-shutdown", func(t *testing.T) {
		s := &server.Server{}
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		pc := listen(t)
		if err := s.Serve(context.Background(), pc); !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve after Shutdown = %v, want ErrServerClosed", err)
		}
		if !isClosed(pc) {
			t.Error("Serve after Shutdown left its conn open")
		}
	})

	t.Run("shutdown-closes-before-returning", func(t *testing.T) {
		s := &server.Server{}
		pcs := []net.PacketConn{listen(t), listen(t)}
		done := make(chan error, 1)
		go func() { done <- s.ServeAll(context.Background(), pcs) }()
		for _, pc := range pcs {
			if _, err := servertest.Query(pc.LocalAddr().String(), 5*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		for i, pc := range pcs {
			if !isClosed(pc) {
				t.Errorf("conn %d still open after Shutdown returned", i)
			}
		}
		if err := wait(t, done); !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("ServeAll = %v, want ErrServerClosed", err)
		}
	})
}

// TestServertestServer checks the test server itself: a dropped request
// is a timeout, Close reports a clean shutdown, and Stats count.
func TestServertestServer(t *testing.T) {
	drop := server.HandlerFunc(func(server.ResponseWriter, *server.Request) {})
	ts := servertest.NewServer(&server.Server{Handler: drop})
	req := servertest.ClientPacket(time.Now())
	if rep, err := ts.Exchange(req.AppendTo(nil), 100*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Exchange with a dropping handler = %x, %v; want a timeout", rep, err)
	}
	if err := ts.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := ts.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if st := ts.Server.Stats(); st.Received != 1 || st.Dropped.Handler != 1 || st.Replies != 0 {
		t.Errorf("stats %+v, want 1 received and dropped by the handler", st)
	}
}

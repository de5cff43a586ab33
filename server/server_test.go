package server

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// startServer serves s on a fresh loopback socket of the given network
// ("udp4" on 127.0.0.1, "udp6" on ::1, or "wild4"/"wild6" on a wildcard
// address) and returns the address to query. Shutdown happens at cleanup.
func startServer(t testing.TB, s *Server, network string) netip.AddrPort {
	t.Helper()
	var laddr, target string
	switch network {
	case "udp4":
		laddr, target = "127.0.0.1:0", "127.0.0.1"
	case "udp6":
		laddr, target = "[::1]:0", "::1"
	case "wild4":
		network, laddr, target = "udp4", "0.0.0.0:0", "127.0.0.1"
	case "wild6":
		network, laddr, target = "udp", "[::]:0", "::1"
	}
	pc, err := net.ListenPacket(network, laddr)
	if err != nil {
		t.Skipf("cannot listen on %s %s: %v", network, laddr, err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), pc) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
		pc.Close()
	})
	return netip.AddrPortFrom(netip.MustParseAddr(target), localAddrPort(pc).Port())
}

// exchange sends req to addr and returns the reply, or nil after timeout.
func exchange(t testing.TB, addr netip.AddrPort, req []byte, timeout time.Duration) []byte {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	if got := c.RemoteAddr().(*net.UDPAddr).AddrPort(); got.Port() != addr.Port() {
		t.Errorf("reply from %v, want port %d", got, addr.Port())
	}
	return buf[:n]
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t testing.TB, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func reqBytes() []byte {
	p := clientRequest(time.Now())
	return p.AppendTo(nil)
}

func clientRequest(xmit time.Time) ntpwire.Packet {
	return ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, Poll: 7, Precision: -20, XmitTime: ntpwire.TimeOf(xmit)}
}

func TestServeRepliesOverLoopback(t *testing.T) {
	for _, network := range []string{"udp4", "udp6", "wild4", "wild6"} {
		t.Run(network, func(t *testing.T) {
			src := NewLocalSource(nil, 3)
			s := &Server{Source: src}
			addr := startServer(t, s, network)
			for _, version := range []uint8{1, 2, 3, 4} {
				req := clientRequest(time.Now())
				req.Version = version
				t1 := time.Now()
				raw := exchange(t, addr, req.AppendTo(nil), 2*time.Second)
				t4 := time.Now()
				if raw == nil {
					t.Fatalf("version %d: no reply", version)
				}
				if len(raw) != ntpwire.HeaderLen {
					t.Fatalf("reply is %d bytes, want %d", len(raw), ntpwire.HeaderLen)
				}
				var rep ntpwire.Packet
				if err := rep.Decode(raw); err != nil {
					t.Fatal(err)
				}
				if rep.Mode != ntpwire.ModeServer || rep.Version != version || rep.Poll != req.Poll ||
					rep.Stratum != 3 || rep.RefID != LocalRefID || rep.OrigTime != req.XmitTime || rep.Leap != ntpwire.LeapNone {
					t.Errorf("bad reply header: %+v", rep)
				}
				t2, t3 := rep.RecvTime.In(t1), rep.XmitTime.In(t1)
				if t2.Before(t1.Add(-time.Millisecond)) || t3.Before(t2) || t3.After(t4.Add(time.Millisecond)) {
					t.Errorf("timestamps out of order: t1 %v t2 %v t3 %v t4 %v", t1, t2, t3, t4)
				}
			}
			waitFor(t, func() bool { st := s.Stats(); return st.Received == 4 && st.Replies == 4 && st.BytesSent == 4*48 }, "4 replies counted")
		})
	}
}

func TestServeDropsBadRequests(t *testing.T) {
	s := &Server{}
	addr := startServer(t, s, "udp4")
	good := clientRequest(time.Now())
	mk := func(f func(p *ntpwire.Packet)) []byte {
		p := good
		f(&p)
		return p.AppendTo(nil)
	}
	cases := []struct {
		name string
		raw  []byte
		want func(d DropStats) uint64
	}{
		{"empty", []byte{}, func(d DropStats) uint64 { return d.Short }},
		{"short", mk(func(*ntpwire.Packet) {})[:47], func(d DropStats) uint64 { return d.Short }},
		{"version0", mk(func(p *ntpwire.Packet) { p.Version = 0 }), func(d DropStats) uint64 { return d.Version }},
		{"version5", mk(func(p *ntpwire.Packet) { p.Version = 5 }), func(d DropStats) uint64 { return d.Version }},
		{"server", mk(func(p *ntpwire.Packet) { p.Mode = ntpwire.ModeServer }), func(d DropStats) uint64 { return d.Mode }},
		{"broadcast", mk(func(p *ntpwire.Packet) { p.Mode = ntpwire.ModeBroadcast }), func(d DropStats) uint64 { return d.Mode }},
		{"symmetric", mk(func(p *ntpwire.Packet) { p.Mode = ntpwire.ModeSymmetricActive }), func(d DropStats) uint64 { return d.Mode }},
		{"control", mk(func(p *ntpwire.Packet) { p.Mode = ntpwire.ModeControl; p.Version = 2 }), func(d DropStats) uint64 { return d.Control }},
		{"private", mk(func(p *ntpwire.Packet) { p.Mode = ntpwire.ModePrivate; p.Version = 2 }), func(d DropStats) uint64 { return d.Control }},
		{"bad-trailer", append(mk(func(*ntpwire.Packet) {}), 1, 2, 3, 4, 5, 6, 7, 8), func(d DropStats) uint64 { return d.Malformed }},
		{"huge", make([]byte, MaxPacket+100), func(d DropStats) uint64 { return d.Truncated }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.want(s.Stats().Dropped)
			if rep := exchange(t, addr, tc.raw, 200*time.Millisecond); rep != nil {
				t.Fatalf("got a %d-byte reply, want none", len(rep))
			}
			if after := tc.want(s.Stats().Dropped); after != before+1 {
				t.Errorf("drop counter went %d -> %d, want +1", before, after)
			}
		})
	}
	// A request with a MAC or extension fields gets a plain 48-byte reply.
	withMAC := append(mk(func(*ntpwire.Packet) {}), make([]byte, 24)...)
	if rep := exchange(t, addr, withMAC, 2*time.Second); len(rep) != ntpwire.HeaderLen {
		t.Fatalf("request with MAC: reply of %d bytes, want %d", len(rep), ntpwire.HeaderLen)
	}
}

// memIO is an in-memory packetIO: it serves the same datagrams on every
// read and records the writes.
type memIO struct {
	reqs    [][]byte
	src     netip.AddrPort
	written [][]byte
	keep    bool
}

func (m *memIO) localPort() uint16 { return 123 }

func (m *memIO) read(in []inMsg) (int, error) {
	for i, r := range m.reqs {
		in[i].n = copy(in[i].buf, r)
		in[i].src, in[i].dst, in[i].trunc, in[i].rxNanos = m.src, netip.AddrFrom4([4]byte{127, 0, 0, 1}), false, 0
	}
	return len(m.reqs), nil
}

func (m *memIO) write(out []outMsg) int {
	if m.keep {
		for _, o := range out {
			m.written = append(m.written, append([]byte(nil), o.buf...))
		}
	}
	return 0
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	s := &Server{}
	s.init()
	io := &memIO{src: netip.MustParseAddrPort("192.0.2.1:40000")}
	for i := 0; i < 8; i++ {
		p := clientRequest(time.Now())
		io.reqs = append(io.reqs, p.AppendTo(nil))
	}
	w := s.newWorker(io, 8)
	allocs := testing.AllocsPerRun(1000, func() {
		n, _ := w.io.read(w.in)
		w.handleBatch(n)
	})
	if allocs != 0 {
		t.Fatalf("handling a batch allocates %v times, want 0", allocs)
	}
	if st := s.Stats(); st.Replies == 0 || st.Replies != st.Received {
		t.Fatalf("stats %+v: want every request answered", st)
	}
}

func TestSocketPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	s := &Server{}
	addr := startServer(t, s, "udp4")
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := reqBytes()
	buf := make([]byte, 512)
	roundTrip := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	roundTrip() // warm up
	allocs := testing.AllocsPerRun(500, roundTrip)
	// The client's own Write and Read allocate nothing either, so any
	// allocation here is the server's.
	if allocs != 0 {
		t.Fatalf("a request over a real socket allocates %v times, want 0", allocs)
	}
}

func TestResponderFromSource(t *testing.T) {
	start := time.Date(2036, 2, 7, 6, 28, 15, 0, time.UTC) // just before the era rollover
	fake := clocktest.New(start)
	src := NewLocalSource(fake, 2)
	src.RefID = ntpwire.RefIDString("GPS")
	src.RootDelay = 3 * time.Millisecond
	src.Leap = ntpwire.LeapInsert
	s := &Server{Source: src}
	s.init()
	io := &memIO{src: netip.MustParseAddrPort("192.0.2.1:40000"), keep: true}
	req := clientRequest(start.Add(-time.Second))
	io.reqs = [][]byte{req.AppendTo(nil)}
	w := s.newWorker(io, 1)
	fake.Advance(2 * time.Second) // the reply crosses into era 1
	n, _ := w.io.read(w.in)
	w.handleBatch(n)
	if len(io.written) != 1 {
		t.Fatalf("%d replies, want 1", len(io.written))
	}
	var got ntpwire.Packet
	if err := got.Decode(io.written[0]); err != nil {
		t.Fatal(err)
	}
	now := start.Add(2 * time.Second)
	want := ntpwire.Packet{
		Leap: ntpwire.LeapInsert, Version: 4, Mode: ntpwire.ModeServer, Stratum: 2, Poll: 7, Precision: -20,
		RootDelay: ntpwire.ShortOf(3 * time.Millisecond), RootDispersion: ntpwire.ShortOf(ntpwire.LogToDuration(-20)),
		RefID: ntpwire.RefIDString("GPS"), RefTime: ntpwire.TimeOf(now.Truncate(time.Second)),
		OrigTime: req.XmitTime, RecvTime: ntpwire.TimeOf(now) | 1, XmitTime: ntpwire.TimeOf(now) &^ 1, // interleaved mode's low bits
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reply mismatch (-want +got):\n%s", diff)
	}
	if got.XmitTime.In(start).Year() != 2036 || got.XmitTime.Seconds() > 10 {
		t.Errorf("transmit time %v not in era 1", got.XmitTime.In(start))
	}
}

func TestUnsynchronizedSourceSaysSo(t *testing.T) {
	src := NewLocalSource(clocktest.New(time.Now()), 1)
	src.Stratum = ntpwire.MaxStratum
	s := &Server{Source: src}
	s.init()
	io := &memIO{src: netip.MustParseAddrPort("192.0.2.1:40000"), keep: true}
	io.reqs = [][]byte{reqBytes()}
	w := s.newWorker(io, 1)
	n, _ := w.io.read(w.in)
	w.handleBatch(n)
	var got ntpwire.Packet
	_ = got.Decode(io.written[0])
	if got.Leap != ntpwire.LeapAlarm || got.Stratum != ntpwire.MaxStratum {
		t.Fatalf("leap %v stratum %d, want alarm and 16", got.Leap, got.Stratum)
	}
}

func TestKissAndMiddleware(t *testing.T) {
	var (
		mu    sync.Mutex
		order []string
	)
	mw := func(name string) Middleware {
		return func(next Handler) Handler {
			return HandlerFunc(func(w ResponseWriter, r *Request) {
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				next.ServeNTP(w, r)
			})
		}
	}
	kiss := HandlerFunc(func(w ResponseWriter, r *Request) {
		if err := w.Kiss(ntpwire.KissRate); err != nil {
			t.Error(err)
		}
		if err := w.Kiss(ntpwire.KissRate); !errors.Is(err, ErrReplied) {
			t.Errorf("second reply: %v, want ErrReplied", err)
		}
	})
	s := &Server{Handler: Chain(kiss, mw("outer"), mw("inner"))}
	addr := startServer(t, s, "udp4")
	req := clientRequest(time.Now())
	raw := exchange(t, addr, req.AppendTo(nil), 2*time.Second)
	var got ntpwire.Packet
	if err := got.Decode(raw); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ntpwire.NewKiss(&req, ntpwire.KissRate), got); diff != "" {
		t.Errorf("KoD mismatch (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]string{"outer", "inner"}, order); diff != "" {
		t.Errorf("middleware order (-want +got):\n%s", diff)
	}
	waitFor(t, func() bool { st := s.Stats(); return st.Kisses == 1 && st.Replies == 1 }, "1 kiss counted")
}

func TestHandlerDropIsCounted(t *testing.T) {
	s := &Server{Handler: HandlerFunc(func(ResponseWriter, *Request) {})}
	addr := startServer(t, s, "udp4")
	if rep := exchange(t, addr, reqBytes(), 200*time.Millisecond); rep != nil {
		t.Fatal("got a reply from a handler that drops")
	}
	// On a loaded machine the request may still be on its way to the
	// handler when the client gives up waiting.
	waitFor(t, func() bool { return s.Stats().Dropped.Handler >= 1 }, "the handler drop counted")
	if d := s.Stats().Dropped.Handler; d != 1 {
		t.Fatalf("handler drops = %d, want 1", d)
	}
}

func TestShutdownNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	for i := 0; i < 3; i++ {
		s := &Server{Workers: 3}
		ctx, cancel := context.WithCancel(context.Background())
		conns, err := ListenUDP(ctx, "udp4", "127.0.0.1:0", 2)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.ServeAll(ctx, conns) }()
		addr := localAddrPort(conns[0])
		var wg sync.WaitGroup
		for j := 0; j < 20; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if exchange(t, addr, reqBytes(), 2*time.Second) == nil {
					t.Error("no reply")
				}
			}()
		}
		wg.Wait()
		if i == 2 {
			cancel() // the last round stops through the context
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("ServeAll after cancel = %v", err)
			}
		} else {
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := <-done; !errors.Is(err, ErrServerClosed) {
				t.Errorf("ServeAll after Shutdown = %v", err)
			}
			if err := s.Serve(ctx, conns[0]); !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve after Shutdown = %v", err)
			}
		}
		cancel()
		for _, c := range conns {
			c.Close()
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after shutdown, %d before", n, before)
	}
}

func TestReusePortSpreadsLoad(t *testing.T) {
	s := &Server{}
	conns, err := ListenUDP(context.Background(), "udp4", "127.0.0.1:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" && len(conns) != 2 {
		t.Fatalf("%d sockets, want 2", len(conns))
	}
	done := make(chan error, 1)
	go func() { done <- s.ServeAll(context.Background(), conns) }()
	defer func() {
		s.Shutdown(context.Background())
		<-done
		for _, c := range conns {
			c.Close()
		}
	}()
	addr := localAddrPort(conns[0])
	for i := 0; i < 50; i++ {
		if exchange(t, addr, reqBytes(), 2*time.Second) == nil {
			t.Fatal("no reply")
		}
	}
	// The counter is bumped just after the send: give it a moment.
	waitFor(t, func() bool { return s.Stats().Replies == 50 }, "50 replies counted")
}

func BenchmarkHandleBatch(b *testing.B) {
	s := &Server{}
	s.init()
	benchHandleBatch(b, s)
}

// benchHandleBatch measures s's request path without system calls: full
// batches of client requests through a worker with in-memory I/O.
func benchHandleBatch(b *testing.B, s *Server) {
	io := &memIO{src: netip.MustParseAddrPort("192.0.2.1:40000")}
	for i := 0; i < DefaultBatch; i++ {
		io.reqs = append(io.reqs, reqBytes())
	}
	w := s.newWorker(io, DefaultBatch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += DefaultBatch {
		n, _ := w.io.read(w.in)
		w.handleBatch(n)
	}
}

// TestZeroSourcePortDropped checks that requests from source port 0 are
// dropped before the handler, counted as ZeroPort, not as send errors.
func TestZeroSourcePortDropped(t *testing.T) {
	var handled int
	s := &Server{Handler: HandlerFunc(func(w ResponseWriter, r *Request) {
		handled++
		w.Reply(r.Packet)
	})}
	s.init()
	io := &memIO{src: netip.MustParseAddrPort("192.0.2.1:0")}
	for range 4 {
		p := clientRequest(time.Now())
		io.reqs = append(io.reqs, p.AppendTo(nil))
	}
	w := s.newWorker(io, 4)
	n, _ := w.io.read(w.in)
	w.handleBatch(n)
	st := s.Stats()
	if handled != 0 || st.Replies != 0 || st.Dropped.ZeroPort != 4 || st.Dropped.SendError != 0 || st.Dropped.Total() != 4 {
		t.Errorf("handled %d, stats %+v; want 4 drops as ZeroPort and nothing handled", handled, st)
	}
}

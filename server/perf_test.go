package server

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// TestKernelReceiveStamps checks that on Linux the socket path takes T2
// from the kernel: the stamp is set, and it precedes the moment the read
// returned to user space.
func TestKernelReceiveStamps(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("kernel receive stamps are read on Linux only")
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Skip(err)
	}
	defer pc.Close()
	newIO, err := openPacketIO(pc, 4, true, true)
	if err != nil {
		t.Fatal(err)
	}
	io := newIO()
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(localAddrPort(pc)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := make([]inMsg, 4)
	for i := range in {
		in[i].buf = make([]byte, MaxPacket)
	}
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	// The first socket to ask for stamps turns the kernel's receive
	// stamping on, and the kernel may do that after a datagram already
	// arrived (then it stamps at the read): read one datagram first.
	if _, err := c.Write(reqBytes()); err != nil {
		t.Fatal(err)
	}
	if n, err := io.read(in); err != nil || n != 1 {
		t.Fatalf("warm-up read: %d, %v", n, err)
	}
	before := time.Now()
	if _, err := c.Write(reqBytes()); err != nil {
		t.Fatal(err)
	}
	// Let the datagram wait in the socket, as it would in a busy server's
	// queue: the kernel stamp must not include the wait.
	time.Sleep(20 * time.Millisecond)
	n, err := io.read(in)
	after := time.Now()
	if err != nil || n != 1 {
		t.Fatalf("read: %d, %v", n, err)
	}
	if in[0].rxNanos == 0 {
		t.Fatal("no kernel receive timestamp")
	}
	rx := time.Unix(0, in[0].rxNanos)
	if rx.Before(before) || after.Sub(rx) < 15*time.Millisecond {
		t.Errorf("kernel stamp %v: want after the send (%v) and about 20ms before the read returned (%v)", rx, before, after)
	}
	if in[0].dst != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("destination %v, want 127.0.0.1", in[0].dst)
	}
}

// timedIO is a memIO whose sends take time on a fake clock: fixed per
// system call plus perDatagram per datagram, the shape sendClock models.
type timedIO struct {
	memIO
	clk         *clocktest.Fake
	fixed       time.Duration
	perDatagram time.Duration
	sent        []time.Time // when each datagram left
}

func (m *timedIO) write(out []outMsg) int {
	m.clk.Advance(m.fixed / 2) // entering the kernel
	for range out {
		m.sent = append(m.sent, m.clk.Now())
		m.clk.Advance(m.perDatagram)
	}
	m.clk.Advance(m.fixed / 2) // leaving it
	return m.memIO.write(out)
}

// TestTransmitStampsPredicted checks that replies sent in batches carry
// the times they leave: after a few batches of varying size the worker
// has learnt the per-datagram send time, and every reply's T3 is within
// the system call's fixed cost of when the fake socket sent it, with
// T3s strictly increasing within a batch and never before T2.
func TestTransmitStampsPredicted(t *testing.T) {
	clk := clocktest.New(time.Unix(1_800_000_000, 0))
	s := &Server{Source: NewLocalSource(clk, 2)}
	s.init()
	io := &timedIO{
		memIO:       memIO{src: netip.MustParseAddrPort("192.0.2.1:40000"), keep: true},
		clk:         clk,
		fixed:       800 * time.Nanosecond,
		perDatagram: 1500 * time.Nanosecond,
	}
	w := s.newWorker(io, DefaultBatch)
	for round := 0; round < 200; round++ {
		io.reqs = io.reqs[:0]
		for i := 0; i < 1+round%DefaultBatch; i++ {
			io.reqs = append(io.reqs, reqBytes())
		}
		io.written, io.sent = io.written[:0], io.sent[:0]
		n, _ := w.io.read(w.in)
		w.handleBatch(n)
	}
	if len(io.written) < 2 || len(io.written) != len(io.sent) {
		t.Fatalf("%d replies, %d sends", len(io.written), len(io.sent))
	}
	var prev ntpwire.Time
	for i, raw := range io.written {
		var p ntpwire.Packet
		if err := p.Decode(raw); err != nil {
			t.Fatal(err)
		}
		sent := io.sent[i]
		if d := p.XmitTime.In(sent).Sub(sent); d < -io.fixed || d > io.fixed {
			t.Errorf("reply %d: T3 %v from when it was sent, want within %v", i, d, io.fixed)
		}
		if p.XmitTime.Sub(p.RecvTime) < 0 {
			t.Errorf("reply %d: T3 %v before T2 %v", i, p.XmitTime, p.RecvTime)
		}
		if i > 0 && p.XmitTime.Sub(prev) <= 0 {
			t.Errorf("reply %d: T3 %v not after the previous reply's %v", i, p.XmitTime, prev)
		}
		prev = p.XmitTime
	}
}

// passThrough is a middleware that only calls next, to measure what a
// chain of them costs.
func passThrough(next Handler) Handler {
	return HandlerFunc(func(w ResponseWriter, r *Request) { next.ServeNTP(w, r) })
}

// BenchmarkHandleBatchChain is BenchmarkHandleBatch with four middleware
// layers in front of the responder.
func BenchmarkHandleBatchChain(b *testing.B) {
	s := &Server{}
	s.init()
	s.handler = Chain(s.handler, passThrough, passThrough, passThrough, passThrough)
	benchHandleBatch(b, s)
}

// BenchmarkServeLoopback drives a served loopback socket with a window of
// outstanding requests from one client socket; an op is one request
// answered. Profile it with -cpuprofile to see the serving path (the
// client's share is in the profile too).
func BenchmarkServeLoopback(b *testing.B) {
	s := &Server{ReadBuffer: 1 << 20}
	addr := startServer(b, s, "udp4")
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadBuffer(1 << 20)
	req := reqBytes()
	buf := make([]byte, 512)
	const window = 16
	c.SetDeadline(time.Now().Add(time.Minute))
	b.ReportAllocs()
	b.ResetTimer()
	out := 0
	for i := 0; i < b.N; i++ {
		for out < window {
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			out++
		}
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
		out--
	}
	b.StopTimer()
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	for ; out > 0; out-- {
		if _, err := c.Read(buf); err != nil {
			break
		}
	}
}

func TestServeAllContextStops(t *testing.T) {
	conns, err := ListenUDP(context.Background(), "udp4", "127.0.0.1:0", 2)
	if err != nil {
		t.Skip(err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{}).ServeAll(ctx, conns) }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("ServeAll returned nil")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeAll did not stop when its context ended")
	}
}

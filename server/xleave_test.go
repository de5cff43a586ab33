package server

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/ntpwire"
)

func TestTxTableUseOnce(t *testing.T) {
	tab := newTxTable(16)
	tab.save(0x1001, 0x2000)
	tx, kernel, ok := tab.take(0x1001)
	if !ok || tx != 0x2000 || kernel {
		t.Fatalf("take = %#x, %v, %v; want 0x2000, false, true", tx, kernel, ok)
	}
	if _, _, ok := tab.take(0x1001); ok {
		t.Fatal("an entry was used twice")
	}
	if _, _, ok := tab.take(0x3001); ok {
		t.Fatal("take of a key never saved succeeded")
	}
	if _, _, ok := tab.take(0); ok {
		t.Fatal("take(0) succeeded")
	}
}

func TestTxTableEviction(t *testing.T) {
	tab := newTxTable(1) // one slot: every save evicts the last
	tab.save(0x1001, 0x2000)
	tab.save(0x5001, 0x6000)
	if _, _, ok := tab.take(0x1001); ok {
		t.Fatal("an overwritten entry was found")
	}
	if tx, _, ok := tab.take(0x5001); !ok || tx != 0x6000 {
		t.Fatalf("take = %#x, %v", tx, ok)
	}
	// A bigger table keeps most of many keys, and never more than its
	// size.
	tab = newTxTable(1000) // rounded up to 1024
	if len(tab.slots) != 1024 {
		t.Fatalf("%d slots, want 1024", len(tab.slots))
	}
	base := ntpwire.StampOf(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	for i := 0; i < 4096; i++ {
		tab.save(base+ntpwire.Time(i*4295)|1, 2)
	}
	found := 0
	for i := 0; i < 4096; i++ {
		if _, _, ok := tab.take(base + ntpwire.Time(i*4295) | 1); ok {
			found++
		}
	}
	if found == 0 || found > 1024 {
		t.Fatalf("%d of 4096 keys found in a 1024-slot table", found)
	}
}

func TestTxTableReplace(t *testing.T) {
	tab := newTxTable(16)
	tab.save(0x1001, 0x2000)
	if tab.replace(0x1001, 0x2002, 0x2100) {
		t.Fatal("replace with the wrong daemon time succeeded")
	}
	if tab.replace(0x7001, 0x2000, 0x2100) {
		t.Fatal("replace of a key never saved succeeded")
	}
	if !tab.replace(0x1001, 0x2000, 0x2100) {
		t.Fatal("replace failed")
	}
	if tab.replace(0x1001, 0x2000, 0x2200) {
		t.Fatal("a second kernel stamp replaced the first")
	}
	tx, kernel, ok := tab.take(0x1001)
	if !ok || tx != 0x2100 || !kernel {
		t.Fatalf("take = %#x, %v, %v; want 0x2100, true, true", tx, kernel, ok)
	}
	if tab.replace(0x1001, 0x2000, 0x2100) {
		t.Fatal("replace of a taken entry succeeded")
	}
}

// TestTxTableConcurrent saves, replaces and takes from several
// goroutines at once (run it with -race): each key's entry is found by
// its owner with the value saved, or lost to a collision, never mixed up.
func TestTxTableConcurrent(t *testing.T) {
	tab := newTxTable(1 << 12)
	const workers, keys = 4, 2000
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			found := 0
			for i := 0; i < keys; i++ {
				rx := ntpwire.Time(g)<<40 | ntpwire.Time(i)<<8 | 1
				tx := ntpwire.Time(g)<<40 | ntpwire.Time(i)<<8 + 10
				tab.save(rx, tx)
				tab.replace(rx, tx, tx+2)
				if got, _, ok := tab.take(rx); ok {
					found++
					if got != tx && got != tx+2 {
						errs <- "wrong transmit time"
						return
					}
				}
			}
			if found == 0 {
				errs <- "no entry found"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// xleaveRig drives one worker with requests from memory against a fake
// clock.
type xleaveRig struct {
	t   *testing.T
	clk *clocktest.Fake
	s   *Server
	io  *memIO
	w   *worker
}

func newXleaveRig(t *testing.T, s *Server) *xleaveRig {
	clk := clocktest.New(time.Date(2026, 12, 2, 22, 0, 0, 123456789, time.UTC))
	s.Source = NewLocalSource(clk, 2)
	s.init()
	io := &memIO{src: netip.MustParseAddrPort("192.0.2.1:40000"), keep: true}
	return &xleaveRig{t: t, clk: clk, s: s, io: io, w: s.newWorker(io, 1)}
}

// exchange serves req at the fake clock's time and returns the reply,
// checking the low bits every reply has.
func (r *xleaveRig) exchange(req ntpwire.Packet) ntpwire.Packet {
	r.t.Helper()
	r.io.reqs = [][]byte{req.AppendTo(nil)}
	r.io.written = nil
	n, _ := r.w.io.read(r.w.in)
	r.w.handleBatch(n)
	if len(r.io.written) != 1 {
		r.t.Fatalf("%d replies, want 1", len(r.io.written))
	}
	var p ntpwire.Packet
	if err := p.Decode(r.io.written[0]); err != nil {
		r.t.Fatal(err)
	}
	if p.RecvTime&1 != 1 || p.XmitTime&1 != 0 {
		r.t.Fatalf("reply receive %#x, transmit %#x: want low bits 1 and 0", p.RecvTime, p.XmitTime)
	}
	return p
}

// chronyClient builds requests the way chrony does with xleave: after a
// reply, origin = the reply's receive timestamp, receive = its own
// receive time of the reply, transmit = a fresh value.
type chronyClient struct {
	version      uint8
	prevRx, prT4 ntpwire.Time
	n            int
}

func (c *chronyClient) request() ntpwire.Packet {
	c.n++
	return ntpwire.Packet{
		Version: c.version, Mode: ntpwire.ModeClient, Poll: 4,
		OrigTime: c.prevRx, RecvTime: c.prT4,
		XmitTime: 0x0123456789abcdef + ntpwire.Time(c.n)*0x10001,
	}
}

func (c *chronyClient) received(reply ntpwire.Packet, t4 time.Time) {
	c.prevRx, c.prT4 = reply.RecvTime, ntpwire.TimeOf(t4)
}

func TestInterleavedChronyClient(t *testing.T) {
	r := newXleaveRig(t, &Server{})
	c := &chronyClient{version: 4}
	var prev ntpwire.Packet
	var prevSent ntpwire.Time // when the previous reply was sent
	for i := 1; i <= 6; i++ {
		req := c.request()
		rx := r.clk.Now()
		reply := r.exchange(req)
		sent := xmitStamp(r.clk.Now())
		if reply.RecvTime != ntpwire.StampOf(rx)|1 {
			t.Fatalf("reply %d: receive %#x, want %#x", i, reply.RecvTime, ntpwire.StampOf(rx)|1)
		}
		if i < 3 {
			// Basic: no previous transmit time is known yet.
			if reply.OrigTime != req.XmitTime || reply.XmitTime != sent {
				t.Fatalf("reply %d not basic: %+v", i, reply)
			}
		} else {
			// Interleaved: the previous reply's transmit time.
			if reply.OrigTime != req.RecvTime || reply.XmitTime != prevSent {
				t.Fatalf("reply %d not interleaved: origin %#x (request receive %#x), transmit %#x (previous sent %#x)",
					i, reply.OrigTime, req.RecvTime, reply.XmitTime, prevSent)
			}
		}
		if i == 2 && reply.XmitTime != sent {
			t.Fatalf("reply 2 transmit %#x, want %#x", reply.XmitTime, sent)
		}
		prev, prevSent = reply, sent
		r.clk.Advance(time.Millisecond) // network delay back
		c.received(prev, r.clk.Now())
		r.clk.Advance(16 * time.Second) // poll interval
	}
	if st := r.s.Stats(); st.Interleaved != 4 || st.Replies != 6 {
		t.Fatalf("stats: %d interleaved of %d replies, want 4 of 6", st.Interleaved, st.Replies)
	}
}

// TestInterleavedFallsBack checks the requests that must get basic
// replies, and that they leave no state behind when they do not ask for
// interleaved mode.
func TestInterleavedFallsBack(t *testing.T) {
	// Prime a table entry the way a chrony client's second request does,
	// then ask with variations of the third.
	prime := func(t *testing.T, s *Server) (*xleaveRig, *chronyClient) {
		r := newXleaveRig(t, s)
		c := &chronyClient{version: 4}
		for i := 0; i < 2; i++ {
			reply := r.exchange(c.request())
			r.clk.Advance(time.Millisecond)
			c.received(reply, r.clk.Now())
		}
		return r, c
	}
	basic := func(t *testing.T, req, reply ntpwire.Packet) {
		t.Helper()
		if reply.OrigTime != req.XmitTime {
			t.Fatalf("reply origin %#x, want the request's transmit %#x (basic)", reply.OrigTime, req.XmitTime)
		}
	}
	t.Run("version3", func(t *testing.T) {
		r, c := prime(t, &Server{})
		req := c.request()
		req.Version = 3
		basic(t, req, r.exchange(req))
	})
	t.Run("origin_low_bit_0", func(t *testing.T) {
		r, c := prime(t, &Server{})
		req := c.request()
		req.OrigTime &^= 1
		basic(t, req, r.exchange(req))
	})
	t.Run("receive_equals_transmit", func(t *testing.T) {
		r, c := prime(t, &Server{})
		req := c.request()
		req.RecvTime = req.XmitTime
		basic(t, req, r.exchange(req))
	})
	t.Run("used_once", func(t *testing.T) {
		r, c := prime(t, &Server{})
		req := c.request()
		if reply := r.exchange(req); reply.OrigTime != req.RecvTime {
			t.Fatalf("third request not interleaved: %+v", reply)
		}
		// The same request again (a retransmission, a replay): the
		// entry is used up.
		basic(t, req, r.exchange(req))
	})
	t.Run("evicted", func(t *testing.T) {
		r, c := prime(t, &Server{InterleavedTableSize: 1})
		// Another client's interleaved-looking request takes the slot.
		other := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, OrigTime: 0x99, RecvTime: 5, XmitTime: 7}
		basic(t, other, r.exchange(other))
		req := c.request()
		basic(t, req, r.exchange(req))
	})
	t.Run("origin_in_future", func(t *testing.T) {
		r, c := prime(t, &Server{})
		req := c.request()
		r.clk.Set(r.clk.Now().Add(-time.Hour)) // our clock stepped back
		basic(t, req, r.exchange(req))
	})
	t.Run("disabled", func(t *testing.T) {
		r, c := prime(t, &Server{DisableInterleaved: true})
		req := c.request()
		basic(t, req, r.exchange(req))
		if r.s.xtable != nil {
			t.Fatal("a disabled server has a table")
		}
	})
	t.Run("basic_client_leaves_no_state", func(t *testing.T) {
		r := newXleaveRig(t, &Server{})
		var prev ntpwire.Packet
		for i := 0; i < 5; i++ {
			// A basic client: origin = 0 or our previous transmit time.
			req := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, OrigTime: prev.XmitTime, XmitTime: ntpwire.Time(1000 + i)}
			prev = r.exchange(req)
			basic(t, req, prev)
			r.clk.Advance(time.Second)
		}
		for _, s := range r.s.xtable.slots {
			if s != (txSlot{}) {
				t.Fatalf("a basic client left table entry %+v", s)
			}
		}
		if st := r.s.Stats(); st.Interleaved != 0 {
			t.Fatalf("%d interleaved replies to a basic client", st.Interleaved)
		}
	})
}

// TestKissNeverInterleaved checks that a KoD to an interleaved-looking
// request is the plain RFC 5905 KoD and saves nothing.
func TestKissNeverInterleaved(t *testing.T) {
	s := &Server{Handler: HandlerFunc(func(w ResponseWriter, r *Request) { _ = w.Kiss(ntpwire.KissRate) })}
	r := newXleaveRig(t, s)
	req := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, OrigTime: 0x1235, RecvTime: 0x2000, XmitTime: 0x3000}
	r.io.reqs = [][]byte{req.AppendTo(nil)}
	n, _ := r.w.io.read(r.w.in)
	r.w.handleBatch(n)
	var p ntpwire.Packet
	if err := p.Decode(r.io.written[0]); err != nil {
		t.Fatal(err)
	}
	if want := ntpwire.NewKiss(&req, ntpwire.KissRate); p != want {
		t.Fatalf("KoD %+v, want %+v", p, want)
	}
	for _, s := range r.s.xtable.slots {
		if s != (txSlot{}) {
			t.Fatalf("a KoD left table entry %+v", s)
		}
	}
}

// TestInterleavedSealed runs a chrony client through ReplySealed (as NTS
// and MAC replies go): the seal sees the interleaved header, so the
// authenticated timestamps are the ones sent.
func TestInterleavedSealed(t *testing.T) {
	var sealed ntpwire.Packet
	h := HandlerFunc(func(w ResponseWriter, r *Request) {
		reply := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 2,
			OrigTime: r.Packet.XmitTime, RecvTime: ntpwire.StampOf(r.Received)}
		_ = w.ReplySealed(reply, func(pkt []byte) ([]byte, error) {
			_ = sealed.Decode(pkt)
			return append(pkt, "MAC!"...), nil
		})
	})
	r := newXleaveRig(t, &Server{Handler: h})
	c := &chronyClient{version: 4}
	var prevSent ntpwire.Time
	for i := 1; i <= 4; i++ {
		req := c.request()
		r.io.reqs = [][]byte{append(req.AppendTo(nil), 0, 0, 0, 0)} // room for the MAC
		r.io.written = nil
		n, _ := r.w.io.read(r.w.in)
		r.w.handleBatch(n)
		var reply ntpwire.Packet
		if err := reply.Decode(r.io.written[0]); err != nil {
			t.Fatal(err)
		}
		if reply != sealed || string(r.io.written[0][48:]) != "MAC!" {
			t.Fatalf("reply %d: sent %+v, sealed %+v", i, reply, sealed)
		}
		if i >= 3 && (reply.OrigTime != req.RecvTime || reply.XmitTime != prevSent) {
			t.Fatalf("reply %d not interleaved: %+v", i, reply)
		}
		if i < 3 && reply.OrigTime != req.XmitTime {
			t.Fatalf("reply %d not basic: %+v", i, reply)
		}
		prevSent = xmitStamp(r.clk.Now()) // the sealed reply left at once
		r.clk.Advance(time.Millisecond)
		c.received(reply, r.clk.Now())
		r.clk.Advance(time.Second)
	}
	if st := r.s.Stats(); st.Interleaved != 2 {
		t.Fatalf("%d interleaved replies, want 2", st.Interleaved)
	}
}

// echoIO answers its own replies: each request asks for interleaved mode
// with the receive timestamp of the reply before it, so every request
// after the first two gets an interleaved reply, without allocating.
type echoIO struct {
	req []byte
}

func (e *echoIO) localPort() uint16 { return 123 }

func (e *echoIO) read(in []inMsg) (int, error) {
	in[0].n = copy(in[0].buf, e.req)
	in[0].src, in[0].dst, in[0].trunc, in[0].rxNanos = netip.MustParseAddrPort("192.0.2.1:40000"), netip.AddrFrom4([4]byte{127, 0, 0, 1}), false, 0
	return 1, nil
}

func (e *echoIO) write(out []outMsg) int {
	copy(e.req[24:32], out[0].buf[32:40]) // origin = the reply's receive timestamp
	e.req[39]++                           // receive = "our receive time", != transmit
	e.req[47] += 3                        // a fresh transmit timestamp
	return 0
}

func TestInterleavedPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	clk := clocktest.New(time.Date(2026, 12, 2, 22, 0, 0, 0, time.UTC))
	s := &Server{Source: NewLocalSource(clk, 2)}
	s.init()
	req := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, XmitTime: 0x1000}
	io := &echoIO{req: req.AppendTo(nil)}
	w := s.newWorker(io, 1)
	step := func() {
		clk.Advance(time.Millisecond)
		n, _ := w.io.read(w.in)
		w.handleBatch(n)
	}
	step()
	step()
	before := s.Stats().Interleaved
	allocs := testing.AllocsPerRun(1000, step)
	if allocs != 0 {
		t.Fatalf("an interleaved exchange allocates %v times, want 0", allocs)
	}
	if got := s.Stats().Interleaved - before; got < 1000 {
		t.Fatalf("%d interleaved replies in 1001 exchanges", got)
	}
}

// TestKernelTxStamps checks over loopback that interleaved replies carry
// the kernel's transmit stamps of the previous replies: later than the
// server's own stamp written into the basic reply, by less than the
// bound, and counted.
func TestKernelTxStamps(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("kernel transmit stamps are read on Linux only")
	}
	for _, network := range []string{"udp4", "udp6", "wild4", "wild6"} {
		t.Run(network, func(t *testing.T) {
			s := &Server{Source: NewLocalSource(nil, 3)}
			addr := startServer(t, s, network)
			conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			c := &chronyClient{version: 4}
			buf := make([]byte, 512)
			var replies []ntpwire.Packet
			for i := 0; i < 5; i++ {
				req := c.request()
				if _, err := conn.Write(req.AppendTo(nil)); err != nil {
					t.Fatal(err)
				}
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := conn.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				var reply ntpwire.Packet
				if err := reply.Decode(buf[:n]); err != nil {
					t.Fatal(err)
				}
				c.received(reply, time.Now())
				replies = append(replies, reply)
				if i >= 2 && reply.OrigTime != req.RecvTime {
					t.Fatalf("reply %d not interleaved: %+v", i+1, reply)
				}
			}
			// Reply 2 was basic, with the server's own transmit time
			// (predicted, and calibrated against earlier kernel
			// stamps, so the kernel's may be a little earlier or
			// later); reply 3 carries reply 2's kernel stamp, taken as
			// it left.
			d := replies[2].XmitTime.Sub(replies[1].XmitTime)
			if d == 0 || d.Abs() > maxKernelTxDelay {
				t.Fatalf("kernel stamp %v from the server's own", d)
			}
			for i := 3; i < 5; i++ {
				if replies[i].XmitTime.Sub(replies[i-1].RecvTime) <= 0 {
					t.Fatalf("reply %d: previous transmit %#x before previous receive %#x", i+1, replies[i].XmitTime, replies[i-1].RecvTime)
				}
			}
			// The counters are bumped just after the send: give them a
			// moment.
			waitFor(t, func() bool { st := s.Stats(); return st.KernelTxStamps >= 3 && st.Interleaved == 3 }, "3 interleaved replies and 3 kernel stamps counted")
		})
	}
}

// TestInterleavedSocketPathDoesNotAllocate runs chrony-style exchanges
// over a real socket, kernel transmit stamps included (Linux).
func TestInterleavedSocketPathDoesNotAllocate(t *testing.T) {
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
	p := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, XmitTime: 0x1000}
	req := p.AppendTo(nil)
	buf := make([]byte, 512)
	roundTrip := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
		copy(req[24:32], buf[32:40]) // origin = the reply's receive timestamp
		req[39]++                    // receive != transmit
		req[47] += 3
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	roundTrip() // warm up: the next replies are interleaved
	roundTrip()
	allocs := testing.AllocsPerRun(500, roundTrip)
	if allocs != 0 {
		t.Fatalf("an interleaved request over a real socket allocates %v times, want 0", allocs)
	}
	waitFor(t, func() bool { return s.Stats().Replies >= 502 }, "502 replies counted")
	st := s.Stats()
	if st.Interleaved < 500 {
		t.Fatalf("%d interleaved replies, want >= 500", st.Interleaved)
	}
	if runtime.GOOS == "linux" && st.KernelTxStamps < 500 {
		t.Fatalf("%d kernel transmit stamps, want >= 500", st.KernelTxStamps)
	}
}

// TestKernelTxStampsSharedSocket has several workers read one socket
// (they share its stamp numbering and pending sends) while several
// chrony-style clients poll it at once. Every reply must be basic or a
// plausible interleaved one, and kernel stamps must be used.
func TestKernelTxStampsSharedSocket(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("kernel transmit stamps are read on Linux only")
	}
	s := &Server{Source: NewLocalSource(nil, 3), Workers: 3}
	addr := startServer(t, s, "udp4")
	const clients, exchanges = 4, 50
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
				if err != nil {
					return err
				}
				defer conn.Close()
				c := &chronyClient{version: 4}
				buf := make([]byte, 512)
				var prev ntpwire.Packet
				for i := 0; i < exchanges; i++ {
					req := c.request()
					if _, err := conn.Write(req.AppendTo(nil)); err != nil {
						return err
					}
					conn.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, err := conn.Read(buf)
					if err != nil {
						return err
					}
					var reply ntpwire.Packet
					if err := reply.Decode(buf[:n]); err != nil {
						return err
					}
					switch {
					case reply.OrigTime == req.XmitTime:
					case i > 0 && reply.OrigTime == req.RecvTime:
						// The previous reply left after it was received
						// and before this request arrived.
						if reply.XmitTime.Sub(prev.RecvTime) <= 0 || reply.RecvTime.Sub(reply.XmitTime) <= 0 {
							return fmt.Errorf("exchange %d: previous transmit %#x outside (%#x, %#x)", i, reply.XmitTime, prev.RecvTime, reply.RecvTime)
						}
					default:
						return fmt.Errorf("exchange %d: reply %+v matches neither mode", i, reply)
					}
					c.received(reply, time.Now())
					prev = reply
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return s.Stats().Replies == clients*exchanges }, "every reply counted")
	st := s.Stats()
	t.Logf("%d replies, %d interleaved, %d kernel stamps", st.Replies, st.Interleaved, st.KernelTxStamps)
	if st.Interleaved < clients*(exchanges-2)/2 || st.KernelTxStamps < st.Interleaved/2 {
		t.Fatalf("stats %+v: too few interleaved replies or kernel stamps", st)
	}
}

// BenchmarkInterleaved measures one chrony-style exchange through a
// worker with in-memory I/O, with interleaved mode on (every reply after
// the second is interleaved: a table take and save per request) and off
// (the same requests get basic replies).
func BenchmarkInterleaved(b *testing.B) {
	for _, tc := range []struct {
		name string
		off  bool
	}{{"on", false}, {"off", true}} {
		b.Run(tc.name, func(b *testing.B) {
			s := &Server{DisableInterleaved: tc.off}
			s.init()
			req := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, XmitTime: 0x1000}
			w := s.newWorker(&echoIO{req: req.AppendTo(nil)}, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				n, _ := w.io.read(w.in)
				w.handleBatch(n)
			}
		})
	}
}

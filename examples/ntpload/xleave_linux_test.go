//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"math"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ntpkit/ntpkit/internal/interop"
	"github.com/ntpkit/ntpkit/internal/txstamp"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// ntpAt is the wire timestamp of Unix nanoseconds ns.
func ntpAt(ns int64) ntpwire.Time { return ntpwire.TimeOf(time.Unix(0, ns)) }

// near reports whether the histogram's only value is want within its
// bucket error (3%, at least 2 ns).
func near(h *hist, want int64) bool {
	return h.n == 1 && math.Abs(h.quantile(1)-float64(want)) <= 0.035*math.Abs(float64(want))+2
}

// A basic reply completes its own exchange, an interleaved reply the
// exchange its request quoted: each is told by its origin timestamp and
// uses the right four timestamps, and each reply is quoted by the next
// request.
func TestInterleavedCheckUsesTheRightExchange(t *testing.T) {
	l := &loader{cfg: &config{timeout: time.Second, interleaved: true}}
	l.res.init()
	s := &sock{xl: newXleaveSock()}

	// Exchange A: the request leaves at a (kernel stamp), reaches the
	// server 20 µs later, whose clock is theta ahead; the server sends
	// its reply 30 µs after that but wrote a transmit timestamp 20 µs
	// early; the reply takes 20 µs back.
	const us = int64(time.Microsecond)
	const theta = 5 * us
	a := time.Date(2026, 12, 2, 22, 0, 0, 0, time.UTC).UnixNano()
	t2 := ntpAt(a + 20*us + theta)
	t3basic := ntpAt(a + 30*us + theta)
	t3true := ntpAt(a + 50*us + theta)
	t4 := a + 70*us
	const seqA, cookieA = 7, 0xabc0000000000007
	s.ring[seqA] = slot{cookie: cookieA, used: true, t1: a + 3*us, seq: seqA, ktx: a}
	s.inflight = 1
	basic := (&ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 2, OrigTime: cookieA, RecvTime: t2, XmitTime: t3basic}).AppendTo(nil)
	l.check(s, basic, t4)
	// ((20+5) + (-20+5))/2 - 20/2: the early T3 costs half its error.
	if l.res.basicReplies != 1 || !near(&l.res.offBasic, -5*us) || l.res.offXleave.n != 0 {
		t.Fatalf("basic reply: %d basic, offset p50 %v ns, want 1 and -5000", l.res.basicReplies, l.res.offBasic.quantile(0.5))
	}

	// Request B quotes exchange A.
	const seqB, cookieB = 9, 0x1230000000000009
	b := make([]byte, ntpwire.HeaderLen)
	sl := &s.ring[seqB]
	*sl = slot{cookie: cookieB}
	s.xl.quote(sl, b, seqB, cookieB)
	var req ntpwire.Packet
	if err := req.Decode(b); err != nil {
		t.Fatal(err)
	}
	if req.OrigTime != t2 || uint64(req.RecvTime) != sl.xcookie || sl.xcookie&ringMask != seqB || req.RecvTime == cookieB {
		t.Fatalf("request B: origin %#x receive %#x (xcookie %#x), want origin %#x and the slot's xcookie", req.OrigTime, req.RecvTime, sl.xcookie, t2)
	}
	if d := req.RecvTime.In(time.Unix(0, t4)).UnixNano() - t4; d < -2*us || d > 2*us {
		t.Errorf("request B's receive field is %d ns from T4 of exchange A", d)
	}
	sl.used, sl.seq, sl.t1, sl.ktx = true, seqB, a+1000*us, a+1000*us
	s.inflight = 1

	// B's interleaved reply: origin = B's receive field, transmit = the
	// true transmit time of A's reply. It measures exchange A exactly.
	xl := (&ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 2,
		OrigTime: ntpwire.Time(sl.xcookie), RecvTime: ntpAt(a + 1020*us + theta), XmitTime: t3true}).AppendTo(nil)
	l.check(s, xl, a+1070*us)
	if l.res.xleaveReplies != 1 || !near(&l.res.offXleave, theta) {
		t.Fatalf("interleaved reply: %d interleaved, offset %v ns, want 1 and %d", l.res.xleaveReplies, l.res.offXleave.quantile(0.5), theta)
	}
	l.check(s, xl, a+1071*us)
	if l.res.invalid[badDuplicate] != 1 || l.res.valid != 2 {
		t.Errorf("the same interleaved reply twice: invalid %v valid %d, want one duplicate", l.res.invalid, l.res.valid)
	}
	// The next request quotes B's reply with B's kernel T1.
	e, ok := s.xl.pop()
	if want := (exchange{t1: a + 1000*us, t2: ntpAt(a + 1020*us + theta), t4: a + 1070*us}); !ok || e != want {
		t.Errorf("quoted next: %+v, %v; want %+v", e, ok, want)
	}
	// A's reply was quoted by B already, once.
	if _, ok := s.xl.pop(); ok {
		t.Error("an exchange was left to be quoted twice")
	}
}

// An exchange without a kernel transmit stamp counts, but yields no
// offset.
func TestInterleavedMissingStamp(t *testing.T) {
	l := &loader{cfg: &config{timeout: time.Second, interleaved: true}}
	l.res.init()
	s := &sock{xl: newXleaveSock()}
	now := time.Now().UnixNano()
	s.ring[3] = slot{cookie: 0x5550000000000003, used: true, t1: now, seq: 3}
	s.inflight = 1
	p := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 2, OrigTime: 0x5550000000000003, RecvTime: ntpAt(now + 1000), XmitTime: ntpAt(now + 2000)}
	l.check(s, p.AppendTo(nil), now+3000)
	if l.res.valid != 1 || l.res.basicReplies != 1 || l.res.stampMissing != 1 || l.res.offBasic.n != 0 || l.res.offset.n != 0 {
		t.Errorf("valid %d basic %d missing %d samples %d: want the reply counted without an offset", l.res.valid, l.res.basicReplies, l.res.stampMissing, l.res.offBasic.n)
	}
}

// xleaveServer is a fake chrony-style interleaved server on loopback. Its
// basic replies carry a transmit timestamp skew too late, as a server
// that stamps before sending and then waits would; its interleaved
// replies carry the time the earlier reply's send returned. It answers
// every fifth quoting request basic, as if it had lost the state, so
// basic replies come throughout the run, not only at its start.
func xleaveServer(t *testing.T, skew time.Duration) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		sent := map[ntpwire.Time]time.Time{} // reply receive timestamp -> when that reply was sent
		buf := make([]byte, 512)
		for k := 0; ; k++ {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			rx := time.Now()
			var req ntpwire.Packet
			if req.Decode(buf[:n]) != nil || req.Mode != ntpwire.ModeClient {
				continue
			}
			rxTS := ntpwire.TimeOf(rx) | 1
			resp := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 2, RecvTime: rxTS}
			quoted := req.OrigTime&1 == 1 && req.RecvTime != req.XmitTime
			if tx, ok := sent[req.OrigTime]; quoted && ok && k%5 != 0 {
				resp.OrigTime, resp.XmitTime = req.RecvTime, ntpwire.TimeOf(tx)&^1
			} else {
				resp.OrigTime, resp.XmitTime = req.XmitTime, ntpwire.TimeOf(time.Now().Add(skew))&^1
			}
			delete(sent, req.OrigTime)
			if _, err := c.WriteToUDPAddrPort(resp.AppendTo(nil), from); err != nil {
				return
			}
			if quoted {
				sent[rxTS] = time.Now()
			}
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestLoadInterleavedAgainstFakeServer(t *testing.T) {
	// Far above the in-process fake's own scheduling noise (its receive
	// stamps are user-space ones, often tens of µs late).
	const skew = 4 * time.Millisecond
	addr := xleaveServer(t, skew)
	cfg := loadCfg(t, addr, "-interleaved", "-rate", "2000", "-sockets", "2")
	res, err := load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep := res.report(cfg)
	var out strings.Builder
	rep.writeText(&out)
	t.Logf("report:\n%s", out.String())
	var js strings.Builder
	if err := rep.writeJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"|offset| basic", "|offset| interleaved", "interleaved: basic replies"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q", want)
		}
	}
	for _, want := range []string{`"abs_offset_basic_us"`, `"abs_offset_interleaved_us"`, `"interleaved_replies"`, `"basic_replies"`} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("JSON report lacks %s", want)
		}
	}
	x := rep.Interleaved
	if x == nil {
		t.Fatal("no interleaved figures in the report")
	}
	if rep.Valid == 0 || rep.Valid != rep.Replies || len(rep.Invalid) != 0 || x.BasicReplies+x.InterleavedReplies != rep.Valid {
		t.Fatalf("replies %d valid %d invalid %v, basic %d + interleaved %d: want every reply valid and classified", rep.Replies, rep.Valid, rep.Invalid, x.BasicReplies, x.InterleavedReplies)
	}
	// A fifth answered basic on purpose, plus each chain's first two.
	if x.InterleavedPercent < 65 || x.InterleavedPercent > 82 {
		t.Errorf("%d basic and %d interleaved replies: want about 80%% interleaved", x.BasicReplies, x.InterleavedReplies)
	}
	// The fifth of quoting requests answered basic are fallbacks.
	if x.BasicFallbacks == 0 || x.BasicFallbacks >= x.BasicReplies {
		t.Errorf("%d of %d basic replies answer quoting requests: want most, not all", x.BasicFallbacks, x.BasicReplies)
	}
	if x.TxStampsMissing != 0 || x.BasicSamples != x.BasicReplies || x.InterleavedSamples != x.InterleavedReplies {
		t.Errorf("kernel transmit stamps missing %d, samples %d/%d: want one per reply", x.TxStampsMissing, x.BasicSamples, x.InterleavedSamples)
	}
	// Basic offsets carry half the skew; interleaved ones only the fake
	// server's user-space stamping.
	half := float64(skew/2) / 1e3
	if x.AbsOffsetBasic.P50 < half*0.9 || x.AbsOffsetBasic.P50 > half*1.5 {
		t.Errorf("basic |offset| p50 %.1f µs, want about %.0f", x.AbsOffsetBasic.P50, half)
	}
	if x.AbsOffsetXleave.P50 > half/4 {
		t.Errorf("interleaved |offset| p50 %.1f µs, want well below the basic %.0f", x.AbsOffsetXleave.P50, half)
	}
}

// chronyd (4.x) answers interleaved requests by default, with kernel
// transmit stamps.
func TestLoadInterleavedAgainstChronyd(t *testing.T) {
	port := freeUDPPort(t)
	log := interop.StartChronydServer(t, port)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	waitNTP(t, addr, log.String)
	cfg := loadCfg(t, addr, "-interleaved", "-rate", "2000", "-sockets", "2", "-duration", "500ms")
	res, err := load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep := res.report(cfg)
	x := rep.Interleaved
	if rep.Valid == 0 || len(rep.Invalid) != 0 || rep.LossPercent > 1 {
		t.Fatalf("sent %d valid %d invalid %v loss %.2f%%", rep.Sent, rep.Valid, rep.Invalid, rep.LossPercent)
	}
	if x.InterleavedPercent < 80 || x.TxStampsMissing != 0 {
		t.Errorf("%d basic, %d interleaved replies, %d without kernel T1: want mostly interleaved, all stamped", x.BasicReplies, x.InterleavedReplies, x.TxStampsMissing)
	}
	// Kernel stamps at both ends of both directions on one clock.
	if x.AbsOffsetXleave.P50 > 20 {
		t.Errorf("interleaved |offset| p50 %.1f µs, want a few µs at most", x.AbsOffsetXleave.P50)
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// waitNTP waits up to 10 s for an NTP server at addr to answer.
func waitNTP(t *testing.T, addr netip.AddrPort, log func() string) {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := (&ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, XmitTime: 1}).AppendTo(nil)
	buf := make([]byte, 512)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if _, err := c.Write(req); err != nil && !errors.Is(err, unix.ECONNREFUSED) {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := c.Read(buf); err == nil && n >= ntpwire.HeaderLen {
			return
		}
	}
	t.Fatalf("no NTP server at %v after 10 s:\n%s", addr, log())
}

// The interleaved send and receive paths allocate nothing per request:
// one request out (with its transmit stamp request), one reply back
// (alternately basic and interleaved), its stamp matched.
func TestInterleavedHotLoopAllocs(t *testing.T) {
	srv, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(srv)
	if err := unix.Bind(srv, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(srv)
	if err != nil {
		t.Fatal(err)
	}
	target := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sa.(*unix.SockaddrInet4).Port))
	cfg := loadCfg(t, target, "-interleaved", "-sockets", "1", "-batch", "1")
	fd, err := openSocket(cfg, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := txstamp.Enable(uintptr(fd)); err != nil {
		t.Fatal(err)
	}
	ca, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(srv, ca); err != nil {
		t.Fatal(err)
	}
	s := &sock{fd: fd, xl: newXleaveSock()}
	l, err := newLoader(cfg, []*sock{s}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()

	// The fake server answers a quoting request interleaved with the
	// previous reply's transmit time, else basic.
	buf := make([]byte, 512)
	var lastRx, lastTx ntpwire.Time
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	roundTrip := func() {
		if l.send(s, 1) != 1 {
			t.Fatal("send failed")
		}
		n, err := unix.Read(srv, buf)
		if err != nil || n < ntpwire.HeaderLen {
			t.Fatalf("server read: %d, %v", n, err)
		}
		origin := ntpwire.Time(binary.BigEndian.Uint64(buf[24:]))
		recv := binary.BigEndian.Uint64(buf[32:])
		xmit := binary.BigEndian.Uint64(buf[40:])
		rx := ntpwire.TimeOf(time.Now()) | 1
		buf[0] = 4<<3 | byte(ntpwire.ModeServer)
		buf[1] = 2
		if origin == lastRx && origin != 0 {
			binary.BigEndian.PutUint64(buf[24:], recv)
			binary.BigEndian.PutUint64(buf[40:], uint64(lastTx))
		} else {
			binary.BigEndian.PutUint64(buf[24:], xmit)
			binary.BigEndian.PutUint64(buf[40:], uint64(ntpwire.TimeOf(time.Now())&^1))
		}
		binary.BigEndian.PutUint64(buf[32:], uint64(rx))
		if _, err := unix.Write(srv, buf[:ntpwire.HeaderLen]); err != nil {
			t.Fatal(err)
		}
		lastRx, lastTx = rx, ntpwire.TimeOf(time.Now())&^1
		for v := l.res.valid; l.res.valid == v; {
			if _, err := unix.Poll(pfd, 1000); err != nil && err != unix.EINTR {
				t.Fatal(err)
			}
			l.recv(s)
		}
	}
	roundTrip() // warm up: the first replies are basic
	roundTrip()
	allocs := testing.AllocsPerRun(200, roundTrip)
	if allocs != 0 {
		t.Errorf("%.1f allocations per request, want 0", allocs)
	}
	if l.res.xleaveReplies < 200 || l.res.stampMissing != 0 {
		t.Errorf("%d interleaved replies, %d without kernel T1: the interleaved path was not exercised", l.res.xleaveReplies, l.res.stampMissing)
	}
}

// Requests that were not sent give back the exchanges they quoted.
func TestInterleavedUnsentRequestsUnquote(t *testing.T) {
	s := &sock{xl: newXleaveSock(), head: 40}
	e1, e2 := exchange{t1: 1, t2: 3, t4: 5}, exchange{t1: 2, t2: 5, t4: 7}
	s.xl.push(e1)
	s.xl.push(e2)
	b := make([]byte, ntpwire.HeaderLen)
	for i := uint64(0); i < 3; i++ { // the third finds nothing to quote
		seq := s.head + i
		s.xl.quote(&s.ring[seq&ringMask], b, seq, 0x1000+seq)
	}
	if s.ring[40].ref != e2 || s.ring[41].ref != e1 || s.ring[42].xcookie != 0 {
		t.Fatalf("quoted %+v, %+v, xcookie %#x: want the freshest first, then nothing", s.ring[40].ref, s.ring[41].ref, s.ring[42].xcookie)
	}
	unquote(s, 1, 3) // only the first went out
	if e, ok := s.xl.pop(); !ok || e != e1 || s.ring[41].xcookie != 0 {
		t.Errorf("after unquote: %+v, %v, xcookie %#x; want e1 back and the slot cleared", e, ok, s.ring[41].xcookie)
	}
	if _, ok := s.xl.pop(); ok {
		t.Error("an exchange quoted by a sent request came back")
	}
}

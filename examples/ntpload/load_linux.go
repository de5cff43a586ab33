//go:build linux

package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ntpkit/ntpkit/internal/txstamp"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// The client loop talks to the kernel directly: each socket is a
// connected, non-blocking UDP socket (one source port), read and written
// with recvmmsg/sendmmsg into buffers allocated once, and one epoll
// instance per goroutine waits for replies. Nothing on the loop allocates.

const (
	ringMask = ringSize - 1
	recvLen  = 512 // longest reply read whole
	oobLen   = 64  // room for SCM_TIMESTAMPNS
)

// slot remembers one outstanding request.
type slot struct {
	cookie  uint64 // the transmit timestamp sent, echoed as origin
	t1      int64  // when it was sent (Unix ns)
	used    bool   // outstanding: sent, not answered, not yet lost
	expired bool   // counted lost unanswered (a reply now is late)
	// prev and prevExpired remember the request the slot held before,
	// so that a reply to it is told from garbage.
	prev        uint64
	prevExpired bool

	// Interleaved mode (-interleaved) only.
	seq     uint64   // the request's sequence number, to match its kernel transmit stamp
	ktx     int64    // kernel transmit time of the request (Unix ns); 0 until its stamp is read
	xcookie uint64   // the receive timestamp sent, echoed as origin by an interleaved reply; 0: sent in basic form
	prevX   uint64   // xcookie of the request the slot held before
	ref     exchange // the earlier exchange the request quotes, which an interleaved reply completes
}

type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// sock is one client socket and its outstanding requests.
type sock struct {
	fd         int
	ring       [ringSize]slot
	head, tail uint64 // next sequence to send; oldest maybe outstanding
	inflight   int
	nts        *ntsSock    // nil: plain NTP
	xl         *xleaveSock // nil: basic mode only
}

// loader drives a share of the sockets from one goroutine.
type loader struct {
	cfg   *config
	socks []*sock
	epfd  int
	ev    []unix.EpollEvent
	rnd   *rand.PCG

	// send side; requests and replies are stride bytes apart
	stride int
	sbuf   []byte
	siov   []unix.Iovec
	sh     []mmsghdr
	// receive side
	rbuf []byte
	riov []unix.Iovec
	rh   []mmsghdr
	roob []byte
	oobN int // control bytes per received datagram

	// interleaved mode: the send side's transmit stamp requests and
	// the error-queue reader
	soob   []byte
	stamps *txstamp.Queue

	rate float64 // requests per second for this loader; 0: unlimited
	res  result
}

func openSocket(cfg *config, src netip.Addr) (int, error) {
	family := unix.AF_INET
	if cfg.target.Addr().Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fail := func(what string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", what, err)
	}
	// Kernel receive stamps make T4 exclude our own queueing.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	if cfg.bufSize > 0 {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, cfg.bufSize)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, cfg.bufSize)
	}
	if src.IsValid() {
		if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(src, 0))); err != nil {
			return fail(fmt.Sprintf("bind %v", src), err)
		}
	}
	if err := unix.Connect(fd, sockaddr(cfg.target)); err != nil {
		return fail(fmt.Sprintf("connect %v", cfg.target), err)
	}
	return fd, nil
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func newLoader(cfg *config, socks []*sock, rate float64, seed uint64) (*loader, error) {
	b := cfg.batch
	stride := recvLen
	if cfg.nts.ke != "" {
		stride = ntsStride
	}
	l := &loader{
		cfg:    cfg,
		stride: stride,
		socks:  socks,
		ev:     make([]unix.EpollEvent, len(socks)),
		rnd:    rand.NewPCG(seed, seed^0x9e3779b97f4a7c15),
		sbuf:   make([]byte, b*stride),
		siov:   make([]unix.Iovec, b),
		sh:     make([]mmsghdr, b),
		rbuf:   make([]byte, b*stride),
		riov:   make([]unix.Iovec, b),
		rh:     make([]mmsghdr, b),
		oobN:   oobLen,
		rate:   rate,
	}
	if cfg.interleaved {
		// Older kernels add a software receive stamp to every datagram
		// once transmit stamps are reported.
		l.oobN += txstamp.ReceiveSpace
		l.soob = make([]byte, b*txstamp.RequestSpace)
		l.stamps = txstamp.NewQueue(stampBatch)
	}
	l.roob = make([]byte, b*l.oobN)
	l.res.init()
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	l.epfd = epfd
	for i, s := range socks {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
			unix.Close(epfd)
			return nil, fmt.Errorf("epoll add: %w", err)
		}
	}
	req := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, Poll: 6, Precision: -20}
	for i := 0; i < b; i++ {
		req.AppendTo(l.sbuf[i*stride : i*stride])
		l.siov[i].Base = &l.sbuf[i*stride]
		l.siov[i].SetLen(ntpwire.HeaderLen)
		l.sh[i].hdr.Iov = &l.siov[i]
		l.sh[i].hdr.SetIovlen(1)
		if cfg.interleaved {
			// Every request asks for its kernel transmit stamp.
			oob := l.soob[i*txstamp.RequestSpace : (i+1)*txstamp.RequestSpace]
			l.sh[i].hdr.Control = &oob[0]
			l.sh[i].hdr.SetControllen(txstamp.PutRequest(oob))
		}
		l.riov[i].Base = &l.rbuf[i*stride]
		l.riov[i].SetLen(stride)
	}
	return l, nil
}

func (l *loader) close() { unix.Close(l.epfd) }

func nowNanos() int64 { return time.Now().UnixNano() }

// run sends and receives until end (Unix ns), then waits up to the
// configured timeout for the last replies.
func (l *loader) run(start, end int64) {
	cfg := l.cfg
	next := 0 // socket to send on first, rotating
	var sent float64
	for {
		now := nowNanos()
		if now >= end {
			break
		}
		// How many requests may go out now.
		budget := 1 << 30
		if l.rate > 0 {
			due := l.rate*float64(now-start)/1e9 - sent
			// Do not save up more than a batch per socket after a stall.
			due = min(due, float64(cfg.batch*len(l.socks)))
			budget = int(due)
			if budget < 0 {
				budget = 0
			}
		}
		didSend := 0
		for i := 0; i < len(l.socks) && budget > 0; i++ {
			s := l.socks[(next+i)%len(l.socks)]
			l.expire(s, now)
			n := min(budget, cfg.batch, cfg.window-s.inflight)
			if n <= 0 {
				continue
			}
			n = l.send(s, n)
			budget -= n
			didSend += n
		}
		sent += float64(didSend)
		next++
		// Wait for replies: not at all while there is more to send,
		// else until the next request is due (or 1 ms).
		wait := 0
		if budget == 0 || didSend == 0 {
			wait = 1
			if l.rate > 0 {
				gap := 1e9 / l.rate
				wait = max(0, min(1, int(gap/1e6)))
			}
		}
		l.poll(wait)
	}
	l.res.sendNanos = end - start
	// Drain: wait for what is still outstanding.
	deadline := nowNanos() + int64(cfg.timeout)
	for nowNanos() < deadline && l.outstanding() > 0 {
		l.poll(10)
	}
	for _, s := range l.socks {
		for ; s.tail < s.head; s.tail++ {
			if sl := &s.ring[s.tail&ringMask]; sl.used {
				sl.used, sl.expired = false, true
				l.res.lost++
			}
		}
		s.inflight = 0
	}
}

func (l *loader) outstanding() int {
	n := 0
	for _, s := range l.socks {
		n += s.inflight
	}
	return n
}

// expire forgets requests older than the timeout, counting them lost.
func (l *loader) expire(s *sock, now int64) {
	limit := now - int64(l.cfg.timeout)
	if s.head-s.tail > ringSize {
		// Older slots were reused by send, which counted them.
		s.tail = s.head - ringSize
	}
	for s.tail < s.head {
		sl := &s.ring[s.tail&ringMask]
		if sl.used {
			if sl.t1 > limit {
				return
			}
			sl.used, sl.expired = false, true
			s.inflight--
			l.res.lost++
		}
		s.tail++
	}
}

// send sends n requests on s with random transmit timestamps whose low
// bits index the ring, and returns how many went out.
func (l *loader) send(s *sock, n int) int {
	for i := 0; i < n; i++ {
		seq := s.head + uint64(i)
		cookie := l.rnd.Uint64()&^ringMask | seq&ringMask
		off := i * l.stride
		ntpwire.PutXmitTime(l.sbuf[off:], ntpwire.Time(cookie))
		if s.nts != nil {
			req := s.nts.appendRequest(l.sbuf[off:off+ntpwire.HeaderLen:off+l.stride], cookie)
			l.siov[i].SetLen(len(req))
		}
		sl := &s.ring[seq&ringMask]
		if sl.used { // ring full: the oldest is lost
			s.inflight--
			l.res.lost++
			sl.expired = true
		}
		sl.prev, sl.prevExpired, sl.prevX = sl.cookie, sl.expired, sl.xcookie
		sl.cookie = cookie
		sl.used, sl.expired = false, false
		sl.xcookie = 0
		if s.xl != nil {
			s.xl.quote(sl, l.sbuf[off:], seq, cookie)
		}
	}
	t0 := nowNanos()
	r, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&l.sh[0])), uintptr(n), unix.MSG_DONTWAIT, 0, 0)
	t1 := nowNanos()
	if errno != 0 {
		l.res.sendErrors++
		if s.xl != nil {
			unquote(s, 0, n)
			l.resetStamps(s)
		}
		return 0
	}
	sent := int(r)
	// T1 of the i-th datagram: the kernel sends them one after another,
	// so each gets the start of its share of the call's duration.
	step := (t1 - t0) / int64(max(sent, 1))
	for i := 0; i < sent; i++ {
		sl := &s.ring[(s.head+uint64(i))&ringMask]
		sl.t1 = t0 + int64(i)*step
		sl.used = true
		if s.xl != nil {
			seq := s.head + uint64(i)
			sl.seq, sl.ktx = seq, 0
			s.xl.pending.Add(seq)
		}
	}
	if s.xl != nil {
		if sent < n {
			unquote(s, sent, n)
			// The first unsent datagram may have used up a stamp ID.
			l.resetStamps(s)
		} else {
			l.readStamps(s)
		}
	}
	s.head += uint64(sent)
	s.inflight += sent
	l.res.sent += uint64(sent)
	return sent
}

// poll waits up to ms milliseconds for replies and reads them.
func (l *loader) poll(ms int) {
	n, err := unix.EpollWait(l.epfd, l.ev, ms)
	if err != nil {
		return // EINTR
	}
	for i := 0; i < n; i++ {
		l.recv(l.socks[l.ev[i].Fd])
	}
}

// recv reads every reply waiting on s.
func (l *loader) recv(s *sock) {
	b := l.cfg.batch
	if s.xl != nil && s.xl.pending.Len() > 0 {
		l.readStamps(s) // T1 of the exchanges these replies complete
	}
	for {
		for i := 0; i < b; i++ {
			h := &l.rh[i].hdr
			h.Iov = &l.riov[i]
			h.SetIovlen(1)
			h.Control = &l.roob[i*l.oobN]
			h.SetControllen(l.oobN)
			h.Flags = 0
		}
		r, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&l.rh[0])), uintptr(b), unix.MSG_DONTWAIT, 0, 0)
		now := nowNanos()
		if errno != 0 {
			if errno != unix.EAGAIN && errno != unix.EINTR {
				l.res.recvErrors++ // ICMP port unreachable and the like
				continue
			}
			return
		}
		for i := 0; i < int(r); i++ {
			h := &l.rh[i]
			t4 := rxStamp(l.roob[i*l.oobN : i*l.oobN+int(h.hdr.Controllen)])
			if t4 == 0 {
				t4 = now
			}
			l.check(s, l.rbuf[i*l.stride:i*l.stride+int(h.n)], t4)
		}
		if int(r) < b {
			return
		}
	}
}

// rxStamp returns the SCM_TIMESTAMPNS stamp in control data, or 0.
func rxStamp(b []byte) int64 {
	hl := unix.CmsgLen(0)
	for len(b) >= hl {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < hl || l > len(b) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPNS && l-hl >= int(unsafe.Sizeof(unix.Timespec{})) {
			return (*unix.Timespec)(unsafe.Pointer(&b[hl])).Nano()
		}
		next := unix.CmsgSpace(l - hl)
		if next > len(b) {
			return 0
		}
		b = b[next:]
	}
	return 0
}

// check validates one reply and records it.
func (l *loader) check(s *sock, b []byte, t4 int64) {
	r := &l.res
	r.replies++
	var p ntpwire.Packet
	if p.Decode(b) != nil {
		r.invalid[badShort]++
		return
	}
	if p.Mode != ntpwire.ModeServer {
		r.invalid[badMode]++
		return
	}
	origin := uint64(p.OrigTime)
	sl := &s.ring[origin&ringMask]
	// An interleaved reply echoes the receive timestamp the request
	// carried (xcookie), a basic one its transmit timestamp (cookie).
	isX := origin != 0 && sl.xcookie == origin
	wasX := origin != 0 && sl.prevX == origin
	interleaved := false
	switch {
	case sl.used && sl.cookie == origin:
	case sl.used && isX:
		interleaved = true
	case (sl.cookie == origin || isX) && sl.expired, (sl.prev == origin || wasX) && sl.prevExpired:
		r.invalid[badLate]++ // its request was already counted lost
		return
	case sl.cookie == origin, sl.prev == origin, isX, wasX:
		r.invalid[badDuplicate]++
		return
	default:
		r.invalid[badOrigin]++
		return
	}
	// An NTS NAK is the one reply that comes unauthenticated. A reply
	// that fails authentication leaves its request outstanding.
	if s.nts != nil && !(p.IsKiss() && p.RefID == ntpwire.KissNTSN) && !s.nts.verify(b, origin) {
		r.invalid[badAuth]++
		return
	}
	sl.used = false
	s.inflight--
	if p.IsKiss() {
		r.kod[p.RefID]++
		return
	}
	if s.xl != nil {
		l.sampleInterleaved(s, sl, &p, t4, interleaved)
		return
	}
	if p.XmitTime.Sub(p.RecvTime) < 0 {
		r.invalid[badT3BeforeT2]++
		return
	}
	r.valid++
	t1 := sl.t1
	pivot := time.Unix(0, t1)
	t2 := p.RecvTime.In(pivot).UnixNano()
	t3 := p.XmitTime.In(pivot).UnixNano()
	r.rtt.add((t4 - t1) - (t3 - t2))
	r.proc.add(t3 - t2)
	r.offset.add(((t2 - t1) + (t3 - t4)) / 2)
}

// load runs the whole test described by cfg and returns the merged tally.
func load(cfg *config) (*result, error) {
	if cfg.flood.prefix.IsValid() {
		return flood(cfg)
	}
	var socks []*sock
	defer func() {
		for _, s := range socks {
			unix.Close(s.fd)
		}
	}()
	for i := 0; i < cfg.sockets; i++ {
		var src netip.Addr
		if len(cfg.srcs) > 0 {
			src = cfg.srcs[i%len(cfg.srcs)]
		}
		fd, err := openSocket(cfg, src)
		if err != nil {
			return nil, err
		}
		s := &sock{fd: fd}
		socks = append(socks, s)
		if cfg.interleaved {
			if err := txstamp.Enable(uintptr(fd)); err != nil {
				return nil, fmt.Errorf("-interleaved needs kernel transmit timestamps: %w", err)
			}
			s.xl = newXleaveSock()
		}
	}
	if cfg.nts.ke != "" {
		ns, err := newNTSSocks(&cfg.nts, len(socks), cfg.srcs)
		if err != nil {
			return nil, err
		}
		for i, s := range socks {
			s.nts = ns[i]
		}
	}
	threads := min(cfg.threads, len(socks))
	loaders := make([]*loader, 0, threads)
	defer func() {
		for _, l := range loaders {
			l.close()
		}
	}()
	seed := uint64(time.Now().UnixNano())
	for t := 0; t < threads; t++ {
		var mine []*sock
		for i := t; i < len(socks); i += threads {
			mine = append(mine, socks[i])
		}
		l, err := newLoader(cfg, mine, cfg.rate/float64(threads), seed+uint64(t))
		if err != nil {
			return nil, err
		}
		loaders = append(loaders, l)
	}
	start := nowNanos()
	end := start + int64(cfg.duration)
	done := make(chan struct{}, len(loaders))
	for _, l := range loaders {
		go func() {
			l.run(start, end)
			done <- struct{}{}
		}()
	}
	for range loaders {
		<-done
	}
	total := &result{}
	total.init()
	for _, l := range loaders {
		total.merge(&l.res)
	}
	return total, nil
}

//go:build linux

package server

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ntpkit/ntpkit/internal/txstamp"
)

// The Linux path reads and writes batches with recvmmsg/sendmmsg directly.
// golang.org/x/net's ReadBatch allocates a net.Addr per datagram; here the
// socket addresses and control messages live in buffers each worker owns
// and reuses, so a request costs no allocation.

// oobLen is each datagram's control buffer: on reads room for
// IPV6_PKTINFO (40), SCM_TIMESTAMPNS (32) and, on kernels before 6.12
// with transmit stamps enabled, an SCM_TIMESTAMPING (64,
// txstamp.ReceiveSpace); on sends for IPV6_PKTINFO and a transmit stamp
// request (txstamp.RequestSpace, 24).
const oobLen = 192

var cmsgHdrLen = unix.CmsgLen(0)

// mmsghdr mirrors struct mmsghdr.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// socketInfo is what a worker needs to know about its socket.
type socketInfo struct {
	rc       syscall.RawConn
	v6       bool // AF_INET6 socket (possibly dual-stack)
	wildcard bool // bound to an unspecified address: set each reply's source
	port     uint16
	tx       *txSocket // nil: no kernel transmit stamps
}

// txSocket is the transmit-stamp state of one socket, shared by the
// workers reading it. The kernel numbers stamped datagrams per socket
// (OPT_ID), so stamped sends and Pending.Add happen under mu, in send
// order; replies that ask for no stamp take no lock.
type txSocket struct {
	mu      sync.Mutex
	pending *txstamp.Pending[txSent]
	queue   *txstamp.Queue
	// dirty is set by a stamped send and cleared by a read of the
	// error queue that found it empty: only then is it worth reading.
	dirty atomic.Bool
}

// txPendingSize bounds the stamped sends awaiting their stamp per
// socket; a stamp that never comes is forgotten after this many more.
const txPendingSize = 1024

// txDrainBatches bounds the error-queue reads per drain.
const txDrainBatches = 4

func openPacketIO(pc net.PacketConn, batch int, kernelStamps, txStamps bool) (func() packetIO, error) {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return genericIO(pc), nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("server: raw conn: %w", err)
	}
	local := localAddrPort(pc)
	info := socketInfo{rc: rc, wildcard: local.Addr().IsUnspecified(), port: local.Port()}
	var serr error
	err = rc.Control(func(fd uintptr) {
		domain, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil {
			serr = fmt.Errorf("get SO_DOMAIN: %w", err)
			return
		}
		info.v6 = domain == unix.AF_INET6
		if info.v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
		if serr != nil {
			serr = fmt.Errorf("enable packet info: %w", serr)
			return
		}
		if kernelStamps {
			// Best effort: without it the clock is read after each read.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		}
		if txStamps && txstamp.Enable(fd) == nil {
			// Best effort too: without them interleaved replies carry
			// the server's own transmit times.
			info.tx = &txSocket{
				pending: txstamp.NewPending[txSent](txPendingSize),
				queue:   txstamp.NewQueue(batch),
			}
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("server: configure socket %v: %w", pc.LocalAddr(), err)
	}
	return func() packetIO { return newMmsgIO(info, batch) }, nil
}

type mmsgIO struct {
	socketInfo
	// receive side
	rh    []mmsghdr
	riov  []unix.Iovec
	rname []unix.RawSockaddrInet6
	roob  []byte
	in    []inMsg
	rn    int
	rerr  syscall.Errno
	// send side
	wh       []mmsghdr
	wiov     []unix.Iovec
	wname    []unix.RawSockaddrInet6
	woob     []byte
	wout     []outMsg
	wn       int // messages to send
	wdone    int // messages handled (sent or failed)
	wfail    int
	wstamped bool // some message asks for a transmit stamp
	// sink receives kernel transmit stamps (setTxSink)
	sink func(sent txSent, ns int64)
	// the callbacks are built once so that passing them allocates nothing
	readFn, writeFn func(fd uintptr) bool
	drainFn         func(fd uintptr)
}

func newMmsgIO(info socketInfo, batch int) *mmsgIO {
	m := &mmsgIO{
		socketInfo: info,
		rh:         make([]mmsghdr, batch),
		riov:       make([]unix.Iovec, batch),
		rname:      make([]unix.RawSockaddrInet6, batch),
		roob:       make([]byte, batch*oobLen),
		wh:         make([]mmsghdr, batch),
		wiov:       make([]unix.Iovec, batch),
		wname:      make([]unix.RawSockaddrInet6, batch),
		woob:       make([]byte, batch*oobLen),
	}
	m.readFn = m.doRead
	m.writeFn = m.doWrite
	m.drainFn = m.drain
	return m
}

func (m *mmsgIO) setTxSink(sink func(sent txSent, ns int64)) { m.sink = sink }

func (m *mmsgIO) txStamps() bool { return m.tx != nil }

// drain reads the socket's error queue, in at most txDrainBatches
// batches, and hands each stamp of a pending send to the sink. The
// caller holds m.tx.mu.
func (m *mmsgIO) drain(fd uintptr) {
	for i := 0; i < txDrainBatches; i++ {
		stamps, err := m.tx.queue.Read(fd)
		if err != nil {
			return
		}
		if stamps == nil {
			m.tx.dirty.Store(false)
			return
		}
		for _, st := range stamps {
			if v, ok := m.tx.pending.Take(st.ID); ok && m.sink != nil {
				m.sink(v, st.Time)
			}
		}
		if m.tx.pending.Len() == 0 {
			// Every stamped send has its stamp: no read is needed to
			// find the queue empty (on loopback, the common case, that
			// saves a system call per stamped send).
			m.tx.dirty.Store(false)
			return
		}
	}
}

// drainTx reads waiting transmit stamps, if a stamped send may have left
// some.
func (m *mmsgIO) drainTx() {
	if m.tx == nil || !m.tx.dirty.Load() {
		return
	}
	m.tx.mu.Lock()
	_ = m.rc.Control(m.drainFn)
	m.tx.mu.Unlock()
}

func (m *mmsgIO) localPort() uint16 { return m.port }

func (m *mmsgIO) read(in []inMsg) (int, error) {
	n := min(len(in), len(m.rh))
	for i := 0; i < n; i++ {
		h := &m.rh[i].hdr
		m.riov[i].Base = &in[i].buf[0]
		m.riov[i].SetLen(len(in[i].buf))
		h.Iov = &m.riov[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&m.rname[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Control = &m.roob[i*oobLen]
		h.SetControllen(oobLen)
		h.Flags = 0
	}
	m.in = in[:n]
	m.rn, m.rerr = 0, 0
	// Stamps that arrived after their send's drain (a NIC stamps
	// after sendmsg returns) are read before waiting, and again below
	// for those that arrive while this worker waits.
	m.drainTx()
	if err := m.rc.Read(m.readFn); err != nil {
		return 0, err
	}
	if m.rerr != 0 {
		return 0, m.rerr
	}
	// Stamps of replies sent since the last drain go into the table
	// before these requests look for them.
	m.drainTx()
	for i := 0; i < m.rn; i++ {
		msg := &in[i]
		h := &m.rh[i]
		msg.n = int(h.n)
		msg.trunc = h.hdr.Flags&unix.MSG_TRUNC != 0
		msg.src = parseSockaddr(&m.rname[i])
		msg.dst = netip.Addr{}
		msg.ifindex = 0
		msg.rxNanos = 0
		parseControl(m.roob[i*oobLen:i*oobLen+int(h.hdr.Controllen)], msg)
	}
	return m.rn, nil
}

// doRead and doWrite use RawSyscall6: with MSG_DONTWAIT the calls never
// block (a read that would block returns EAGAIN and the goroutine parks in
// the netpoller), so the runtime's syscall bookkeeping is not needed. It
// is not free: each Syscall6 wakes the runtime's sysmon thread when every
// P was idle, which at tens of thousands of requests per second cost more
// CPU than serving the requests (see the profile in README's Performance).
func (m *mmsgIO) doRead(fd uintptr) bool {
	for {
		n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.rh[0])), uintptr(len(m.in)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			m.rn = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		m.rerr = errno
		return true
	}
}

func (m *mmsgIO) write(out []outMsg) int {
	n := min(len(out), len(m.wh))
	stamped := false
	for i := 0; i < n; i++ {
		o := &out[i]
		h := &m.wh[i].hdr
		m.wiov[i].Base = &o.buf[0]
		m.wiov[i].SetLen(len(o.buf))
		h.Iov = &m.wiov[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&m.wname[i]))
		h.Namelen = putSockaddr(&m.wname[i], o.dst, m.v6)
		h.Control = nil
		h.SetControllen(0)
		oob := m.woob[i*oobLen : (i+1)*oobLen]
		l := 0
		if m.wildcard && o.src.IsValid() {
			l = putPktinfo(oob, o.src, o.ifindex, m.v6)
		}
		if (o.save || o.probe) && m.tx != nil {
			l += txstamp.PutRequest(oob[l:])
			stamped = true
		}
		if l > 0 {
			h.Control = &oob[0]
			h.SetControllen(l)
		}
	}
	m.wout, m.wn, m.wdone, m.wfail, m.wstamped = out, n, 0, 0, stamped
	if stamped {
		m.tx.mu.Lock()
	}
	for m.wdone < m.wn {
		if err := m.rc.Write(m.writeFn); err != nil {
			m.wfail += m.wn - m.wdone
			break
		}
	}
	if stamped {
		// On loopback the kernel stamps inside sendmsg, so the stamps
		// are waiting already; elsewhere the next read finds them.
		_ = m.rc.Control(m.drainFn)
		m.tx.mu.Unlock()
	}
	m.wout = nil
	return m.wfail + (len(out) - n)
}

func (m *mmsgIO) doWrite(fd uintptr) bool {
	for m.wdone < m.wn {
		n, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&m.wh[m.wdone])), uintptr(m.wn-m.wdone), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			if m.wstamped {
				m.sent(m.wdone, m.wdone+int(n))
			}
			m.wdone += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			if m.wstamped && m.wout[m.wdone].wantsStamp() {
				m.lostStamp(fd)
			}
			return false
		default:
			// The first remaining datagram failed: skip it, send the rest.
			if m.wstamped && m.wout[m.wdone].wantsStamp() {
				m.lostStamp(fd)
			}
			m.wdone++
			m.wfail++
		}
	}
	return true
}

// sent records the stamped datagrams among wout[from:to], just sent, in
// the socket's pending sends. The caller holds m.tx.mu.
func (m *mmsgIO) sent(from, to int) {
	for i := from; i < to; i++ {
		if o := &m.wout[i]; o.wantsStamp() {
			m.tx.pending.Add(txSent{key: o.key, daemon: o.daemonTx, probe: o.probe, place: o.place})
			m.tx.dirty.Store(true)
		}
	}
}

// lostStamp restarts the socket's stamp numbering after a stamped send
// failed: the kernel may or may not have used a number for it. The
// caller holds m.tx.mu.
func (m *mmsgIO) lostStamp(fd uintptr) {
	// Stamps still queued carry the old numbers: read them first.
	m.drain(fd)
	_ = txstamp.Reset(fd)
	m.tx.pending.Reset()
}

func parseSockaddr(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET6:
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}

func putSockaddr(sa *unix.RawSockaddrInet6, ap netip.AddrPort, v6 bool) uint32 {
	port := ap.Port()
	if v6 {
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ap.Addr().As16()}
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		return unix.SizeofSockaddrInet6
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
	*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ap.Addr().Unmap().As4()}
	p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	return unix.SizeofSockaddrInet4
}

// putPktinfo writes a control message choosing the reply's source address
// and returns its length.
func putPktinfo(oob []byte, src netip.Addr, ifindex int32, v6 bool) int {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	data := unsafe.Pointer(&oob[cmsgHdrLen])
	if v6 {
		h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
		*(*unix.Inet6Pktinfo)(data) = unix.Inet6Pktinfo{Addr: src.As16(), Ifindex: uint32(ifindex)}
		return unix.CmsgSpace(unix.SizeofInet6Pktinfo)
	}
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	*(*unix.Inet4Pktinfo)(data) = unix.Inet4Pktinfo{Ifindex: ifindex, Spec_dst: src.Unmap().As4()}
	return unix.CmsgSpace(unix.SizeofInet4Pktinfo)
}

// parseControl reads the destination address, interface and kernel
// receive timestamp from a datagram's control messages.
func parseControl(b []byte, msg *inMsg) {
	for len(b) >= cmsgHdrLen {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < cmsgHdrLen || l > len(b) {
			return
		}
		data := b[cmsgHdrLen:l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			msg.dst = netip.AddrFrom4(pi.Addr)
			msg.ifindex = pi.Ifindex
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			msg.dst = netip.AddrFrom16(pi.Addr).Unmap()
			msg.ifindex = int32(pi.Ifindex)
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			msg.rxNanos = ts.Nano()
		}
		next := unix.CmsgSpace(l - cmsgHdrLen)
		if next > len(b) {
			return
		}
		b = b[next:]
	}
}

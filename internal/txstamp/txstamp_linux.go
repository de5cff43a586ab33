//go:build linux

package txstamp

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sofOptRxFilter is SOF_TIMESTAMPING_OPT_RX_FILTER (Linux 6.12): without
// it, turning on software stamp reporting also adds an
// SCM_TIMESTAMPING message to every received datagram.
const sofOptRxFilter = 1 << 17

const baseFlags = unix.SOF_TIMESTAMPING_SOFTWARE | unix.SOF_TIMESTAMPING_OPT_ID | unix.SOF_TIMESTAMPING_OPT_TSONLY

// RequestSpace is how many bytes of control buffer PutRequest writes.
var RequestSpace = unix.CmsgSpace(4)

// ReceiveSpace is how many bytes a socket's receive control buffers need
// on top of what they held before Enable: on kernels older than 6.12 the
// kernel adds a software receive stamp (SCM_TIMESTAMPING) to every
// datagram once stamp reporting is on. Receivers that parse control
// messages should skip it or read it.
var ReceiveSpace = unix.CmsgSpace(int(unsafe.Sizeof(unix.ScmTimestamping{})))

// Enable makes the socket fd report software transmit timestamps for the
// datagrams that ask for one (PutRequest), each tagged with a sequence
// number starting at 0, without a copy of the datagram. Receive
// timestamps configured before (SO_TIMESTAMPNS) keep working.
func Enable(fd uintptr) error {
	return setFlags(fd, true)
}

// Reset restarts the socket's sequence numbers at 0. Use it after a
// send whose fate is unknown (an error part-way through a batch), which
// may or may not have consumed a number, together with Pending.Reset.
func Reset(fd uintptr) error {
	if err := setFlags(fd, false); err != nil {
		return err
	}
	return setFlags(fd, true)
}

func setFlags(fd uintptr, on bool) error {
	flags := 0
	if on {
		flags = baseFlags
	}
	err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPING, flags|sofOptRxFilter)
	if err == unix.EINVAL {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPING, flags)
	}
	if err != nil {
		return fmt.Errorf("txstamp: set SO_TIMESTAMPING: %w", err)
	}
	return nil
}

// PutRequest writes into oob a control message asking the kernel to
// stamp the datagram it is sent with, and returns its length
// (RequestSpace). oob must have room for RequestSpace bytes; it may
// follow other control messages (IP_PKTINFO) in the same buffer.
func PutRequest(oob []byte) int {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SO_TIMESTAMPING
	h.SetLen(unix.CmsgLen(4))
	*(*uint32)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = unix.SOF_TIMESTAMPING_TX_SOFTWARE
	return RequestSpace
}

// errOOBLen holds SCM_TIMESTAMPING (64 bytes) and IP(V6)_RECVERR with
// its sock_extended_err and offender address (64 bytes).
const errOOBLen = 192

// Queue reads stamps from a socket's error queue. Its buffers are reused
// by every Read, so one Queue serves one goroutine at a time.
type Queue struct {
	hdr   []unix.Mmsghdr
	iov   []unix.Iovec
	data  []byte
	oob   []byte
	stamp []Stamp
}

// NewQueue returns a Queue that reads up to batch stamps per Read.
func NewQueue(batch int) *Queue {
	batch = max(batch, 1)
	q := &Queue{
		hdr:   make([]unix.Mmsghdr, batch),
		iov:   make([]unix.Iovec, batch),
		data:  make([]byte, batch*16),
		oob:   make([]byte, batch*errOOBLen),
		stamp: make([]Stamp, 0, batch),
	}
	return q
}

// Read reads the stamps waiting on fd's error queue, up to the batch
// size, in one non-blocking system call. It returns nil and no error
// when none are waiting. Entries that are not software transmit stamps
// (ICMP errors, for instance) are skipped. The result is valid until the
// next Read.
func (q *Queue) Read(fd uintptr) ([]Stamp, error) {
	for i := range q.hdr {
		h := &q.hdr[i].Hdr
		q.iov[i].Base = &q.data[i*16]
		q.iov[i].SetLen(16)
		h.Iov = &q.iov[i]
		h.SetIovlen(1)
		h.Name = nil
		h.Namelen = 0
		h.Control = &q.oob[i*errOOBLen]
		h.SetControllen(errOOBLen)
		h.Flags = 0
	}
	var n uintptr
	for {
		var errno unix.Errno
		n, _, errno = unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&q.hdr[0])), uintptr(len(q.hdr)), unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno == unix.EAGAIN {
			return nil, nil
		}
		if errno != 0 {
			return nil, fmt.Errorf("txstamp: read error queue: %w", errno)
		}
		break
	}
	q.stamp = q.stamp[:0]
	for i := 0; i < int(n); i++ {
		h := &q.hdr[i].Hdr
		if s, ok := parse(q.oob[i*errOOBLen : i*errOOBLen+int(h.Controllen)]); ok {
			q.stamp = append(q.stamp, s)
		}
	}
	return q.stamp, nil
}

// parse reads one error-queue entry's control messages: a software
// stamp in SCM_TIMESTAMPING and the sequence number in the extended
// error that marks it as a transmit stamp.
func parse(b []byte) (Stamp, bool) {
	var s Stamp
	haveTime, haveID := false, false
	hl := unix.CmsgLen(0)
	for len(b) >= hl {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < hl || l > len(b) {
			break
		}
		data := b[hl:l]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPING && len(data) >= int(unsafe.Sizeof(unix.ScmTimestamping{})):
			ts := (*unix.ScmTimestamping)(unsafe.Pointer(&data[0]))
			if ts.Ts[0].Sec != 0 || ts.Ts[0].Nsec != 0 {
				s.Time = ts.Ts[0].Nano()
				haveTime = true
			}
		case (h.Level == unix.SOL_IP && h.Type == unix.IP_RECVERR || h.Level == unix.SOL_IPV6 && h.Type == unix.IPV6_RECVERR) && len(data) >= int(unsafe.Sizeof(unix.SockExtendedErr{})):
			ee := (*unix.SockExtendedErr)(unsafe.Pointer(&data[0]))
			if ee.Errno == uint32(unix.ENOMSG) && ee.Origin == unix.SO_EE_ORIGIN_TIMESTAMPING && ee.Info == unix.SCM_TSTAMP_SND {
				s.ID = ee.Data
				haveID = true
			}
		}
		next := unix.CmsgSpace(l - hl)
		if next >= len(b) {
			break
		}
		b = b[next:]
	}
	return s, haveTime && haveID
}

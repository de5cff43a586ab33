//go:build linux

package upstream

import (
	"net"
	"syscall"

	"github.com/ntpkit/ntpkit/internal/txstamp"
)

// txStamper sends a source's requests with a kernel transmit timestamp
// each (SO_TIMESTAMPING, software): the request's T1 is when the kernel
// handed the datagram to the device, not when the goroutine asked to
// send it, as chrony's client does.
type txStamper struct {
	uc   *net.UDPConn
	rc   syscall.RawConn
	q    *txstamp.Queue
	oob  []byte
	next uint32 // OPT_ID the kernel gives the next stamped datagram
}

// enableTxStamps turns on transmit timestamps on c; nil if c is not a
// UDP socket or the kernel refuses.
func enableTxStamps(c net.Conn) *txStamper {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return nil
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = txstamp.Enable(fd) }); err != nil || serr != nil {
		return nil
	}
	return &txStamper{uc: uc, rc: rc, q: txstamp.NewQueue(4), oob: make([]byte, txstamp.RequestSpace)}
}

// write sends b asking for its transmit timestamp and returns the
// stamp, Unix nanoseconds of the system clock, or ok false when the
// kernel had none for it right after the send (then the caller keeps
// the time it read before the send).
func (t *txStamper) write(b []byte) (wall int64, ok bool, err error) {
	n := txstamp.PutRequest(t.oob)
	if _, _, err := t.uc.WriteMsgUDP(b, t.oob[:n], nil); err != nil {
		// Whether the datagram took a sequence number is unknown:
		// start the numbering over.
		t.rc.Control(func(fd uintptr) { txstamp.Reset(fd) })
		t.next = 0
		return 0, false, err
	}
	id := t.next
	t.next++
	// Stamps of earlier datagrams that came too late are drained and
	// dropped; the kernel stamps in sending order.
	for range 4 {
		var stamps []txstamp.Stamp
		var rerr error
		if t.rc.Control(func(fd uintptr) { stamps, rerr = t.q.Read(fd) }) != nil || rerr != nil || len(stamps) == 0 {
			return 0, false, nil
		}
		for _, s := range stamps {
			if s.ID == id {
				return s.Time, true, nil
			}
		}
	}
	return 0, false, nil
}

// rxOOBLen is the receive control buffer a socket needs once its
// transmit stamps are on (older kernels add a receive stamp of their own).
var rxOOBLen = oobLen + txstamp.ReceiveSpace

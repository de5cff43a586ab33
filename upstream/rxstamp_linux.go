//go:build linux

package upstream

import (
	"net"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// enableRxStamps asks the kernel to timestamp datagrams arriving on c
// (SO_TIMESTAMPNS), so T4 is not delayed by the wake-up of the reading
// goroutine, as chrony does. It reports whether that worked.
func enableRxStamps(c net.Conn) bool {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return false
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return false
	}
	return serr == nil
}

// oobLen is room for one SCM_TIMESTAMPNS control message.
const oobLen = 64

// readStamped reads one datagram and returns the kernel's receive
// timestamp (wall clock), or the zero time when there is none.
func readStamped(c net.Conn, buf, oob []byte) (int, time.Time, error) {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		n, err := c.Read(buf)
		return n, time.Time{}, err
	}
	n, oobn, _, _, err := uc.ReadMsgUDP(buf, oob)
	if err != nil {
		return n, time.Time{}, err
	}
	msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
	if perr != nil {
		return n, time.Time{}, nil
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS &&
			len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return n, time.Unix(int64(ts.Sec), int64(ts.Nsec)), nil
		}
	}
	return n, time.Time{}, nil
}

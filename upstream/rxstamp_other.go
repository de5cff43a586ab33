//go:build !linux

package upstream

import (
	"net"
	"time"
)

// enableRxStamps reports false: kernel receive timestamps are only used
// on Linux.
func enableRxStamps(net.Conn) bool { return false }

const oobLen = 0

// readStamped reads one datagram; there is no kernel timestamp.
func readStamped(c net.Conn, buf, _ []byte) (int, time.Time, error) {
	n, err := c.Read(buf)
	return n, time.Time{}, err
}

//go:build !linux

package upstream

import "net"

// txStamper sends requests; only Linux stamps them in the kernel, so
// enableTxStamps never returns one here.
type txStamper struct{ c net.Conn }

// enableTxStamps returns nil: requests carry the time read before the
// send as their T1.
func enableTxStamps(net.Conn) *txStamper { return nil }

// write sends b without a transmit timestamp.
func (t *txStamper) write(b []byte) (int64, bool, error) {
	_, err := t.c.Write(b)
	return 0, false, err
}

var rxOOBLen = oobLen

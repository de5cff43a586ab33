package upstream

import (
	"net"
	"time"
)

// SetWallNow makes d read the system clock's wall time from f instead of
// the base clock, so an external test can step the host clock.
func SetWallNow(d *Discipliner, f func() int64) { d.wallNow = f }

// SetTxNow makes d take each request's transmit time from f, as it takes
// kernel transmit timestamps on Linux, for connections Dial returns
// that are not sockets.
func SetTxNow(d *Discipliner, f func(c net.Conn) (time.Time, bool)) { d.txNow = f }

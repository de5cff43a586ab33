package upstream

import (
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

// Interleaved mode (draft-ietf-ntp-interleaved-modes, client side, as
// chrony's client does it). A basic reply's transmit timestamp is read
// before the server sends it, so the time the send takes (tens of
// microseconds, milliseconds on a loaded host) is an error of the
// offset. A server in interleaved mode sends instead, in its next
// reply, when its previous reply really left (a kernel transmit
// timestamp). The client asks for that by sending, as the request's
// origin, the server's receive timestamp from the previous reply (which
// names the exchange), and as its receive timestamp its own arrival
// time of that reply; the server answers with that receive timestamp as
// the origin. The sample is then the previous exchange's: our T1 (a
// kernel transmit timestamp too), the server's T2, the new T3, our T4.
// A server without the mode answers in basic mode, which is used as
// ever.

// maxXleaveMisses is how many requests in a row may go unanswered while
// the client still asks for the exchange before them (chrony allows as
// many): the server keeps each transmit timestamp for one interleaved
// reply, so a lost reply just makes the next one basic, and a lost
// request leaves the timestamp for the next.
const maxXleaveMisses = 3

// xleave is a source's interleaved-mode state: the last exchange that
// gave a usable reply. It is owned by the source's goroutine.
type xleave struct {
	valid bool
	// t1 and t4 are, on the raw timescale, when that exchange's request
	// left (a kernel transmit timestamp when there was one) and when
	// its reply arrived.
	t1, t4 time.Duration
	// recv is the reply's receive timestamp: the origin of the next
	// interleaved request, and the sample's T2.
	recv ntpwire.Time
	// sampled says the exchange's basic reply gave a sample already:
	// an interleaved reply completing it is not a second one.
	sampled bool
	// misses counts the requests since that got no reply.
	misses int
	// sent is the receive timestamp of the request in flight if it asks
	// for interleaved mode, else 0.
	sent ntpwire.Time
}

// usable reports whether the next request may ask for interleaved mode:
// it is on, there is a previous exchange, and it is recent enough.
func (x *xleave) usable(off bool) bool {
	return !off && x.valid && x.misses <= maxXleaveMisses
}

// done records the outcome of a query whose reply arrived: a usable
// reply (a sample, or an interleaved reply completing an exchange that
// gave one) becomes the exchange the next request continues; any other
// reply ends the chain, and the next request is basic. t1 and t4 are the
// query's own send and receive times.
func (x *xleave) done(out outcome, p *ntpwire.Packet, t1, t4 time.Duration, interleaved bool) {
	switch out {
	case outSample, outNoSample:
		*x = xleave{valid: true, t1: t1, t4: t4, recv: p.RecvTime, sampled: !interleaved}
	default:
		*x = xleave{}
	}
}

package server

import (
	"github.com/ntpkit/ntpkit/ntpwire"
)

// Responder returns the Handler that does the server side of RFC 5905 and
// RFC 4330: it answers a client (mode 3) request with a server (mode 4)
// reply that copies the client's version and poll (r.Packet.Poll, which a
// RateLimiter in front raises to its interval), echoes its transmit
// timestamp as origin, carries the receive timestamp r.Received and the
// reference data r.Reference, and gets its transmit timestamp from the
// writer. Requests in any other mode, or with a version outside 1–4, get
// no reply.
//
// The responder has no clock of its own: the receive time, the reference
// data and the transmit time all come from the Server's Source, so a reply
// can never mix two clocks.
func Responder() Handler {
	return responder{}
}

type responder struct{}

func (responder) ServeNTP(w ResponseWriter, r *Request) {
	req := &r.Packet
	if req.Mode != ntpwire.ModeClient || req.Version < 1 || req.Version > 4 {
		return
	}
	ref := &r.Reference
	reply := ntpwire.Packet{
		Leap:           ref.Leap,
		Version:        req.Version,
		Mode:           ntpwire.ModeServer,
		Stratum:        ref.Stratum,
		Poll:           req.Poll,
		Precision:      ref.Precision,
		RootDelay:      ref.RootDelay,
		RootDispersion: ref.RootDispersion,
		RefID:          ref.RefID,
		RefTime:        ref.RefTime,
		OrigTime:       req.XmitTime,
		RecvTime:       ntpwire.StampOf(r.Received),
	}
	if !ref.Synchronized() {
		// RFC 5905: an unsynchronized server says so with both fields.
		reply.Leap = ntpwire.LeapAlarm
		reply.Stratum = ntpwire.MaxStratum
	}
	_ = w.Reply(reply)
}

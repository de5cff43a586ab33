package server

import (
	"github.com/ntpkit/ntpkit/ntpwire"
)

// Responder returns the Handler that does the server side of RFC 5905 and
// RFC 4330: it answers a client (mode 3) request with a server (mode 4)
// reply that copies the client's version and poll, echoes its transmit
// timestamp as origin, carries the receive timestamp and src's reference
// data, and gets its transmit timestamp from the writer. Requests in any
// other mode, or with a version outside 1–4, get no reply.
func Responder(src Source) Handler {
	return responder{src: src}
}

type responder struct{ src Source }

func (h responder) ServeNTP(w ResponseWriter, r *Request) {
	req := &r.Packet
	if req.Mode != ntpwire.ModeClient || req.Version < 1 || req.Version > 4 {
		return
	}
	ref := h.src.Reference()
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

// Package servertest helps test NTP handlers, middleware and servers, as
// net/http/httptest does for HTTP. Without sockets, NewRequest builds a
// Request and a Recorder captures what a handler writes. Over loopback,
// NewServer runs a server.Server on 127.0.0.1 and a free port, and Query
// and Exchange are the client side of a test.
package servertest

import (
	"net/netip"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
)

// NewRequest returns a Request carrying p from src, received at rx, with
// Raw holding p's encoding followed by trailer. Its Reference is zero, an
// unsynchronized server; set it (from a Source's Reference, as the server
// does) when the handler's reply should carry reference data.
func NewRequest(p ntpwire.Packet, src netip.AddrPort, rx time.Time, trailer []byte) *server.Request {
	raw := p.AppendTo(make([]byte, 0, ntpwire.HeaderLen+len(trailer)))
	raw = append(raw, trailer...)
	return &server.Request{
		Packet:   p,
		Raw:      raw,
		Received: rx,
		Src:      src,
		Dst:      netip.MustParseAddrPort("127.0.0.1:123"),
	}
}

// ClientPacket returns a typical NTPv4 client request with transmit
// timestamp xmit.
func ClientPacket(xmit time.Time) ntpwire.Packet {
	return ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, Poll: 6, Precision: -20, XmitTime: ntpwire.TimeOf(xmit)}
}

// Recorder is a server.ResponseWriter that records the reply instead of
// sending it. Clock, when set, stamps replies' transmit time as the real
// writer does; otherwise XmitTime is left as the handler set it.
type Recorder struct {
	Clock clock.Clock
	// Request is the request being answered; Kiss needs it. Reset sets it.
	Request *server.Request
	// Replied is true once Reply or Kiss succeeded.
	Replied bool
	// Packet is the reply sent.
	Packet ntpwire.Packet
	// Kissed holds the kiss code when the reply was a kiss-o'-death.
	Kissed ntpwire.RefID
	IsKiss bool
	// Sealed holds the whole datagram ReplySealed produced, header and
	// trailer; it is nil after Reply or Kiss.
	Sealed []byte
	// SealErr is the error seal returned, if any.
	SealErr error
}

// Reset prepares r to record the answer to req.
func (r *Recorder) Reset(req *server.Request) {
	*r = Recorder{Clock: r.Clock, Request: req}
}

// Reply records p.
func (r *Recorder) Reply(p ntpwire.Packet) error {
	if r.Replied {
		return server.ErrReplied
	}
	r.Replied, r.Packet = true, p
	if r.Clock != nil {
		r.Packet.XmitTime = ntpwire.TimeOf(r.Clock.Now())
	}
	return nil
}

// Kiss records a kiss-o'-death built as the real writer builds it.
func (r *Recorder) Kiss(code ntpwire.RefID) error {
	if r.Replied {
		return server.ErrReplied
	}
	var req ntpwire.Packet
	if r.Request != nil {
		req = r.Request.Packet
	}
	r.Replied, r.IsKiss, r.Kissed = true, true, code
	r.Packet = ntpwire.NewKiss(&req, code)
	return nil
}

// ReplySealed records p with its transmit timestamp set from Clock (or as
// the handler set it, without a Clock), and the datagram seal returns. It
// enforces the writer's length rule when Request is set: a result longer
// than Request.Raw fails with server.ErrReplyTooLong.
func (r *Recorder) ReplySealed(p ntpwire.Packet, seal func(pkt []byte) ([]byte, error)) error {
	if r.Replied {
		return server.ErrReplied
	}
	if r.Clock != nil {
		p.XmitTime = ntpwire.TimeOf(r.Clock.Now())
	}
	out, err := seal(p.AppendTo(make([]byte, 0, server.MaxPacket)))
	if err != nil {
		r.SealErr = err
		return err
	}
	if r.Request != nil && len(out) > len(r.Request.Raw) {
		r.Replied = true
		return server.ErrReplyTooLong
	}
	r.Replied, r.Packet, r.Sealed = true, p, out
	return nil
}

package server

import (
	"errors"
	"net/netip"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

// A Handler answers NTP requests.
//
// ServeNTP may reply once through w (Reply or Kiss) or not at all; writing
// nothing drops the request. A handler must not keep r, r.Raw or w after
// ServeNTP returns: the server reuses their memory for the next request.
// Handlers are called concurrently from several workers.
type Handler interface {
	ServeNTP(w ResponseWriter, r *Request)
}

// HandlerFunc adapts an ordinary function to a Handler.
type HandlerFunc func(w ResponseWriter, r *Request)

// ServeNTP calls f(w, r).
func (f HandlerFunc) ServeNTP(w ResponseWriter, r *Request) { f(w, r) }

// Middleware wraps a Handler to add behaviour in front of it: access
// control, rate limiting, authentication.
type Middleware func(next Handler) Handler

// Chain returns h wrapped in mw. mw[0] is the outermost: it sees each
// request first.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Request is one NTP request as the server received it.
type Request struct {
	// Packet is the decoded header. Replies and KoDs echo its Poll, so
	// a middleware may raise Packet.Poll to ask the client to poll less
	// often (RateLimiter raises it to its interval).
	Packet ntpwire.Packet
	// Raw is the whole datagram, header and trailer. It is only valid
	// until ServeNTP returns.
	Raw []byte
	// Received is the receive timestamp (T2) on the served timescale
	// (the Server's Source): from the kernel when available, else read
	// from the Source as soon as the datagram was read. (A reply's
	// RecvTime carries it with the low bit set: see interleaved mode in
	// the package documentation.)
	Received time.Time
	// Reference is what the Server's Source says about its clock
	// (stratum, reference ID and time, root delay and dispersion, leap),
	// read once per batch of requests. The Responder copies it into the
	// reply; a middleware may change it before passing the request on.
	// Transmit timestamps come from the same Source, so a reply's
	// reference data and timestamps always describe one clock.
	Reference ntpwire.Reference
	// Src is the client's address. IPv4 clients reached over an IPv6
	// socket appear as plain IPv4.
	Src netip.AddrPort
	// Dst is the local address the request was sent to. Replies leave
	// from it.
	Dst netip.AddrPort

	// lane is the index of the Server's worker that read the request.
	// Middleware counts it in that worker's stripe of its counters, so
	// that workers on different cores do not write the same cache
	// lines. Requests built outside a Server have lane 0.
	lane uint32
}

// ResponseWriter sends the reply to a Request. At most one of its methods
// succeeds per request.
//
// The Server's writer serves interleaved mode for every handler (see the
// package documentation): in a mode-4 reply other than a KoD, Reply and
// ReplySealed set the low bit of RecvTime and clear that of XmitTime, and
// when the request asks for interleaved mode and the server still holds
// the transmit time of the client's previous reply, they replace OrigTime
// with the request's RecvTime and XmitTime with that previous transmit
// time, before encoding (and sealing). Handlers build basic replies; the
// writer does the rest. Kiss never interleaves.
type ResponseWriter interface {
	// Reply sends p. The writer sets p's transmit timestamp (T3) as late
	// as it can, just before the datagram goes out, or to the previous
	// reply's transmit time in interleaved mode; what p.XmitTime holds is
	// ignored.
	Reply(p ntpwire.Packet) error
	// Kiss sends a kiss-o'-death with the given code (ntpwire.KissRate,
	// ntpwire.KissDeny, ...), built by ntpwire.NewKiss.
	Kiss(code ntpwire.RefID) error
	// ReplySealed sends p followed by a trailer that seal computes over
	// the encoded header, for replies that authenticate their own
	// transmit timestamp (NTS, symmetric-key MACs). The writer sets
	// p.XmitTime to when the reply is predicted to leave (its clock now,
	// plus the calibrated delay to the send where the kernel reports
	// transmit stamps) or, in interleaved mode, to the previous reply's
	// transmit time, encodes p and passes the 48 bytes to seal, which
	// returns them with extension fields or a MAC appended (seal may
	// append in place). The result is sent as is, without being stamped
	// again: at once, or together with the next request's reply when
	// that request, next in the same read, looks authenticated too. It
	// fails with ErrReplyTooLong when longer than the request, and with
	// seal's error when seal fails.
	ReplySealed(p ntpwire.Packet, seal func(pkt []byte) ([]byte, error)) error
}

// Errors returned by ResponseWriter methods.
var (
	// ErrReplied means the handler already replied to this request.
	ErrReplied = errors.New("server: request already answered")
	// ErrReplyTooLong means a reply would be longer than its request,
	// which the server never sends (it would amplify an attack).
	ErrReplyTooLong = errors.New("server: reply longer than request")
)

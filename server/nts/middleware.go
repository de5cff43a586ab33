package nts

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/ntpkit/ntpkit/internal/aessiv"
	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/ratelimit"
	"github.com/ntpkit/ntpkit/server"
)

// maxReplyCookies bounds the cookies one reply carries, placeholders or
// not; chrony and ntpd ask for at most 7 more.
const maxReplyCookies = 8

// Middleware authenticates NTS-protected NTP requests (RFC 8915 §5) and
// seals their replies. Use its Wrap method as a server.Middleware, inside
// access control and rate limiting:
//
//	h := server.Chain(server.Responder(), acl, limiter, mw.Wrap)
//
// A request carrying an NTS cookie or authenticator must also carry a
// Unique Identifier (at least 32 bytes) and an authenticator; otherwise
// it is dropped. When its cookie cannot be opened (unknown, expired or
// forged) the client gets an NTS NAK: a KoD NTSN echoing the Unique
// Identifier. When its authenticator does not verify it is dropped.
// Otherwise the next handler's reply goes out with the Unique Identifier
// and an authenticator whose encrypted part holds one fresh cookie per
// cookie the request spent or asked for with placeholders, as many as fit
// without the reply growing longer than the request. The next handler's
// KoDs are sealed the same way, without cookies. Requests without NTS
// fields, with a legacy MAC or with other extension fields pass through
// untouched.
type Middleware struct {
	keys    *KeyStore
	nakBudg atomic.Pointer[ratelimit.Global]
	stats   mwCounters
	pool    sync.Pool
}

type mwCounters struct {
	requests, authenticated, naks, authFailures, malformed, cookies, nakLimited atomic.Uint64
}

// Stats counts what Middleware did.
type Stats struct {
	Requests      uint64 // requests carrying NTS fields
	Authenticated uint64 // requests whose authenticator verified
	NAKs          uint64 // NTS NAKs sent for undecryptable cookies
	AuthFailures  uint64 // requests dropped: authenticator did not verify
	Malformed     uint64 // requests dropped: missing or repeated NTS fields
	Cookies       uint64 // fresh cookies sent in replies
	NAKLimited    uint64 // NAKs not sent: the NAK budget was spent
}

// NewMiddleware returns NTS middleware opening cookies with keys, the
// KeyStore the KEServer seals them with.
func NewMiddleware(keys *KeyStore) *Middleware {
	return &Middleware{keys: keys}
}

// Stats returns the middleware's counters.
func (m *Middleware) Stats() Stats {
	return Stats{
		Requests:      m.stats.requests.Load(),
		Authenticated: m.stats.authenticated.Load(),
		NAKs:          m.stats.naks.Load(),
		AuthFailures:  m.stats.authFailures.Load(),
		Malformed:     m.stats.malformed.Load(),
		Cookies:       m.stats.cookies.Load(),
		NAKLimited:    m.stats.nakLimited.Load(),
	}
}

// SetNAKLimit sets the budget of NTS NAKs: over it, requests whose cookie
// cannot be opened are dropped instead of NAKed. A NAK goes to the
// request's unauthenticated source address and is no longer than the
// request, like a KoD; give it the same *ratelimit.Global as the
// rate limiter's and access control's KissLimit and LeakLimit to put all
// such replies under one budget. Nil, the default, means no bound beyond
// the rate limiter in front. It may be called at any time.
func (m *Middleware) SetNAKLimit(g *ratelimit.Global) { m.nakBudg.Store(g) }

// Wrap returns next behind NTS authentication; it is a server.Middleware.
func (m *Middleware) Wrap(next server.Handler) server.Handler {
	return server.HandlerFunc(func(w server.ResponseWriter, r *server.Request) {
		m.serve(next, w, r)
	})
}

// ntsRequest is what serve finds in a request's extension fields.
type ntsRequest struct {
	uidField     []byte // the whole Unique Identifier field, echoed in replies
	cookie       []byte
	placeholders int
	auth         []byte // authenticator body
	authOff      int    // where the authenticator starts: the end of the AD
	isNTS        bool
}

var errMalformed = errors.New("nts: malformed NTS request")

// parseRequest finds the NTS fields in raw. It returns errMalformed for a
// request with NTS fields missing or repeated; isNTS is false for requests
// without a cookie or authenticator.
func parseRequest(raw []byte) (ntsRequest, error) {
	var q ntsRequest
	if len(raw) <= ntpwire.HeaderLen || raw[0]>>3&7 != 4 {
		return q, nil
	}
	it := ntpwire.Extensions(raw[ntpwire.HeaderLen:])
	off := ntpwire.HeaderLen
	var placeholderLens []int
loop:
	for it.Next() {
		ext := it.Extension()
		switch ext.Type {
		case ntske.EFUniqueID:
			if q.uidField != nil {
				return ntsRequest{isNTS: true}, errMalformed
			}
			q.uidField = raw[off : off+ext.Len() : off+ext.Len()]
		case ntske.EFCookie:
			q.isNTS = true
			if q.cookie != nil {
				return ntsRequest{isNTS: true}, errMalformed
			}
			q.cookie = ext.Value
		case ntske.EFCookiePlaceholder:
			placeholderLens = append(placeholderLens, len(ext.Value))
		case ntske.EFAuthenticator:
			q.isNTS = true
			q.auth, q.authOff = ext.Value, off
			// Fields after the authenticator are not authenticated;
			// RFC 8915 §5.6 has the server ignore them.
			break loop
		}
		off += ext.Len()
	}
	if !q.isNTS {
		return ntsRequest{}, nil
	}
	if it.Err() != nil || q.uidField == nil || len(q.uidField)-4 < ntske.MinUniqueIDLen || q.cookie == nil || q.auth == nil {
		return ntsRequest{isNTS: true}, errMalformed
	}
	// A placeholder counts only when it is as long as the cookie, so a
	// client cannot ask for more reply bytes than it sent.
	for _, l := range placeholderLens {
		if l == len(q.cookie) {
			q.placeholders++
		}
	}
	return q, nil
}

func (m *Middleware) serve(next server.Handler, w server.ResponseWriter, r *server.Request) {
	q, err := parseRequest(r.Raw)
	if !q.isNTS {
		next.ServeNTP(w, r)
		return
	}
	m.stats.requests.Add(1)
	if err != nil {
		m.stats.malformed.Add(1)
		return
	}
	c2s, s2c, err := m.keys.OpenCookie(q.cookie)
	if err != nil {
		m.nak(w, r, q.uidField)
		return
	}
	nonce, ct, err := ntske.ParseAuthenticator(q.auth)
	if err != nil {
		m.stats.malformed.Add(1)
		return
	}
	c2sAEAD, err := aessiv.New(c2s)
	if err != nil {
		m.stats.authFailures.Add(1)
		return
	}
	bp := m.buffer()
	defer m.pool.Put(bp)
	pt, err := c2sAEAD.Open((*bp)[:0], nonce, ct, r.Raw[:q.authOff])
	if err != nil {
		m.stats.authFailures.Add(1)
		return
	}
	// The encrypted fields (none from today's clients) must parse.
	inner := ntpwire.Extensions(pt)
	for inner.Next() {
	}
	if inner.Err() != nil {
		m.stats.malformed.Add(1)
		return
	}
	m.stats.authenticated.Add(1)
	nw := &writer{m: m, w: w, r: r, q: &q, c2s: c2s, s2c: s2c}
	next.ServeNTP(nw, r)
}

func (m *Middleware) buffer() *[]byte {
	if b, ok := m.pool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, server.MaxPacket)
	return &b
}

// nak sends an NTS NAK: a KoD NTSN echoing the Unique Identifier.
func (m *Middleware) nak(w server.ResponseWriter, r *server.Request, uidField []byte) {
	if !m.nakBudg.Load().Allow(r.Received) {
		m.stats.nakLimited.Add(1)
		return
	}
	k := ntpwire.NewKiss(&r.Packet, ntpwire.KissNTSN)
	err := w.ReplySealed(k, func(pkt []byte) ([]byte, error) {
		ntpwire.PutXmitTime(pkt, k.XmitTime) // a KoD carries no time
		return append(pkt, uidField...), nil
	})
	if err == nil {
		m.stats.naks.Add(1)
	}
}

// writer seals the next handler's replies for one authenticated request.
type writer struct {
	m        *Middleware
	w        server.ResponseWriter
	r        *server.Request
	q        *ntsRequest
	c2s, s2c []byte
}

// Reply sends p with the Unique Identifier, fresh cookies and the
// authenticator.
func (nw *writer) Reply(p ntpwire.Packet) error {
	return nw.w.ReplySealed(p, func(pkt []byte) ([]byte, error) { return nw.seal(pkt, true) })
}

// Kiss sends an authenticated KoD, without cookies.
func (nw *writer) Kiss(code ntpwire.RefID) error {
	k := ntpwire.NewKiss(&nw.r.Packet, code)
	return nw.w.ReplySealed(k, func(pkt []byte) ([]byte, error) {
		ntpwire.PutXmitTime(pkt, k.XmitTime)
		return nw.seal(pkt, false)
	})
}

var errNested = errors.New("nts: a handler behind NTS cannot seal its own reply")

// ReplySealed is refused: an NTS reply's trailer is NTS's.
func (nw *writer) ReplySealed(ntpwire.Packet, func([]byte) ([]byte, error)) error {
	return errNested
}

// seal appends the Unique Identifier and the authenticator to the header
// in pkt, with as many cookies as were asked for and fit.
func (nw *writer) seal(pkt []byte, cookies bool) ([]byte, error) {
	s2cAEAD, err := aessiv.New(nw.s2c)
	if err != nil {
		return nil, err
	}
	pkt = append(pkt, nw.q.uidField...)
	n := 0
	if cookies {
		n = min(1+nw.q.placeholders, maxReplyCookies)
		field := ntske.CookieFieldLen(CookieLen)
		for n > 0 && len(pkt)+ntske.AuthenticatorLen(n*field) > len(nw.r.Raw) {
			n--
		}
	}
	bp := nw.m.buffer()
	defer nw.m.pool.Put(bp)
	pt := (*bp)[:0]
	var cookie [CookieLen]byte
	for range n {
		c, err := nw.m.keys.SealCookie(cookie[:0], nw.c2s, nw.s2c)
		if err != nil {
			return nil, err
		}
		pt = ntpwire.AppendExtension(pt, ntske.EFCookie, c)
	}
	*bp = pt[:0]
	nw.m.stats.cookies.Add(uint64(n))
	return ntske.AppendAuthenticator(pkt, s2cAEAD, pt), nil
}

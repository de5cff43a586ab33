package nts

import (
	crand "crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

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
	cache   *keyCache
	nakBudg atomic.Pointer[ratelimit.Global]
	stats   mwCounters
	pool    sync.Pool // of *authExchange
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
	return &Middleware{keys: keys, cache: newKeyCache()}
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
	var placeholders bool
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
			placeholders = true
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
	if placeholders {
		it = ntpwire.Extensions(raw[ntpwire.HeaderLen:q.authOff])
		for it.Next() {
			if ext := it.Extension(); ext.Type == ntske.EFCookiePlaceholder && len(ext.Value) == len(q.cookie) {
				q.placeholders++
			}
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
	x := m.acquire()
	defer m.release(x)
	// One clock read serves the request: the cookie's key is checked and
	// the fresh cookies' key chosen at the same instant.
	x.now = m.keys.clock.Now()
	c2s, s2c, err := m.keys.openCookie(&x.sc, x.now, x.plain[:0], q.cookie)
	if err != nil {
		m.nak(w, r, q.uidField)
		return
	}
	nonce, ct, err := ntske.ParseAuthenticator(q.auth)
	if err != nil {
		m.stats.malformed.Add(1)
		return
	}
	ck, err := m.cache.get(&x.sc, m.keys, x.now, c2s, s2c)
	if err != nil {
		m.stats.authFailures.Add(1)
		return
	}
	pt, err := ck.c2s.OpenScratch(&x.sc, x.buf[:0], nonce, ct, r.Raw[:q.authOff])
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
	x.w, x.r, x.q, x.ck, x.c2s, x.s2c = w, r, q, ck, c2s, s2c
	next.ServeNTP(x, r)
}

// acquire returns a pooled authExchange, allocating one only when the
// pool is empty.
func (m *Middleware) acquire() *authExchange {
	if x, ok := m.pool.Get().(*authExchange); ok {
		return x
	}
	var seed [32]byte
	crand.Read(seed[:])
	x := &authExchange{m: m, rnd: mrand.NewChaCha8(seed)}
	x.sealReply = func(pkt []byte) ([]byte, error) { return x.seal(pkt, true) }
	x.sealKiss = func(pkt []byte) ([]byte, error) {
		ntpwire.PutXmitTime(pkt, x.kissXmit) // a KoD carries no time
		return x.seal(pkt, false)
	}
	return x
}

// release clears x's references and key material and pools it.
func (m *Middleware) release(x *authExchange) {
	x.w, x.r, x.q, x.ck, x.c2s, x.s2c = nil, nil, ntsRequest{}, nil, nil, nil
	clear(x.plain[:])
	x.sc = aessiv.Scratch{} // it may hold blocks derived from the keys
	m.pool.Put(x)
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

// authExchange is the working state of one authenticated request, and the
// ResponseWriter the next handler gets: it seals the handler's replies.
// Exchanges are pooled, with their seal functions bound once, so an NTS
// request allocates nothing once the pool and the key cache are warm.
type authExchange struct {
	m        *Middleware
	w        server.ResponseWriter
	r        *server.Request
	q        ntsRequest
	ck       *clientKeys
	c2s, s2c []byte    // the cookie's keys, in plain
	now      time.Time // when the request was taken up, by the KeyStore's clock

	kissXmit            ntpwire.Time
	sealReply, sealKiss func([]byte) ([]byte, error)

	// rnd makes the nonces of cookies and authenticators: ChaCha8 is a
	// cryptographically strong generator, seeded from crypto/rand, and
	// several times cheaper per nonce than a getrandom call.
	rnd   *mrand.ChaCha8
	sc    aessiv.Scratch
	plain [cookiePlainLen]byte
	buf   [server.MaxPacket]byte // decrypted request fields, then the reply's
}

// Reply sends p with the Unique Identifier, fresh cookies and the
// authenticator.
func (x *authExchange) Reply(p ntpwire.Packet) error {
	return x.w.ReplySealed(p, x.sealReply)
}

// Kiss sends an authenticated KoD, without cookies.
func (x *authExchange) Kiss(code ntpwire.RefID) error {
	k := ntpwire.NewKiss(&x.r.Packet, code)
	x.kissXmit = k.XmitTime
	return x.w.ReplySealed(k, x.sealKiss)
}

var errNested = errors.New("nts: a handler behind NTS cannot seal its own reply")

// ReplySealed is refused: an NTS reply's trailer is NTS's.
func (x *authExchange) ReplySealed(ntpwire.Packet, func([]byte) ([]byte, error)) error {
	return errNested
}

// seal appends the Unique Identifier and the authenticator to the header
// in pkt, with as many cookies as were asked for and fit.
func (x *authExchange) seal(pkt []byte, cookies bool) ([]byte, error) {
	pkt = append(pkt, x.q.uidField...)
	n := 0
	if cookies {
		n = min(1+x.q.placeholders, maxReplyCookies)
		field := ntske.CookieFieldLen(CookieLen)
		for n > 0 && len(pkt)+ntske.AuthenticatorLen(n*field) > len(x.r.Raw) {
			n--
		}
	}
	pt, err := x.m.keys.sealCookies(&x.sc, x.rnd, x.now, x.buf[:0], x.c2s, x.s2c, n, true, x.ck)
	if err != nil {
		return nil, err
	}
	x.m.stats.cookies.Add(uint64(n))
	return ntske.AppendAuthenticatorScratch(&x.sc, x.rnd, pkt, &x.ck.s2c, pt), nil
}

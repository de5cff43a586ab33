// Package auth authenticates NTP requests with symmetric keys (RFC 5905
// §7.3, RFC 8573): a request carrying a MAC with a known key ID and a
// valid digest gets a reply MACed with the same key.
package auth

import (
	"errors"
	"sync/atomic"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/symkey"
)

// MAC is symmetric-key middleware. Use its Wrap method as a
// server.Middleware, inside access control and rate limiting:
//
//	keys, _ := symkey.LoadFile("/etc/chrony/chrony.keys")
//	mac := &auth.MAC{Keys: keys}
//	h := server.Chain(server.Responder(), acl, limiter, mac.Wrap)
//
// Requests without a MAC (NTS requests included) pass through untouched.
// A request whose MAC names a known key and verifies reaches the next
// handler, whose reply (or KoD) is sent with a MAC by the same key over
// the header; the comparison runs in constant time. A request with an
// unknown key ID or a MAC that does not verify is dropped, or, with
// CryptoNAK set, answered with the next handler's reply followed by a
// crypto-NAK (a MAC of four zero bytes, RFC 5905 §7.4), which tells the
// client its key is not accepted but gives it no authenticated time.
// Dropping is the default: an unauthenticated answer to a request that
// failed authentication helps only a confused client, and an attacker
// learns nothing from silence.
type MAC struct {
	// Keys are the keys accepted.
	Keys *symkey.Keys
	// CryptoNAK answers unknown keys and bad MACs with a crypto-NAK
	// instead of dropping them.
	CryptoNAK bool

	stats struct {
		requests, authenticated, unknownKey, badMAC, naks atomic.Uint64
	}
}

// Stats counts what MAC did.
type Stats struct {
	Requests      uint64 // requests carrying a MAC
	Authenticated uint64 // requests whose MAC verified
	UnknownKey    uint64 // requests naming a key ID not in Keys
	BadMAC        uint64 // requests whose digest did not verify
	CryptoNAKs    uint64 // crypto-NAKs sent
}

// Stats returns the middleware's counters.
func (m *MAC) Stats() Stats {
	return Stats{
		Requests:      m.stats.requests.Load(),
		Authenticated: m.stats.authenticated.Load(),
		UnknownKey:    m.stats.unknownKey.Load(),
		BadMAC:        m.stats.badMAC.Load(),
		CryptoNAKs:    m.stats.naks.Load(),
	}
}

// Wrap returns next behind symmetric-key authentication; it is a
// server.Middleware.
func (m *MAC) Wrap(next server.Handler) server.Handler {
	return server.HandlerFunc(func(w server.ResponseWriter, r *server.Request) {
		signed, id, digest, ok := symkey.Split(r.Raw)
		if !ok {
			next.ServeNTP(w, r)
			return
		}
		m.stats.requests.Add(1)
		key, known := m.Keys.Lookup(id)
		if !known {
			m.stats.unknownKey.Add(1)
		} else if !key.Verify(signed, digest) {
			m.stats.badMAC.Add(1)
			known = false
		}
		if !known {
			if m.CryptoNAK {
				next.ServeNTP(&nakWriter{m: m, w: w, r: r}, r)
			}
			return
		}
		m.stats.authenticated.Add(1)
		next.ServeNTP(&macWriter{w: w, r: r, key: key}, r)
	})
}

var errNested = errors.New("auth: a handler behind MAC authentication cannot seal its own reply")

// macWriter MACs the next handler's replies with the request's key.
type macWriter struct {
	w   server.ResponseWriter
	r   *server.Request
	key *symkey.Key
}

func (mw *macWriter) Reply(p ntpwire.Packet) error {
	return mw.w.ReplySealed(p, func(pkt []byte) ([]byte, error) { return mw.key.AppendMAC(pkt), nil })
}

func (mw *macWriter) Kiss(code ntpwire.RefID) error {
	k := ntpwire.NewKiss(&mw.r.Packet, code)
	return mw.w.ReplySealed(k, func(pkt []byte) ([]byte, error) {
		ntpwire.PutXmitTime(pkt, k.XmitTime)
		return mw.key.AppendMAC(pkt), nil
	})
}

func (mw *macWriter) ReplySealed(ntpwire.Packet, func([]byte) ([]byte, error)) error {
	return errNested
}

// nakWriter appends a crypto-NAK to the next handler's replies.
type nakWriter struct {
	m *MAC
	w server.ResponseWriter
	r *server.Request
}

func cryptoNAK(pkt []byte) ([]byte, error) { return append(pkt, 0, 0, 0, 0), nil }

func (nw *nakWriter) Reply(p ntpwire.Packet) error {
	err := nw.w.ReplySealed(p, cryptoNAK)
	if err == nil {
		nw.m.stats.naks.Add(1)
	}
	return err
}

func (nw *nakWriter) Kiss(code ntpwire.RefID) error {
	k := ntpwire.NewKiss(&nw.r.Packet, code)
	return nw.w.ReplySealed(k, func(pkt []byte) ([]byte, error) {
		ntpwire.PutXmitTime(pkt, k.XmitTime)
		return cryptoNAK(pkt)
	})
}

func (nw *nakWriter) ReplySealed(ntpwire.Packet, func([]byte) ([]byte, error)) error {
	return errNested
}

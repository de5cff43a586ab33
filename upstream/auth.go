package upstream

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server/symkey"
)

// DefaultNTSKEPort is the NTS-KE port used when a Source with NTS has
// none (RFC 8915 §6).
const DefaultNTSKEPort = 4460

// keTimeout bounds one NTS-KE session, handshake included.
const keTimeout = 10 * time.Second

// Source describes one configured upstream server and how its replies
// are authenticated, for New. The zero value of each authentication field
// means none: a Source with only Address is a plain NTP server (see
// Addresses).
type Source struct {
	// Address is "host:port" or "host", where host is an IP address or a
	// name. Without NTS it is the NTP server (port 123 when missing), and
	// a name that resolves to several addresses gives several sources,
	// each one polled on its own. With NTS it is the NTS-KE server (port 4460 when
	// missing); the NTP address is what the KE server names (its NTP
	// Server and Port records, else its own host and port 123), and a
	// name gives one source, never a pool: each KE session belongs to
	// one server.
	Address string
	// NTS turns on Network Time Security (RFC 8915): before polling, the
	// source runs NTS-KE over TLS 1.3 with Address, then sends each
	// request with a cookie and an authenticator and uses only replies
	// that authenticate with the session's keys. An NTS NAK or running
	// out of cookies (eight requests in a row unanswered) starts a new
	// NTS-KE session; failed sessions are retried with backoff.
	NTS bool
	// TLSConfig configures the NTS-KE TLS client, for example RootCAs
	// for a private CA or ServerName when Address is an IP address and
	// the certificate names a host. Nil means the system roots and the
	// host of Address as the server name. TLS 1.3 and the ntske/1 ALPN
	// are always set (on a copy). Only with NTS.
	TLSConfig *tls.Config
	// Key, when set, authenticates with a symmetric key (RFC 5905 §7.3,
	// RFC 8573): each request carries a MAC with Key, and only replies
	// with a valid MAC by the same key are used; replies without one, a
	// crypto-NAK or a wrong digest are ignored and counted as
	// Rejects.Auth. It cannot be combined with NTS.
	Key *symkey.Key
}

// serverAuth is how a configured server's replies are authenticated.
type serverAuth struct {
	nts bool
	tls *tls.Config // NTS-KE client configuration; may be nil
	key *symkey.Key // symmetric key; nil with NTS
}

// nts reports whether e's sources use NTS.
func (e *entry) nts() bool { return e.auth != nil && e.auth.nts }

// key returns the symmetric key of e's sources, or nil.
func (e *entry) key() *symkey.Key {
	if e.auth == nil {
		return nil
	}
	return e.auth.key
}

// Addresses returns a Source without authentication for each address.
func Addresses(addresses ...string) []Source {
	out := make([]Source, len(addresses))
	for i, a := range addresses {
		out[i] = Source{Address: a}
	}
	return out
}

// check validates s and returns the name to parse (the KE address with
// its default port for NTS) and its authentication.
func (s Source) check() (string, *serverAuth, error) {
	switch {
	case s.NTS && s.Key != nil:
		return "", nil, fmt.Errorf("%q: NTS and a symmetric key cannot be combined", s.Address)
	case !s.NTS && s.TLSConfig != nil:
		return "", nil, fmt.Errorf("%q: TLSConfig is only for NTS", s.Address)
	case s.Key != nil && s.Key.ID == 0:
		return "", nil, fmt.Errorf("%q: key ID 0 is reserved for crypto-NAKs", s.Address)
	}
	if !s.NTS {
		if s.Key == nil {
			return s.Address, nil, nil
		}
		return s.Address, &serverAuth{key: s.Key}, nil
	}
	name := s.Address
	if _, _, err := net.SplitHostPort(name); err != nil && name != "" {
		name = net.JoinHostPort(name, strconv.Itoa(DefaultNTSKEPort))
	}
	return name, &serverAuth{nts: true, tls: s.TLSConfig}, nil
}

// keyExchange runs NTS-KE for s, after a backoff when the previous
// sessions brought no authenticated reply, and moves s to the NTP address
// the KE server names. It reports whether s has a fresh session; a
// failure counts as an unanswered poll.
func (d *Discipliner) keyExchange(ctx context.Context, s *source) bool {
	if s.keRuns > 0 {
		base := max(min(d.o.MinPoll, 16*time.Second), 100*time.Millisecond)
		wait := min(base<<min(s.keRuns-1, 20), max(d.o.MaxPoll, time.Minute))
		if !d.sleep(ctx, wait) {
			return false
		}
	}
	s.keRuns++
	sess, err := ntske.Exchange(ctx, s.e.name, s.e.auth.tls, keTimeout)
	var ap netip.AddrPort
	if err == nil {
		ap, err = d.ntsAddress(ctx, sess)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		d.log.Warn("upstream: NTS-KE failed", "server", s.e.name, "attempt", s.keRuns, "err", err)
		s.reach <<= 1
		s.polls++
		d.handleLocked(ctx, s, outKEFailed, ntpwire.Packet{}, sample{})
		return false
	}
	if ap != s.addr {
		if s.addr.IsValid() {
			d.log.Info("upstream: NTS server moved", "server", s.e.name, "old", s.addr.String(), "new", ap.String())
			delete(d.inUse, s.addr)
			s.filt.reset()
			s.reach, s.polls, s.streak, s.backedOff = 0, 0, 0, false
			s.poll, s.state = d.o.MinPoll, StateInit
		}
		d.inUse[ap] = true
		s.addr = ap
	}
	s.sess = sess
	d.log.Info("upstream: NTS-KE done", "server", s.e.name, "ntp", ap.String(), "cookies", len(sess.Cookies))
	return true
}

// ntsAddress returns the NTP address of an NTS-KE session, resolving the
// server's name if it gave one.
func (d *Discipliner) ntsAddress(ctx context.Context, sess *ntske.Session) (netip.AddrPort, error) {
	if sess.Port < 1 || sess.Port > 65535 {
		return netip.AddrPort{}, fmt.Errorf("upstream: NTS-KE named NTP port %d", sess.Port)
	}
	port := uint16(sess.Port)
	if ip, err := netip.ParseAddr(sess.Server); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), port), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := d.o.Resolver.LookupNetIP(ctx, "ip", sess.Server)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("upstream: resolve NTS server %q: %w", sess.Server, err)
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("upstream: NTS server %q has no address", sess.Server)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), port), nil
}

// macValid reports whether pkt ends in a valid MAC by k. A crypto-NAK,
// another key's MAC or no MAC at all is not valid.
func macValid(k *symkey.Key, pkt []byte) bool {
	signed, id, digest, ok := symkey.Split(pkt)
	return ok && id == k.ID && k.Verify(signed, digest)
}

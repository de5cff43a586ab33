package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/ntpkit/ntpkit/internal/aessiv"
	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// NTS mode: each client socket runs NTS-KE once before the load starts,
// then sends NTS-protected requests (Unique Identifier, one cookie,
// optional placeholders, authenticator) and checks every reply's
// authenticator with its S2C key, keeping the fresh cookies it carries.
// The NTP requests go to the target address, not to the server the KE
// session names.

// maxCookies is how many cookies a socket keeps. With more requests
// outstanding than cookies held, cookies are reused: servers keep no
// record of spent cookies, so this costs them the same work, though a
// real client never does it (RFC 8915 §5.7 forbids it for privacy).
const maxCookies = 64

// maxCookieLen is the longest cookie kept.
const maxCookieLen = 256

// ntsStride is the room for one NTS request or reply in the loader's
// buffers: a header, a Unique Identifier, a cookie, 7 placeholders and an
// authenticator holding up to 8 cookies.
const ntsStride = 4096

// ntsFlags are the NTS settings.
type ntsFlags struct {
	ke           string // NTS-KE host:port; empty: plain NTP
	caFile       string
	serverName   string
	placeholders int
}

func (n *ntsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&n.ke, "nts", "", "NTS-KE server `host:port`: run NTS-KE once per socket, then send NTS-authenticated requests")
	fs.StringVar(&n.caFile, "nts-ca", "", "PEM `file` of CA certificates trusted for NTS-KE (default: the system roots)")
	fs.StringVar(&n.serverName, "nts-name", "", "TLS server name for NTS-KE (default: the -nts host)")
	fs.IntVar(&n.placeholders, "nts-placeholders", 0, "cookie placeholders per NTS request (asks for that many extra cookies)")
}

func (n *ntsFlags) validate() error {
	if n.ke == "" {
		if n.caFile != "" || n.serverName != "" || n.placeholders != 0 {
			return errors.New("-nts-ca, -nts-name and -nts-placeholders need -nts")
		}
		return nil
	}
	if n.placeholders < 0 || n.placeholders > 7 {
		return fmt.Errorf("-nts-placeholders %d: want 0–7", n.placeholders)
	}
	return nil
}

// tlsConfig returns the KE client's TLS configuration.
func (n *ntsFlags) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{ServerName: n.serverName}
	if n.caFile != "" {
		pem, err := os.ReadFile(n.caFile)
		if err != nil {
			return nil, fmt.Errorf("-nts-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-nts-ca %s: no PEM certificates", n.caFile)
		}
	}
	return cfg, nil
}

// ntsSock is one socket's NTS state. Requests and replies are built and
// checked in its buffers, without allocating.
type ntsSock struct {
	c2s, s2c     *aessiv.SIV
	sc           aessiv.Scratch
	rnd          *mrand.ChaCha8                 // authenticator nonces, seeded from crypto/rand
	uidTail      [ntske.MinUniqueIDLen - 8]byte // the Unique Identifier after the origin cookie
	cookies      [maxCookies][]byte
	have         int // cookies held
	next, put    int // round-robin indexes for spending and storing
	placeholders int
	zero         [maxCookieLen]byte
	plain        [ntsStride]byte
}

// newNTSSocks runs one NTS-KE exchange per socket, from the socket's
// source address (srcs[i%len(srcs)]) when there are any, so a KE server's
// per-address limits see the same clients as the NTP server.
func newNTSSocks(n *ntsFlags, count int, srcs []netip.Addr) ([]*ntsSock, error) {
	tcfg, err := n.tlsConfig()
	if err != nil {
		return nil, err
	}
	out := make([]*ntsSock, count)
	for i := range out {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var nd *net.Dialer
		if len(srcs) > 0 {
			nd = &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(srcs[i%len(srcs)], 0))}
		}
		sess, err := ntske.ExchangeVia(ctx, nd, n.ke, tcfg, 0)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("NTS-KE for socket %d: %w", i, err)
		}
		var seed [32]byte
		if _, err := rand.Read(seed[:]); err != nil {
			return nil, err
		}
		ns := &ntsSock{placeholders: n.placeholders, rnd: mrand.NewChaCha8(seed)}
		if ns.c2s, err = aessiv.New(sess.C2S); err != nil {
			return nil, err
		}
		if ns.s2c, err = aessiv.New(sess.S2C); err != nil {
			return nil, err
		}
		for j := range ns.cookies {
			ns.cookies[j] = make([]byte, 0, maxCookieLen)
		}
		for _, c := range sess.Cookies {
			ns.store(c)
		}
		if ns.have == 0 {
			return nil, fmt.Errorf("NTS-KE for socket %d: %s sent no usable cookies", i, n.ke)
		}
		if _, err := rand.Read(ns.uidTail[:]); err != nil {
			return nil, err
		}
		out[i] = ns
	}
	return out, nil
}

// store keeps a cookie, replacing the oldest when the jar is full.
func (ns *ntsSock) store(c []byte) {
	if len(c) == 0 || len(c) > maxCookieLen {
		return
	}
	slot := &ns.cookies[ns.put%maxCookies]
	*slot = append((*slot)[:0], c...)
	ns.put++
	ns.have = min(ns.have+1, maxCookies)
}

// appendRequest appends to dst (holding the 48-byte header whose transmit
// timestamp is origin) the NTS fields of a request.
func (ns *ntsSock) appendRequest(dst []byte, origin uint64) []byte {
	cookie := ns.cookies[ns.next%ns.have]
	ns.next++
	dst = appendUID(dst, origin, &ns.uidTail)
	dst = ntpwire.AppendExtension(dst, ntske.EFCookie, cookie)
	for range ns.placeholders {
		dst = ntpwire.AppendExtension(dst, ntske.EFCookiePlaceholder, ns.zero[:len(cookie)])
	}
	return ntske.AppendAuthenticatorScratch(&ns.sc, ns.rnd, dst, ns.c2s, nil)
}

func appendUID(dst []byte, origin uint64, tail *[ntske.MinUniqueIDLen - 8]byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, ntske.EFUniqueID)
	dst = binary.BigEndian.AppendUint16(dst, 4+ntske.MinUniqueIDLen)
	dst = binary.BigEndian.AppendUint64(dst, origin)
	return append(dst, tail[:]...)
}

// verify checks that reply, answering the request with transmit
// timestamp origin, echoes its Unique Identifier and carries an
// authenticator that verifies with the S2C key; it keeps the reply's
// cookies.
func (ns *ntsSock) verify(reply []byte, origin uint64) bool {
	var want [4 + ntske.MinUniqueIDLen]byte
	appendUID(want[:0], origin, &ns.uidTail)
	it := ntpwire.Extensions(reply[ntpwire.HeaderLen:])
	off := ntpwire.HeaderLen
	uidOK := false
	for it.Next() {
		ext := it.Extension()
		switch ext.Type {
		case ntske.EFUniqueID:
			uidOK = string(reply[off:off+ext.Len()]) == string(want[:])
		case ntske.EFAuthenticator:
			if !uidOK {
				return false
			}
			nonce, ct, err := ntske.ParseAuthenticator(ext.Value)
			if err != nil {
				return false
			}
			pt, err := ns.s2c.OpenScratch(&ns.sc, ns.plain[:0], nonce, ct, reply[:off])
			if err != nil {
				return false
			}
			inner := ntpwire.Extensions(pt)
			for inner.Next() {
				if e := inner.Extension(); e.Type == ntske.EFCookie {
					ns.store(e.Value)
				}
			}
			return inner.Err() == nil
		}
		off += ext.Len()
	}
	return false
}

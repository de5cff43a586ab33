package ntske

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ntpkit/ntpkit/internal/aessiv"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// NTP extension field types of NTS (RFC 8915 §5.7).
const (
	EFUniqueID          = 0x0104
	EFCookie            = 0x0204
	EFCookiePlaceholder = 0x0304
	EFAuthenticator     = 0x0404
)

// NonceLen is the nonce length this package uses in authenticators.
const NonceLen = 16

// MinUniqueIDLen is the shortest Unique Identifier body RFC 8915 §5.3
// allows.
const MinUniqueIDLen = 32

// ErrAuthenticator means an authenticator extension field is malformed.
var ErrAuthenticator = errors.New("ntske: malformed authenticator extension field")

// ParseAuthenticator splits the body of an NTS Authenticator and Encrypted
// Extension Fields field into its nonce and ciphertext (RFC 8915 §5.6).
func ParseAuthenticator(body []byte) (nonce, ciphertext []byte, err error) {
	if len(body) < 4 {
		return nil, nil, ErrAuthenticator
	}
	nl := int(binary.BigEndian.Uint16(body))
	cl := int(binary.BigEndian.Uint16(body[2:]))
	rest := body[4:]
	npad := pad4(nl)
	if nl == 0 || npad > len(rest) {
		return nil, nil, ErrAuthenticator
	}
	nonce, rest = rest[:nl], rest[npad:]
	if cl < aessiv.Overhead || cl > len(rest) {
		return nil, nil, ErrAuthenticator
	}
	return nonce, rest[:cl], nil
}

func pad4(n int) int { return (n + 3) &^ 3 }

// AppendAuthenticator appends to pkt an authenticator extension field
// sealing plaintext (encrypted extension fields, possibly none) with aead
// under a fresh random nonce; the associated data is pkt as it was.
func AppendAuthenticator(pkt []byte, aead *aessiv.SIV, plaintext []byte) []byte {
	return AppendAuthenticatorScratch(new(aessiv.Scratch), nil, pkt, aead, plaintext)
}

// AppendAuthenticatorScratch is AppendAuthenticator sealing in sc, with
// the nonce read from rnd (a cryptographically strong generator; nil
// means crypto/rand): with room in pkt it does not allocate.
func AppendAuthenticatorScratch(sc *aessiv.Scratch, rnd io.Reader, pkt []byte, aead *aessiv.SIV, plaintext []byte) []byte {
	ctLen := aessiv.Overhead + len(plaintext)
	start := len(pkt)
	bodyLen := 4 + NonceLen + pad4(ctLen)
	fieldLen := 4 + bodyLen
	if fieldLen < ntpwire.MinExtensionLen {
		fieldLen = ntpwire.MinExtensionLen
	}
	pkt = binary.BigEndian.AppendUint16(pkt, EFAuthenticator)
	pkt = binary.BigEndian.AppendUint16(pkt, uint16(fieldLen))
	pkt = binary.BigEndian.AppendUint16(pkt, NonceLen)
	pkt = binary.BigEndian.AppendUint16(pkt, uint16(ctLen))
	// The nonce is read straight into pkt: a local array handed to
	// crypto/rand would be moved to the heap.
	pkt = append(pkt, make([]byte, NonceLen)...)
	nonce := pkt[len(pkt)-NonceLen:]
	if rnd == nil {
		rand.Read(nonce)
	} else {
		io.ReadFull(rnd, nonce)
	}
	ad := pkt[:start]
	pkt = aead.SealScratch(sc, pkt, nonce, plaintext, ad)
	for len(pkt)-start < fieldLen {
		pkt = append(pkt, 0)
	}
	return pkt
}

// AuthenticatorLen returns the length on the wire of an authenticator
// field built by AppendAuthenticator for a plaintext of n bytes.
func AuthenticatorLen(n int) int {
	return 4 + 4 + NonceLen + pad4(aessiv.Overhead+n)
}

// CookieFieldLen returns the length on the wire of a cookie (or
// placeholder) extension field carrying a cookie of n bytes.
func CookieFieldLen(n int) int {
	l := 4 + pad4(n)
	if l < ntpwire.MinExtensionLen {
		l = ntpwire.MinExtensionLen
	}
	return l
}

// ClientRequest appends to dst an NTS-protected client request: header p,
// a Unique Identifier field holding uid, the cookie, placeholders cookie
// placeholders of the cookie's size, and an authenticator sealed with c2s.
func ClientRequest(dst []byte, p *ntpwire.Packet, uid, cookie []byte, placeholders int, c2s *aessiv.SIV) []byte {
	dst = p.AppendTo(dst)
	dst = ntpwire.AppendExtension(dst, EFUniqueID, uid)
	dst = ntpwire.AppendExtension(dst, EFCookie, cookie)
	zero := make([]byte, len(cookie))
	for range placeholders {
		dst = ntpwire.AppendExtension(dst, EFCookiePlaceholder, zero)
	}
	return AppendAuthenticator(dst, c2s, nil)
}

// VerifyReply checks an NTS-protected server reply to a request carrying
// uid: that it echoes uid and that its authenticator verifies with s2c.
// It returns the new cookies from the encrypted fields. A KoD NTSN reply
// (an NTS NAK) returns ErrNAK.
func VerifyReply(pkt, uid []byte, s2c *aessiv.SIV) (cookies [][]byte, err error) {
	var p ntpwire.Packet
	if err := p.Decode(pkt); err != nil {
		return nil, fmt.Errorf("ntske: reply: %w", err)
	}
	it := ntpwire.Extensions(pkt[ntpwire.HeaderLen:])
	off := ntpwire.HeaderLen
	var uidOK bool
	for it.Next() {
		ext := it.Extension()
		switch ext.Type {
		case EFUniqueID:
			uidOK = len(ext.Value) >= len(uid) && string(ext.Value[:len(uid)]) == string(uid)
		case EFAuthenticator:
			if !uidOK {
				return nil, fmt.Errorf("ntske: reply does not echo the unique identifier")
			}
			nonce, ct, err := ParseAuthenticator(ext.Value)
			if err != nil {
				return nil, err
			}
			pt, err := s2c.Open(nil, nonce, ct, pkt[:off])
			if err != nil {
				return nil, fmt.Errorf("ntske: reply authenticator: %w", err)
			}
			inner := ntpwire.Extensions(pt)
			for inner.Next() {
				if e := inner.Extension(); e.Type == EFCookie {
					cookies = append(cookies, append([]byte(nil), e.Value...))
				}
			}
			if inner.Err() != nil {
				return nil, fmt.Errorf("ntske: reply encrypted fields: %w", inner.Err())
			}
			return cookies, nil
		}
		off += ext.Len()
	}
	if it.Err() != nil {
		return nil, fmt.Errorf("ntske: reply: %w", it.Err())
	}
	if p.IsKiss() && p.RefID == ntpwire.KissNTSN && uidOK {
		return nil, ErrNAK
	}
	return nil, fmt.Errorf("ntske: reply has no authenticator")
}

// ErrNAK means the server answered with an NTS NAK: it could not decrypt
// the cookie, and the client must run NTS-KE again.
var ErrNAK = errors.New("ntske: NTS NAK (server rejected the cookie)")

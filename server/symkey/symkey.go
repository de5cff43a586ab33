// Package symkey implements NTP's symmetric-key authentication (RFC 5905
// §7.3, RFC 8573): key files in chrony's format, and the MAC that follows
// an NTP packet, a 32-bit key ID and a digest of the packet. It knows
// nothing of servers or clients: server/auth uses it to authenticate
// requests and replies, and an NTP client (upstream) can use it towards
// its own servers.
//
// The digests are those chrony computes: for the hash types, H(key ||
// packet) truncated to 20 bytes (MD5 gives 16); for AES128 and AES256,
// AES-CMAC(key, packet), 16 bytes (RFC 8573).
package symkey

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/ntpkit/ntpkit/internal/aessiv"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// Type is a MAC algorithm.
type Type uint8

// MAC algorithms. MD5 and SHA1 exist for legacy clients; RFC 8573
// recommends AES128 (AES-CMAC).
const (
	MD5 Type = iota + 1
	SHA1
	SHA256
	SHA384
	SHA512
	AES128
	AES256
)

var typeNames = map[string]Type{
	"MD5": MD5, "M": MD5, // "M" is ntpd's spelling
	"SHA1": SHA1, "SHA256": SHA256, "SHA384": SHA384, "SHA512": SHA512,
	"AES128": AES128, "AES256": AES256, "AES128CMAC": AES128,
}

// String returns the type's name in chrony's key files.
func (t Type) String() string {
	switch t {
	case MD5:
		return "MD5"
	case SHA1:
		return "SHA1"
	case SHA256:
		return "SHA256"
	case SHA384:
		return "SHA384"
	case SHA512:
		return "SHA512"
	case AES128:
		return "AES128"
	case AES256:
		return "AES256"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// maxDigest is the longest digest an NTPv4 MAC carries (RFC 7822 leaves
// 24 bytes for a MAC: 4 of key ID and 20 of digest). NTPv3 and older carry
// the whole digest, up to ntpwire.MaxLegacyMACLen-4 bytes.
const maxDigest = 20

// Key is one symmetric key. It is safe for concurrent use.
type Key struct {
	ID   uint32
	Type Type
	key  []byte
	cmac *aessiv.CMAC
}

// NewKey returns a key. AES128 needs a 16-byte and AES256 a 32-byte
// secret; the hash types take any non-empty secret.
func NewKey(id uint32, typ Type, secret []byte) (*Key, error) {
	if id == 0 {
		return nil, errors.New("symkey: key ID 0 is reserved for crypto-NAKs")
	}
	if len(secret) == 0 {
		return nil, fmt.Errorf("symkey: key %d is empty", id)
	}
	k := &Key{ID: id, Type: typ, key: append([]byte(nil), secret...)}
	switch typ {
	case AES128, AES256:
		want := 16
		if typ == AES256 {
			want = 32
		}
		if len(secret) != want {
			return nil, fmt.Errorf("symkey: %v key %d is %d bytes, want %d", typ, id, len(secret), want)
		}
		c, err := aessiv.NewCMAC(secret)
		if err != nil {
			return nil, fmt.Errorf("symkey: key %d: %w", id, err)
		}
		k.cmac = c
	case MD5, SHA1, SHA256, SHA384, SHA512:
	default:
		return nil, fmt.Errorf("symkey: key %d has unknown type %v", id, typ)
	}
	return k, nil
}

// DigestLen returns the length of the key's digests in an NTPv4 MAC.
func (k *Key) DigestLen() int { return k.DigestLenFor(4) }

// DigestLenFor returns the length of the key's digests in a MAC on an
// NTP packet of the given version, as chrony computes it: 16 bytes for
// MD5 and the AES-CMAC types; for the SHA types, 20 bytes in NTPv4
// (truncated) and the whole digest (SHA-1 20, SHA-256 32, SHA-384 48,
// SHA-512 64 bytes) in NTPv3 and older.
func (k *Key) DigestLenFor(version uint8) int {
	switch k.Type {
	case MD5, AES128, AES256:
		return 16
	}
	if version >= 4 {
		return maxDigest
	}
	switch k.Type {
	case SHA256:
		return 32
	case SHA384:
		return 48
	case SHA512:
		return 64
	}
	return maxDigest
}

// MACLen returns the length of an NTPv4 MAC with this key: key ID and
// digest.
func (k *Key) MACLen() int { return 4 + k.DigestLen() }

func (k *Key) newHash() hash.Hash {
	switch k.Type {
	case MD5:
		return md5.New()
	case SHA1:
		return sha1.New()
	case SHA256:
		return sha256.New()
	case SHA384:
		return sha512.New384()
	default:
		return sha512.New()
	}
}

// digest returns the full digest of pkt; callers truncate it.
func (k *Key) digest(pkt []byte, buf *[64]byte) []byte {
	if k.cmac != nil {
		s := k.cmac.Sum(pkt)
		copy(buf[:], s[:])
		return buf[:16]
	}
	h := k.newHash()
	h.Write(k.key)
	h.Write(pkt)
	return h.Sum(buf[:0])
}

// AppendMAC appends the MAC of pkt (everything in it so far) to pkt. The
// digest's length is DigestLenFor the version in pkt's header.
func (k *Key) AppendMAC(pkt []byte) []byte {
	var buf [64]byte
	d := k.digest(pkt, &buf)[:k.DigestLenFor(version(pkt))]
	pkt = binary.BigEndian.AppendUint32(pkt, k.ID)
	return append(pkt, d...)
}

// Verify reports whether digest is pkt's digest under k, comparing in
// constant time. digest excludes the key ID; its length must be
// DigestLenFor the version in pkt's header.
func (k *Key) Verify(pkt, digest []byte) bool {
	n := k.DigestLenFor(version(pkt))
	if len(digest) != n {
		return false
	}
	var buf [64]byte
	d := k.digest(pkt, &buf)[:n]
	return subtle.ConstantTimeCompare(d, digest) == 1
}

// version returns the NTP version in pkt's header, 4 if pkt is empty.
func version(pkt []byte) uint8 {
	if len(pkt) == 0 {
		return 4
	}
	return pkt[0] >> 3 & 7
}

// Keys is a set of keys by ID. It is read-only once built, so safe for
// concurrent use.
type Keys struct {
	byID map[uint32]*Key
}

// NewKeys returns a set of keys; IDs must be unique.
func NewKeys(keys ...*Key) (*Keys, error) {
	s := &Keys{byID: make(map[uint32]*Key, len(keys))}
	for _, k := range keys {
		if _, dup := s.byID[k.ID]; dup {
			return nil, fmt.Errorf("symkey: key %d defined twice", k.ID)
		}
		s.byID[k.ID] = k
	}
	return s, nil
}

// Lookup returns the key with the given ID.
func (s *Keys) Lookup(id uint32) (*Key, bool) {
	if s == nil {
		return nil, false
	}
	k, ok := s.byID[id]
	return k, ok
}

// Len returns the number of keys.
func (s *Keys) Len() int {
	if s == nil {
		return 0
	}
	return len(s.byID)
}

// LoadFile reads a key file; see Parse.
func LoadFile(name string) (*Keys, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("symkey: %w", err)
	}
	defer f.Close()
	keys, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return keys, nil
}

// Parse reads keys in chrony's key file format, one per line:
//
//	# comment
//	1 SHA1 HEX:933F62BE1D604E68A81B557F18CFA200483F5B70
//	2 AES128 HEX:6FEA9A2D4C3F7E1A0B9C8D7E6F5A4B3C
//	3 MD5 ASCIItext
//
// ID is 1–4294967295; TYPE is MD5, SHA1, SHA256, SHA384, SHA512, AES128 or
// AES256 (ntpd's M and AES128CMAC are accepted too) and may be left out,
// meaning MD5; KEY is ASCII, or hexadecimal after "HEX:" (ntpd's bare
// hexadecimal keys must be given that prefix). Errors name the line.
func Parse(r io.Reader) (*Keys, error) {
	sc := bufio.NewScanner(r)
	var keys []*Key
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) == 2 {
			f = []string{f[0], "MD5", f[1]}
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("symkey: line %d: want ID TYPE KEY", n)
		}
		id, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("symkey: line %d: bad key ID %q", n, f[0])
		}
		typ, ok := typeNames[strings.ToUpper(f[1])]
		if !ok {
			return nil, fmt.Errorf("symkey: line %d: unknown key type %q", n, f[1])
		}
		secret := []byte(f[2])
		if h, ok := strings.CutPrefix(f[2], "HEX:"); ok {
			secret, err = hex.DecodeString(h)
			if err != nil {
				return nil, fmt.Errorf("symkey: line %d: bad hexadecimal key: %w", n, err)
			}
		}
		k, err := NewKey(uint32(id), typ, secret)
		if err != nil {
			return nil, fmt.Errorf("symkey: line %d: %w", n, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("symkey: %w", err)
	}
	return NewKeys(keys...)
}

// Split separates an NTP packet from its trailing MAC, as
// ntpwire.ParseTrailer finds it for the packet's version: it returns the
// authenticated bytes, the key ID and the digest, with ok false when pkt
// carries no MAC (or only a crypto-NAK, whose key ID is 0).
func Split(pkt []byte) (signed []byte, id uint32, digest []byte, ok bool) {
	mac := trailerMAC(pkt)
	if len(mac) < ntpwire.MinMACLen {
		return nil, 0, nil, false
	}
	signed = pkt[:len(pkt)-len(mac)]
	return signed, binary.BigEndian.Uint32(mac), mac[4:], true
}

// IsCryptoNAK reports whether pkt ends in a crypto-NAK: a MAC of only a
// zero key ID.
func IsCryptoNAK(pkt []byte) bool {
	return bytes.Equal(trailerMAC(pkt), []byte{0, 0, 0, 0})
}

// trailerMAC returns the MAC ending pkt, nil if there is none or pkt is
// malformed.
func trailerMAC(pkt []byte) []byte {
	if len(pkt) < ntpwire.HeaderLen {
		return nil
	}
	tr, err := ntpwire.ParseTrailer(version(pkt), pkt[ntpwire.HeaderLen:])
	if err != nil {
		return nil
	}
	return tr.MAC
}

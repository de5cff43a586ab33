// Package nts makes an ntpkit server an NTS server (RFC 8915): KEServer
// runs NTS Key Establishment over TLS 1.3 and hands out cookies, KeyStore
// holds the rotating master keys the cookies are sealed with, and
// Middleware authenticates NTS-protected NTP requests and seals the
// replies. Several servers that share a KeyStore seed accept each other's
// cookies, so a fleet can stand behind one name.
//
//	keys, _ := nts.NewKeyStore(nil, 24*time.Hour, nil) // random seed
//	ke := &nts.KEServer{TLSConfig: tlsCfg, Keys: keys}
//	go ke.ListenAndServe(ctx, ":4460")
//	mw := nts.NewMiddleware(keys)
//	srv := &server.Server{Handler: server.Chain(server.Responder(), mw.Wrap)}
package nts

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/internal/aessiv"
	"github.com/ntpkit/ntpkit/internal/ntske"
)

// MinSeedLen is the shortest master seed NewKeyStore accepts.
const MinSeedLen = 32

// DefaultRotation is how often master keys rotate by default.
const DefaultRotation = 24 * time.Hour

// keepPrevious is how many past epochs' keys still open cookies. With the
// default daily rotation a cookie stays usable for two to three days;
// clients replace theirs with every exchange.
const keepPrevious = 2

// KeyStore holds the cookie master keys. Keys are derived per epoch (the
// time divided by the rotation period) from a seed with HKDF-SHA256, so
// servers given the same seed and rotation derive the same keys and open
// each other's cookies; the epoch number is the key ID in each cookie.
// The current key seals, the keepPrevious before it and the next one
// (for servers whose clocks are a little ahead) still open. It is safe
// for concurrent use.
type KeyStore struct {
	seed     []byte
	rotation time.Duration
	clock    clock.Clock

	mu    sync.Mutex
	cache map[uint32]*epochKey
	// current is the key last looked up, usually the current epoch's:
	// found without the lock.
	current atomic.Pointer[epochKey]
}

// epochKey is one epoch's master key. Cookies carry the key ID as their
// associated data, so the S2V state after it is computed once, in head.
type epochKey struct {
	id   uint32
	siv  *aessiv.SIV
	head aessiv.Head
}

// NewKeyStore returns a KeyStore deriving keys from seed, which must be at
// least MinSeedLen bytes of secret; a nil seed means a random one, which
// only this process knows (keys do not survive a restart). rotation <= 0
// means DefaultRotation; clk nil means the system clock.
func NewKeyStore(seed []byte, rotation time.Duration, clk clock.Clock) (*KeyStore, error) {
	if seed == nil {
		seed = make([]byte, MinSeedLen)
		if _, err := rand.Read(seed); err != nil {
			return nil, fmt.Errorf("nts: random master seed: %w", err)
		}
	} else if len(seed) < MinSeedLen {
		return nil, fmt.Errorf("nts: master seed is %d bytes, want at least %d", len(seed), MinSeedLen)
	}
	if rotation <= 0 {
		rotation = DefaultRotation
	}
	if clk == nil {
		clk = clock.System{}
	}
	return &KeyStore{seed: append([]byte(nil), seed...), rotation: rotation, clock: clk, cache: make(map[uint32]*epochKey)}, nil
}

// epoch returns the key ID in force at now.
func (k *KeyStore) epoch(now time.Time) uint32 {
	return uint32(now.UnixNano() / int64(k.rotation))
}

// key returns the master key with key ID id if it is still (or already)
// valid, or nil. A key keeps its identity while it is valid.
func (k *KeyStore) key(id uint32, now time.Time) *epochKey {
	cur := k.epoch(now)
	if int64(id) > int64(cur)+1 || int64(id) < int64(cur)-keepPrevious {
		return nil
	}
	if e := k.current.Load(); e != nil && e.id == id {
		return e
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.cache[id]; ok {
		if id == cur {
			k.current.Store(e)
		}
		return e
	}
	var info [4]byte
	binary.BigEndian.PutUint32(info[:], id)
	mk, err := hkdf.Key(sha256.New, k.seed, []byte("ntpkit NTS cookie master key"), string(info[:]), 64)
	if err != nil {
		return nil
	}
	s, err := aessiv.New(mk)
	clear(mk)
	if err != nil {
		return nil
	}
	for old := range k.cache {
		if int64(old) < int64(cur)-keepPrevious || int64(old) > int64(cur)+1 {
			delete(k.cache, old)
		}
	}
	e := &epochKey{id: id, siv: s, head: s.Head(info[:])}
	k.cache[id] = e
	if id == cur {
		k.current.Store(e)
	}
	return e
}

// sealKey returns the master key that seals cookies at now.
func (k *KeyStore) sealKey(now time.Time) (*epochKey, error) {
	id := k.epoch(now)
	if e := k.key(id, now); e != nil {
		return e, nil
	}
	return nil, fmt.Errorf("nts: no master key for epoch %d", id)
}

// Cookie layout: key ID (4) || nonce (16) || SIV(plaintext), with the key
// ID as associated data, and plaintext = AEAD ID (2) || reserved (2) ||
// C2S (32) || S2C (32). Every field is fixed-size, so a cookie is always
// CookieLen bytes, a multiple of 4 that extension fields carry unpadded.
const (
	cookieNonceLen = 16
	cookiePlainLen = 4 + 2*ntske.KeyLen
	// CookieLen is the length of the cookies this package makes.
	CookieLen = 4 + cookieNonceLen + aessiv.Overhead + cookiePlainLen
)

// ErrCookie means a cookie could not be opened: wrong size, unknown or
// expired key, or failed authentication.
var ErrCookie = errors.New("nts: cookie cannot be decrypted")

// SealCookie appends a cookie holding the C2S and S2C keys to dst, sealed
// with the current master key.
func (k *KeyStore) SealCookie(dst, c2s, s2c []byte) ([]byte, error) {
	return k.sealCookies(new(aessiv.Scratch), rand.Reader, k.clock.Now(), dst, c2s, s2c, 1, false, nil)
}

// cookiePlain returns the plaintext of a cookie holding c2s and s2c, each
// ntske.KeyLen bytes.
func cookiePlain(c2s, s2c []byte) [cookiePlainLen]byte {
	var pt [cookiePlainLen]byte
	binary.BigEndian.PutUint16(pt[:], ntske.AEADAESSIVCMAC256)
	copy(pt[4:], c2s)
	copy(pt[4+ntske.KeyLen:], s2c)
	return pt
}

// sealCookies appends n cookies holding the C2S and S2C keys to dst,
// each in a Cookie extension field when fields is set, looking the
// master key for now up once, working in sc and reading nonces from rnd, a
// cryptographically strong generator. With ck, the client's cached
// keys, the part of the cookie's S2V that only depends on the keys is
// taken from (or, once per master key, computed into) ck.
func (k *KeyStore) sealCookies(sc *aessiv.Scratch, rnd io.Reader, now time.Time, dst, c2s, s2c []byte, n int, fields bool, ck *clientKeys) ([]byte, error) {
	if len(c2s) != ntske.KeyLen || len(s2c) != ntske.KeyLen {
		return nil, fmt.Errorf("nts: cookie keys are %d and %d bytes, want %d", len(c2s), len(s2c), ntske.KeyLen)
	}
	ek, err := k.sealKey(now)
	if err != nil {
		return nil, err
	}
	pt := cookiePlain(c2s, s2c)
	var pre *aessiv.Prefix
	if ck != nil && n > 0 {
		pre = ck.cookiePrefix(sc, ek, pt[:])
	}
	for range n {
		if fields { // CookieLen is a multiple of 4: no padding
			dst = binary.BigEndian.AppendUint16(dst, ntske.EFCookie)
			dst = binary.BigEndian.AppendUint16(dst, uint16(ntske.CookieFieldLen(CookieLen)))
		}
		start := len(dst)
		dst = binary.BigEndian.AppendUint32(dst, ek.id)
		// The nonce is read straight into dst: a local array handed to
		// crypto/rand would be moved to the heap.
		dst = append(dst, make([]byte, cookieNonceLen)...)
		nonce := dst[start+4:]
		if _, err := io.ReadFull(rnd, nonce); err != nil {
			clear(pt[:])
			return nil, fmt.Errorf("nts: cookie nonce: %w", err)
		}
		dst = ek.siv.SealHeadScratch(sc, &ek.head, pre, dst, nonce, pt[:])
	}
	clear(pt[:])
	return dst, nil
}

// OpenCookie opens a cookie made by SealCookie (here or on a server with
// the same seed) and returns its keys.
func (k *KeyStore) OpenCookie(cookie []byte) (c2s, s2c []byte, err error) {
	return k.openCookie(new(aessiv.Scratch), k.clock.Now(), make([]byte, 0, cookiePlainLen), cookie)
}

// openCookie is OpenCookie at now working in sc, with the keys decrypted
// into buf, which needs room for cookiePlainLen bytes.
func (k *KeyStore) openCookie(sc *aessiv.Scratch, now time.Time, buf, cookie []byte) (c2s, s2c []byte, err error) {
	if len(cookie) != CookieLen {
		return nil, nil, ErrCookie
	}
	ek := k.key(binary.BigEndian.Uint32(cookie), now)
	if ek == nil {
		return nil, nil, ErrCookie
	}
	pt, err := ek.siv.OpenHeadScratch(sc, &ek.head, buf[:0], cookie[4:4+cookieNonceLen], cookie[4+cookieNonceLen:])
	if err != nil || binary.BigEndian.Uint16(pt) != ntske.AEADAESSIVCMAC256 {
		return nil, nil, ErrCookie
	}
	return pt[4 : 4+ntske.KeyLen], pt[4+ntske.KeyLen:], nil
}

package nts

import (
	"crypto/subtle"
	"hash/maphash"
	"sync/atomic"
	"time"

	"github.com/ntpkit/ntpkit/internal/aessiv"
	"github.com/ntpkit/ntpkit/internal/ntske"
)

// keyCacheSlots is how many clients' AEADs keyCache keeps: about 1.3 KiB
// each (four expanded AES keys), so about 1.3 MiB in all.
const keyCacheSlots = 1024

// clientKeys holds the AEADs for one client's C2S and S2C keys, and the
// part of its cookies' S2V that depends only on those keys.
type clientKeys struct {
	keys     [2 * ntske.KeyLen]byte // C2S || S2C
	c2s, s2c aessiv.SIV             // in the entry: one allocation per new client
	// cookie is the Prefix of this client's cookie plaintext under one
	// master key: first, made with the entry, until the key rotates.
	cookie atomic.Pointer[cookiePrefix]
	first  cookiePrefix
}

// cookiePrefix is the Prefix of a cookie plaintext under master key key.
type cookiePrefix struct {
	key *epochKey
	pre aessiv.Prefix
}

// cookiePrefix returns the Prefix of e's cookie plaintext pt under ek,
// computing it (and allocating) only when ek is not the key e's last
// cookies were sealed with. The cookiePrefix values are never changed
// once published, so concurrent requests from one client are safe.
func (e *clientKeys) cookiePrefix(sc *aessiv.Scratch, ek *epochKey, pt []byte) *aessiv.Prefix {
	cp := e.cookie.Load()
	if cp == nil || cp.key != ek {
		cp = &cookiePrefix{key: ek, pre: ek.siv.Prefix(sc, pt)}
		e.cookie.Store(cp)
	}
	return &cp.pre
}

// keyCache keeps the AEADs of recently seen clients. An NTS client
// spends a new cookie on every request, but all its cookies carry the
// C2S and S2C keys of one key establishment, so a server that kept the
// expanded keys skips the key schedules (and crypto/aes's allocations) on
// every request after a client's first. The cache is direct-mapped, the
// slot chosen by a hash with a per-process random seed, so which slot a
// client's keys land in says nothing about them; keys are compared in
// constant time. A colliding client replaces the slot's entry. It is safe
// for concurrent use, without locks.
type keyCache struct {
	seed  maphash.Seed
	slots [keyCacheSlots]atomic.Pointer[clientKeys]
}

func newKeyCache() *keyCache {
	return &keyCache{seed: maphash.MakeSeed()}
}

// get returns the AEADs for c2s and s2c, building and caching them when
// they are not cached, with the cookie Prefix under ks's sealing key at
// now.
func (c *keyCache) get(sc *aessiv.Scratch, ks *KeyStore, now time.Time, c2s, s2c []byte) (*clientKeys, error) {
	// The slot comes from the C2S key alone: it is the output of the
	// TLS exporter, 32 random bytes, so it spreads clients as well as
	// both keys would, for one hash call instead of a streaming hash.
	// The entry is still matched on both keys.
	slot := &c.slots[maphash.Bytes(c.seed, c2s)%keyCacheSlots]
	if e := slot.Load(); e != nil &&
		subtle.ConstantTimeCompare(e.keys[:ntske.KeyLen], c2s)&subtle.ConstantTimeCompare(e.keys[ntske.KeyLen:], s2c) == 1 {
		return e, nil
	}
	e := &clientKeys{}
	copy(e.keys[:], c2s)
	copy(e.keys[ntske.KeyLen:], s2c)
	if err := e.c2s.Init(c2s); err != nil {
		return nil, err
	}
	if err := e.s2c.Init(s2c); err != nil {
		return nil, err
	}
	if ek, err := ks.sealKey(now); err == nil {
		pt := cookiePlain(c2s, s2c)
		e.first = cookiePrefix{key: ek, pre: ek.siv.Prefix(sc, pt[:])}
		clear(pt[:])
		e.cookie.Store(&e.first)
	}
	slot.Store(e)
	return e, nil
}

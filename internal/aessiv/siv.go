package aessiv

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// ErrOpen is returned when a ciphertext fails authentication.
var ErrOpen = errors.New("aessiv: message authentication failed")

// Overhead is how many bytes Seal adds: the synthetic IV.
const Overhead = BlockSize

// SIV is AES-SIV with one key. With a 32-byte key it is
// AEAD_AES_SIV_CMAC_256 (RFC 5297 §6.1), the algorithm NTS uses. It is
// safe for concurrent use.
type SIV struct {
	mac CMAC
	ctr aesKey
	d0  [BlockSize]byte // CMAC(K, <zero>), where every S2V starts
}

// New returns an SIV for a 32-, 48- or 64-byte key: the first half keys
// S2V (CMAC), the second half CTR mode.
func New(key []byte) (*SIV, error) {
	s := new(SIV)
	if err := s.Init(key); err != nil {
		return nil, err
	}
	return s, nil
}

// Init keys s as New would, in place, so that an SIV can live inside a
// larger structure instead of in an allocation of its own. s must not
// be in use, and must not be copied afterwards.
func (s *SIV) Init(key []byte) error {
	switch len(key) {
	case 32, 48, 64:
	default:
		return fmt.Errorf("aessiv: key is %d bytes, want 32, 48 or 64", len(key))
	}
	half := len(key) / 2
	*s = SIV{}
	if err := s.mac.init(key[:half]); err != nil {
		return err
	}
	if err := s.ctr.init(key[half:]); err != nil {
		return fmt.Errorf("aessiv: CTR key: %w", err)
	}
	// S2V starts from CMAC(K, <zero>): one whole block, so AES(K, zero
	// XOR K1), computed in s's own memory.
	s.d0 = s.mac.k1
	s.mac.key.encrypt1(&s.d0)
	return nil
}

// Seal encrypts and authenticates plaintext and appends V||C to dst, as the
// RFC 5116 AEAD interface defines it for SIV: the S2V vector is (ad,
// nonce, plaintext), and an empty nonce is left out of it. dst may alias
// plaintext only exactly (dst[len(dst):] == plaintext is not supported).
// It allocates its working memory; SealScratch does not.
func (s *SIV) Seal(dst, nonce, plaintext, ad []byte) []byte {
	return s.SealScratch(new(Scratch), dst, nonce, plaintext, ad)
}

// SealScratch is Seal working in sc: with room in dst it does not
// allocate.
func (s *SIV) SealScratch(sc *Scratch, dst, nonce, plaintext, ad []byte) []byte {
	if len(nonce) == 0 {
		return s.sealVector(sc, dst, plaintext, ad)
	}
	return s.sealVector(sc, dst, plaintext, ad, nonce)
}

// Open authenticates and decrypts V||C and appends the plaintext to dst.
// It allocates its working memory; OpenScratch does not.
func (s *SIV) Open(dst, nonce, ciphertext, ad []byte) ([]byte, error) {
	return s.OpenScratch(new(Scratch), dst, nonce, ciphertext, ad)
}

// OpenScratch is Open working in sc: with room in dst it does not
// allocate.
func (s *SIV) OpenScratch(sc *Scratch, dst, nonce, ciphertext, ad []byte) ([]byte, error) {
	if len(nonce) == 0 {
		return s.openVector(sc, dst, ciphertext, ad)
	}
	return s.openVector(sc, dst, ciphertext, ad, nonce)
}

// SealVector is SIV-encrypt from RFC 5297 §2.6 with associated data
// components ads (a nonce, if any, is the last of them).
func (s *SIV) SealVector(dst, plaintext []byte, ads ...[]byte) []byte {
	return s.sealVector(new(Scratch), dst, plaintext, ads...)
}

func (s *SIV) sealVector(sc *Scratch, dst, plaintext []byte, ads ...[]byte) []byte {
	return s.seal(sc, nil, nil, dst, plaintext, ads)
}

func (s *SIV) seal(sc *Scratch, h *Head, pre *Prefix, dst, plaintext []byte, ads [][]byte) []byte {
	v := s.s2v(sc, h, pre, plaintext, ads)
	ret, out := grow(dst, Overhead+len(plaintext))
	copy(out, v[:])
	s.xorCTR(sc, out[Overhead:], plaintext, v)
	return ret
}

// OpenVector is SIV-decrypt from RFC 5297 §2.7.
func (s *SIV) OpenVector(dst, ciphertext []byte, ads ...[]byte) ([]byte, error) {
	return s.openVector(new(Scratch), dst, ciphertext, ads...)
}

func (s *SIV) openVector(sc *Scratch, dst, ciphertext []byte, ads ...[]byte) ([]byte, error) {
	return s.open(sc, nil, dst, ciphertext, ads)
}

func (s *SIV) open(sc *Scratch, h *Head, dst, ciphertext []byte, ads [][]byte) ([]byte, error) {
	if len(ciphertext) < Overhead {
		return nil, ErrOpen
	}
	var v [BlockSize]byte
	copy(v[:], ciphertext[:Overhead])
	ret, out := grow(dst, len(ciphertext)-Overhead)
	s.xorCTR(sc, out, ciphertext[Overhead:], v)
	t := s.s2v(sc, h, nil, out, ads)
	if subtle.ConstantTimeCompare(t[:], v[:]) != 1 {
		clear(out)
		return nil, ErrOpen
	}
	return ret, nil
}

// Head is S2V's state after associated data components that lead many
// messages: NTS cookies, for one, all start with the key ID of the
// master key that seals them. SealHeadScratch and OpenHeadScratch start
// from a Head instead of computing those components' CMACs again. A Head
// belongs to the SIV that made it and is secret like its key.
type Head struct{ d [BlockSize]byte }

// Head returns the S2V state after the associated data components ads.
// It allocates its working memory.
func (s *SIV) Head(ads ...[]byte) Head {
	var h Head
	h.d = s.d0
	sc := new(Scratch)
	for _, a := range ads {
		m := s.mac.SumScratch(sc, a)
		h.d = dbl(h.d)
		xor16(h.d[:], h.d[:], m[:])
	}
	return h
}

// Prefix is the CMAC state of a plaintext after its leading whole
// blocks, those S2V's D is never XORed into (all but the last 16 to 31
// bytes). A server sealing the same plaintext under fresh nonces again
// and again (NTS cookies for one client) computes it once. It belongs to
// the SIV that made it and is secret like the plaintext.
type Prefix struct {
	x [BlockSize]byte
	n int // the bytes of plaintext it covers
}

// Prefix returns plaintext's Prefix, working in sc.
func (s *SIV) Prefix(sc *Scratch, plaintext []byte) Prefix {
	n := prefixLen(plaintext)
	var msgs [maxLanes][]byte
	msgs[0] = plaintext[:n]
	sc.lanes[0] = lane{}
	s.mac.runLanes(sc, sc.lanes[:1], msgs[:1])
	p := Prefix{x: sc.lanes[0].x, n: n}
	sc.lanes[0] = lane{}
	return p
}

// prefixLen is how many bytes of S2V's final component precede the
// block D is first XORed into.
func prefixLen(last []byte) int {
	if len(last) < BlockSize {
		return 0
	}
	return (len(last) - BlockSize) / BlockSize * BlockSize
}

// SealHeadScratch is SealScratch for the associated data components h
// was made from followed by nonce (left out when empty). pre, when not
// nil, must be the Prefix of this same plaintext; it is not checked
// beyond its length.
func (s *SIV) SealHeadScratch(sc *Scratch, h *Head, pre *Prefix, dst, nonce, plaintext []byte) []byte {
	if len(nonce) == 0 {
		return s.seal(sc, h, pre, dst, plaintext, nil)
	}
	return s.seal(sc, h, pre, dst, plaintext, [][]byte{nonce})
}

// OpenHeadScratch is OpenScratch for the associated data components h
// was made from followed by nonce (left out when empty).
func (s *SIV) OpenHeadScratch(sc *Scratch, h *Head, dst, nonce, ciphertext []byte) ([]byte, error) {
	if len(nonce) == 0 {
		return s.open(sc, h, dst, ciphertext, nil)
	}
	return s.open(sc, h, dst, ciphertext, [][]byte{nonce})
}

// s2v is the S2V PRF of RFC 5297 §2.4 over ads followed by last, started
// from h (the state after earlier components) when it is not nil and
// with pre standing for last's leading blocks when it covers them.
//
// AES on this path is bound by latency, not throughput: each CMAC is a
// chain in which every block waits for the one before. The CMACs of the
// associated data components do not depend on each other, nor do the
// whole blocks of last that precede its final 16 bytes (the only bytes
// D is XORed into), so s2v runs those chains side by side, one block of
// each in turn, and the CPU overlaps their AES rounds. Only the tail of
// last waits for D.
func (s *SIV) s2v(sc *Scratch, h *Head, p *Prefix, last []byte, ads [][]byte) [BlockSize]byte {
	d := s.d0
	if h != nil {
		d = h.d
	}
	c := &s.mac
	// The prefix of last that D does not touch: whole blocks before
	// the final 16 bytes, never CMAC's final block.
	pre := prefixLen(last)
	// The lanes' states live in sc (crypto/aes moves what it encrypts to
	// the heap); the messages they read stay in msgs, on the stack, so
	// that callers' buffers do not escape.
	var msgs [maxLanes][]byte
	sc.lanes[0] = lane{}
	if p != nil && p.n == pre {
		sc.lanes[0].x = p.x
	} else {
		msgs[0] = last[:pre] // lane 0: the prefix, no final block
	}
	lo, n := 0, 1 // the lanes to run: lo is 1 once the prefix is done
	for {
		for ; len(ads) > 0 && n < maxLanes; n++ {
			msgs[n] = c.adLane(&sc.lanes[n], ads[0])
			ads = ads[1:]
		}
		c.runLanes(sc, sc.lanes[lo:n], msgs[lo:n])
		for i := 1; i < n; i++ {
			d = dbl(d)
			xor16(d[:], d[:], sc.lanes[i].x[:])
		}
		if len(ads) == 0 {
			break
		}
		// More components than lanes (not NTS's case): the next group
		// runs in the lanes after the prefix's.
		lo, n = 1, 1
	}
	l := &sc.lanes[0] // its x: the CBC state after the prefix of last
	if len(last) >= BlockSize {
		// T = last xorend D; what is left after the prefix is 16 to 31
		// bytes, its last 16 XORed with D. Lane 0 finishes with them:
		// a whole block if there are more than 16, then the final
		// block, as one more run of the lane.
		t := sc.tail[:len(last)-pre]
		copy(t, last[pre:])
		e := t[len(t)-BlockSize:]
		xor16(e, e, d[:])
		msgs[0] = nil
		if len(t) > BlockSize {
			msgs[0], t = t[:BlockSize], t[BlockSize:]
		}
		// t now holds the final block, whole when it is 16 bytes.
		if len(t) == BlockSize {
			xor16(l.fin[:], t, c.k1[:])
		} else {
			clear(l.fin[:])
			copy(l.fin[:], t)
			l.fin[len(t)] = 0x80
			xor16(l.fin[:], l.fin[:], c.k2[:])
		}
		l.end = true
		c.runLanes(sc, sc.lanes[:1], msgs[:1])
	} else {
		// T = dbl(D) xor pad(last), one whole block: CMAC(T) = E(T xor K1)
		t := dbl(d)
		var p [BlockSize]byte
		copy(p[:], last)
		p[len(last)] = 0x80
		xor16(t[:], t[:], p[:])
		subtle.XORBytes(l.x[:], t[:], c.k1[:])
		c.key.encrypt1(&l.x)
	}
	v := l.x
	clear(sc.lanes[:])
	clear(sc.tail[:])
	return v
}

// maxLanes is how many CMAC chains s2v runs side by side: the prefix of
// the final component and up to three associated data components (NTS
// uses two: the AD and the nonce).
const maxLanes = 4

// lane is the state of one CMAC chain in progress: after the whole
// blocks of its message, if end is set, the final block fin (already
// padded and XORed with K1 or K2) is still to be absorbed.
type lane struct {
	x   [BlockSize]byte // CBC state; the tag once the lane is done
	fin [BlockSize]byte
	end bool
}

// adLane sets l up for the CMAC of m and returns the whole blocks of m
// the lane reads before fin.
func (c *CMAC) adLane(l *lane, m []byte) []byte {
	clear(l.x[:])
	l.end = true
	if n := len(m); n > 0 && n%BlockSize == 0 {
		xor16(l.fin[:], m[n-BlockSize:], c.k1[:])
		return m[:n-BlockSize]
	}
	full := len(m) / BlockSize * BlockSize
	clear(l.fin[:])
	k := copy(l.fin[:], m[full:])
	l.fin[k] = 0x80
	xor16(l.fin[:], l.fin[:], c.k2[:])
	return m[:full]
}

// runLanes runs the chains of ls (at most maxLanes), reading msgs, to
// their ends. Which lanes are busy at each step depends only on
// lengths, never on data.
//
// With the assembly all the lanes' blocks, final blocks included, go
// through one cbcLanes call, which keeps the chains' states in
// registers.
func (c *CMAC) runLanes(sc *Scratch, ls []lane, msgs [][]byte) {
	if c.key.nr == 0 {
		c.runLanesBatch(sc, ls, msgs)
		return
	}
	var x [maxLanes][BlockSize]byte
	var runs [maxLanes]laneRun
	for i := range ls {
		l := &ls[i]
		x[i] = l.x
		// Assigned to runs[i] directly: a store through a pointer to
		// it would count as one to the heap, and msgs's contents (the
		// callers' buffers) would escape.
		var r laneRun
		if m := msgs[i]; len(m) >= BlockSize {
			r.p, r.n = &m[0], len(m)/BlockSize
		}
		if l.end {
			r.fin = &l.fin[0]
			r.n++
			l.end = false
		}
		runs[i] = r
	}
	c.key.cbcLanes(&x, &runs)
	for i := range ls {
		ls[i].x = x[i]
	}
	clear(x[:])
}

// runLanesBatch is runLanes for crypto/aes: each
// step absorbs the next block of every lane still busy, and the AES
// encryptions of that step go to the cipher as one batch (in sc.ks), so
// that they are computed side by side. Which lanes are busy depends only
// on lengths, never on data.
func (c *CMAC) runLanesBatch(sc *Scratch, ls []lane, msgs [][]byte) {
	msgs = msgs[:len(ls)]
	var off [maxLanes]int // reslicing msgs in place would move them to the heap
	var busy [maxLanes]bool
	b := &sc.ks
	for {
		n := 0
		for i := range ls {
			l := &ls[i]
			in := b[n*BlockSize : (n+1)*BlockSize]
			// subtle.XORBytes, not xor16: its one 16-byte store lets
			// AES's 16-byte load of the block be forwarded from it;
			// after xor16's two 8-byte stores that load would stall.
			switch m := msgs[i][off[i]:]; {
			case len(m) >= BlockSize:
				subtle.XORBytes(in, l.x[:], m[:BlockSize])
				off[i] += BlockSize
			case l.end:
				subtle.XORBytes(in, l.x[:], l.fin[:])
				l.end = false
			default:
				busy[i] = false
				continue
			}
			busy[i] = true
			n++
		}
		if n == 0 {
			clear(b[:])
			return
		}
		c.key.encryptBatch(b, n)
		n = 0
		for i := range ls {
			if busy[i] {
				copy(ls[i].x[:], b[n*BlockSize:(n+1)*BlockSize])
				n++
			}
		}
	}
}

// xorCTR writes src XOR the AES-CTR keystream started at Q (V with bits 31
// and 63 cleared) into dst. It makes the keystream for up to maxBatch
// blocks at a time, the counter blocks encrypted in place as one batch,
// then XORs it in with one call.
func (s *SIV) xorCTR(sc *Scratch, dst, src []byte, v [BlockSize]byte) {
	hi := binary.BigEndian.Uint64(v[:8])
	lo := binary.BigEndian.Uint64(v[8:]) &^ (1<<63 | 1<<31)
	for len(src) > 0 {
		ks := sc.ks[:min(len(src), len(sc.ks))]
		// All counter blocks are written before the first is encrypted:
		// AES's 16-byte load of a block just written as two 8-byte
		// stores cannot be forwarded from them and stalls until they
		// retire; with crypto/aes, one block at a time, that serialized
		// the blocks and doubled CTR's cost.
		for i := 0; i < len(ks); i += BlockSize {
			binary.BigEndian.PutUint64(sc.ks[i:], hi)
			binary.BigEndian.PutUint64(sc.ks[i+8:], lo)
			var carry uint64
			lo, carry = bits.Add64(lo, 1, 0)
			hi += carry
		}
		s.ctr.encryptBatch(&sc.ks, (len(ks)+BlockSize-1)/BlockSize)
		n := subtle.XORBytes(dst, src, ks)
		dst, src = dst[n:], src[n:]
	}
	clear(sc.ks[:])
}

// grow extends b by n bytes, returning the whole slice and the new part.
func grow(b []byte, n int) (whole, tail []byte) {
	if total := len(b) + n; cap(b) >= total {
		whole = b[:total]
	} else {
		whole = make([]byte, total)
		copy(whole, b)
	}
	return whole, whole[len(b):]
}

// Package aessiv implements AES-CMAC (RFC 4493) and AES-SIV (RFC 5297),
// the AEAD that NTS (RFC 8915) requires as AEAD_AES_SIV_CMAC_256. The Go
// standard library has neither; the few third-party implementations are
// unmaintained, and both constructions are short, so they are written
// here and checked against the RFCs' test vectors.
//
// On amd64 with AES-NI the block cipher is this package's assembly
// (block_amd64.s): S2V's CMAC chains run side by side in one call with
// their states in registers, and CTR's blocks are encrypted as one
// batch, where crypto/aes offers one block per call. Elsewhere, or built
// with the purego tag, it is crypto/aes. Tests check the two against
// each other and against the FIPS 197 and RFC vectors.
package aessiv

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
)

// BlockSize is the AES block size, and the size of a CMAC tag.
const BlockSize = aes.BlockSize

// CMAC computes AES-CMAC tags with one key. It is safe for concurrent use.
type CMAC struct {
	key    aesKey
	k1, k2 [BlockSize]byte
}

// NewCMAC returns a CMAC for a 16-, 24- or 32-byte AES key.
func NewCMAC(key []byte) (*CMAC, error) {
	c := new(CMAC)
	if err := c.init(key); err != nil {
		return nil, err
	}
	return c, nil
}

// init keys c; c must be in memory that outlives it (it is handed to the
// cipher).
func (c *CMAC) init(key []byte) error {
	if err := c.key.init(key); err != nil {
		return fmt.Errorf("aessiv: CMAC key: %w", err)
	}
	clear(c.k1[:])
	c.key.encrypt1(&c.k1) // L = AES(K, 0), in memory c already owns
	c.k1 = dbl(c.k1)
	c.k2 = dbl(c.k1)
	return nil
}

// Sum returns the CMAC tag of msg. It allocates its working memory; use
// SumScratch on a hot path.
func (c *CMAC) Sum(msg []byte) [BlockSize]byte {
	return c.SumScratch(new(Scratch), msg)
}

// SumScratch returns the CMAC tag of msg, working in sc instead of
// allocating.
func (c *CMAC) SumScratch(sc *Scratch, msg []byte) [BlockSize]byte {
	d := digest{c: c, s: sc}
	d.reset()
	d.write(msg)
	return d.sum()
}

// Verify reports, in constant time, whether tag is msg's CMAC tag.
func (c *CMAC) Verify(msg, tag []byte) bool {
	sum := c.Sum(msg)
	return subtle.ConstantTimeCompare(sum[:], tag) == 1
}

// Scratch is working memory for one CMAC or SIV computation at a time.
// crypto/aes's Encrypt takes slices through an interface, so the compiler
// moves any block it encrypts to the heap; passing a long-lived Scratch
// lets the *Scratch methods run without allocating. The zero value is
// ready to use; a Scratch must not be used by two goroutines at once.
type Scratch struct {
	x   [BlockSize]byte            // CBC state
	buf [BlockSize]byte            // pending bytes, at most a whole block
	out [BlockSize]byte            // the final CMAC block
	ks  [maxBatch * BlockSize]byte // CTR key stream; S2V lanes' next blocks
	n   int                        // bytes pending in buf

	lanes [maxLanes]lane      // S2V's CMAC chains
	tail  [2 * BlockSize]byte // the end of S2V's final component, XORed with D
}

// digest is a streaming CMAC computation in a Scratch. It holds back the
// last block, which CMAC treats specially, until sum.
type digest struct {
	c *CMAC
	s *Scratch
}

func (d *digest) reset() {
	clear(d.s.x[:])
	d.s.n = 0
}

func (d *digest) write(p []byte) {
	s := d.s
	for len(p) > 0 {
		if s.n == BlockSize {
			// The pending block is not the last one: fold it in.
			subtle.XORBytes(s.x[:], s.x[:], s.buf[:])
			d.c.key.encrypt1(&s.x)
			s.n = 0
		}
		k := copy(s.buf[s.n:], p)
		s.n += k
		p = p[k:]
	}
}

func (d *digest) sum() [BlockSize]byte {
	s := d.s
	last := s.buf
	if s.n == BlockSize {
		xor16(last[:], last[:], d.c.k1[:])
	} else {
		last[s.n] = 0x80
		clear(last[s.n+1:])
		xor16(last[:], last[:], d.c.k2[:])
	}
	subtle.XORBytes(s.out[:], s.x[:], last[:])
	d.c.key.encrypt1(&s.out)
	return s.out
}

// xor16 sets dst to a XOR b for one block. crypto/subtle.XORBytes is
// general (any length, overlap checks) and costs several times more for
// the 16-byte blocks CMAC and S2V work on. Like it, xor16 takes the same
// time whatever the data. A block AES is about to read is written with
// subtle.XORBytes instead: its single 16-byte store lets the AES load be
// forwarded from it, where xor16's two 8-byte stores make that load
// stall until they retire.
func xor16(dst, a, b []byte) {
	_, _, _ = dst[BlockSize-1], a[BlockSize-1], b[BlockSize-1]
	binary.LittleEndian.PutUint64(dst, binary.LittleEndian.Uint64(a)^binary.LittleEndian.Uint64(b))
	binary.LittleEndian.PutUint64(dst[8:], binary.LittleEndian.Uint64(a[8:])^binary.LittleEndian.Uint64(b[8:]))
}

// dbl multiplies b by x in GF(2^128) (RFC 5297 §2.3), in constant time:
// the reduction is masked in, not branched on.
func dbl(b [BlockSize]byte) [BlockSize]byte {
	hi := binary.BigEndian.Uint64(b[:8])
	lo := binary.BigEndian.Uint64(b[8:])
	carry := hi >> 63
	var out [BlockSize]byte
	binary.BigEndian.PutUint64(out[:8], hi<<1|lo>>63)
	binary.BigEndian.PutUint64(out[8:], lo<<1^(0x87&-carry))
	return out
}

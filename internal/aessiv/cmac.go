// Package aessiv implements AES-CMAC (RFC 4493) and AES-SIV (RFC 5297),
// the AEAD that NTS (RFC 8915) requires as AEAD_AES_SIV_CMAC_256, on top of
// crypto/aes. The Go standard library has neither; the few third-party
// implementations are unmaintained, and both constructions are short, so
// they are written here and checked against the RFCs' test vectors.
package aessiv

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"fmt"
)

// BlockSize is the AES block size, and the size of a CMAC tag.
const BlockSize = aes.BlockSize

// CMAC computes AES-CMAC tags with one key. It is safe for concurrent use.
type CMAC struct {
	block  cipher.Block
	k1, k2 [BlockSize]byte
}

// NewCMAC returns a CMAC for a 16-, 24- or 32-byte AES key.
func NewCMAC(key []byte) (*CMAC, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aessiv: CMAC key: %w", err)
	}
	c := &CMAC{block: b}
	var l [BlockSize]byte
	b.Encrypt(l[:], l[:])
	c.k1 = dbl(l)
	c.k2 = dbl(c.k1)
	return c, nil
}

// Sum returns the CMAC tag of msg.
func (c *CMAC) Sum(msg []byte) [BlockSize]byte {
	var d digest
	d.c = c
	d.write(msg)
	return d.sum()
}

// Verify reports, in constant time, whether tag is msg's CMAC tag.
func (c *CMAC) Verify(msg, tag []byte) bool {
	sum := c.Sum(msg)
	return subtle.ConstantTimeCompare(sum[:], tag) == 1
}

// digest is a streaming CMAC computation. It holds back the last block,
// which CMAC treats specially, until sum.
type digest struct {
	c   *CMAC
	x   [BlockSize]byte // CBC state
	buf [BlockSize]byte // pending bytes, at most a whole block
	n   int
}

func (d *digest) write(p []byte) {
	for len(p) > 0 {
		if d.n == BlockSize {
			// The pending block is not the last one: fold it in.
			subtle.XORBytes(d.x[:], d.x[:], d.buf[:])
			d.c.block.Encrypt(d.x[:], d.x[:])
			d.n = 0
		}
		k := copy(d.buf[d.n:], p)
		d.n += k
		p = p[k:]
	}
}

func (d *digest) sum() [BlockSize]byte {
	last := d.buf
	if d.n == BlockSize {
		subtle.XORBytes(last[:], last[:], d.c.k1[:])
	} else {
		last[d.n] = 0x80
		clear(last[d.n+1:])
		subtle.XORBytes(last[:], last[:], d.c.k2[:])
	}
	var out [BlockSize]byte
	subtle.XORBytes(out[:], d.x[:], last[:])
	d.c.block.Encrypt(out[:], out[:])
	return out
}

// dbl multiplies b by x in GF(2^128) (RFC 5297 §2.3).
func dbl(b [BlockSize]byte) [BlockSize]byte {
	var out [BlockSize]byte
	carry := b[0] >> 7
	for i := 0; i < BlockSize-1; i++ {
		out[i] = b[i]<<1 | b[i+1]>>7
	}
	out[BlockSize-1] = b[BlockSize-1]<<1 ^ (0x87 * carry)
	return out
}

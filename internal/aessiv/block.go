package aessiv

import (
	"crypto/aes"
	"crypto/cipher"
	"fmt"
)

// maxBatch is the most blocks encryptBatch takes at once: CTR's
// keystream batch, and room for every S2V lane.
const maxBatch = 8

// aesKey is one expanded AES key. Where the CPU has AES instructions
// (amd64 with AES-NI) it holds the round keys for this package's
// assembly, which encrypts a batch of independent blocks with their
// rounds interleaved, in one call; elsewhere it wraps crypto/aes and
// encrypts a batch one block at a time. Either way it is safe for
// concurrent use once initialized.
type aesKey struct {
	nr    int                  // rounds (10, 12 or 14) with the assembly; 0 with block
	xk    [15 * BlockSize]byte // the nr+1 round keys, in the order AESENC reads them
	block cipher.Block         // crypto/aes, when the assembly is not used
}

// init expands key, 16, 24 or 32 bytes. k must be in memory that
// outlives it (crypto/aes may keep a pointer to it).
func (k *aesKey) init(key []byte) error {
	*k = aesKey{}
	if useAsm {
		switch len(key) {
		case 16, 24, 32:
		default:
			return fmt.Errorf("aessiv: %w", aes.KeySizeError(len(key)))
		}
		k.nr = expandKey(&k.xk, key)
		return nil
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("aessiv: %w", err)
	}
	k.block = b
	return nil
}

// encrypt1 encrypts the block b in place.
func (k *aesKey) encrypt1(b *[BlockSize]byte) {
	if k.nr != 0 {
		encBlocks1(k.nr, &k.xk, b, b)
		return
	}
	k.block.Encrypt(b[:], b[:])
}

// encryptBatch encrypts the first n blocks of b in place, n at most
// maxBatch. The assembly runs their rounds side by side and may encrypt
// more of b's blocks than n (which are then garbage); crypto/aes
// encrypts exactly n, in turn. b is in a Scratch, never on the stack:
// crypto/aes's Encrypt would move it to the heap.
func (k *aesKey) encryptBatch(b *[maxBatch * BlockSize]byte, n int) {
	if k.nr != 0 {
		switch {
		case n > 4:
			encBlocks8(k.nr, &k.xk, b, b)
		case n > 1:
			encBlocks4(k.nr, &k.xk, (*[4 * BlockSize]byte)(b[:]), (*[4 * BlockSize]byte)(b[:]))
		case n == 1:
			encBlocks1(k.nr, &k.xk, (*[BlockSize]byte)(b[:]), (*[BlockSize]byte)(b[:]))
		}
		return
	}
	for i := range n {
		blk := b[i*BlockSize : (i+1)*BlockSize]
		k.block.Encrypt(blk, blk)
	}
}

// laneRun is the blocks one CBC-MAC chain still has to absorb: n
// blocks, read from p on, except that the last is read from fin when
// fin is not nil (CMAC's final block, padded and masked elsewhere). The
// assembly knows its layout.
type laneRun struct {
	p   *byte
	n   int
	fin *byte
}

// cbcLanes runs up to four CBC-MAC chains side by side with the
// assembly: chain i absorbs runs[i] into x[i], one block of each busy
// chain per step, all of a step's AES in one interleaved round loop,
// the states held in registers from step to step. k must use the
// assembly (k.nr != 0). runs is consumed.
func (k *aesKey) cbcLanes(x *[4][BlockSize]byte, runs *[4]laneRun) {
	steps := 0
	for _, r := range runs {
		steps = max(steps, r.n)
	}
	if steps > 0 {
		cbcLanes4(k.nr, &k.xk, x, runs, steps)
	}
}

// Accelerated reports whether new keys use the AES-NI assembly rather
// than crypto/aes. With it, expanding a key allocates nothing.
func Accelerated() bool { return useAsm }

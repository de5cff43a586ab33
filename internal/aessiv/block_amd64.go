//go:build !purego

package aessiv

import (
	"encoding/binary"

	"golang.org/x/sys/cpu"
)

// useAsm says whether new keys use the AES-NI assembly. It is a
// variable so that tests can cover the crypto/aes path too.
var useAsm = cpu.X86.HasAES // the rest (SSE2) every amd64 CPU has

// The assembly: each encrypts its blocks from src into dst (which may be
// src) with nr rounds under the round keys xk, the blocks' rounds
// interleaved.

//go:noescape
func encBlocks1(nr int, xk *[15 * BlockSize]byte, dst, src *[BlockSize]byte)

//go:noescape
func encBlocks4(nr int, xk *[15 * BlockSize]byte, dst, src *[4 * BlockSize]byte)

//go:noescape
func encBlocks8(nr int, xk *[15 * BlockSize]byte, dst, src *[8 * BlockSize]byte)

// subWord applies the AES S-box to each byte of w, in constant time
// (AESENCLAST, not a table).
func subWord(w uint32) uint32

// expandKey writes the round keys of key (16, 24 or 32 bytes) into xk,
// FIPS 197 §5.2's key expansion with its words stored big-endian, which
// is the byte order AESENC reads, and returns the number of rounds.
func expandKey(xk *[15 * BlockSize]byte, key []byte) int {
	nk := len(key) / 4
	nr := nk + 6
	var w [4 * 15]uint32
	for i := range nk {
		w[i] = binary.BigEndian.Uint32(key[4*i:])
	}
	rcon := uint32(1)
	for i := nk; i < 4*(nr+1); i++ {
		t := w[i-1]
		switch {
		case i%nk == 0:
			t = subWord(t<<8|t>>24) ^ rcon<<24
			rcon <<= 1
			if rcon&0x100 != 0 {
				rcon ^= 0x11b
			}
		case nk > 6 && i%nk == 4:
			t = subWord(t)
		}
		w[i] = w[i-nk] ^ t
	}
	for i := range 4 * (nr + 1) {
		binary.BigEndian.PutUint32(xk[4*i:], w[i])
	}
	clear(w[:])
	return nr
}

//go:noescape
func cbcLanes4(nr int, xk *[15 * BlockSize]byte, x *[4][BlockSize]byte, runs *[4]laneRun, steps int)

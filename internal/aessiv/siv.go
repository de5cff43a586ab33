package aessiv

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
	"fmt"
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
	ctr cipher.Block
	d0  [BlockSize]byte // CMAC(K, <zero>), where every S2V starts
}

// New returns an SIV for a 32-, 48- or 64-byte key: the first half keys
// S2V (CMAC), the second half CTR mode.
func New(key []byte) (*SIV, error) {
	switch len(key) {
	case 32, 48, 64:
	default:
		return nil, fmt.Errorf("aessiv: key is %d bytes, want 32, 48 or 64", len(key))
	}
	half := len(key) / 2
	s := new(SIV)
	if err := s.mac.init(key[:half]); err != nil {
		return nil, err
	}
	ctr, err := aes.NewCipher(key[half:])
	if err != nil {
		return nil, fmt.Errorf("aessiv: CTR key: %w", err)
	}
	s.ctr = ctr
	// S2V starts from CMAC(K, <zero>): one whole block, so AES(K, zero
	// XOR K1), computed in s's own memory.
	s.d0 = s.mac.k1
	s.mac.block.Encrypt(s.d0[:], s.d0[:])
	return s, nil
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
	v := s.s2v(sc, plaintext, ads)
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
	if len(ciphertext) < Overhead {
		return nil, ErrOpen
	}
	var v [BlockSize]byte
	copy(v[:], ciphertext[:Overhead])
	ret, out := grow(dst, len(ciphertext)-Overhead)
	s.xorCTR(sc, out, ciphertext[Overhead:], v)
	t := s.s2v(sc, out, ads)
	if subtle.ConstantTimeCompare(t[:], v[:]) != 1 {
		clear(out)
		return nil, ErrOpen
	}
	return ret, nil
}

// s2v is the S2V PRF of RFC 5297 §2.4 over ads followed by last.
func (s *SIV) s2v(sc *Scratch, last []byte, ads [][]byte) [BlockSize]byte {
	d := s.d0
	for _, a := range ads {
		m := s.mac.SumScratch(sc, a)
		d = dbl(d)
		xor16(d[:], d[:], m[:])
	}
	dg := digest{c: &s.mac, s: sc}
	dg.reset()
	if len(last) >= BlockSize {
		// T = last xorend D
		n := len(last) - BlockSize
		dg.write(last[:n])
		var end [BlockSize]byte
		xor16(end[:], last[n:], d[:])
		dg.write(end[:])
	} else {
		// T = dbl(D) xor pad(last)
		t := dbl(d)
		var p [BlockSize]byte
		copy(p[:], last)
		p[len(last)] = 0x80
		xor16(t[:], t[:], p[:])
		dg.write(t[:])
	}
	return dg.sum()
}

// xorCTR writes src XOR the AES-CTR keystream started at Q (V with bits 31
// and 63 cleared) into dst.
func (s *SIV) xorCTR(sc *Scratch, dst, src []byte, v [BlockSize]byte) {
	sc.ctr = v
	sc.ctr[8] &= 0x7f
	sc.ctr[12] &= 0x7f
	for len(src) > 0 {
		s.ctr.Encrypt(sc.ks[:], sc.ctr[:])
		var n int
		if len(src) >= BlockSize && len(dst) >= BlockSize {
			xor16(dst, src, sc.ks[:])
			n = BlockSize
		} else {
			n = subtle.XORBytes(dst, src, sc.ks[:])
		}
		dst, src = dst[n:], src[n:]
		for i := BlockSize - 1; i >= 0; i-- {
			sc.ctr[i]++
			if sc.ctr[i] != 0 {
				break
			}
		}
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

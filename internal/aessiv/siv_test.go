package aessiv

import (
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"errors"
	mrand "math/rand/v2"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 4493 §4 examples.
func TestCMACVectors(t *testing.T) {
	key := unhex(t, "2b7e151628aed2a6abf7158809cf4f3c")
	msg := unhex(t, "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
	c, err := NewCMAC(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, "bb1d6929e95937287fa37d129b756746"},
		{16, "070a16b46b4d4144f79bdd9dd04a287c"},
		{40, "dfa66747de9ae63030ca32611497c827"},
		{64, "51f0bebf7e3b9d92fc49741779363cfe"},
	} {
		got := c.Sum(msg[:tc.n])
		if hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("CMAC of %d bytes = %x, want %s", tc.n, got, tc.want)
		}
		if !c.Verify(msg[:tc.n], unhex(t, tc.want)) {
			t.Errorf("Verify rejected the right tag for %d bytes", tc.n)
		}
		bad := unhex(t, tc.want)
		bad[0] ^= 1
		if c.Verify(msg[:tc.n], bad) {
			t.Errorf("Verify accepted a wrong tag for %d bytes", tc.n)
		}
	}
}

// RFC 5297 Appendix A.
func TestSIVVectors(t *testing.T) {
	t.Run("A.1 deterministic", func(t *testing.T) {
		s, err := New(unhex(t, "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"))
		if err != nil {
			t.Fatal(err)
		}
		ad := unhex(t, "101112131415161718191a1b1c1d1e1f2021222324252627")
		pt := unhex(t, "112233445566778899aabbccddee")
		want := "85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c"
		got := s.SealVector(nil, pt, ad)
		if hex.EncodeToString(got) != want {
			t.Fatalf("seal = %x, want %s", got, want)
		}
		if got2 := s.Seal(nil, nil, pt, ad); !bytes.Equal(got, got2) {
			t.Fatalf("Seal without nonce = %x, want %x", got2, got)
		}
		back, err := s.OpenVector(nil, got, ad)
		if err != nil || !bytes.Equal(back, pt) {
			t.Fatalf("open = %x, %v", back, err)
		}
	})
	t.Run("A.2 nonce-based", func(t *testing.T) {
		s, err := New(unhex(t, "7f7e7d7c7b7a79787776757473727170404142434445464748494a4b4c4d4e4f"))
		if err != nil {
			t.Fatal(err)
		}
		ad1 := unhex(t, "00112233445566778899aabbccddeeffdeaddadadeaddadaffeeddccbbaa99887766554433221100")
		ad2 := unhex(t, "102030405060708090a0")
		nonce := unhex(t, "09f911029d74e35bd84156c5635688c0")
		pt := unhex(t, "7468697320697320736f6d6520706c61696e7465787420746f20656e6372797074207573696e67205349562d414553")
		want := "7bdb6e3b432667eb06f4d14bff2fbd0f" + "cb900f2fddbe404326601965c889bf17dba77ceb094fa663b7a3f748ba8af829ea64ad544a272e9c485b62a3fd5c0d"
		got := s.SealVector(nil, pt, ad1, ad2, nonce)
		if hex.EncodeToString(got) != want {
			t.Fatalf("seal = %x, want %s", got, want)
		}
		back, err := s.OpenVector(nil, got, ad1, ad2, nonce)
		if err != nil || !bytes.Equal(back, pt) {
			t.Fatalf("open = %x, %v", back, err)
		}
	})
}

func TestOpenRejectsTampering(t *testing.T) {
	s, err := New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	nonce, ad, pt := []byte("0123456789abcdef"), []byte("header"), []byte("some plaintext of 30 bytes....")
	ct := s.Seal(nil, nonce, pt, ad)
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x40
		if _, err := s.Open(nil, nonce, bad, ad); !errors.Is(err, ErrOpen) {
			t.Fatalf("flipped byte %d: err %v, want ErrOpen", i, err)
		}
	}
	if _, err := s.Open(nil, []byte("other nonce....."), ct, ad); !errors.Is(err, ErrOpen) {
		t.Fatal("wrong nonce accepted")
	}
	if _, err := s.Open(nil, nonce, ct, []byte("headeR")); !errors.Is(err, ErrOpen) {
		t.Fatal("wrong AD accepted")
	}
	if _, err := s.Open(nil, nonce, ct[:10], ad); !errors.Is(err, ErrOpen) {
		t.Fatal("short ciphertext accepted")
	}
	if _, err := New(make([]byte, 16)); err == nil {
		t.Fatal("16-byte key accepted")
	}
}

func TestRoundTripLengths(t *testing.T) {
	s, _ := New(bytes.Repeat([]byte{7}, 64))
	for n := 0; n < 100; n++ {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		ct := s.Seal([]byte("prefix"), []byte("nonce"), pt, []byte("ad"))
		if len(ct) != 6+Overhead+n || string(ct[:6]) != "prefix" {
			t.Fatalf("n=%d: sealed length %d", n, len(ct))
		}
		back, err := s.Open(nil, []byte("nonce"), ct[6:], []byte("ad"))
		if err != nil || !bytes.Equal(back, pt) {
			t.Fatalf("n=%d: %v", n, err)
		}
	}
}

// TestScratchReuse checks that one Scratch, dirty from earlier work,
// gives the same results as fresh memory, and that the Scratch methods do
// not allocate.
func TestScratchReuse(t *testing.T) {
	s, _ := New(bytes.Repeat([]byte{9}, 32))
	c, _ := NewCMAC(bytes.Repeat([]byte{5}, 16))
	var sc Scratch
	buf := make([]byte, 0, 256)
	for n := 0; n < 70; n++ {
		pt := bytes.Repeat([]byte{byte(n + 1)}, n)
		nonce, ad := []byte("0123456789abcdef"), bytes.Repeat([]byte{byte(n)}, n/2)
		want := s.Seal(nil, nonce, pt, ad)
		got := s.SealScratch(&sc, buf[:0], nonce, pt, ad)
		if !bytes.Equal(got, want) {
			t.Fatalf("n=%d: SealScratch %x, Seal %x", n, got, want)
		}
		back, err := s.OpenScratch(&sc, buf[len(got):len(got)], nonce, got, ad)
		if err != nil || !bytes.Equal(back, pt) {
			t.Fatalf("n=%d: OpenScratch: %v", n, err)
		}
		if c.SumScratch(&sc, pt) != c.Sum(pt) {
			t.Fatalf("n=%d: SumScratch differs from Sum", n)
		}
	}
	pt, nonce, ad := make([]byte, 68), make([]byte, 16), make([]byte, 48)
	var ct []byte
	allocs := testing.AllocsPerRun(100, func() {
		ct = s.SealScratch(&sc, buf[:0], nonce, pt, ad)
		if _, err := s.OpenScratch(&sc, buf[len(ct):len(ct)], nonce, ct, ad); err != nil {
			t.Fatal(err)
		}
		c.SumScratch(&sc, ad)
	})
	if allocs != 0 {
		t.Fatalf("SealScratch+OpenScratch+SumScratch allocate %v times, want 0", allocs)
	}
}

func BenchmarkSealScratch100(b *testing.B) {
	s, _ := New(make([]byte, 32))
	var sc Scratch
	dst := make([]byte, 0, 256)
	pt, nonce, ad := make([]byte, 100), make([]byte, 16), make([]byte, 48)
	b.ReportAllocs()
	for b.Loop() {
		s.SealScratch(&sc, dst, nonce, pt, ad)
	}
}

func BenchmarkSeal100(b *testing.B) {
	s, _ := New(make([]byte, 32))
	dst := make([]byte, 0, 256)
	pt, nonce, ad := make([]byte, 100), make([]byte, 16), make([]byte, 48)
	b.ReportAllocs()
	for b.Loop() {
		s.Seal(dst, nonce, pt, ad)
	}
}

// refS2V is S2V (RFC 5297 §2.4) written as the RFC states it, block by
// block through CMAC.Sum, to check the laned s2v against.
func refS2V(c *CMAC, last []byte, ads [][]byte) [BlockSize]byte {
	d := c.Sum(make([]byte, BlockSize))
	for _, a := range ads {
		m := c.Sum(a)
		d = dbl(d)
		for i := range d {
			d[i] ^= m[i]
		}
	}
	var t []byte
	if len(last) >= BlockSize {
		t = bytes.Clone(last)
		for i := range BlockSize {
			t[len(t)-BlockSize+i] ^= d[i]
		}
	} else {
		dd := dbl(d)
		t = dd[:]
		t[len(last)] ^= 0x80
		for i := range last {
			t[i] ^= last[i]
		}
	}
	return c.Sum(t)
}

// refCTR is AES-CTR from Q = V with bits 63 and 31 cleared, the counter
// incremented as a 128-bit big-endian integer, one byte at a time.
func refCTR(t *testing.T, key, v, src []byte) []byte {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	ctr := bytes.Clone(v)
	ctr[8] &= 0x7f
	ctr[12] &= 0x7f
	out := make([]byte, len(src))
	ks := make([]byte, BlockSize)
	for i := range src {
		if i%BlockSize == 0 {
			b.Encrypt(ks, ctr)
			for j := BlockSize - 1; j >= 0; j-- {
				ctr[j]++
				if ctr[j] != 0 {
					break
				}
			}
		}
		out[i] = src[i] ^ ks[i%BlockSize]
	}
	return out
}

// TestS2VAgainstReference cross-checks Seal against S2V and CTR written
// plainly, for every length of the final component up to four blocks and
// from zero to seven associated data components (more than the lanes
// s2v runs side by side), with one dirty Scratch throughout.
func TestS2VAgainstReference(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7 + 3)
	}
	s, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	rnd := mrand.New(mrand.NewPCG(1, 2))
	fill := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		return b
	}
	var sc Scratch
	lengths := []int{127, 128, 129, 300} // past one batch of CTR blocks
	for n := 0; n <= 4*BlockSize+1; n++ {
		lengths = append(lengths, n)
	}
	for nads := 0; nads <= 7; nads++ {
		for _, n := range lengths {
			ads := make([][]byte, nads)
			for i := range ads {
				ads[i] = fill(rnd.IntN(3 * BlockSize))
			}
			pt := fill(n)
			got := s.sealVector(&sc, nil, pt, ads...)
			v := refS2V(&s.mac, pt, ads)
			want := append(v[:], refCTR(t, key[16:], v[:], pt)...)
			if !bytes.Equal(got, want) {
				t.Fatalf("%d ADs, %d bytes: sealed %x, want %x", nads, n, got, want)
			}
			back, err := s.openVector(&sc, nil, got, ads...)
			if err != nil || !bytes.Equal(back, pt) {
				t.Fatalf("%d ADs, %d bytes: open = %x, %v", nads, n, back, err)
			}
		}
	}
}

// TestCTRWordBoundary checks the counter across bit 31 of its low
// word: V's masking leaves the low word at most 0x7fffffff, and the
// counter then counts on past it as a plain 128-bit integer (RFC 5297
// §2.5), without masking again.
func TestCTRWordBoundary(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	s, _ := New(key)
	v := bytes.Repeat([]byte{0xff}, BlockSize)
	v[15] = 0xfe // Q's low word is 0x7ffffffe: the third block crosses
	src := make([]byte, 5*BlockSize)
	var sc Scratch
	got := make([]byte, len(src))
	s.xorCTR(&sc, got, src, [BlockSize]byte(v))
	want := refCTR(t, key[16:], v, src)
	if !bytes.Equal(got, want) {
		t.Fatalf("keystream %x, want %x", got, want)
	}
	// The counter must not wrap within its low word: the third block's
	// keystream is not the first's counter-minus-two.
	if bytes.Equal(got[2*BlockSize:3*BlockSize], got[:BlockSize]) {
		t.Fatal("keystream repeats")
	}
}

// BenchmarkNTSShapes measures the AES-SIV operations of one NTS request
// with their real sizes: opening and sealing a cookie (4-byte AD, 16-byte
// nonce, 68-byte plaintext), verifying a request's authenticator (188
// bytes of AD, nothing encrypted) and sealing a reply with one fresh
// cookie field (84 bytes of AD, 104 bytes of plaintext).
func BenchmarkNTSShapes(b *testing.B) {
	s, _ := New(bytes.Repeat([]byte{3}, 32))
	nonce := bytes.Repeat([]byte{4}, 16)
	buf := make([]byte, 0, 512)
	for _, bc := range []struct {
		name      string
		ad, plain int
	}{{"cookie", 4, 68}, {"auth", 188, 0}, {"reply", 84, 104}} {
		ad, pt := make([]byte, bc.ad), make([]byte, bc.plain)
		var sc Scratch
		ct := s.SealScratch(&sc, nil, nonce, pt, ad)
		b.Run(bc.name+"/seal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.SealScratch(&sc, buf[:0], nonce, pt, ad)
			}
		})
		b.Run(bc.name+"/open", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.OpenScratch(&sc, buf[:0], nonce, ct, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestHeadAndPrefix checks that sealing and opening from a Head, with
// and without the plaintext's Prefix, gives what Seal and Open give with
// the whole associated data, for plaintexts of every length up to four
// blocks; that a Prefix of the wrong length is ignored; and that none of
// it allocates.
func TestHeadAndPrefix(t *testing.T) {
	s, _ := New(bytes.Repeat([]byte{0x5a}, 32))
	keyID, nonce := []byte{0, 0, 0x4e, 0x21}, []byte("0123456789abcdef")
	h := s.Head(keyID)
	var sc Scratch
	buf := make([]byte, 0, 256)
	for n := 0; n <= 4*BlockSize+1; n++ {
		pt := make([]byte, n)
		for i := range pt {
			pt[i] = byte(i*31 + n)
		}
		want := s.Seal(nil, nonce, pt, keyID)
		pre := s.Prefix(&sc, pt)
		wrong := s.Prefix(&sc, make([]byte, n+BlockSize)) // covers a block more
		for _, p := range []*Prefix{nil, &pre, &wrong} {
			got := s.SealHeadScratch(&sc, &h, p, buf[:0], nonce, pt)
			if !bytes.Equal(got, want) {
				t.Fatalf("n=%d prefix %v: SealHeadScratch %x, Seal %x", n, p != nil, got, want)
			}
		}
		back, err := s.OpenHeadScratch(&sc, &h, buf[:0], nonce, want)
		if err != nil || !bytes.Equal(back, pt) {
			t.Fatalf("n=%d: OpenHeadScratch = %x, %v", n, back, err)
		}
		other := s.Head([]byte{0, 0, 0x4e, 0x22})
		if _, err := s.OpenHeadScratch(&sc, &other, buf[:0], nonce, want); !errors.Is(err, ErrOpen) {
			t.Fatalf("n=%d: opened under another key ID's Head: %v", n, err)
		}
	}
	pt := make([]byte, 68)
	pre := s.Prefix(&sc, pt)
	allocs := testing.AllocsPerRun(100, func() {
		ct := s.SealHeadScratch(&sc, &h, &pre, buf[:0], nonce, pt)
		if _, err := s.OpenHeadScratch(&sc, &h, buf[len(ct):len(ct)], nonce, ct); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("SealHeadScratch+OpenHeadScratch allocate %v times, want 0", allocs)
	}
}

// TestDbl checks dbl against the RFC 5297 §2.3 definition, a shift left
// by one bit with 0x87 XORed into the last byte when the top bit falls
// out, done bit by bit.
func TestDbl(t *testing.T) {
	rnd := mrand.New(mrand.NewPCG(3, 4))
	for i := range 1000 {
		var b [BlockSize]byte
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		if i%2 == 0 {
			b[0] |= 0x80
		}
		var want [BlockSize]byte
		for j := range BlockSize {
			want[j] = b[j] << 1
			if j+1 < BlockSize {
				want[j] |= b[j+1] >> 7
			}
		}
		if b[0]&0x80 != 0 {
			want[BlockSize-1] ^= 0x87
		}
		if got := dbl(b); got != want {
			t.Fatalf("dbl(%x) = %x, want %x", b, got, want)
		}
	}
}

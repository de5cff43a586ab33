package aessiv

import (
	"bytes"
	"encoding/hex"
	"errors"
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

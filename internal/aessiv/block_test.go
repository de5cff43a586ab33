package aessiv

import (
	"bytes"
	"crypto/aes"
	mrand "math/rand/v2"
	"testing"
)

// withAsm runs f with useAsm set to on, restoring it after.
func withAsm(t *testing.T, on bool, f func(t *testing.T)) {
	t.Helper()
	old := useAsm
	useAsm = on
	defer func() { useAsm = old }()
	f(t)
}

// paths returns the useAsm settings this machine can test: both where
// the assembly runs, only crypto/aes elsewhere.
func paths() []bool {
	if useAsm {
		return []bool{true, false}
	}
	return []bool{false}
}

// TestAESKeyAgainstCryptoAES checks encrypt1 and encryptBatch, for every
// key size and batch size, against crypto/aes block by block, on random
// keys and blocks, through both the assembly (where the CPU has AES-NI)
// and the crypto/aes path.
func TestAESKeyAgainstCryptoAES(t *testing.T) {
	rnd := mrand.New(mrand.NewPCG(1, 2))
	fill := func(b []byte) {
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
	}
	for _, asm := range paths() {
		withAsm(t, asm, func(t *testing.T) {
			for _, size := range []int{16, 24, 32} {
				for range 50 {
					key := make([]byte, size)
					fill(key)
					ref, err := aes.NewCipher(key)
					if err != nil {
						t.Fatal(err)
					}
					var k aesKey
					if err := k.init(key); err != nil {
						t.Fatal(err)
					}
					if asm != (k.nr != 0) {
						t.Fatalf("asm %v: key has nr %d", asm, k.nr)
					}
					var one, want [BlockSize]byte
					fill(one[:])
					ref.Encrypt(want[:], one[:])
					k.encrypt1(&one)
					if one != want {
						t.Fatalf("asm %v, %d-byte key %x: encrypt1 %x, crypto/aes %x", asm, size, key, one, want)
					}
					for n := 1; n <= maxBatch; n++ {
						var b [maxBatch * BlockSize]byte
						fill(b[:])
						in := b
						k.encryptBatch(&b, n)
						for i := range n {
							var w [BlockSize]byte
							ref.Encrypt(w[:], in[i*BlockSize:])
							if !bytes.Equal(b[i*BlockSize:(i+1)*BlockSize], w[:]) {
								t.Fatalf("asm %v, %d-byte key %x, batch of %d: block %d is %x, crypto/aes %x", asm, size, key, n, i, b[i*BlockSize:(i+1)*BlockSize], w)
							}
						}
					}
				}
			}
			var k aesKey
			if err := k.init(make([]byte, 20)); err == nil {
				t.Fatalf("asm %v: a 20-byte key was accepted", asm)
			}
		})
	}
}

// TestAESKeyFIPS197 checks the FIPS 197 Appendix C example vectors,
// which pin the key expansion for each key size.
func TestAESKeyFIPS197(t *testing.T) {
	pt := unhex(t, "00112233445566778899aabbccddeeff")
	for _, tc := range []struct{ key, ct string }{
		{"000102030405060708090a0b0c0d0e0f", "69c4e0d86a7b0430d8cdb78070b4c55a"},
		{"000102030405060708090a0b0c0d0e0f1011121314151617", "dda97ca4864cdfe06eaf70a0ec0d7191"},
		{"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "8ea2b7ca516745bfeafc49904b496089"},
	} {
		for _, asm := range paths() {
			withAsm(t, asm, func(t *testing.T) {
				var k aesKey
				if err := k.init(unhex(t, tc.key)); err != nil {
					t.Fatal(err)
				}
				b := [BlockSize]byte(pt)
				k.encrypt1(&b)
				if got := b[:]; !bytes.Equal(got, unhex(t, tc.ct)) {
					t.Errorf("asm %v, key %s: %x, want %s", asm, tc.key, got, tc.ct)
				}
			})
		}
	}
}

// TestCryptoAESPath runs the package's tests again with keys that use
// crypto/aes instead of the assembly, the path other architectures take,
// when this machine runs the assembly by default.
func TestCryptoAESPath(t *testing.T) {
	if !useAsm {
		t.Skip("the other tests already run on crypto/aes here")
	}
	withAsm(t, false, func(t *testing.T) {
		for _, tc := range []struct {
			name string
			f    func(*testing.T)
		}{
			{"CMACVectors", TestCMACVectors},
			{"SIVVectors", TestSIVVectors},
			{"OpenRejects", TestOpenRejectsTampering},
			{"RoundTripLengths", TestRoundTripLengths},
			{"ScratchReuse", TestScratchReuse},
			{"S2VAgainstRef", TestS2VAgainstReference},
			{"CTRWordBoundary", TestCTRWordBoundary},
			{"HeadAndPrefix", TestHeadAndPrefix},
		} {
			t.Run(tc.name, tc.f)
		}
		// The keys those tests made must really have been crypto/aes.
		s, err := New(make([]byte, 32))
		if err != nil {
			t.Fatal(err)
		}
		if s.mac.key.nr != 0 || s.ctr.nr != 0 {
			t.Fatal("a key made with useAsm off uses the assembly")
		}
	})
}

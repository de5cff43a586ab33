package symkey

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash"
	"os"
	"strings"
	"testing"
)

func readHex(t *testing.T, name string) []byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var s strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		s.WriteString(strings.ReplaceAll(line, " ", ""))
	}
	b, err := hex.DecodeString(s.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyCapturedSHA1(t *testing.T) {
	pkt := readHex(t, "../../ntpwire/testdata/mac_sha1.hex")
	keys, err := Parse(strings.NewReader("1 SHA1 ntpkit-test-key\n"))
	if err != nil {
		t.Fatal(err)
	}
	signed, id, digest, ok := Split(pkt)
	if !ok || id != 1 {
		t.Fatalf("Split: id %d ok %v", id, ok)
	}
	k, _ := keys.Lookup(id)
	if !k.Verify(signed, digest) {
		t.Fatal("captured SHA1 MAC does not verify")
	}
	if got := k.AppendMAC(append([]byte(nil), signed...)); string(got) != string(pkt) {
		t.Fatalf("AppendMAC = % x\nwant       % x", got, pkt)
	}
	digest[0] ^= 1
	if k.Verify(signed, digest) {
		t.Fatal("tampered digest verifies")
	}
}

func TestRoundTripAllTypes(t *testing.T) {
	keys, err := Parse(strings.NewReader(`
# chrony key file
1 MD5 ascii-md5
2 SHA1 HEX:933F62BE1D604E68A81B557F18CFA200483F5B70
3 SHA256 sha256key
4 SHA512 sha512key
5 AES128 HEX:6FEA9A2D4C3F7E1A0B9C8D7E6F5A4B3C
6 AES256 HEX:6FEA9A2D4C3F7E1A0B9C8D7E6F5A4B3C6FEA9A2D4C3F7E1A0B9C8D7E6F5A4B3C
7 M ntpd-md5   # ntpd's spelling
8 plainmd5
`))
	if err != nil {
		t.Fatal(err)
	}
	if keys.Len() != 8 {
		t.Fatalf("%d keys", keys.Len())
	}
	hdr := make([]byte, 48)
	hdr[0] = 0x23
	for id := uint32(1); id <= 8; id++ {
		k, ok := keys.Lookup(id)
		if !ok {
			t.Fatalf("key %d missing", id)
		}
		pkt := k.AppendMAC(append([]byte(nil), hdr...))
		if len(pkt) != 48+k.MACLen() {
			t.Fatalf("key %d: packet %d bytes", id, len(pkt))
		}
		signed, gotID, digest, ok := Split(pkt)
		if !ok || gotID != id || !k.Verify(signed, digest) {
			t.Fatalf("key %d (%v): round trip failed", id, k.Type)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"0 SHA1 key",
		"x SHA1 key",
		"1 SHA3 key",
		"1 AES128 short",
		"1 SHA1 HEX:zz",
		"1 SHA1 a b",
		"1 SHA1 a\n1 MD5 b",
	} {
		if _, err := Parse(strings.NewReader(in)); err == nil || !strings.Contains(err.Error(), "symkey:") {
			t.Errorf("Parse(%q) = %v, want an error", in, err)
		}
	}
}

// FuzzKeyFileAndMAC parses arbitrary key files and, for every key parsed,
// checks that a MAC over the input round-trips through Split and Verify.
func FuzzKeyFileAndMAC(f *testing.F) {
	f.Add("1 SHA1 HEX:933F62BE1D604E68A81B557F18CFA200483F5B70\n2 AES128 HEX:6FEA9A2D4C3F7E1A0B9C8D7E6F5A4B3C\n")
	f.Add("# comment\n3 MD5 text\n4 plain\n")
	f.Add("5 AES256 HEX:00\n")
	f.Fuzz(func(t *testing.T, in string) {
		keys, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		hdr := make([]byte, 48)
		copy(hdr, in)
		for id, k := range keys.byID {
			pkt := k.AppendMAC(append([]byte(nil), hdr...))
			signed, gotID, digest, ok := Split(pkt)
			if !ok || gotID != id || !k.Verify(signed, digest) {
				t.Fatalf("key %d (%v): MAC does not round-trip", id, k.Type)
			}
		}
	})
}

// TestLegacyDigestLengths checks the MAC lengths chrony uses: NTPv4
// truncates SHA digests to 20 bytes, NTPv3 carries them whole, and the
// digest is H(key || packet) either way.
func TestLegacyDigestLengths(t *testing.T) {
	keys, err := Parse(strings.NewReader("1 MD5 k1\n2 SHA1 k2\n3 SHA256 k3\n4 SHA384 k4\n5 SHA512 k5\n6 AES128 HEX:6FEA9A2D4C3F7E1A0B9C8D7E6F5A4B3C\n"))
	if err != nil {
		t.Fatal(err)
	}
	full := func(k *Key, pkt []byte) []byte {
		var h hash.Hash
		switch k.Type {
		case MD5:
			h = md5.New()
		case SHA1:
			h = sha1.New()
		case SHA256:
			h = sha256.New()
		case SHA384:
			h = sha512.New384()
		case SHA512:
			h = sha512.New()
		default:
			return nil
		}
		h.Write(k.key)
		h.Write(pkt)
		return h.Sum(nil)
	}
	for _, tc := range []struct {
		id     uint32
		v3, v4 int // MAC lengths, key ID included
	}{{1, 20, 20}, {2, 24, 24}, {3, 36, 24}, {4, 52, 24}, {5, 68, 24}, {6, 20, 20}} {
		k, _ := keys.Lookup(tc.id)
		for _, v := range []struct {
			hdr  byte
			want int
		}{{0x1b, tc.v3}, {0x23, tc.v4}} {
			hdr := make([]byte, 48)
			hdr[0] = v.hdr
			pkt := k.AppendMAC(append([]byte(nil), hdr...))
			if got := len(pkt) - 48; got != v.want {
				t.Errorf("%v, header %#x: MAC of %d bytes, want %d", k.Type, v.hdr, got, v.want)
				continue
			}
			signed, id, digest, ok := Split(pkt)
			if !ok || id != tc.id || !k.Verify(signed, digest) {
				t.Errorf("%v, header %#x: Split/Verify failed (ok %v, id %d)", k.Type, v.hdr, ok, id)
			}
			if f := full(k, hdr); f != nil && !bytes.Equal(digest, f[:len(digest)]) {
				t.Errorf("%v, header %#x: digest %x is not a prefix of H(key||packet) %x", k.Type, v.hdr, digest, f)
			}
			// Only the version's length verifies: not a shorter prefix,
			// not the whole digest where it is truncated.
			if k.Verify(signed, digest[:len(digest)-4]) {
				t.Errorf("%v, header %#x: a truncated digest verified", k.Type, v.hdr)
			}
			if f := full(k, hdr); len(f) > len(digest) && k.Verify(signed, f) {
				t.Errorf("%v, header %#x: the whole %d-byte digest verified", k.Type, v.hdr, len(f))
			}
		}
	}
}

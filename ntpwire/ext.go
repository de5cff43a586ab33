package ntpwire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Sizes of the trailer that may follow the header.
const (
	// MinExtensionLen is the smallest extension field RFC 7822 allows:
	// a 4-byte type/length word and at least 12 bytes of value.
	MinExtensionLen = 16
	// CryptoNAKLen is the length of a crypto-NAK: a MAC of only a zero
	// key ID (RFC 5905 §7.4).
	CryptoNAKLen = 4
	// MinMACLen and MaxMACLen bound a legacy symmetric-key MAC after
	// NTPv4 extension fields: a 4-byte key ID and a 16-byte (MD5,
	// AES-CMAC) or 20-byte (SHA-1, truncated SHA-2) digest.
	MinMACLen = 20
	MaxMACLen = 24
	// MaxLegacyMACLen is the longest MAC an NTPv3 or older packet may
	// carry, which has no extension fields to tell apart: a 4-byte key ID
	// and a whole 64-byte SHA-512 digest (SHA-256 gives 36 bytes, SHA-384
	// 52). chrony and ntpd send and accept these.
	MaxLegacyMACLen = 68
)

// Extension is one RFC 7822 extension field. Value aliases the packet
// buffer: copy it to keep it.
type Extension struct {
	Type  uint16
	Value []byte // the field's body after the 4-byte type/length word, padding included
}

// Len returns the field's length on the wire.
func (e Extension) Len() int { return 4 + len(e.Value) }

// ExtensionIter walks the bytes after an NTP header: zero or more RFC 7822
// extension fields, optionally followed by a legacy MAC. It tells a MAC
// from an extension field the way chrony and ntpd do: a remainder of
// exactly 4 bytes, or of 20–24 bytes, is a MAC. It does not allocate.
// It reads an NTPv4 trailer; ParseTrailer also reads the longer MACs of
// older versions.
//
//	it := ntpwire.Extensions(pkt[ntpwire.HeaderLen:])
//	for it.Next() {
//		ext := it.Extension()
//		...
//	}
//	if it.Err() != nil { /* malformed: drop */ }
//	mac := it.MAC()
type ExtensionIter struct {
	rest []byte
	cur  Extension
	mac  []byte
	err  error
}

// Extensions returns an iterator over trailer, the bytes after the header.
func Extensions(trailer []byte) ExtensionIter {
	return ExtensionIter{rest: trailer}
}

// Next advances to the next extension field and reports whether there is
// one. When it returns false the walk is over: check Err, then MAC.
func (it *ExtensionIter) Next() bool {
	if it.err != nil || len(it.rest) == 0 {
		return false
	}
	n := len(it.rest)
	if isMACLen(n) {
		it.mac, it.rest = it.rest, nil
		return false
	}
	if n < MinExtensionLen {
		it.err = ErrExtension
		return false
	}
	length := int(binary.BigEndian.Uint16(it.rest[2:4]))
	if length < MinExtensionLen || length%4 != 0 || length > n {
		it.err = ErrExtension
		return false
	}
	it.cur = Extension{Type: binary.BigEndian.Uint16(it.rest[0:2]), Value: it.rest[4:length:length]}
	it.rest = it.rest[length:]
	return true
}

// Extension returns the field Next stopped at.
func (it *ExtensionIter) Extension() Extension { return it.cur }

// Err returns ErrExtension if the trailer was malformed, else nil.
func (it *ExtensionIter) Err() error { return it.err }

// MAC returns the legacy MAC (key ID followed by digest) that ended the
// trailer, or nil. It is valid once Next has returned false.
func (it *ExtensionIter) MAC() []byte { return it.mac }

func isMACLen(n int) bool {
	return n == CryptoNAKLen || (n >= MinMACLen && n <= MaxMACLen && n%4 == 0)
}

// Trailer summarises the bytes after an NTP header.
type Trailer struct {
	Extensions int    // number of extension fields
	MAC        []byte // legacy MAC or crypto-NAK, nil if absent
}

// ParseTrailer validates the bytes after a header without allocating:
// it returns how many extension fields there are and the MAC, if any, or
// ErrExtension. Version 3 and older packets may carry only a MAC: the
// whole trailer, which must be a crypto-NAK or a key ID and digest of
// MinMACLen to MaxLegacyMACLen bytes, a multiple of 4 (so SHA-256, SHA-384
// and SHA-512 MACs too, as chrony reads them).
func ParseTrailer(version uint8, trailer []byte) (Trailer, error) {
	var t Trailer
	if version < 4 {
		n := len(trailer)
		switch {
		case n == 0:
			return t, nil
		case n == CryptoNAKLen || (n >= MinMACLen && n <= MaxLegacyMACLen && n%4 == 0):
			return Trailer{MAC: trailer}, nil
		}
		return Trailer{}, ErrExtension
	}
	it := Extensions(trailer)
	for it.Next() {
		t.Extensions++
	}
	if it.Err() != nil {
		return Trailer{}, it.Err()
	}
	t.MAC = it.MAC()
	return t, nil
}

// AppendExtension appends an extension field of type typ holding value,
// zero-padded to a multiple of 4 bytes and to at least MinExtensionLen.
// It panics if the padded field would not fit the 16-bit length word
// (value longer than 65528 bytes), which no UDP datagram could carry.
func AppendExtension(b []byte, typ uint16, value []byte) []byte {
	length := 4 + len(value)
	if r := length % 4; r != 0 {
		length += 4 - r
	}
	if length < MinExtensionLen {
		length = MinExtensionLen
	}
	if length > math.MaxUint16 {
		panic(fmt.Sprintf("ntpwire: extension value of %d bytes does not fit a 16-bit length", len(value)))
	}
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(length))
	b = append(b, value...)
	for i := 4 + len(value); i < length; i++ {
		b = append(b, 0)
	}
	return b
}

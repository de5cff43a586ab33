// Package ntske implements the NTS Key Establishment protocol of RFC 8915
// §4: the record codec, request parsing and response building a server
// needs, and a client that runs a KE session and builds and verifies
// NTS-protected NTP packets. It is shared by server/nts and upstream, so it
// must never import server.
package ntske

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Record types (RFC 8915 §4.1 and the IANA registry).
const (
	RecEndOfMessage = 0
	RecNextProtocol = 1
	RecError        = 2
	RecWarning      = 3
	RecAEAD         = 4
	RecNewCookie    = 5
	RecServer       = 6
	RecPort         = 7
)

// CriticalBit is the high bit of a record's type word.
const CriticalBit = 0x8000

// ProtocolNTPv4 is the NTS Next Protocol ID of NTPv4.
const ProtocolNTPv4 = 0

// AEADAESSIVCMAC256 is the IANA AEAD identifier of AEAD_AES_SIV_CMAC_256,
// the algorithm every NTS implementation supports.
const AEADAESSIVCMAC256 = 15

// KeyLen is the length of the C2S and S2C keys for AEAD_AES_SIV_CMAC_256.
const KeyLen = 32

// Error codes carried by an Error record (RFC 8915 §4.1.3).
const (
	ErrCodeUnrecognizedCritical = 0
	ErrCodeBadRequest           = 1
	ErrCodeInternal             = 2
)

// ALPN is the TLS application protocol name of NTS-KE.
const ALPN = "ntske/1"

// DefaultPort is the NTS-KE TCP port.
const DefaultPort = 4460

// ExporterLabel is the TLS exporter label NTS derives its keys with.
const ExporterLabel = "EXPORTER-network-time-security"

// MaxMessage bounds a KE message (request or response), records included.
// Real requests are a few dozen bytes and responses about a kilobyte.
const MaxMessage = 64 * 1024

// Bounds a client puts on what a KE server hands it. A server could
// otherwise grow the client's memory with cookies and make it send
// datagrams as long as a cookie plus its placeholders, to an address the
// server names.
const (
	// MaxCookies is the most cookies a client keeps (RFC 8915 §6 has
	// servers send 8).
	MaxCookies = 8
	// MaxCookieLen is the longest cookie a client accepts, chrony's bound;
	// ntpkit's own are 104 bytes.
	MaxCookieLen = 256
	// MaxServerNameLen is the longest NTPv4 Server Negotiation name
	// accepted, a DNS name's limit.
	MaxServerNameLen = 253
)

// Errors of the codec.
var (
	// ErrTruncated means the bytes end inside a record.
	ErrTruncated = errors.New("ntske: truncated record")
	// ErrTooLong means a message exceeds MaxMessage.
	ErrTooLong = errors.New("ntske: message too long")
)

// Record is one KE record. Body aliases the message buffer.
type Record struct {
	Critical bool
	Type     uint16 // without the critical bit
	Body     []byte
}

// RecordIter walks the records of a message without allocating.
//
//	it := ntske.Records(msg)
//	for it.Next() {
//		rec := it.Record()
//	}
//	if it.Err() != nil { ... }
type RecordIter struct {
	rest []byte
	cur  Record
	err  error
}

// Records returns an iterator over the records in b.
func Records(b []byte) RecordIter { return RecordIter{rest: b} }

// Next advances to the next record and reports whether there is one.
func (it *RecordIter) Next() bool {
	if it.err != nil || len(it.rest) == 0 {
		return false
	}
	if len(it.rest) < 4 {
		it.err = ErrTruncated
		return false
	}
	typ := binary.BigEndian.Uint16(it.rest)
	n := int(binary.BigEndian.Uint16(it.rest[2:]))
	if len(it.rest)-4 < n {
		it.err = ErrTruncated
		return false
	}
	it.cur = Record{Critical: typ&CriticalBit != 0, Type: typ &^ CriticalBit, Body: it.rest[4 : 4+n : 4+n]}
	it.rest = it.rest[4+n:]
	return true
}

// Record returns the record Next stopped at.
func (it *RecordIter) Record() Record { return it.cur }

// Err returns ErrTruncated if the bytes ended inside a record.
func (it *RecordIter) Err() error { return it.err }

// Rest returns the bytes not yet walked.
func (it *RecordIter) Rest() []byte { return it.rest }

// AppendRecord appends a record of type typ with body. It panics if body
// is longer than 65535 bytes, which no caller produces.
func AppendRecord(b []byte, critical bool, typ uint16, body []byte) []byte {
	if len(body) > 0xffff {
		panic(fmt.Sprintf("ntske: record body of %d bytes", len(body)))
	}
	if critical {
		typ |= CriticalBit
	}
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

// AppendUint16s appends a record whose body is a list of 16-bit values:
// Next Protocol, AEAD Algorithm, Error, Warning and Port records.
func AppendUint16s(b []byte, critical bool, typ uint16, vals ...uint16) []byte {
	var body [16]byte
	buf := body[:0]
	for _, v := range vals {
		buf = binary.BigEndian.AppendUint16(buf, v)
	}
	return AppendRecord(b, critical, typ, buf)
}

// AppendEnd appends the End of Message record.
func AppendEnd(b []byte) []byte { return AppendRecord(b, true, RecEndOfMessage, nil) }

// Package ntpclient holds what every client exchange in ntpkit shares (the
// upstream Discipliner's polls, NTS-KE's first query, ntpquery): a request
// whose transmit timestamp is random, and reading datagrams until the
// reply that echoes it. What a caller does with a reply (authenticate it,
// judge it, time it) stays with the caller. ntpload's batched path matches
// a ring of outstanding requests instead and does not use it.
package ntpclient

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

// Request returns a client-mode request of the given version whose
// transmit timestamp is random, read from r (crypto/rand when nil), and
// never zero. The reply must echo it as its origin timestamp, which an
// off-path spoofer cannot guess (RFC 9109); the real send time is kept by
// the caller. A failing r is an error, never a panic.
func Request(r io.Reader, version uint8) (ntpwire.Packet, error) {
	if r == nil {
		r = rand.Reader
	}
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return ntpwire.Packet{}, fmt.Errorf("ntpclient: random transmit timestamp: %w", err)
	}
	return ntpwire.Packet{
		Version:  version,
		Mode:     ntpwire.ModeClient,
		XmitTime: ntpwire.Time(binary.BigEndian.Uint64(b[:]) | 1), // never zero: zero means "unset"
	}, nil
}

// Skip says why ReadReply passed over a datagram.
type Skip int

// Reasons for passing over a datagram.
const (
	// SkipMalformed: too short to be an NTP packet.
	SkipMalformed Skip = iota
	// SkipOrigin: its origin timestamp is not the request's transmit
	// timestamp (late, duplicate or spoofed).
	SkipOrigin
)

// ReadFunc reads one datagram into b and returns its length and, when the
// caller has one, its receive timestamp.
type ReadFunc func(b []byte) (n int, rx time.Time, err error)

// ReadReply reads datagrams with read into buf until one decodes and
// echoes origin as its origin timestamp, and returns it with its length
// and receive timestamp. Every other datagram is passed over and reported
// to skipped (which may be nil). A read error ends it.
func ReadReply(read ReadFunc, buf []byte, origin ntpwire.Time, skipped func(Skip)) (p ntpwire.Packet, n int, rx time.Time, err error) {
	for {
		n, rx, err = read(buf)
		if err != nil {
			return ntpwire.Packet{}, 0, time.Time{}, err
		}
		why := SkipOrigin
		if p.Decode(buf[:n]) != nil {
			why = SkipMalformed
		} else if p.OrigTime == origin {
			return p, n, rx, nil
		}
		if skipped != nil {
			skipped(why)
		}
	}
}

// Reader adapts an io.Reader (a connected net.Conn) to a ReadFunc without
// receive timestamps.
func Reader(r io.Reader) ReadFunc {
	return func(b []byte) (int, time.Time, error) {
		n, err := r.Read(b)
		return n, time.Time{}, err
	}
}

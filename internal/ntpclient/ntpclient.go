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

// fuzzBits is how many low bits of an interleaved request's receive
// timestamp are random: 2^-12 s, about 244 µs. The field only has to
// come back as the origin of an interleaved reply; random low bits make
// it as hard to guess for an off-path spoofer as a basic request's
// transmit timestamp is, and keep it apart from the transmit timestamp.
const fuzzBits = 20

// Interleave turns req, a request from Request, into one that asks for
// interleaved mode (draft-ietf-ntp-interleaved-modes, as chrony does
// it): its origin is prevRecv, the server's receive timestamp in its
// previous reply, and its receive timestamp is prevLocalRx, when that
// reply arrived here, with its lowest fuzzBits bits random (read from r,
// crypto/rand when nil). A server that supports the mode answers with
// the transmit timestamp of its previous reply, taken after that reply
// left, and with req's receive timestamp as the origin; one that does
// not answers in basic mode, echoing req's transmit timestamp. The
// receive timestamp never equals the transmit timestamp (which would
// make the request look basic) nor prevRecv, and is never zero.
func Interleave(req *ntpwire.Packet, r io.Reader, prevRecv, prevLocalRx ntpwire.Time) error {
	if r == nil {
		r = rand.Reader
	}
	var b [4]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return fmt.Errorf("ntpclient: random receive timestamp: %w", err)
		}
		const mask = 1<<fuzzBits - 1
		recv := prevLocalRx&^mask | ntpwire.Time(binary.BigEndian.Uint32(b[:])&mask)
		if recv != 0 && recv != req.XmitTime && recv != prevRecv {
			req.OrigTime, req.RecvTime = prevRecv, recv
			return nil
		}
	}
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
	return ReadReplyEither(read, buf, origin, origin, skipped)
}

// ReadReplyEither is ReadReply for a request that a reply may echo in
// either of two ways: an interleaved-mode request (see Interleave) is
// answered with its transmit timestamp as the origin (a basic reply) or
// with its receive timestamp (an interleaved reply). The caller tells
// which by comparing the reply's OrigTime with the two.
func ReadReplyEither(read ReadFunc, buf []byte, origin, alt ntpwire.Time, skipped func(Skip)) (p ntpwire.Packet, n int, rx time.Time, err error) {
	for {
		n, rx, err = read(buf)
		if err != nil {
			return ntpwire.Packet{}, 0, time.Time{}, err
		}
		why := SkipOrigin
		if p.Decode(buf[:n]) != nil {
			why = SkipMalformed
		} else if p.OrigTime == origin || p.OrigTime == alt {
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

package ntske

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/ntpkit/ntpkit/internal/aessiv"
	"github.com/ntpkit/ntpkit/internal/ntpclient"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// ErrNoCookies means a Session has used up its cookies: run Exchange again.
var ErrNoCookies = errors.New("ntske: no cookies left")

// QueryResult is one NTS-protected NTP exchange.
type QueryResult struct {
	// Reply is the server's authenticated header.
	Reply ntpwire.Packet
	// Sent and Received are the client's transmit (T1) and receive (T4)
	// times, from the now function given to Query.
	Sent, Received time.Time
}

// Pending is an NTS request sent and not yet answered.
type Pending struct {
	sess *Session
	uid  [MinUniqueIDLen]byte
	s2c  *aessiv.SIV
}

// AppendRequest appends to dst the NTS-protected form of the client
// request p: p's header, a fresh Unique Identifier, one of s's cookies,
// enough placeholders to get back to 8 cookies, and an authenticator. The
// caller sends it and passes the reply to the returned Pending's Verify.
// It fails with ErrNoCookies when s has none left: run Exchange again.
func (s *Session) AppendRequest(dst []byte, p *ntpwire.Packet) ([]byte, *Pending, error) {
	if len(s.Cookies) == 0 {
		return dst, nil, ErrNoCookies
	}
	c2s, err := aessiv.New(s.C2S)
	if err != nil {
		return dst, nil, err
	}
	s2c, err := aessiv.New(s.S2C)
	if err != nil {
		return dst, nil, err
	}
	pr := &Pending{sess: s, s2c: s2c}
	if _, err := rand.Read(pr.uid[:]); err != nil {
		return dst, nil, fmt.Errorf("ntske: unique identifier: %w", err)
	}
	cookie := s.Cookies[0]
	s.Cookies = s.Cookies[1:]
	placeholders := max(0, 7-len(s.Cookies))
	return ClientRequest(dst, p, pr.uid[:], cookie, placeholders, c2s), pr, nil
}

// Verify checks that reply is the server's authenticated answer and adds
// its fresh cookies to the session, keeping at most MaxCookies and
// ignoring any longer than MaxCookieLen. On ErrNAK the session's cookies are
// dropped: the server no longer accepts them. Any other error means the
// datagram is not an authentic reply (it may be forged) and should be
// ignored.
func (pr *Pending) Verify(reply []byte) error {
	cookies, err := VerifyReply(reply, pr.uid[:], pr.s2c)
	if errors.Is(err, ErrNAK) {
		pr.sess.Cookies = nil
	}
	if err != nil {
		return err
	}
	for _, c := range cookies {
		if len(pr.sess.Cookies) >= MaxCookies {
			break
		}
		if len(c) > 0 && len(c) <= MaxCookieLen {
			pr.sess.Cookies = append(pr.sess.Cookies, c)
		}
	}
	return nil
}

// Query sends one NTS-protected NTPv4 request over conn (connected to
// s.Address()) and waits for the authenticated reply, until ctx ends; it
// is AppendRequest and Verify around one exchange, with a random
// transmit timestamp. now reads the client's clock; nil means time.Now.
// A Session is not safe for concurrent use.
func (s *Session) Query(ctx context.Context, conn net.Conn, now func() time.Time) (QueryResult, error) {
	if now == nil {
		now = time.Now
	}
	// The transmit timestamp is random, as RFC 9109 recommends; the
	// reply's origin must echo it.
	p, err := ntpclient.Request(nil, 4)
	if err != nil {
		return QueryResult{}, fmt.Errorf("ntske: %w", err)
	}
	req, pending, err := s.AppendRequest(nil, &p)
	if err != nil {
		return QueryResult{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	t1 := now()
	if _, err := conn.Write(req); err != nil {
		return QueryResult{}, fmt.Errorf("ntske: send NTP request: %w", err)
	}
	buf := make([]byte, 2048)
	var t4 time.Time
	read := func(b []byte) (int, time.Time, error) {
		n, err := conn.Read(b)
		t4 = now()
		return n, time.Time{}, err
	}
	for {
		// Datagrams that are not the answer to this request are skipped.
		reply, n, _, err := ntpclient.ReadReply(read, buf, p.XmitTime, nil)
		if err != nil {
			return QueryResult{}, fmt.Errorf("ntske: read NTP reply: %w", err)
		}
		if err := pending.Verify(buf[:n]); errors.Is(err, ErrNAK) {
			return QueryResult{}, err
		} else if err != nil {
			continue // unauthenticated: maybe forged; keep waiting
		}
		return QueryResult{Reply: reply, Sent: t1, Received: t4}, nil
	}
}

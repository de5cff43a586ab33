package nts

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/ratelimit"
	"github.com/ntpkit/ntpkit/server"
)

// Defaults of KEServer's zero fields.
const (
	DefaultCookies     = 8
	DefaultMaxSessions = 128
	DefaultKETimeout   = 10 * time.Second
	// DefaultHandshakeTimeout bounds the TLS handshake of a session: a
	// real client finishes it in a round trip or two, so a connection
	// still silent after it is cut off and its slot freed.
	DefaultHandshakeTimeout = 2 * time.Second
	// DefaultMaxSessionsPerSource bounds the sessions one source (an
	// IPv4 address or an IPv6 /64) runs at once.
	DefaultMaxSessionsPerSource = 4
	// DefaultKERateInterval and DefaultKERateBurst are the per-source
	// connection rate limit of a KEServer without RateLimit: bursts of 16
	// connections, then one per second on average. A client needs one
	// session per cookie run, hours apart.
	DefaultKERateInterval = time.Second
	DefaultKERateBurst    = 16
	// keRateMemory sizes the default rate-limit table: 4096 sources.
	keRateMemory = 64 << 10
	// maxAcceptDelay caps the back-off after temporary accept errors.
	maxAcceptDelay = time.Second
	// MaxKERequest bounds a client's KE request. Real ones are about 20
	// bytes; a client sending more is cut off with a Bad Request error.
	MaxKERequest = 4096
)

// KEServer is an NTS Key Establishment server (RFC 8915 §4). Each TLS 1.3
// session negotiates NTPv4 and AEAD_AES_SIV_CMAC_256, exports the C2S and
// S2C keys and returns cookies sealed with Keys. Sessions that are
// malformed get an Error record.
//
// Idle or slow connections cannot hold the server: a session's TLS
// handshake must finish within HandshakeTimeout and the whole session
// within Timeout; one source (an IPv4 address, an IPv6 /64) runs at most
// MaxSessionsPerSource sessions at once and opens connections at the rate
// RateLimit allows, and a connection over either limit is closed at once,
// before any TLS work. At most MaxSessions run in all; further
// connections wait in the listen backlog.
//
// Serve takes ownership of its listener and closes it when it returns.
// Temporary accept errors (too many open files, for one) are logged and
// retried with a back-off, as net/http does; Listeners reports whether
// each accept loop is still running.
//
// Set the fields before Serve; do not change them afterwards.
type KEServer struct {
	// TLSConfig provides the certificate (use GetCertificate to swap it
	// at run time, e.g. on SIGHUP). KEServer uses a copy restricted to
	// TLS 1.3 and the ntske/1 ALPN protocol.
	TLSConfig *tls.Config
	// Keys seals the cookies. It must be the KeyStore the NTP
	// middleware opens them with.
	Keys *KeyStore
	// NTPServer and NTPPort, when set, are sent as the NTPv4 Server and
	// Port Negotiation records; otherwise clients use the KE host and
	// port 123.
	NTPServer string
	NTPPort   int
	// Cookies is how many cookies a session hands out; 0 means 8.
	Cookies int
	// MaxSessions bounds concurrent sessions; 0 means DefaultMaxSessions.
	MaxSessions int
	// Timeout bounds a whole session, handshake included; 0 means 10 s.
	Timeout time.Duration
	// HandshakeTimeout bounds the TLS handshake; 0 means
	// DefaultHandshakeTimeout (2 s). It is capped by Timeout.
	HandshakeTimeout time.Duration
	// MaxSessionsPerSource bounds the concurrent sessions of one IPv4
	// address or IPv6 /64; 0 means DefaultMaxSessionsPerSource (4), a
	// negative value no bound.
	MaxSessionsPerSource int
	// RateLimit limits how often one source may connect (chrony's
	// ntsratelimit); connections over it are closed unanswered. Nil means
	// a table of 4096 sources with DefaultKERateInterval and
	// DefaultKERateBurst, IPv6 grouped by /64.
	RateLimit *ratelimit.Table
	// Logger receives per-session failures at debug level. Nil means none.
	Logger *slog.Logger

	initOnce sync.Once
	tlsCfg   *tls.Config
	sem      chan struct{}
	rate     *ratelimit.Table
	mu       sync.Mutex
	lns      map[net.Listener]*listenerState
	conns    map[net.Conn]struct{}
	perSrc   map[netip.Prefix]int // running sessions by source; at most MaxSessions keys
	closed   bool
	done     chan struct{} // closed by Shutdown and Close
	wg       sync.WaitGroup
	stats    keCounters
}

type keCounters struct {
	sessions, served, handshakeErrors, requestErrors, unsupported, internalErrors atomic.Uint64
	rateLimited, sourceBusy, acceptErrors                                         atomic.Uint64
}

// KEStats counts KE sessions.
type KEStats struct {
	Sessions        uint64 // connections accepted and run as sessions
	Served          uint64 // sessions that received cookies
	HandshakeErrors uint64 // TLS handshake failed, timed out, or no ALPN
	RequestErrors   uint64 // malformed, oversized or slow requests
	Unsupported     uint64 // clients offering neither NTPv4 nor AES-SIV-CMAC-256
	InternalErrors  uint64 // key export or cookie sealing failed
	RateLimited     uint64 // connections closed: over the source's rate limit
	SourceBusy      uint64 // connections closed: source at MaxSessionsPerSource
	AcceptErrors    uint64 // temporary accept errors retried
}

// ListenerStatus is the state of one listener given to Serve.
type ListenerStatus struct {
	// Addr is the listener's address.
	Addr net.Addr
	// Serving reports whether Serve's accept loop is running.
	Serving bool
	// Err is why the accept loop ended (nil while Serving, and after
	// Shutdown, Close or the end of Serve's context), or the last
	// temporary accept error while it is retrying.
	Err error
}

type listenerState struct {
	addr    net.Addr
	serving bool
	err     error
}

// Stats returns the session counters.
func (s *KEServer) Stats() KEStats {
	return KEStats{
		Sessions:        s.stats.sessions.Load(),
		Served:          s.stats.served.Load(),
		HandshakeErrors: s.stats.handshakeErrors.Load(),
		RequestErrors:   s.stats.requestErrors.Load(),
		Unsupported:     s.stats.unsupported.Load(),
		InternalErrors:  s.stats.internalErrors.Load(),
		RateLimited:     s.stats.rateLimited.Load(),
		SourceBusy:      s.stats.sourceBusy.Load(),
		AcceptErrors:    s.stats.acceptErrors.Load(),
	}
}

// Listeners reports the state of every listener given to Serve, in no
// particular order; a listener whose accept loop failed stays listed, with
// Serving false and the error, so a health check can report it. Listeners
// whose Serve ended by Shutdown, Close or its context are not listed.
func (s *KEServer) Listeners() []ListenerStatus {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ListenerStatus, 0, len(s.lns))
	for _, st := range s.lns {
		out = append(out, ListenerStatus{Addr: st.addr, Serving: st.serving, Err: st.err})
	}
	return out
}

// Healthy reports whether every listener given to Serve is still
// accepting connections, and there is at least one.
func (s *KEServer) Healthy() bool {
	ls := s.Listeners()
	for _, l := range ls {
		if !l.Serving {
			return false
		}
	}
	return len(ls) > 0
}

func (s *KEServer) init() {
	s.initOnce.Do(func() {
		cfg := &tls.Config{}
		if s.TLSConfig != nil {
			cfg = s.TLSConfig.Clone()
		}
		cfg.MinVersion = tls.VersionTLS13
		cfg.NextProtos = []string{ntske.ALPN}
		s.tlsCfg = cfg
		n := s.MaxSessions
		if n <= 0 {
			n = DefaultMaxSessions
		}
		s.sem = make(chan struct{}, n)
		s.lns = make(map[net.Listener]*listenerState)
		s.conns = make(map[net.Conn]struct{})
		s.perSrc = make(map[netip.Prefix]int)
		s.done = make(chan struct{})
		s.rate = s.RateLimit
		if s.rate == nil {
			// The configuration is valid, so New cannot fail.
			s.rate, _ = ratelimit.New(ratelimit.Config{
				Interval:    DefaultKERateInterval,
				Burst:       DefaultKERateBurst,
				MemoryBytes: keRateMemory,
			})
		}
	})
}

// ListenAndServe listens on TCP address addr (":4460" when empty) and
// serves it until ctx ends or Shutdown.
func (s *KEServer) ListenAndServe(ctx context.Context, addr string) error {
	if addr == "" {
		addr = fmt.Sprintf(":%d", ntske.DefaultPort)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("nts: listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts KE sessions on ln until ctx ends, Shutdown or Close is
// called, or accepting fails for good. Serve takes ownership of ln and
// closes it when it returns. It always returns a non-nil error:
// server.ErrServerClosed after Shutdown or Close, ctx.Err() when ctx ends,
// otherwise the accept error, which Listeners keeps reporting. Temporary
// accept errors, such as running out of file descriptors, do not end it:
// it logs them at warning level and retries after a back-off growing from
// 5 ms to 1 s.
func (s *KEServer) Serve(ctx context.Context, ln net.Listener) error {
	s.init()
	if s.Keys == nil {
		ln.Close()
		return errors.New("nts: KEServer has no KeyStore")
	}
	st := &listenerState{addr: ln.Addr(), serving: true}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return server.ErrServerClosed
	}
	s.lns[ln] = st
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	err := s.acceptLoop(ctx, ln, st)
	ln.Close()
	s.mu.Lock()
	if errors.Is(err, server.ErrServerClosed) || errors.Is(err, ctx.Err()) {
		delete(s.lns, ln)
	} else {
		st.serving, st.err = false, err
	}
	s.mu.Unlock()
	return err
}

func (s *KEServer) acceptLoop(ctx context.Context, ln net.Listener, st *listenerState) error {
	var delay time.Duration
	ended := func() error {
		if s.isClosed() {
			return server.ErrServerClosed
		}
		return ctx.Err()
	}
	for {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return ended()
		case <-s.done:
			return server.ErrServerClosed
		}
		c, err := ln.Accept()
		if err != nil {
			<-s.sem
			if err := ended(); err != nil {
				return err
			}
			if !isTemporary(err) {
				return fmt.Errorf("nts: accept on %v: %w", ln.Addr(), err)
			}
			delay = min(max(2*delay, 5*time.Millisecond), maxAcceptDelay)
			s.stats.acceptErrors.Add(1)
			s.setListenerErr(st, err)
			if s.Logger != nil {
				s.Logger.Warn("NTS-KE accept failed; retrying", "addr", ln.Addr().String(), "err", err, "retry_in", delay)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ended()
			case <-s.done:
				t.Stop()
				return server.ErrServerClosed
			}
			continue
		}
		if delay != 0 {
			delay = 0
			s.setListenerErr(st, nil)
		}
		src := sourceOf(c.RemoteAddr())
		if !s.admit(src) {
			<-s.sem
			c.Close()
			continue
		}
		if !s.track(c) {
			s.release(src)
			<-s.sem
			c.Close()
			return server.ErrServerClosed
		}
		s.stats.sessions.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			defer s.release(src)
			defer s.untrack(c)
			s.session(c)
		}()
	}
}

// isTemporary reports whether an accept error may go away by itself: too
// many open files, a connection reset before it was accepted, a timeout.
func isTemporary(err error) bool {
	var te interface{ Temporary() bool }
	var ne net.Error
	return errors.As(err, &te) && te.Temporary() || errors.As(err, &ne) && ne.Timeout()
}

func (s *KEServer) setListenerErr(st *listenerState, err error) {
	s.mu.Lock()
	st.err = err
	s.mu.Unlock()
}

// sourceOf returns the source a connection from a counts against: its
// IPv4 address or IPv6 /64. It is the zero Prefix for addresses that are
// not IP.
func sourceOf(a net.Addr) netip.Prefix {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}
	}
	ip := ta.AddrPort().Addr().Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// admit applies the per-source rate limit and session cap to a new
// connection from src, counting the session if it is admitted; release
// undoes the count.
func (s *KEServer) admit(src netip.Prefix) bool {
	if !src.IsValid() {
		return true
	}
	if !s.rate.Allow(time.Now(), src.Addr()) {
		s.stats.rateLimited.Add(1)
		return false
	}
	limit := s.MaxSessionsPerSource
	if limit == 0 {
		limit = DefaultMaxSessionsPerSource
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit > 0 && s.perSrc[src] >= limit {
		s.stats.sourceBusy.Add(1)
		return false
	}
	s.perSrc[src]++
	return true
}

func (s *KEServer) release(src netip.Prefix) {
	if !src.IsValid() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perSrc[src]--; s.perSrc[src] <= 0 {
		delete(s.perSrc, src)
	}
}

func (s *KEServer) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *KEServer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *KEServer) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// closeLocked marks s closed and closes its listeners; s.mu is held.
func (s *KEServer) closeLocked() {
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	for ln := range s.lns {
		ln.Close()
	}
}

// Shutdown stops accepting sessions and waits for running ones to finish
// (each is bounded by Timeout) or for ctx to end, when it cuts them off
// and returns ctx.Err(). Serve calls return server.ErrServerClosed.
func (s *KEServer) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.closeLocked()
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// Close closes every listener and every running session at once. Serve
// calls return server.ErrServerClosed.
func (s *KEServer) Close() error {
	s.init()
	s.mu.Lock()
	s.closeLocked()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	return nil
}

func (s *KEServer) debug(msg string, c net.Conn, err error) {
	if s.Logger != nil {
		s.Logger.Debug(msg, "client", c.RemoteAddr().String(), "err", err)
	}
}

// session runs one KE exchange on c.
func (s *KEServer) session(c net.Conn) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultKETimeout
	}
	hs := s.HandshakeTimeout
	if hs <= 0 {
		hs = DefaultHandshakeTimeout
	}
	start := time.Now()
	c.SetDeadline(start.Add(min(hs, timeout)))
	tc := tls.Server(c, s.tlsCfg)
	defer tc.Close()
	if err := tc.Handshake(); err != nil {
		s.stats.handshakeErrors.Add(1)
		s.debug("NTS-KE handshake failed", c, err)
		return
	}
	c.SetDeadline(start.Add(timeout))
	st := tc.ConnectionState()
	if st.NegotiatedProtocol != ntske.ALPN {
		s.stats.handshakeErrors.Add(1)
		s.debug("NTS-KE client without ALPN ntske/1", c, nil)
		return
	}
	msg, err := ntske.ReadMessage(tc, make([]byte, 0, 64), MaxKERequest)
	if err != nil {
		s.stats.requestErrors.Add(1)
		s.debug("NTS-KE request unreadable", c, err)
		if errors.Is(err, ntske.ErrTooLong) {
			tc.Write(ntske.AppendError(nil, ntske.ErrCodeBadRequest))
		}
		return
	}
	resp, err := s.respond(msg, &st)
	if err != nil {
		s.debug("NTS-KE request refused", c, err)
	}
	if _, err := tc.Write(resp); err != nil {
		s.debug("NTS-KE response not sent", c, err)
		return
	}
	tc.CloseWrite()
}

// respond builds the response to msg: cookies, an Error record, or empty
// negotiation records when the client offers nothing we support.
func (s *KEServer) respond(msg []byte, st *tls.ConnectionState) ([]byte, error) {
	req, err := ntske.ParseRequest(msg)
	if err != nil {
		s.stats.requestErrors.Add(1)
		var pe *ntske.ProtocolError
		code := uint16(ntske.ErrCodeBadRequest)
		if errors.As(err, &pe) {
			code = pe.Code
		}
		return ntske.AppendError(nil, code), err
	}
	if !req.OffersNTPv4() || !req.OffersAESSIV() {
		// RFC 8915 §4.1.2, §4.1.5: empty records say "none of those".
		s.stats.unsupported.Add(1)
		var b []byte
		if req.OffersNTPv4() {
			b = ntske.AppendUint16s(b, true, ntske.RecNextProtocol, ntske.ProtocolNTPv4)
		} else {
			b = ntske.AppendRecord(b, true, ntske.RecNextProtocol, nil)
		}
		b = ntske.AppendRecord(b, true, ntske.RecAEAD, nil)
		return ntske.AppendEnd(b), fmt.Errorf("nts: client offers protocols %v, AEADs %v", req.Protocols, req.AEADs)
	}
	c2s, s2c, err := ntske.ExportKeys(st, ntske.AEADAESSIVCMAC256)
	if err != nil {
		s.stats.internalErrors.Add(1)
		return ntske.AppendError(nil, ntske.ErrCodeInternal), err
	}
	n := s.Cookies
	if n <= 0 {
		n = DefaultCookies
	}
	resp := ntske.Response{AEAD: ntske.AEADAESSIVCMAC256, Server: s.NTPServer, Port: s.NTPPort}
	buf := make([]byte, 0, n*CookieLen)
	for range n {
		start := len(buf)
		buf, err = s.Keys.SealCookie(buf, c2s, s2c)
		if err != nil {
			s.stats.internalErrors.Add(1)
			return ntske.AppendError(nil, ntske.ErrCodeInternal), err
		}
		resp.Cookies = append(resp.Cookies, buf[start:len(buf):len(buf)])
	}
	clear(c2s)
	clear(s2c)
	s.stats.served.Add(1)
	return ntske.AppendResponse(nil, &resp), nil
}

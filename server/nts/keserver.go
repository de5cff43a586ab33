package nts

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/server"
)

// Defaults of KEServer's zero fields.
const (
	DefaultCookies     = 8
	DefaultMaxSessions = 128
	DefaultKETimeout   = 10 * time.Second
	// MaxKERequest bounds a client's KE request. Real ones are about 20
	// bytes; a client sending more is cut off with a Bad Request error.
	MaxKERequest = 4096
)

// KEServer is an NTS Key Establishment server (RFC 8915 §4). Each TLS 1.3
// session negotiates NTPv4 and AEAD_AES_SIV_CMAC_256, exports the C2S and
// S2C keys and returns cookies sealed with Keys. Sessions that are
// malformed get an Error record; sessions that take longer than Timeout in
// total, slow ones included, are cut off; at most MaxSessions run at once
// and further connections wait in the listen backlog.
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
	// Logger receives per-session failures at debug level. Nil means none.
	Logger *slog.Logger

	initOnce sync.Once
	tlsCfg   *tls.Config
	sem      chan struct{}
	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	conns    map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
	stats    keCounters
}

type keCounters struct {
	sessions, served, handshakeErrors, requestErrors, unsupported, internalErrors atomic.Uint64
}

// KEStats counts KE sessions.
type KEStats struct {
	Sessions        uint64 // connections accepted
	Served          uint64 // sessions that received cookies
	HandshakeErrors uint64 // TLS handshake failed, timed out, or no ALPN
	RequestErrors   uint64 // malformed, oversized or slow requests
	Unsupported     uint64 // clients offering neither NTPv4 nor AES-SIV-CMAC-256
	InternalErrors  uint64 // key export or cookie sealing failed
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
	}
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
		s.lns = make(map[net.Listener]struct{})
		s.conns = make(map[net.Conn]struct{})
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

// Serve accepts KE sessions on ln until ctx ends or Shutdown is called; it
// closes ln and always returns a non-nil error, server.ErrServerClosed
// after Shutdown or the end of ctx.
func (s *KEServer) Serve(ctx context.Context, ln net.Listener) error {
	s.init()
	if s.Keys == nil {
		ln.Close()
		return errors.New("nts: KEServer has no KeyStore")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return server.ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { s.closeListeners() })
	defer stop()
	defer func() {
		s.mu.Lock()
		delete(s.lns, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	for {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return server.ErrServerClosed
		}
		c, err := ln.Accept()
		if err != nil {
			<-s.sem
			if s.isClosed() || ctx.Err() != nil {
				return server.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("nts: accept: %w", err)
		}
		if !s.track(c) {
			<-s.sem
			c.Close()
			return server.ErrServerClosed
		}
		s.stats.sessions.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			defer s.untrack(c)
			s.session(c)
		}()
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

func (s *KEServer) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.lns {
		ln.Close()
	}
}

// Shutdown stops accepting sessions and waits for running ones to finish
// (each is bounded by Timeout) or for ctx to end, when it cuts them off.
func (s *KEServer) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	s.closed = true
	for ln := range s.lns {
		ln.Close()
	}
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
	c.SetDeadline(time.Now().Add(timeout))
	tc := tls.Server(c, s.tlsCfg)
	defer tc.Close()
	if err := tc.Handshake(); err != nil {
		s.stats.handshakeErrors.Add(1)
		s.debug("NTS-KE handshake failed", c, err)
		return
	}
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

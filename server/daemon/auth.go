package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"

	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/auth"
	"github.com/ntpkit/ntpkit/server/nts"
)

// certStore serves the current certificate and swaps it on reload.
type certStore struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// read loads the certificate pair without installing it.
func (s *certStore) read() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return nil, fmt.Errorf("daemon: NTS certificate: load %s and key %s: %w", s.certFile, s.keyFile, err)
	}
	return &c, nil
}

func (s *certStore) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load(), nil
}

// authService holds the daemon's authentication: symmetric-key MACs and
// NTS.
type authService struct {
	logger *slog.Logger
	mac    *auth.MAC
	ntsMW  *nts.Middleware
	ke     *nts.KEServer
	listen string // NTS-KE address
	certs  *certStore
}

// newAuthService builds the MAC and NTS layers o asks for and loads the
// NTS certificate; the NTS-KE listener is bound by bind.
func newAuthService(o *Options, logger *slog.Logger) (*authService, error) {
	a := &authService{logger: logger}
	if o.Keys != nil {
		a.mac = &auth.MAC{Keys: o.Keys}
		logger.Info("symmetric keys loaded", "keys", o.Keys.Len())
	}
	c := o.NTS
	if !c.Enabled {
		return a, nil
	}
	rotation := c.Rotation
	if rotation == 0 {
		rotation = nts.DefaultRotation
	}
	keys, err := nts.NewKeyStore(c.Seed, rotation, nil)
	if err != nil {
		return nil, fmt.Errorf("daemon: NTS.Seed: %w", err)
	}
	a.certs = &certStore{certFile: c.CertFile, keyFile: c.KeyFile}
	cert, err := a.certs.read()
	if err != nil {
		return nil, err
	}
	a.certs.cur.Store(cert)
	port := c.NTPPort
	if port == 0 {
		if _, p, err := net.SplitHostPort(o.Listen[0]); err == nil {
			if n, _ := strconv.Atoi(p); n != 123 {
				port = n
			}
		}
	}
	a.listen = c.Listen
	if a.listen == "" {
		a.listen = DefaultNTSListen
	}
	a.ntsMW = nts.NewMiddleware(keys)
	a.ke = &nts.KEServer{
		TLSConfig:   &tls.Config{GetCertificate: a.certs.get},
		Keys:        keys,
		NTPServer:   c.NTPServer,
		NTPPort:     port,
		MaxSessions: c.MaxSessions,
		Logger:      logger,
	}
	if c.Seed == nil {
		logger.Warn("nts: no key_seed_file; using a random master key, so cookies end with this process and other servers cannot share them")
	}
	return a, nil
}

// middleware returns the authentication middlewares to put in front of
// the responder, inside access control and rate limiting.
func (a *authService) middleware() []server.Middleware {
	var mw []server.Middleware
	if a.mac != nil {
		mw = append(mw, a.mac.Wrap)
	}
	if a.ntsMW != nil {
		mw = append(mw, a.ntsMW.Wrap)
	}
	return mw
}

// bind opens the NTS-KE listener, if NTS is enabled.
func (a *authService) bind(ctx context.Context) (net.Listener, error) {
	if a.ke == nil {
		return nil, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", a.listen)
	if err != nil {
		return nil, fmt.Errorf("nts.listen: %w", err)
	}
	return ln, nil
}

// serve serves NTS-KE on ln until shutdown; it returns nil after
// Shutdown.
func (a *authService) serve(ctx context.Context, ln net.Listener) error {
	a.logger.Info("nts-ke listening", "addr", ln.Addr().String(), "ntp_port", a.ke.NTPPort)
	if err := a.ke.Serve(ctx, ln); !errors.Is(err, server.ErrServerClosed) && ctx.Err() == nil {
		return err
	}
	return nil
}

// prepareCerts reads the NTS certificate pair again, for a reload; nil
// when NTS is off.
func (a *authService) prepareCerts() (*tls.Certificate, error) {
	if a.certs == nil {
		return nil, nil
	}
	return a.certs.read()
}

// commitCerts installs a pair prepareCerts read.
func (a *authService) commitCerts(c *tls.Certificate) {
	if c == nil {
		return
	}
	a.certs.cur.Store(c)
	a.logger.Info("nts certificate reloaded", "file", a.certs.certFile)
}

// stats fills the authentication counters of s.
func (a *authService) stats(s *Stats) {
	if a.ntsMW != nil {
		st, ke := a.ntsMW.Stats(), a.ke.Stats()
		s.NTS, s.NTSKE = &st, &ke
	}
	if a.mac != nil {
		st := a.mac.Stats()
		s.MAC = &st
	}
}

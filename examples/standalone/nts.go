package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/auth"
	"github.com/ntpkit/ntpkit/server/nts"
	"github.com/ntpkit/ntpkit/server/symkey"
)

// NTSConfig configures Network Time Security (RFC 8915): an NTS-KE
// listener handing out cookies, and NTS authentication of NTP requests on
// every NTP address.
type NTSConfig struct {
	// Enabled turns NTS on.
	Enabled bool `json:"enabled"`
	// Listen is the NTS-KE TCP address; empty: 127.0.0.1:4460.
	Listen string `json:"listen"`
	// CertFile and KeyFile are the PEM certificate chain and private
	// key of the KE server. They are read again on SIGHUP.
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	// NTPServer is the NTP server name or address given to clients;
	// empty: clients use the KE server's.
	NTPServer string `json:"ntp_server"`
	// NTPPort is the NTP port given to clients; 0: the port of the
	// first listen address, unless it is 123.
	NTPPort int `json:"ntp_port"`
	// KeySeedFile names a file holding at least 32 bytes of secret from
	// which the cookie master keys are derived; servers sharing it (and
	// the rotation) accept each other's cookies. Empty: a random seed
	// made at start, so cookies do not survive a restart.
	KeySeedFile string `json:"key_seed_file"`
	// Rotation is how often the master key changes, e.g. "24h"; empty:
	// 24h. Cookies stay valid for two more periods.
	Rotation string `json:"rotation"`
	// MaxSessions bounds concurrent KE sessions; 0: 128.
	MaxSessions int `json:"max_sessions"`
}

const defaultNTSListen = "127.0.0.1:4460"

// validate checks c; field names are prefixed with "nts.".
func (c *NTSConfig) validate() error {
	if c.Listen != "" {
		if err := validateUDPAddr(c.Listen); err != nil {
			return fieldErr("nts.listen", "%q: %v", c.Listen, err)
		}
	}
	if c.Rotation != "" {
		d, err := time.ParseDuration(c.Rotation)
		if err != nil {
			return fieldErr("nts.rotation", "%q is not a duration like \"24h\"", c.Rotation)
		}
		if d < time.Minute {
			return fieldErr("nts.rotation", "%v is shorter than a minute", d)
		}
	}
	if c.NTPPort < 0 || c.NTPPort > 65535 {
		return fieldErr("nts.ntp_port", "%d is outside 0–65535", c.NTPPort)
	}
	if c.MaxSessions < 0 {
		return fieldErr("nts.max_sessions", "%d is negative", c.MaxSessions)
	}
	if c.Enabled {
		if c.CertFile == "" {
			return fieldErr("nts.cert_file", "required when NTS is enabled")
		}
		if c.KeyFile == "" {
			return fieldErr("nts.key_file", "required when NTS is enabled")
		}
	}
	return nil
}

// certStore serves the current certificate and swaps it on reload.
type certStore struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

func (s *certStore) load() error {
	c, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("nts: load certificate %s and key %s: %w", s.certFile, s.keyFile, err)
	}
	s.cur.Store(&c)
	return nil
}

func (s *certStore) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cur.Load(), nil
}

// authService holds the daemon's authentication: symmetric-key MACs
// (keys_file) and NTS (the nts section).
type authService struct {
	logger *slog.Logger
	mac    *auth.MAC
	ntsMW  *nts.Middleware
	ke     *nts.KEServer
	keLn   net.Listener
	certs  *certStore
	keDone chan error
}

// newAuthService loads the key file, the certificate and the master seed
// and binds the NTS-KE listener, so that a daemon that cannot do all of
// it does not start.
func newAuthService(cfg Config, logger *slog.Logger) (*authService, error) {
	a := &authService{logger: logger}
	if cfg.KeysFile != "" {
		keys, err := symkey.LoadFile(cfg.KeysFile)
		if err != nil {
			return nil, fmt.Errorf("keys_file: %w", err)
		}
		a.mac = &auth.MAC{Keys: keys}
		logger.Info("symmetric keys loaded", "file", cfg.KeysFile, "keys", keys.Len())
	}
	c := cfg.NTS
	if !c.Enabled {
		return a, nil
	}
	var seed []byte
	if c.KeySeedFile != "" {
		var err error
		if seed, err = readSecret(c.KeySeedFile, logger); err != nil {
			return nil, fmt.Errorf("nts.key_seed_file: %w", err)
		}
	}
	rotation := nts.DefaultRotation
	if c.Rotation != "" {
		rotation, _ = time.ParseDuration(c.Rotation)
	}
	keys, err := nts.NewKeyStore(seed, rotation, nil)
	if err != nil {
		return nil, fmt.Errorf("nts.key_seed_file: %w", err)
	}
	a.certs = &certStore{certFile: c.CertFile, keyFile: c.KeyFile}
	if err := a.certs.load(); err != nil {
		return nil, err
	}
	port := c.NTPPort
	if port == 0 && len(cfg.Listen) > 0 {
		if _, p, err := net.SplitHostPort(cfg.Listen[0]); err == nil {
			if n, _ := strconv.Atoi(p); n != 123 {
				port = n
			}
		}
	}
	listen := c.Listen
	if listen == "" {
		listen = defaultNTSListen
	}
	a.keLn, err = net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("nts.listen: %w", err)
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
	if seed == nil {
		logger.Warn("nts: no key_seed_file; using a random master key, so cookies end with this process and other servers cannot share them")
	}
	return a, nil
}

// readSecret reads a seed file and warns when others may read it.
func readSecret(name string, logger *slog.Logger) ([]byte, error) {
	st, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		logger.Warn("nts: the master seed file is readable by other users", "file", name, "mode", st.Mode().Perm().String())
	}
	return os.ReadFile(name)
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

// start serves NTS-KE, if enabled, until shutdown.
func (a *authService) start(ctx context.Context) {
	if a.ke == nil {
		return
	}
	a.keDone = make(chan error, 1)
	a.logger.Info("nts-ke listening", "addr", a.keLn.Addr().String(), "ntp_port", a.ke.NTPPort)
	go func() { a.keDone <- a.ke.Serve(context.WithoutCancel(ctx), a.keLn) }()
}

// shutdown stops NTS-KE and waits for its sessions.
func (a *authService) shutdown(ctx context.Context) error {
	if a.ke == nil {
		return nil
	}
	err := a.ke.Shutdown(ctx)
	if a.keDone != nil {
		if serr := <-a.keDone; !errors.Is(serr, server.ErrServerClosed) && err == nil {
			err = serr
		}
	} else {
		a.keLn.Close()
	}
	return err
}

// reloadCerts re-reads the NTS certificate and key; on failure the old
// pair keeps serving. SIGHUP handling calls it.
func (a *authService) reloadCerts() error {
	if a == nil || a.certs == nil {
		return nil
	}
	if err := a.certs.load(); err != nil {
		return err
	}
	a.logger.Info("nts certificate reloaded", "file", a.certs.certFile)
	return nil
}

// authStats are the counters of the authentication layers, for the API.
type authStats struct {
	NTS *nts.Stats   `json:"nts,omitempty"`
	KE  *nts.KEStats `json:"nts_ke,omitempty"`
	MAC *auth.Stats  `json:"mac,omitempty"`
}

// stats returns the counters of whatever is enabled.
func (a *authService) stats() authStats {
	var s authStats
	if a == nil {
		return s
	}
	if a.ntsMW != nil {
		st, ke := a.ntsMW.Stats(), a.ke.Stats()
		s.NTS, s.KE = &st, &ke
	}
	if a.mac != nil {
		st := a.mac.Stats()
		s.MAC = &st
	}
	return s
}

// attach plugs the authentication layers into the daemon: their counters
// into /v1/stats and /metrics, and the certificate reload into SIGHUP.
func (a *authService) attach(d *daemon) {
	if a.mac == nil && a.ntsMW == nil {
		return
	}
	d.authStats = func() any { return a.stats() }
	d.metrics = append(d.metrics, func(m *metricsWriter) { writeAuthMetrics(m, a.stats()) })
	if a.certs != nil {
		d.reloadCerts = a.reloadCerts
	}
}

// writeAuthMetrics writes the NTS, NTS-KE and symmetric-key counters.
func writeAuthMetrics(m *metricsWriter, s authStats) {
	if s.NTS != nil {
		m.family("ntpkit_nts_requests_total", "counter", "NTP requests carrying NTS extension fields, by outcome.")
		m.sample("ntpkit_nts_requests_total", float64(s.NTS.Authenticated), "result", "authenticated")
		m.sample("ntpkit_nts_requests_total", float64(s.NTS.NAKs), "result", "nak")
		m.sample("ntpkit_nts_requests_total", float64(s.NTS.AuthFailures), "result", "auth_failure")
		m.sample("ntpkit_nts_requests_total", float64(s.NTS.Malformed), "result", "malformed")
		m.counter("ntpkit_nts_cookies_sent_total", "Fresh NTS cookies sent in NTP replies.", s.NTS.Cookies)
	}
	if s.KE != nil {
		m.family("ntpkit_nts_ke_sessions_total", "counter", "NTS-KE sessions, by outcome.")
		m.sample("ntpkit_nts_ke_sessions_total", float64(s.KE.Served), "result", "served")
		m.sample("ntpkit_nts_ke_sessions_total", float64(s.KE.HandshakeErrors), "result", "handshake_error")
		m.sample("ntpkit_nts_ke_sessions_total", float64(s.KE.RequestErrors), "result", "request_error")
		m.sample("ntpkit_nts_ke_sessions_total", float64(s.KE.Unsupported), "result", "unsupported")
		m.sample("ntpkit_nts_ke_sessions_total", float64(s.KE.InternalErrors), "result", "internal_error")
	}
	if s.MAC != nil {
		m.family("ntpkit_mac_requests_total", "counter", "NTP requests carrying a symmetric-key MAC, by outcome.")
		m.sample("ntpkit_mac_requests_total", float64(s.MAC.Authenticated), "result", "authenticated")
		m.sample("ntpkit_mac_requests_total", float64(s.MAC.UnknownKey), "result", "unknown_key")
		m.sample("ntpkit_mac_requests_total", float64(s.MAC.BadMAC), "result", "bad_mac")
		m.counter("ntpkit_mac_crypto_naks_total", "Crypto-NAKs sent for unknown keys or bad MACs.", s.MAC.CryptoNAKs)
	}
}

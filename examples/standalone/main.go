// Command standalone is ntpkit's NTP daemon: it serves time over NTP on the
// addresses in its configuration. With no arguments it serves the system
// clock as a stratum-10 local clock on 127.0.0.1:12300 and [::1]:12300,
// using the default configuration embedded in the binary, and contacts
// nothing outside the machine.
//
// Usage:
//
//	standalone [-config file.json] [-listen addr,...] [-stratum N] [-refid ID]
//	standalone -print-default-config
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "standalone:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "JSON configuration `file` (default: the embedded configuration)")
	printDefault := fs.Bool("print-default-config", false, "print the embedded default configuration and exit")
	listen := fs.String("listen", "", "comma-separated UDP `addresses` to serve on, overriding the configuration")
	stratum := fs.Int("stratum", 0, "stratum of the local reference, overriding the configuration")
	refid := fs.String("refid", "", "reference ID of the local reference (ASCII or IPv4), overriding the configuration")
	apiListen := fs.String("api", "", "TCP `address` of the HTTP management API, overriding the configuration (-api= turns it off)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	apiSet := false
	fs.Visit(func(f *flag.Flag) { apiSet = apiSet || f.Name == "api" })
	if *printDefault {
		_, err := stdout.Write(defaultConfigJSON)
		return err
	}
	// load reads the configuration file and applies the command-line
	// overrides; a SIGHUP reload runs it again.
	load := func() (Config, error) {
		cfg := DefaultConfig()
		if *configPath != "" {
			data, err := os.ReadFile(*configPath)
			if err != nil {
				return Config{}, fmt.Errorf("read config: %w", err)
			}
			if cfg, err = ParseConfig(data); err != nil {
				return Config{}, fmt.Errorf("%s: %w", *configPath, err)
			}
		}
		if *listen != "" {
			cfg.Listen = strings.Split(*listen, ",")
		}
		if *stratum != 0 {
			cfg.Local.Stratum = *stratum
		}
		if *refid != "" {
			cfg.Local.RefID = *refid
		}
		if apiSet {
			cfg.API.Listen = *apiListen
		}
		if err := cfg.Validate(); err != nil {
			return Config{}, err
		}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if *configPath == "" {
		load = nil // nothing to reload
	}
	token, err := loadToken(cfg.API)
	if err != nil {
		return err
	}
	level, _ := parseLogLevel(cfg.LogLevel)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	// SIGHUP reloads the configuration; catch it before serving so that
	// an early one cannot kill the daemon.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, logger, serveOptions{load: load, hup: hup, apiToken: token})
}

// serveOptions are serve's inputs besides the configuration.
type serveOptions struct {
	load     func() (Config, error) // re-reads the configuration; nil: no reloads
	hup      <-chan os.Signal       // reload requests
	apiToken string                 // bearer token the API requires; empty: none
}

// parseRefID reads a reference ID given as an IPv4 address or up to four
// ASCII characters; empty means server.LocalRefID.
func parseRefID(s string) (ntpwire.RefID, error) {
	if s == "" {
		return server.LocalRefID, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		return a.As4(), nil
	}
	if len(s) > 4 {
		return ntpwire.RefID{}, fmt.Errorf("%q is neither an IPv4 address nor up to 4 ASCII characters", s)
	}
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e {
			return ntpwire.RefID{}, fmt.Errorf("%q has a non-printable character", s)
		}
	}
	return ntpwire.RefIDString(s), nil
}

// serve runs the NTP server on every configured address, and the
// management API when configured, until ctx ends. Every socket is bound
// before anything is served: a daemon that cannot bind them all does not
// start.
func serve(ctx context.Context, cfg Config, logger *slog.Logger, opts serveOptions) error {
	// The local clock, or the upstream Discipliner when servers are
	// configured (upstream.go).
	src, disc, err := newSource(ctx, cfg, logger)
	if err != nil {
		return err
	}
	// Access control, then rate limiting, around the responder (policy.go).
	mw, err := newGuards(cfg, logger)
	if err != nil {
		return err
	}
	srv := &server.Server{
		Source:      src,
		Handler:     server.Chain(server.Responder(), mw.middleware()...),
		Logger:      logger,
		Sockets:     cfg.Server.Sockets,
		Workers:     cfg.Server.Workers,
		ReadBuffer:  cfg.Server.ReadBuffer,
		WriteBuffer: cfg.Server.WriteBuffer,
	}
	n := cfg.Server.Sockets
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	var conns []net.PacketConn
	for _, addr := range cfg.Listen {
		cs, err := server.ListenUDP(ctx, "udp", addr, n)
		if err != nil {
			closeAll(conns)
			return err
		}
		conns = append(conns, cs...)
		logger.Info("listening", "addr", cs[0].LocalAddr().String(), "sockets", len(cs))
	}
	defer closeAll(conns)

	// Symmetric keys and NTS (nts.go): loaded and bound before serving.
	authn, err := newAuthService(cfg, logger)
	if err != nil {
		return err
	}
	if am := authn.middleware(); len(am) > 0 {
		// Authentication sits inside access control and rate limiting.
		srv.Handler = server.Chain(server.Responder(), append(mw.middleware(), am...)...)
	}
	authn.start(ctx)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := authn.shutdown(sctx); err != nil {
			logger.Warn("nts-ke shutdown", "err", err)
		}
	}()

	d := &daemon{logger: logger, started: time.Now(), srv: srv, src: src, load: opts.load}
	d.attachMiddleware(mw.ac, mw.rl)
	authn.attach(d)
	if disc != nil {
		d.attachUpstream(disc)
	}
	d.applyReloadable = mw.reload
	mw.start(ctx)
	defer mw.stop()
	for _, c := range conns {
		if a := c.LocalAddr().String(); !slices.Contains(d.addrs, a) {
			d.addrs = append(d.addrs, a)
		}
	}
	d.cfg.Store(&cfg)
	d.reloads.begin(d.started)
	var api *apiServer
	if cfg.API.Listen != "" {
		var err error
		if api, err = d.listenAPI(ctx, cfg.API.Listen, opts.apiToken); err != nil {
			return err
		}
		if opts.apiToken == "" && !isLoopback(d.apiAddr) {
			logger.Warn("the management API is reachable from the network without a token", "addr", d.apiAddr)
		}
	}

	logger.Info("serving", sourceAttrs(src)...)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeAll(context.WithoutCancel(ctx), conns) }()
	d.serving.Store(true)
	if api != nil {
		api.start()
		logger.Info("api listening", "addr", d.apiAddr)
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := api.shutdown(sctx); err != nil {
				logger.Warn("api shutdown", "err", err)
			}
		}()
	}
	if opts.hup != nil {
		go d.watchReloads(ctx, opts.hup)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	d.serving.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, server.ErrServerClosed) {
		return err
	}
	st := srv.Stats()
	logger.Info("stopped", "received", st.Received, "replies", st.Replies, "dropped", st.Dropped.Total())
	return nil
}

// isLoopback reports whether the host of addr is a loopback address.
func isLoopback(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	return err == nil && ap.Addr().IsLoopback()
}

func closeAll(conns []net.PacketConn) {
	for _, c := range conns {
		c.Close()
	}
}

// Command standalone is ntpkit's NTP daemon: it serves time over NTP on the
// addresses in its configuration. With no arguments it serves the system
// clock as a stratum-10 local clock on 127.0.0.1:12300 and [::1]:12300,
// using the default configuration embedded in the binary, and contacts
// nothing outside the machine.
//
// The daemon itself is package server/daemon, its configuration file
// package server/daemon/daemonconfig and its management API package
// server/ops; this command reads the file, applies the command-line
// overrides, handles signals (SIGHUP reloads, SIGINT and SIGTERM stop)
// and serves the API.
//
// Usage:
//
//	standalone [-config file.json] [-listen addr,...] [-stratum N] [-refid ID] [-api addr]
//	standalone -print-default-config
//	standalone -config-reference
//	standalone -version
//
// Exit status: 0 after a clean stop (SIGINT, SIGTERM) or for -h, 1 when
// the daemon cannot start or fails, 2 for bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/netutil"

	"github.com/ntpkit/ntpkit/internal/buildinfo"
	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/daemon/daemonconfig"
	"github.com/ntpkit/ntpkit/server/ops"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errUsageShown):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "standalone:", err)
		os.Exit(1)
	}
}

// errUsageShown is run's error for bad flags, after the flag package
// printed the error and the usage.
var errUsageShown = errors.New("bad usage")

// flagOf names the command-line flag that overrides a configuration field,
// so that a bad flag value is reported as the flag, not as the file.
var flagOf = map[string]string{
	"local.stratum": "stratum",
	"local.refid":   "refid",
	"api.listen":    "api",
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
	showVersion := fs.Bool("version", false, "print the daemon's version and exit")
	printReference := fs.Bool("config-reference", false, "print the reference of every configuration key (type, default, SIGHUP, meaning) as Markdown and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsageShown
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "standalone takes no arguments, only flags: %q\n", fs.Args())
		fs.Usage()
		return errUsageShown
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	apiSet := set["api"]
	if *showVersion {
		fmt.Fprintln(stdout, buildinfo.Read().Line("standalone"))
		return nil
	}
	if *printReference {
		return daemonconfig.WriteReference(stdout)
	}
	if *printDefault {
		_, err := stdout.Write(daemonconfig.DefaultJSON())
		return err
	}
	// load reads the configuration file and applies the command-line
	// overrides; a SIGHUP reload runs it again.
	load := func() (daemonconfig.Config, error) {
		cfg := daemonconfig.Default()
		if *configPath != "" {
			data, err := os.ReadFile(*configPath)
			if err != nil {
				return cfg, fmt.Errorf("read config: %w", err)
			}
			if cfg, err = daemonconfig.Parse(data); err != nil {
				return cfg, fmt.Errorf("%s: %w", *configPath, err)
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
		return cfg, flagError(cfg.Validate(), set)
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if *configPath == "" {
		load = nil // nothing to reload
	}
	token, err := cfg.Token()
	if err != nil {
		return err
	}
	level, _ := cfg.Level()
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	opts, err := cfg.Options(logger)
	if err != nil {
		return err
	}
	d, err := daemon.New(opts)
	if err != nil {
		return err
	}

	// SIGHUP reloads the configuration; catch it before serving so that
	// an early one cannot kill the daemon.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var api net.Listener
	if cfg.API.Listen != "" {
		var lc net.ListenConfig
		if api, err = lc.Listen(ctx, "tcp", cfg.API.Listen); err != nil {
			return fmt.Errorf("api: %w", err)
		}
		defer api.Close()
		// Clients of the API must not use up the descriptors the NTP and
		// NTS-KE listeners need: over the bound, new connections wait.
		api = netutil.LimitListener(api, maxAPIConns)
	}
	r := &reloader{d: d, cur: cfg, load: load, logger: logger}
	return serve(ctx, d, api, token, hup, r, logger)
}

// maxAPIConns bounds the management API's open connections.
const maxAPIConns = 64

// flagError reports a refused field that a flag set as the flag: "flag
// -stratum: 20 is outside 1–15", not as a configuration path.
func flagError(err error, set map[string]bool) error {
	var fe *daemonconfig.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	name, ok := flagOf[fe.Field]
	if !ok && strings.HasPrefix(fe.Field, "listen[") {
		name, ok = "listen", true
	}
	if !ok || !set[name] {
		return err
	}
	return fmt.Errorf("flag -%s: %s", name, fe.Reason)
}

// serve runs d until ctx ends, serving the management API on api (when
// not nil) once d serves, and reloading on every value from hup.
func serve(ctx context.Context, d *daemon.Daemon, api net.Listener, token string, hup <-chan os.Signal, r *reloader, logger *slog.Logger) error {
	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()
	select {
	case err := <-runErr:
		return err
	case <-d.Ready():
	}
	if api != nil {
		addr := api.Addr().String()
		if ap, err := netip.ParseAddrPort(addr); token == "" && (err != nil || !ap.Addr().IsLoopback()) {
			logger.Warn("the management API is reachable from the network without a token", "addr", addr)
		}
		srv := &http.Server{
			Handler:           ops.Handler(d, ops.Options{Token: token, Addr: addr, Hosts: r.cur.API.Hosts}),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    8 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
		apiErr := make(chan error, 1)
		go func() { apiErr <- srv.Serve(api) }()
		logger.Info("api listening", "addr", addr)
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				logger.Warn("api shutdown", "err", err)
			}
			if err := <-apiErr; !errors.Is(err, http.ErrServerClosed) {
				logger.Warn("api", "err", err)
			}
		}()
	}
	for {
		select {
		case <-hup:
			r.reload()
		case err := <-runErr:
			return err
		}
	}
}

// reloader re-reads the configuration file on SIGHUP and hands its
// reloadable sections to the daemon.
type reloader struct {
	d      *daemon.Daemon
	cur    daemonconfig.Config                 // the configuration in force
	load   func() (daemonconfig.Config, error) // nil: started without -config
	logger *slog.Logger
}

// reload validates the whole file and applies its reloadable sections,
// all or nothing; the daemon records and logs the outcome. Changes to the
// other sections are logged as needing a restart.
func (r *reloader) reload() {
	if r.load == nil {
		// Nothing to re-read: not a failure, and not counted as one.
		r.logger.Info("SIGHUP ignored: the daemon was started without -config, so there is no file to reload")
		return
	}
	next, err := r.load()
	if err != nil {
		r.d.ReloadFailed(err)
		return
	}
	merged, restart, err := daemonconfig.Merge(r.cur, next)
	if err != nil {
		r.d.ReloadFailed(err)
		return
	}
	var o daemon.Options
	if o.Access, o.RateLimit, err = merged.Policy(); err != nil {
		r.d.ReloadFailed(err)
		return
	}
	if len(restart) > 0 {
		r.logger.Warn("config changes need a restart to take effect", "sections", restart)
	}
	if err := r.d.Reload(o); err == nil {
		r.cur = merged
	}
}

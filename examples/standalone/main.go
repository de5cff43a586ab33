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
	"strings"
	"syscall"
	"time"

	"github.com/ntpkit/ntpkit/clock"
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *printDefault {
		_, err := stdout.Write(defaultConfigJSON)
		return err
	}
	cfg := DefaultConfig()
	if *configPath != "" {
		data, err := os.ReadFile(*configPath)
		if err != nil {
			return fmt.Errorf("read config: %w", err)
		}
		if cfg, err = ParseConfig(data); err != nil {
			return fmt.Errorf("%s: %w", *configPath, err)
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
	if err := cfg.Validate(); err != nil {
		return err
	}
	level, _ := parseLogLevel(cfg.LogLevel)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, logger)
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

// serve runs the NTP server on every configured address until ctx ends.
func serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	src := server.NewLocalSource(clock.System{}, uint8(cfg.Local.Stratum))
	src.RefID, _ = parseRefID(cfg.Local.RefID)
	srv := &server.Server{
		Source:      src,
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
	logger.Info("serving", "stratum", src.Stratum, "refid", src.RefID.String(), "precision", src.Precision)

	errc := make(chan error, 1)
	go func() { errc <- srv.ServeAll(context.WithoutCancel(ctx), conns) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
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

func closeAll(conns []net.PacketConn) {
	for _, c := range conns {
		c.Close()
	}
}

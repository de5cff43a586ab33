// Command ntpload is a load generator for NTP servers. It sends client
// (mode 3) requests from many UDP sockets, at a target rate or as fast as
// the server answers, for a bounded time; checks every reply (mode 4,
// origin timestamp equal to the request's transmit timestamp, T3 >= T2);
// and reports what it sent and got back, losses, kiss-o'-death codes,
// replies per second and percentiles of the round-trip time, of the
// server's own time (T3-T2) and of the clock offset the client computes.
//
// Each request carries a random transmit timestamp, as chrony's client
// does; the real send time stays in the client. On loopback client and
// server read the same clock, so the offset is the timestamps' error.
//
// Usage:
//
//	ntpload [-rate N] [-duration 10s] [-sockets 16] [-src 127.0.0.2-127.0.0.20] [-interleaved] [-json] ip:port
//	ntpload -version
//
// With -nts ke-host:port (and -nts-ca to trust a test CA) each socket runs
// NTS-KE once, then sends NTS-authenticated requests and checks every
// reply's authenticator; failures count as invalid "nts_auth".
//
// With -interleaved each request is in interleaved form, as chrony's
// client sends it: it quotes an earlier reply of the same socket (origin
// = that reply's receive timestamp), so a server that supports
// interleaved mode answers with the kernel transmit time of that earlier
// reply. Every reply is classified basic or interleaved; T1 comes from
// the kernel's transmit stamp of each request (SO_TIMESTAMPING, read
// from the error queue in batches) and T4 from its receive stamp, for
// both classes, and the report gives |offset| percentiles of each class
// and their counts. The two classes of one run differ only in how the
// server stamped T3.
//
// With -spoof 127.64.0.0/10 (root, loopback only) it floods the target
// from random source addresses in the prefix through a raw socket and
// does not wait for replies: a spoofed-source attack without leaving the
// machine.
//
// Only run it against servers you operate: at full speed it is a
// denial-of-service tool.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/ntpkit/ntpkit/internal/buildinfo"
)

// maxDuration bounds a run.
const maxDuration = 10 * time.Minute

const (
	ringBits = 12
	ringSize = 1 << ringBits // outstanding requests remembered per socket (the -window limit)
)

type config struct {
	target   netip.AddrPort
	rate     float64
	duration time.Duration
	sockets  int
	threads  int
	batch    int
	window   int
	timeout  time.Duration
	bufSize  int
	srcs     []netip.Addr
	json     bool
	version  bool
	nts      ntsFlags
	flood    floodFlags
	// interleaved: send requests in interleaved form and classify replies
	interleaved bool
}

const usageHead = `usage: ntpload [flags] ip:port

Sends NTP client requests to the server at ip:port (an IP address and a
port, e.g. 127.0.0.1:12300) for -duration and reports replies, losses,
kiss-o'-death codes and timing. Only run it against servers you operate.
A server's per-client rate limit answers a load from one address with RATE
kisses and silence; turn it off to benchmark (an ntpkit daemon:
"rate_limit": {"enabled": false}).

flags:
`

// errHelp is returned for -h, after the usage was printed: exit status 0.
var errHelp = errors.New("help requested")

// errUsageShown is returned for bad flags, after the flag package printed
// the usage and the error: exit status 2.
var errUsageShown = errors.New("bad usage")

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, errHelp):
	case errors.Is(err, errUsageShown):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "ntpload:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.version {
		fmt.Fprintln(stdout, buildinfo.Read().Line("ntpload"))
		return nil
	}
	res, err := load(cfg)
	if err != nil {
		return err
	}
	rep := res.report(cfg)
	if cfg.json {
		return rep.writeJSON(stdout)
	}
	rep.writeText(stdout)
	return nil
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("ntpload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	cfg := &config{}
	fs.Float64Var(&cfg.rate, "rate", 0, "total request rate in `requests/s`; 0 sends as fast as replies come back")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, fmt.Sprintf("how long to send (at most %v)", maxDuration))
	fs.IntVar(&cfg.sockets, "sockets", 16, "client sockets (source ports)")
	fs.IntVar(&cfg.threads, "threads", runtime.GOMAXPROCS(0), "goroutines driving the sockets")
	fs.IntVar(&cfg.batch, "batch", 16, "datagrams per sendmmsg/recvmmsg")
	fs.IntVar(&cfg.window, "window", 0, "requests outstanding per socket (default: 2×batch, or the ring size with -rate)")
	fs.DurationVar(&cfg.timeout, "timeout", 500*time.Millisecond, "a request unanswered this long is lost")
	fs.IntVar(&cfg.bufSize, "buffer", 1<<20, "SO_RCVBUF/SO_SNDBUF `bytes` per socket; 0 keeps the default")
	src := fs.String("src", "", "source `addresses` to spread the sockets over: a list or a range, e.g. 127.0.0.2-127.0.0.20")
	fs.BoolVar(&cfg.json, "json", false, "print the report as JSON")
	fs.BoolVar(&cfg.version, "version", false, "print ntpload's version and exit")
	fs.BoolVar(&cfg.interleaved, "interleaved", false, "send requests in interleaved form (each quotes the server's receive timestamp of an earlier reply), take T1 from kernel transmit stamps, and report |offset| of basic and interleaved replies separately")
	cfg.nts.register(fs)
	cfg.flood.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, errUsageShown
	}
	if cfg.version {
		return cfg, nil
	}
	if err := cfg.nts.validate(); err != nil {
		return nil, err
	}
	if cfg.interleaved && (cfg.nts.ke != "" || cfg.flood.prefix.IsValid()) {
		return nil, errors.New("-interleaved works with plain NTP only, not with -nts or -spoof")
	}

	if fs.NArg() != 1 {
		fs.Usage()
		return nil, errors.New("need exactly one target host:port")
	}
	var err error
	if cfg.target, err = netip.ParseAddrPort(fs.Arg(0)); err != nil {
		return nil, fmt.Errorf("target %q: want an IP address and port: %w", fs.Arg(0), err)
	}
	cfg.target = netip.AddrPortFrom(cfg.target.Addr().Unmap(), cfg.target.Port())
	if err := cfg.flood.validate(cfg); err != nil {
		return nil, err
	}
	switch {
	case cfg.duration <= 0 || cfg.duration > maxDuration:
		return nil, fmt.Errorf("-duration %v: want more than 0 and at most %v", cfg.duration, maxDuration)
	case cfg.rate < 0:
		return nil, fmt.Errorf("-rate %v is negative", cfg.rate)
	case cfg.sockets < 1 || cfg.sockets > 4096:
		return nil, fmt.Errorf("-sockets %d: want 1–4096", cfg.sockets)
	case cfg.threads < 1:
		return nil, fmt.Errorf("-threads %d: want at least 1", cfg.threads)
	case cfg.batch < 1 || cfg.batch > 1024:
		return nil, fmt.Errorf("-batch %d: want 1–1024", cfg.batch)
	case cfg.window < 0 || cfg.window > ringSize:
		return nil, fmt.Errorf("-window %d: want 0–%d", cfg.window, ringSize)
	case cfg.timeout <= 0:
		return nil, fmt.Errorf("-timeout %v: want more than 0", cfg.timeout)
	}
	if cfg.window == 0 {
		cfg.window = 2 * cfg.batch
		if cfg.rate > 0 {
			cfg.window = ringSize / 2
		}
	}
	if *src != "" {
		if cfg.srcs, err = parseSources(*src); err != nil {
			return nil, err
		}
		for _, a := range cfg.srcs {
			if a.Is4() != cfg.target.Addr().Is4() {
				return nil, fmt.Errorf("-src %v: not the target's address family", a)
			}
		}
	}
	return cfg, nil
}

// parseSources reads "a,b,c" or "first-last" (at most 65536 addresses).
func parseSources(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		first, err := netip.ParseAddr(lo)
		if err != nil {
			return nil, fmt.Errorf("-src %q: %w", part, err)
		}
		if !isRange {
			out = append(out, first)
			continue
		}
		last, err := netip.ParseAddr(hi)
		if err != nil {
			return nil, fmt.Errorf("-src %q: %w", part, err)
		}
		if first.Is4() != last.Is4() || last.Less(first) {
			return nil, fmt.Errorf("-src %q: not an ascending range of one family", part)
		}
		for a := first; ; a = a.Next() {
			out = append(out, a)
			if len(out) > 65536 {
				return nil, fmt.Errorf("-src %q: more than 65536 addresses", part)
			}
			if a == last {
				break
			}
		}
	}
	return out, nil
}

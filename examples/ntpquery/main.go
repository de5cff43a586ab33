// Command ntpquery sends one NTP client request to a server and prints
// every field of the reply, with the offset and round-trip delay it
// implies, like ntpdig.
//
// With -status it instead reads the management API of an ntpkit daemon
// (examples/standalone) and prints the daemon's status: reference data,
// sync state, upstream sources and reloads. The bearer token, when the API
// needs one, is read from -token-file or the NTPKIT_API_TOKEN environment
// variable.
//
// Usage:
//
//	ntpquery [-timeout 5s] [-ntp-version 4] host[:port]
//	ntpquery -status http://127.0.0.1:8080 [-token-file file] [-json] [-v] [status|tracking|sources|sourcestats|serverstats]
//	ntpquery -version
//
// A host without a port means the NTP port, 123.
//
// Exit status: 0 for a reply, 1 for no reply or another error, 2 for bad
// usage, 3 when the server answered with a kiss-o'-death.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/ntpkit/ntpkit/internal/buildinfo"
	"github.com/ntpkit/ntpkit/internal/ntpclient"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// Exit statuses.
const (
	exitError = 1
	exitUsage = 2
	exitKiss  = 3
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	code := exitCode(err)
	if code != 0 && !errors.Is(err, errUsageShown) {
		fmt.Fprintln(os.Stderr, "ntpquery:", err)
	}
	os.Exit(code)
}

// errUsageShown is returned for bad flags, after the flag package printed
// the usage.
var errUsageShown = errors.New("bad usage")

// usageError is a wrong invocation, exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// kissError is a kiss-o'-death reply, exit status 3.
type kissError struct {
	server string
	code   ntpwire.RefID
}

func (e *kissError) Error() string {
	return fmt.Sprintf("%s answered with kiss-o'-death %s: %s", e.server, e.code, kissMeaning(e.code))
}

// exitCode maps run's error to the exit status.
func exitCode(err error) int {
	var ue *usageError
	var ke *kissError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ke):
		return exitKiss
	case errors.As(err, &ue), errors.Is(err, errUsageShown):
		return exitUsage
	}
	return exitError
}

const usageHead = `usage:
  ntpquery [flags] host[:port]     query an NTP server once and print its reply
  ntpquery -status URL [flags] [view]
                                   print a view of an ntpkit daemon from its
                                   management API: status (the default),
                                   tracking, sources, sourcestats or
                                   serverstats, like chronyc's commands
  ntpquery -version                print ntpquery's version

A host without a port means the NTP port, 123; write an IPv6 address with a
port as [2001:db8::1]:123. Exit status: 0 reply, 1 no reply or other error,
2 bad usage, 3 kiss-o'-death.

flags:
`

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ntpquery", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the reply")
	ntpVersion := fs.Int("ntp-version", 4, "NTP `version` to send (1–4)")
	showVersion := fs.Bool("version", false, "print ntpquery's version and exit")
	statusURL := fs.String("status", "", "print the status from an ntpkit daemon's management API at this `URL` instead of querying NTP")
	tokenFile := fs.String("token-file", "", "`file` holding the management API's bearer token (default: $NTPKIT_API_TOKEN)")
	asJSON := fs.Bool("json", false, "with -status: print the API's JSON the view is made from, for scripts")
	verbose := fs.Bool("v", false, "with -status sources: print a legend")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return errUsageShown
	}
	if *showVersion {
		fmt.Fprintln(stdout, buildinfo.Read().Line("ntpquery"))
		return nil
	}
	if *statusURL != "" {
		view := "status"
		switch fs.NArg() {
		case 0:
		case 1:
			view = fs.Arg(0)
		default:
			return &usageError{"-status takes at most one view: " + viewNames()}
		}
		token := os.Getenv("NTPKIT_API_TOKEN")
		if *tokenFile != "" {
			data, err := os.ReadFile(*tokenFile)
			if err != nil {
				return fmt.Errorf("-token-file: %w", err)
			}
			token = strings.TrimSpace(string(data))
		}
		return printView(stdout, view, *statusURL, token, *timeout, *verbose, *asJSON)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return &usageError{"need exactly one server address"}
	}
	if *ntpVersion < 1 || *ntpVersion > 4 {
		return &usageError{fmt.Sprintf("-ntp-version %d is outside 1–4", *ntpVersion)}
	}
	addr := fs.Arg(0)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(strings.Trim(addr, "[]"), "123")
	}
	res, err := query(addr, uint8(*ntpVersion), *timeout)
	if err != nil {
		return err
	}
	res.print(stdout)
	if res.reply.IsKiss() {
		return &kissError{server: res.server, code: res.reply.RefID}
	}
	return nil
}

// kissMeaning says what a kiss code asks of the client.
func kissMeaning(code ntpwire.RefID) string {
	switch code {
	case ntpwire.KissRate:
		return "rate exceeded; the server limits how often a client may ask: wait, then query less often"
	case ntpwire.KissDeny:
		return "access denied; the server's access policy refuses this client"
	case ntpwire.KissRstr:
		return "access restricted by the server's local policy; this client may not query it"
	case ntpwire.KissNTSN:
		return "NTS negative acknowledgement; the cookie was not accepted, do NTS-KE again"
	case ntpwire.KissCryp, ntpwire.KissAuth:
		return "authentication failed; check the key (id and secret) the client uses"
	case ntpwire.KissNKey:
		return "the server has no key with the id the request named"
	case ntpwire.KissInit:
		return "the server's association with this client is not yet synchronised"
	case ntpwire.KissStep:
		return "the server stepped its clock; try again"
	}
	return "a kiss code ntpquery does not know; RFC 5905 says to stop asking this server"
}

// timeoutHelp lists why a server may not answer at all.
const timeoutHelp = `possible causes:
  - nothing listens on that UDP port (a host without a port means port 123);
  - a firewall on the way drops NTP (UDP) packets;
  - the server drops this client without a kiss-o'-death: its access
    policy denies it, or it rate-limits it silently (an ntpkit daemon does
    this after a few RATE kisses);
  - the server is down, or the address is wrong`

type result struct {
	server     string
	reply      ntpwire.Packet
	t1, t4     time.Time
	offset     time.Duration
	delay      time.Duration
	sentXmit   ntpwire.Time
	replyBytes int
}

// query sends one request and validates the reply: it must come from the
// server, be a mode-4 packet, and echo our (random) transmit timestamp.
func query(addr string, version uint8, timeout time.Duration) (*result, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	// A random transmit timestamp: the reply must echo it, which a blind
	// spoofer cannot guess. The real T1 is kept locally.
	req, err := ntpclient.Request(nil, version)
	if err != nil {
		return nil, err
	}
	req.Poll = 4
	buf := req.AppendTo(make([]byte, 0, 1024))
	conn.SetDeadline(time.Now().Add(timeout))
	t1 := time.Now()
	if _, err := conn.Write(buf); err != nil {
		return nil, fmt.Errorf("send to %s: %w", addr, err)
	}
	rbuf := make([]byte, 1024)
	var t4 time.Time
	read := func(b []byte) (int, time.Time, error) {
		n, err := conn.Read(b)
		t4 = time.Now()
		return n, time.Time{}, err
	}
	for {
		rep, n, _, err := ntpclient.ReadReply(read, rbuf, req.XmitTime, nil)
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				return nil, fmt.Errorf("no reply from %s: the host answered \"port unreachable\": nothing listens on that UDP port (a host without a port means port 123)", addr)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil, fmt.Errorf("no reply from %s within %v; %s", addr, timeout, timeoutHelp)
			}
			return nil, fmt.Errorf("no reply from %s: %w", addr, err)
		}
		if rep.Mode != ntpwire.ModeServer {
			continue // not the answer to our request
		}
		t2, t3 := rep.RecvTime.In(t1), rep.XmitTime.In(t1)
		return &result{
			server: conn.RemoteAddr().String(), reply: rep, t1: t1, t4: t4, sentXmit: req.XmitTime, replyBytes: n,
			offset: (t2.Sub(t1) + t3.Sub(t4)) / 2,
			delay:  t4.Sub(t1) - t3.Sub(t2),
		}, nil
	}
}

func (r *result) print(w io.Writer) {
	p := &r.reply
	ts := func(t ntpwire.Time) string {
		if t == 0 {
			return "0 (unset)"
		}
		return fmt.Sprintf("%016x %s", uint64(t), t.In(r.t1).Format("2006-01-02 15:04:05.000000000 UTC"))
	}
	refid := p.RefID.String()
	if p.Stratum > 1 && p.Stratum < ntpwire.MaxStratum {
		refid = p.RefID.Addr().String()
	}
	if p.IsKiss() {
		fmt.Fprintf(w, "server          %s (%d bytes)\n", r.server, r.replyBytes)
		fmt.Fprintf(w, "kiss-o'-death   %s: %s\n", p.RefID.String(), kissMeaning(p.RefID))
		fmt.Fprintf(w, "                (a kiss-o'-death carries no time: no offset or delay)\n")
		return
	}
	fmt.Fprintf(w, "server          %s (%d bytes)\n", r.server, r.replyBytes)
	fmt.Fprintf(w, "leap            %d (%s)\n", p.Leap, p.Leap)
	fmt.Fprintf(w, "version         %d\n", p.Version)
	fmt.Fprintf(w, "mode            %d (%s)\n", p.Mode, p.Mode)
	fmt.Fprintf(w, "stratum         %d\n", p.Stratum)
	fmt.Fprintf(w, "poll            %d (%v)\n", p.Poll, ntpwire.LogToDuration(p.Poll))
	fmt.Fprintf(w, "precision       %d (%v)\n", p.Precision, ntpwire.LogToDuration(p.Precision))
	fmt.Fprintf(w, "root delay      %v\n", p.RootDelay.Duration())
	fmt.Fprintf(w, "root dispersion %v\n", p.RootDispersion.Duration())
	fmt.Fprintf(w, "reference id    %s\n", refid)
	fmt.Fprintf(w, "reference time  %s\n", ts(p.RefTime))
	fmt.Fprintf(w, "origin time     %016x (echo of the random transmit timestamp ntpquery sent, not a time)\n", uint64(p.OrigTime))
	fmt.Fprintf(w, "receive time    %s\n", ts(p.RecvTime))
	fmt.Fprintf(w, "transmit time   %s\n", ts(p.XmitTime))
	fmt.Fprintf(w, "offset          %+.9f s\n", r.offset.Seconds())
	fmt.Fprintf(w, "delay           %.9f s\n", r.delay.Seconds())
	if p.Leap == ntpwire.LeapAlarm || p.Stratum == 0 || p.Stratum >= ntpwire.MaxStratum {
		fmt.Fprintf(w, "warning         the server says it is not synchronised (leap %s, stratum %d): do not set a clock from it\n", p.Leap, p.Stratum)
	}
}

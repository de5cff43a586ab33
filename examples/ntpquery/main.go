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
//	ntpquery [-timeout 5s] [-version 4] host[:port]
//	ntpquery -status http://127.0.0.1:8080 [-token-file file]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntpclient"
	"github.com/ntpkit/ntpkit/ntpwire"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ntpquery:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ntpquery", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the reply")
	version := fs.Int("version", 4, "NTP version to send (1–4)")
	statusURL := fs.String("status", "", "print the status from an ntpkit daemon's management API at this `URL` instead of querying NTP")
	tokenFile := fs.String("token-file", "", "`file` holding the management API's bearer token (default: $NTPKIT_API_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *statusURL != "" {
		if fs.NArg() != 0 {
			return errors.New("-status takes no NTP server address")
		}
		token := os.Getenv("NTPKIT_API_TOKEN")
		if *tokenFile != "" {
			data, err := os.ReadFile(*tokenFile)
			if err != nil {
				return fmt.Errorf("-token-file: %w", err)
			}
			token = strings.TrimSpace(string(data))
		}
		return printStatus(stdout, *statusURL, token, *timeout)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("need exactly one server address")
	}
	if *version < 1 || *version > 4 {
		return fmt.Errorf("-version %d is outside 1–4", *version)
	}
	addr := fs.Arg(0)
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "123")
	}
	res, err := query(addr, uint8(*version), *timeout)
	if err != nil {
		return err
	}
	res.print(stdout)
	return nil
}

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
		refid = fmt.Sprintf("%s (kiss-o'-death)", p.RefID.String())
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
	fmt.Fprintf(w, "origin time     %s\n", ts(p.OrigTime))
	fmt.Fprintf(w, "receive time    %s\n", ts(p.RecvTime))
	fmt.Fprintf(w, "transmit time   %s\n", ts(p.XmitTime))
	fmt.Fprintf(w, "offset          %+.9f s\n", r.offset.Seconds())
	fmt.Fprintf(w, "delay           %.9f s\n", r.delay.Seconds())
}

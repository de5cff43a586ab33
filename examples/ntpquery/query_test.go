package main

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/kernelsync"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/servertest"
)

// startServer serves src with h on a loopback UDP port until the test ends.
func startServer(t *testing.T, src server.Source, h server.Handler) string {
	t.Helper()
	ts := servertest.NewServer(&server.Server{Source: src, Handler: h})
	t.Cleanup(func() { ts.Close() })
	return ts.Addr.String()
}

func TestQueryReply(t *testing.T) {
	src := server.NewLocalSource(nil, 0)
	addr := startServer(t, src, server.Responder())
	var out, errb bytes.Buffer
	err := run([]string{"-timeout", "5s", addr}, &out, &errb)
	if code := exitCode(err); code != 0 {
		t.Fatalf("exit %d (%v)", code, err)
	}
	for _, want := range []string{
		"stratum         10\n",
		"reference id    127.127.1.1\n",
		"(echo of the random transmit timestamp ntpquery sent, not a time)",
		"offset          ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "warning") {
		t.Errorf("warning for a synchronised server:\n%s", out.String())
	}
}

func TestQueryUnsynchronisedServer(t *testing.T) {
	src := server.NewLocalSource(nil, 0)
	src.Kernel = kernelsync.ReaderFunc(func() (kernelsync.State, error) {
		return kernelsync.State{ClockState: kernelsync.StateError, Status: kernelsync.StatusUnsync, MaxError: 16 * time.Second}, nil
	})
	src.WhenUnsynchronized = server.AnnounceUnsynchronized
	addr := startServer(t, src, server.Responder())
	var out, errb bytes.Buffer
	if err := run([]string{addr}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if want := "warning         the server says it is not synchronised (leap alarm, stratum 16)"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}

func TestQueryKiss(t *testing.T) {
	for _, code := range []ntpwire.RefID{ntpwire.KissDeny, ntpwire.KissRate} {
		t.Run(code.String(), func(t *testing.T) {
			kiss := server.HandlerFunc(func(w server.ResponseWriter, r *server.Request) { w.Kiss(code) })
			addr := startServer(t, server.NewLocalSource(nil, 0), kiss)
			var out, errb bytes.Buffer
			err := run([]string{addr}, &out, &errb)
			if code := exitCode(err); code != exitKiss {
				t.Errorf("exit %d (%v), want %d", code, err, exitKiss)
			}
			if want := "kiss-o'-death   " + code.String() + ": " + kissMeaning(code); !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
			if strings.Contains(out.String(), "offset  ") {
				t.Errorf("a kiss-o'-death printed with an offset:\n%s", out.String())
			}
			if !strings.Contains(err.Error(), "kiss-o'-death "+code.String()) {
				t.Errorf("error %q does not name the kiss code", err)
			}
		})
	}
}

func TestQueryTimeout(t *testing.T) {
	// A socket that reads and never answers: a silent drop.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var out, errb bytes.Buffer
	err = run([]string{"-timeout", "200ms", pc.LocalAddr().String()}, &out, &errb)
	if code := exitCode(err); code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	for _, want := range []string{"no reply from " + pc.LocalAddr().String() + " within 200ms", "rate-limits", "access", "firewall", "port 123"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestQueryPortUnreachable(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close() // nothing listens there now: loopback answers ICMP port unreachable
	var out, errb bytes.Buffer
	err = run([]string{"-timeout", "2s", addr}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "nothing listens on that UDP port") {
		t.Errorf("error %v, want one that says nothing listens", err)
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"-h"}, 0, "", "A host without a port means the NTP port, 123"},
		{[]string{"-help"}, 0, "", "Exit status: 0 reply"},
		{[]string{"-version"}, 0, "ntpquery ", ""},
		{[]string{"-bogus"}, exitUsage, "", "flag provided but not defined: -bogus"},
		{[]string{}, exitUsage, "", "usage:"},
		{[]string{"-ntp-version", "5", "localhost"}, exitUsage, "", ""},
		{[]string{"-status", "http://127.0.0.1:1", "host"}, exitUsage, "", ""},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		err := run(tt.args, &out, &errb)
		if code := exitCode(err); code != tt.code {
			t.Errorf("%q: exit %d (%v), want %d", tt.args, code, err, tt.code)
		}
		if !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
			t.Errorf("%q: stdout %q stderr %q, want them to contain %q and %q", tt.args, out.String(), errb.String(), tt.stdout, tt.stderr)
		}
	}
	if exitCode(errors.New("x")) != exitError {
		t.Error("a plain error is not exit status 1")
	}
}

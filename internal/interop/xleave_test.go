package interop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/internal/ntske/ntsketest"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/nts"
)

// serveXleave runs the library server (system clock, stratum 10, the
// default responder behind mw when given) on network/addr and returns
// the server and its port.
func serveXleave(t *testing.T, network, addr string, mw ...server.Middleware) (*server.Server, int) {
	t.Helper()
	return serveXleaveOpts(t, network, addr, false, mw...)
}

// serveXleaveOpts is serveXleave with interleaved mode turned off when
// disable is set.
func serveXleaveOpts(t *testing.T, network, addr string, disable bool, mw ...server.Middleware) (*server.Server, int) {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	s := &server.Server{
		Source:  server.NewLocalSource(clock.System{}, 10),
		Handler: server.Chain(server.Responder(), mw...),

		DisableInterleaved: disable,
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), pc) }()
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		if err := <-done; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, pc.LocalAddr().(*net.UDPAddr).Port
}

// startChronydClient runs chronyd -x (it never touches the system clock)
// as a client of the given source line, with a config of its own in a
// temporary directory (never Debian's), no NTP port of its own and its
// command socket at a private path. It returns that path for chronyc -h.
// chronyd is stopped at cleanup, its log shown if the test failed.
func startChronydClient(t *testing.T, source string, extra ...string) string {
	t.Helper()
	chronyd := RequireTool(t, "chronyd")
	dir := t.TempDir()
	// chronyd refuses a command socket in a directory others can read.
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "chronyd.sock")
	lines := append([]string{
		source,
		"port 0",
		"cmdport 0",
		"bindcmdaddress " + sock,
		"pidfile " + filepath.Join(dir, "chronyd.pid"),
	}, extra...)
	runChronyd(t, chronyd, dir, lines)
	return sock
}

var (
	interleavedRE = regexp.MustCompile(`(?m)^Interleaved\s*:\s*Yes$`)
	allTestsRE    = regexp.MustCompile(`(?m)^NTP tests\s*:\s*111 111 1111$`)
	totalGoodRE   = regexp.MustCompile(`(?m)^Total good RX\s*:\s*(\d+)$`)
)

// waitInterleaved polls `chronyc -h sock ntpdata` until chronyd reports
// an interleaved measurement that passed all its tests, for at most 30 s,
// and returns the output. (chronyd rejects its first interleaved sample
// when it has no transmit time of its own for the exchange before: a
// client-side rule, so the test waits for the next.)
func waitInterleaved(t *testing.T, sock string) string {
	t.Helper()
	chronyc := RequireTool(t, "chronyc")
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := exec.CommandContext(ctx, chronyc, "-h", sock, "-n", "ntpdata").CombinedOutput()
		cancel()
		last = string(out)
		if err == nil && interleavedRE.MatchString(last) && allTestsRE.MatchString(last) {
			return last
		}
		time.Sleep(250 * time.Millisecond) // chronyd polls every 1/16 s; this waits for it
	}
	t.Fatalf("chronyd reported no good interleaved measurement within 30 s; last ntpdata:\n%s", last)
	return ""
}

// checkXleaveStats checks our side of an interleaved exchange: interleaved
// replies sent and, on Linux, kernel transmit stamps used.
func checkXleaveStats(t *testing.T, s *server.Server) {
	t.Helper()
	st := s.Stats()
	t.Logf("server stats: %d replies, %d interleaved, %d kernel TX stamps", st.Replies, st.Interleaved, st.KernelTxStamps)
	if st.Interleaved == 0 {
		t.Fatalf("server sent no interleaved reply: %+v", st)
	}
	if runtime.GOOS == "linux" && st.KernelTxStamps == 0 {
		t.Fatalf("server used no kernel transmit stamp: %+v", st)
	}
}

// TestChronydInterleaved has chronyd poll our server with xleave every
// 1/16 s, over IPv4 and IPv6, and checks that chronyd reports its
// measurements as interleaved.
func TestChronydInterleaved(t *testing.T) {
	for _, tc := range []struct{ network, addr, host string }{
		{"udp4", "127.0.0.1:0", "127.0.0.1"},
		{"udp6", "[::1]:0", "::1"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			s, port := serveXleave(t, tc.network, tc.addr)
			sock := startChronydClient(t, fmt.Sprintf("server %s port %d iburst xleave minpoll -4 maxpoll -4", tc.host, port))
			out := waitInterleaved(t, sock)
			t.Logf("chronyc ntpdata:\n%s", out)
			if m := totalGoodRE.FindStringSubmatch(out); m == nil || m[1] == "0" {
				t.Fatalf("chronyd accepted no measurement:\n%s", out)
			}
			checkXleaveStats(t, s)
		})
	}
}

// TestChronydInterleavedOff is the control: with interleaved mode turned
// off, chronyd's xleave measurements are basic ones.
func TestChronydInterleavedOff(t *testing.T) {
	s, port := serveXleaveOpts(t, "udp4", "127.0.0.1:0", true)
	sock := startChronydClient(t, fmt.Sprintf("server 127.0.0.1 port %d iburst xleave minpoll -4 maxpoll -4", port))
	chronyc := RequireTool(t, "chronyc")
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		out, err := exec.CommandContext(ctx, chronyc, "-h", sock, "-n", "ntpdata").CombinedOutput()
		cancel()
		good := 0
		if m := totalGoodRE.FindStringSubmatch(string(out)); err == nil && m != nil {
			good, _ = strconv.Atoi(m[1])
		}
		if good >= 5 {
			if interleavedRE.Match(out) {
				t.Fatalf("interleaved measurement from a server with interleaved mode off:\n%s", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chronyd took no 5 good measurements within 30 s:\n%s", out)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if st := s.Stats(); st.Interleaved != 0 || st.KernelTxStamps != 0 {
		t.Fatalf("stats %+v: interleaved replies or kernel stamps with interleaved mode off", st)
	}
}

// TestChronydInterleavedNTS is TestChronydInterleaved over NTS: chronyd
// runs NTS-KE with our KE server (trusting a test CA), then polls our
// NTS-protected server in interleaved mode.
func TestChronydInterleavedNTS(t *testing.T) {
	for _, tc := range []struct{ network, addr, tcp, host string }{
		{"udp4", "127.0.0.1:0", "tcp4", "127.0.0.1"},
		{"udp6", "[::1]:0", "tcp6", "::1"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			pki := ntsketest.New(t)
			keys, err := nts.NewKeyStore(nil, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			mw := nts.NewMiddleware(keys)
			s, port := serveXleave(t, tc.network, tc.addr, mw.Wrap)
			ln, err := net.Listen(tc.tcp, net.JoinHostPort(tc.host, "0"))
			if err != nil {
				t.Fatal(err)
			}
			ke := &nts.KEServer{TLSConfig: pki.ServerConfig(), Keys: keys, NTPPort: port}
			keDone := make(chan error, 1)
			go func() { keDone <- ke.Serve(context.Background(), ln) }()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				ke.Shutdown(ctx)
				if err := <-keDone; !errors.Is(err, server.ErrServerClosed) {
					t.Errorf("KE Serve: %v", err)
				}
			})
			dir := t.TempDir()
			kePort := ln.Addr().(*net.TCPAddr).Port
			sock := startChronydClient(t,
				fmt.Sprintf("server %s iburst nts ntsport %d xleave minpoll -4 maxpoll -4", tc.host, kePort),
				"ntstrustedcerts "+pki.CAFile,
				"ntsdumpdir "+dir,
			)
			out := waitInterleaved(t, sock)
			t.Logf("chronyc ntpdata:\n%s", out)
			if !regexp.MustCompile(`(?m)^Authenticated\s*:\s*Yes$`).MatchString(out) {
				t.Fatalf("chronyd's measurements are not authenticated:\n%s", out)
			}
			if st := mw.Stats(); st.Authenticated == 0 || st.NAKs != 0 {
				t.Fatalf("NTS stats %+v", st)
			}
			checkXleaveStats(t, s)
		})
	}
}

// TestDaemonServesChronydInterleaved runs the standalone daemon with its
// default configuration (interleaved mode on, rate limiting on) and has
// chronyd poll it with xleave once a second, within the rate limit; the
// daemon's metrics count the interleaved replies and kernel stamps.
func TestDaemonServesChronydInterleaved(t *testing.T) {
	RequireTool(t, "chronyd")
	bin := BuildDaemon(t)
	port := FreeUDPPort(t)
	d := StartDaemon(t, bin, "-listen", fmt.Sprintf("127.0.0.1:%d", port))
	d.WaitLog(t, "msg=serving", 10*time.Second)
	api := d.APIURL(t)
	sock := startChronydClient(t, fmt.Sprintf("server 127.0.0.1 port %d iburst xleave minpoll 0 maxpoll 0", port))
	out := waitInterleaved(t, sock)
	t.Logf("chronyc ntpdata:\n%s", out)
	_, _, metrics := apiGet(t, api+"/metrics", "")
	if v := metricValue(t, string(metrics), "ntpkit_interleaved_replies_total"); v < 1 {
		t.Fatalf("ntpkit_interleaved_replies_total %v", v)
	}
	if v := metricValue(t, string(metrics), "ntpkit_kernel_tx_timestamps_total"); runtime.GOOS == "linux" && v < 1 {
		t.Fatalf("ntpkit_kernel_tx_timestamps_total %v", v)
	}
	d.Stop(t)
}

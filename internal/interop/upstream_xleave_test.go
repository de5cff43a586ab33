package interop

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntpclient"
	"github.com/ntpkit/ntpkit/internal/ntske/ntsketest"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/symkey"
	"github.com/ntpkit/ntpkit/upstream"
)

// xleaveSamples is how many samples the interleaved tests wait for: the
// first two replies are basic (the server has no transmit time saved for
// us yet), the third is interleaved but completes an exchange that gave
// a basic sample already, and every later one is an interleaved sample.
const xleaveSamples = 10

// waitXleaveSamples waits up to 30 s for d's only source to have n
// samples, the last one interleaved unless basic is set, and returns its
// status.
func waitXleaveSamples(t *testing.T, d *upstream.Discipliner, n uint64, basic bool) upstream.SourceStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := d.Status().Sources[0]
		if s.Samples >= n && (basic || s.Interleaved) {
			return s
		}
		if time.Now().After(deadline) {
			if s.Samples < n {
				t.Fatalf("fewer than %d samples after 30 s: %+v", n, s)
			}
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkInterleaved asserts that all but the first two samples of s were
// interleaved, the last one included, and that no reply was refused. A
// reply that comes too late (a loaded test machine) makes the next one
// basic: each timeout excuses one more basic sample, and one late reply.
func checkInterleaved(t *testing.T, s upstream.SourceStatus) {
	t.Helper()
	r := s.Rejects
	if !s.Interleaved || s.Samples-s.InterleavedSamples > 2+r.Timeout {
		t.Fatalf("%d of %d samples interleaved (last: %v, timeouts %d); want all but the first two", s.InterleavedSamples, s.Samples, s.Interleaved, r.Timeout)
	}
	if r.BadOrigin > r.Timeout || r.BadTime != 0 || r.Auth != 0 {
		t.Fatalf("rejects %+v", r)
	}
}

// TestDisciplinerInterleavedWithChronyd: chronyd -x serves interleaved
// mode by default; our Discipliner, polling it every 500 ms over IPv4
// and IPv6 loopback, must get interleaved samples after its first few
// exchanges, and none with interleaved mode off.
func TestDisciplinerInterleavedWithChronyd(t *testing.T) {
	port := FreeUDPPort(t)
	StartChronydServer(t, port, "bindaddress ::1", "allow ::1")
	for _, host := range []string{"127.0.0.1", "::1"} {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		waitNTP(t, addr)
		t.Run(host, func(t *testing.T) {
			var log syncBuffer
			d := runXleaveDiscipliner(t, upstream.Addresses(addr), upstream.Options{Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
			s := waitXleaveSamples(t, d, xleaveSamples, false)
			if t.Failed() {
				return
			}
			defer func() {
				if t.Failed() {
					t.Logf("log:\n%s", log.String())
				}
			}()
			checkInterleaved(t, s)
			t.Logf("%s: %d of %d samples interleaved; median |offset| of the next 8 samples %v", host, s.InterleavedSamples, s.Samples, medianOffset(t, d, 8))
		})
	}
	t.Run("off", func(t *testing.T) {
		d := runXleaveDiscipliner(t, upstream.Addresses(fmt.Sprintf("127.0.0.1:%d", port)), upstream.Options{DisableInterleaved: true})
		s := waitXleaveSamples(t, d, 4, true)
		if s.InterleavedSamples != 0 || s.Interleaved {
			t.Fatalf("interleaved mode off, yet %d interleaved samples", s.InterleavedSamples)
		}
		// For the record: the offsets of basic samples on loopback, to
		// compare with the interleaved ones logged above.
		t.Logf("basic: median |offset| of the next 8 samples %v", medianOffset(t, d, 8))
	})
}

// medianOffset returns the median |offset| of the next n samples of d's
// only source.
func medianOffset(t *testing.T, d *upstream.Discipliner, n int) time.Duration {
	t.Helper()
	var offs []time.Duration
	last := d.Status().Sources[0].Samples
	deadline := time.Now().Add(30 * time.Second)
	for len(offs) < n && time.Now().Before(deadline) {
		if s := d.Status().Sources[0]; s.Samples != last {
			last = s.Samples
			offs = append(offs, s.Offset.Abs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(offs) == 0 {
		t.Fatal("no samples in 30 s")
	}
	slices.Sort(offs)
	return offs[len(offs)/2]
}

// runXleaveDiscipliner runs a Discipliner polling every 500 ms with o's
// other settings until the test ends.
func runXleaveDiscipliner(t *testing.T, servers []upstream.Source, o upstream.Options) *upstream.Discipliner {
	t.Helper()
	o.MinPoll, o.MaxPoll = 500*time.Millisecond, 500*time.Millisecond
	d, err := upstream.New(servers, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return d
}

// TestDisciplinerInterleavedWithChronydOverNTS: interleaved mode with
// NTS-authenticated requests and replies (chronyd -x serving NTS).
func TestDisciplinerInterleavedWithChronydOverNTS(t *testing.T) {
	pki := ntsketest.New(t)
	ntpPort, kePort := FreeUDPPort(t), freeTCPPort(t)
	StartChronydServer(t, ntpPort,
		fmt.Sprintf("ntsport %d", kePort),
		"ntsserverkey "+pki.KeyFile,
		"ntsservercert "+pki.CertFile,
		"ntsdumpdir "+t.TempDir(),
	)
	keAddr := fmt.Sprintf("127.0.0.1:%d", kePort)
	waitTCP(t, keAddr)
	d := runAuthDiscipliner(t, []upstream.Source{{Address: keAddr, NTS: true, TLSConfig: pki.ClientConfig()}}, nil)
	s := waitXleaveSamples(t, d, xleaveSamples, false)
	checkInterleaved(t, s)
	if s.Rejects.NTSNAK != 0 || s.Rejects.KEFailed != 0 {
		t.Fatalf("NTS rejects %+v", s.Rejects)
	}
}

// TestDisciplinerInterleavedWithChronydWithKey: interleaved mode with
// symmetric-key MACs on requests and replies.
func TestDisciplinerInterleavedWithChronydWithKey(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "chrony.keys")
	if err := os.WriteFile(keyFile, []byte("3 SHA256 HEX:4D2A6F0E8B1C3D5E7F9A0B2C4D6E8F10213243546576879A8B9CADBECFD0E1F2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := symkey.LoadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	port := FreeUDPPort(t)
	StartChronydServer(t, port, "keyfile "+keyFile)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitNTP(t, addr)
	key, ok := keys.Lookup(3)
	if !ok {
		t.Fatal("key 3 not loaded")
	}
	d := runAuthDiscipliner(t, []upstream.Source{{Address: addr, Key: key}}, nil)
	checkInterleaved(t, waitXleaveSamples(t, d, xleaveSamples, false))
}

// serverInterleaves probes the NTP server at addr by hand: a basic
// request, one that asks for interleaved mode (the server saves its
// reply's transmit time), and one more; it reports whether the third
// reply is interleaved (echoes the receive timestamp sent).
func serverInterleaves(t *testing.T, addr string) bool {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1024)
	var prev ntpwire.Packet
	for i := range 3 {
		req, err := ntpclient.Request(nil, 4)
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			if err := ntpclient.Interleave(&req, nil, prev.RecvTime, ntpwire.TimeOf(time.Now())); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Write(req.AppendTo(nil)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		p, _, _, err := ntpclient.ReadReplyEither(ntpclient.Reader(c), buf, req.XmitTime, req.RecvTime|boolTime(i == 0), nil)
		if err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
		if i == 2 {
			return req.RecvTime != 0 && p.OrigTime == req.RecvTime
		}
		prev = p
	}
	return false
}

// boolTime makes a basic request's zero receive timestamp unmatchable.
func boolTime(b bool) ntpwire.Time {
	if b {
		return ^ntpwire.Time(0)
	}
	return 0
}

// TestDisciplinerInterleavedWithOurServer: our Discipliner against our
// own server on loopback, IPv4 and IPv6. Interleaved requests must never
// confuse it (no timeouts, no refused replies); when the server serves
// interleaved mode (probed by hand first), the samples must be
// interleaved after the first few exchanges, as with chronyd.
func TestDisciplinerInterleavedWithOurServer(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			pc, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
			if err != nil {
				t.Skipf("no %s loopback: %v", host, err)
			}
			srv := &server.Server{Source: server.NewLocalSource(nil, 1)}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); srv.Serve(ctx, pc) }()
			t.Cleanup(func() { cancel(); srv.Shutdown(context.Background()); <-done })
			addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
			addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
			xl := serverInterleaves(t, addr.String())
			d := runAuthDiscipliner(t, upstream.Addresses(addr.String()), nil)
			s := waitXleaveSamples(t, d, xleaveSamples, !xl)
			if r := s.Rejects; r.BadOrigin > r.Timeout || r.BadTime != 0 {
				t.Fatalf("rejects %+v", r)
			}
			if !xl {
				t.Logf("the server answers basic mode only: %d samples, none interleaved expected (got %d)", s.Samples, s.InterleavedSamples)
				if s.InterleavedSamples != 0 {
					t.Fatalf("%d interleaved samples from a server that answers basic mode", s.InterleavedSamples)
				}
				return
			}
			checkInterleaved(t, s)
			t.Logf("%s: %d of %d samples interleaved, last offset %v, delay %v", host, s.InterleavedSamples, s.Samples, s.Offset, s.Delay)
		})
	}
}

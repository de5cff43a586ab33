package upstream_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/internal/ntske/ntsketest"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/auth"
	"github.com/ntpkit/ntpkit/server/nts"
	"github.com/ntpkit/ntpkit/server/symkey"
	"github.com/ntpkit/ntpkit/upstream"
)

// shiftedClock is the system clock moved by a settable amount: it lets a
// test age an NTS KeyStore's keys without waiting.
type shiftedClock struct{ shift atomic.Int64 }

func (c *shiftedClock) Now() time.Time { return time.Now().Add(time.Duration(c.shift.Load())) }

// serveNTP runs a stratum-3 server of the system clock on 127.0.0.1
// behind the middleware mw (none when nil) and returns its port.
func serveNTP(t *testing.T, mw server.Middleware) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	src := server.NewLocalSource(clock.System{}, 3)
	h := server.Responder()
	if mw != nil {
		h = server.Chain(h, mw)
	}
	s := &server.Server{Source: src, Handler: h}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), pc) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("NTP Serve: %v", err)
		}
		pc.Close()
	})
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// ntsUpstream is our NTS server on loopback: an NTS-KE server naming an
// NTP port, and (unless plain) an NTP server behind nts.Middleware.
type ntsUpstream struct {
	pki    *ntsketest.PKI
	clk    *shiftedClock // the KeyStore's clock
	ke     *nts.KEServer
	mw     *nts.Middleware
	keAddr string
}

// startNTS starts an NTS upstream. With plain set, the NTP port the KE
// server names is an ordinary server that answers without NTS.
func startNTS(t *testing.T, plain bool) *ntsUpstream {
	t.Helper()
	u := &ntsUpstream{pki: ntsketest.New(t), clk: &shiftedClock{}}
	keys, err := nts.NewKeyStore(nil, time.Hour, u.clk)
	if err != nil {
		t.Fatal(err)
	}
	u.mw = nts.NewMiddleware(keys)
	var port int
	if plain {
		port = serveNTP(t, nil)
	} else {
		port = serveNTP(t, u.mw.Wrap)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.ke = &nts.KEServer{TLSConfig: u.pki.ServerConfig(), Keys: keys, NTPServer: "127.0.0.1", NTPPort: port}
	done := make(chan error, 1)
	go func() { done <- u.ke.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		u.ke.Shutdown(ctx)
		if err := <-done; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("KE Serve: %v", err)
		}
	})
	u.keAddr = ln.Addr().String()
	return u
}

// runServers starts a Discipliner for servers polling every 100 ms.
func runServers(t *testing.T, servers []upstream.Source) *upstream.Discipliner {
	t.Helper()
	d, err := upstream.New(servers, upstream.Options{MinPoll: 100 * time.Millisecond, MaxPoll: 100 * time.Millisecond})
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

func TestNTSSourceSyncs(t *testing.T) {
	u := startNTS(t, false)
	d := runServers(t, []upstream.Source{{Address: u.keAddr, NTS: true, TLSConfig: u.pki.ClientConfig()}})
	waitFor(t, 10*time.Second, "synchronisation over NTS", d.Synchronized)
	if ref := d.Reference(); ref.Stratum != 4 {
		t.Errorf("stratum %d, want 4", ref.Stratum)
	}
	s := d.Status().Sources[0]
	if s.Addr.String() != "127.0.0.1:"+strconv.Itoa(u.ke.NTPPort) || s.Name != u.keAddr || s.Samples == 0 {
		t.Errorf("source %+v: want the NTP address from NTS-KE, the KE address as name, samples", s)
	}
	if s.Rejects.Auth != 0 || s.Rejects.NTSNAK != 0 || s.Rejects.KEFailed != 0 {
		t.Errorf("rejects %+v", s.Rejects)
	}
	if st := u.mw.Stats(); st.Authenticated < s.Samples {
		t.Errorf("server authenticated %d requests, source took %d samples", st.Authenticated, s.Samples)
	}
	if st := u.ke.Stats(); st.Served != 1 {
		t.Errorf("%d NTS-KE sessions, want 1 (cookies are replenished)", st.Served)
	}
}

// TestNTSUnauthenticatedRepliesIgnored: the KE server names an NTP
// server that answers without NTS. Its replies echo our transmit
// timestamp but carry no authenticator: none may be used, each is
// counted, and once the cookies are spent the source runs NTS-KE again.
func TestNTSUnauthenticatedRepliesIgnored(t *testing.T) {
	u := startNTS(t, true)
	d := runServers(t, []upstream.Source{{Address: u.keAddr, NTS: true, TLSConfig: u.pki.ClientConfig()}})
	waitFor(t, 15*time.Second, "a second NTS-KE session after the cookies ran out", func() bool {
		return u.ke.Stats().Served >= 2 && d.Status().Sources[0].Rejects.Auth >= 8
	})
	st := d.Status()
	if s := st.Sources[0]; st.Synchronized || s.Samples != 0 || s.Reach != 0 {
		t.Fatalf("unauthenticated replies were used: %+v", st)
	}
}

// TestNTSNAKRenewsSession: the server's cookie keys move on (its clock
// jumps ten rotations), so it answers our cookies with NTS NAKs; the
// source must run NTS-KE again and keep getting authenticated samples.
func TestNTSNAKRenewsSession(t *testing.T) {
	u := startNTS(t, false)
	d := runServers(t, []upstream.Source{{Address: u.keAddr, NTS: true, TLSConfig: u.pki.ClientConfig()}})
	waitFor(t, 10*time.Second, "synchronisation over NTS", d.Synchronized)
	u.clk.shift.Store(int64(10 * time.Hour))
	before := d.Status().Sources[0].Samples
	waitFor(t, 10*time.Second, "a NAK, a new session and new samples", func() bool {
		s := d.Status().Sources[0]
		return s.Rejects.NTSNAK >= 1 && u.ke.Stats().Served >= 2 && s.Samples >= before+3
	})
	if st := u.mw.Stats(); st.NAKs == 0 {
		t.Errorf("server stats %+v: no NAK sent", st)
	}
}

func TestNTSUntrustedCertificate(t *testing.T) {
	u := startNTS(t, false)
	// The test CA is not in the system roots.
	d := runServers(t, []upstream.Source{{Address: u.keAddr, NTS: true}})
	waitFor(t, 10*time.Second, "failed NTS-KE sessions", func() bool { return d.Status().Sources[0].Rejects.KEFailed >= 2 })
	if d.Synchronized() || u.mw.Stats().Authenticated != 0 {
		t.Fatalf("synchronised without a trusted certificate: %+v", d.Status())
	}
}

func mustKey(t *testing.T, id uint32, typ symkey.Type, secret string) *symkey.Key {
	t.Helper()
	k, err := symkey.NewKey(id, typ, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSymmetricKeySource(t *testing.T) {
	serverKey := mustKey(t, 7, symkey.AES128, "0123456789abcdef")
	keys, err := symkey.NewKeys(serverKey, mustKey(t, 8, symkey.SHA1, "other secret"))
	if err != nil {
		t.Fatal(err)
	}
	mac := &auth.MAC{Keys: keys, CryptoNAK: true}
	port := serveNTP(t, mac.Wrap)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	plain := "127.0.0.1:" + strconv.Itoa(serveNTP(t, nil))

	for _, tc := range []struct {
		name   string
		server upstream.Source
		sync   bool
	}{
		{"right key", upstream.Source{Address: addr, Key: mustKey(t, 7, symkey.AES128, "0123456789abcdef")}, true},
		{"wrong secret", upstream.Source{Address: addr, Key: mustKey(t, 7, symkey.AES128, "fedcba9876543210")}, false},
		{"unknown key", upstream.Source{Address: addr, Key: mustKey(t, 9, symkey.SHA256, "whatever")}, false},
		{"server without keys", upstream.Source{Address: plain, Key: mustKey(t, 7, symkey.AES128, "0123456789abcdef")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := runServers(t, []upstream.Source{tc.server})
			if tc.sync {
				waitFor(t, 10*time.Second, "synchronisation with a MAC", d.Synchronized)
				if s := d.Status().Sources[0]; s.Rejects.Auth != 0 || s.Samples == 0 {
					t.Fatalf("source %+v", s)
				}
				return
			}
			waitFor(t, 10*time.Second, "rejected replies", func() bool { return d.Status().Sources[0].Rejects.Auth >= 4 })
			if s := d.Status().Sources[0]; d.Synchronized() || s.Samples != 0 {
				t.Fatalf("used replies without a valid MAC: %+v", s)
			}
		})
	}
	if st := mac.Stats(); st.Authenticated == 0 || st.BadMAC == 0 || st.UnknownKey == 0 || st.CryptoNAKs == 0 {
		t.Errorf("server MAC stats %+v", st)
	}
}

func TestNewRejectsBadSources(t *testing.T) {
	key := mustKey(t, 1, symkey.SHA1, "secret")
	for _, tc := range []struct {
		servers []upstream.Source
		want    string
	}{
		{[]upstream.Source{{Address: "a.example", NTS: true, Key: key}}, "cannot be combined"},
		{[]upstream.Source{{Address: "a.example", TLSConfig: &tls.Config{}}}, "only for NTS"},
		{[]upstream.Source{{Address: "ok.example"}, {Address: "", NTS: true}}, "sources[1]"},
		{[]upstream.Source{{Address: "a.example:0", Key: key}}, "port"},
		{nil, "no sources"},
	} {
		_, err := upstream.New(tc.servers, upstream.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.servers, err, tc.want)
		}
	}
	// The NTS-KE port defaults to 4460; Status names the KE server and
	// lists the sources in the order they were configured.
	d, err := upstream.New([]upstream.Source{{Address: "192.0.2.1", NTS: true}, {Address: "nts.example", NTS: true}, {Address: "192.0.2.2"}}, upstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range d.Status().Sources {
		names = append(names, s.Name+"@"+s.Addr.String())
	}
	if got, want := strings.Join(names, " "), "192.0.2.1:4460@invalid AddrPort nts.example:4460@invalid AddrPort 192.0.2.2@192.0.2.2:123"; got != want {
		t.Errorf("sources %q, want %q", got, want)
	}
}

package nts

import (
	"context"
	"github.com/ntpkit/ntpkit/ntpwire"
	"net"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/internal/aessiv"
	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/servertest"
)

// TestNTSSocketPathAllocations counts the allocations of whole NTS
// exchanges over a real loopback socket: the server reads the request,
// opens the cookie, verifies the authenticator, seals a reply with fresh
// cookies and sends it. The client replays one prepared request and only
// reads, so every allocation counted is the server's.
func TestNTSSocketPathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	f := newFixture(t)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveUDP(t, f.h, pc)
	c, err := net.DialUDP("udp4", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := servertest.ClientPacket(time.Now())
	req := ntske.ClientRequest(nil, &p, uid, f.cookie, 7, f.c2s)
	buf := make([]byte, 2048)
	var n int
	roundTrip := func() {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if n, err = c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	roundTrip() // warm up
	cookies, err := ntske.VerifyReply(buf[:n], uid, f.s2c)
	if err != nil || len(cookies) != 8 {
		t.Fatalf("reply: %d cookies, %v; want 8 cookies", len(cookies), err)
	}
	allocs := testing.AllocsPerRun(500, roundTrip)
	if _, err := ntske.VerifyReply(buf[:n], uid, f.s2c); err != nil {
		t.Fatalf("last reply: %v", err)
	}
	if allocs != 0 {
		t.Fatalf("an NTS request over a real socket allocates %v times, want 0", allocs)
	}

	// A client the key cache has not seen costs its key cache entry,
	// which holds its two AEADs; where they use crypto/aes instead of
	// the assembly, it also allocates each of their four expanded keys.
	const clients = 200
	reqs := make([][]byte, clients)
	for i := range reqs {
		k1, k2 := make([]byte, 32), make([]byte, 32)
		k1[0], k1[1], k2[0] = byte(i), byte(i>>8), 1
		ck, err := f.keys.SealCookie(nil, k1, k2)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := aessiv.New(k1)
		reqs[i] = ntske.ClientRequest(nil, &p, uid, ck, 7, a)
	}
	i := 0
	cold := testing.AllocsPerRun(clients-1, func() {
		req = reqs[i]
		i++
		roundTrip()
	})
	t.Logf("allocations per NTS request: %v from a cached client, %v from a new one", allocs, cold)
	want := 5.0
	if aessiv.Accelerated() {
		want = 1
	}
	if cold > want {
		t.Fatalf("a new client's NTS request allocates %v times, want at most %v", cold, want)
	}
}

// sealWriter is a ResponseWriter that seals into one reused buffer.
type sealWriter struct{ buf []byte }

func (w *sealWriter) Reply(ntpwire.Packet) error { return nil }
func (w *sealWriter) Kiss(ntpwire.RefID) error   { return nil }
func (w *sealWriter) ReplySealed(p ntpwire.Packet, seal func([]byte) ([]byte, error)) error {
	out, err := seal(p.AppendTo(w.buf[:0]))
	w.buf = out[:0]
	return err
}

// BenchmarkNTSRequest measures the NTS middleware's work for one request
// from a cached client: open the cookie, verify the authenticator, seal
// one fresh cookie and the reply's authenticator.
func BenchmarkNTSRequest(b *testing.B) {
	f := newFixture(b)
	p := clientPacket(f)
	raw := ntske.ClientRequest(nil, &p, uid, f.cookie, 0, f.c2s)
	var q ntpwire.Packet
	q.Decode(raw)
	req := &server.Request{Packet: q, Raw: raw, Received: f.clk.Now()}
	w := &sealWriter{buf: make([]byte, 0, server.MaxPacket)}
	b.ReportAllocs()
	for b.Loop() {
		f.h.ServeNTP(w, req)
	}
	if st := f.mw.Stats(); st.Authenticated == 0 || st.Cookies == 0 {
		b.Fatalf("stats %+v", st)
	}
}

// BenchmarkNTSLoopback drives a served loopback socket behind the NTS
// middleware with a window of outstanding requests from one client
// socket, plain and NTS-protected; an op is one request answered. The
// difference between the two is what NTS adds on the whole serving path
// (the client, which only writes prepared requests and reads, is in a
// profile too).
func BenchmarkNTSLoopback(b *testing.B) {
	f := newFixture(b)
	srv := &server.Server{Handler: f.h, Sockets: 1, ReadBuffer: 1 << 20}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), pc) }()
	defer func() {
		srv.Shutdown(context.Background())
		<-done
	}()
	p := clientPacket(f)
	for _, bc := range []struct {
		name string
		req  []byte
	}{
		{"plain", p.AppendTo(nil)},
		{"nts", ntske.ClientRequest(nil, &p, uid, f.cookie, 0, f.c2s)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := net.DialUDP("udp4", nil, pc.LocalAddr().(*net.UDPAddr))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			_ = c.SetReadBuffer(1 << 20)
			buf := make([]byte, 2048)
			const window = 16
			c.SetDeadline(time.Now().Add(time.Minute))
			b.ReportAllocs()
			out := 0
			for b.Loop() {
				for out < window {
					if _, err := c.Write(bc.req); err != nil {
						b.Fatal(err)
					}
					out++
				}
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
				out--
			}
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			for ; out > 0; out-- {
				if _, err := c.Read(buf); err != nil {
					break
				}
			}
		})
	}
}

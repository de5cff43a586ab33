package nts

import (
	"net"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server/servertest"
)

// TestNTSBurstAuthenticates sends a burst of NTS requests that the
// server reads in one batch (they are queued before it starts), so that,
// where the kernel reports transmit stamps, its replies leave in pairs
// (server.ResponseWriter.ReplySealed). Every reply must authenticate,
// echo its own request's transmit time and carry T3 ≥ T2.
func TestNTSBurstAuthenticates(t *testing.T) {
	f := newFixture(t)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const burst = 9 // four pairs and one alone
	sent := map[ntpwire.Time]bool{}
	start := time.Now()
	for i := 0; i < burst; i++ {
		p := servertest.ClientPacket(start.Add(time.Duration(i) * time.Millisecond))
		sent[p.XmitTime] = true
		if _, err := c.Write(ntske.ClientRequest(nil, &p, uid, f.cookie, 0, f.c2s)); err != nil {
			t.Fatal(err)
		}
	}
	serveUDP(t, f.h, pc)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	for i := 0; i < burst; i++ {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if _, err := ntske.VerifyReply(buf[:n], uid, f.s2c); err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		var p ntpwire.Packet
		if err := p.Decode(buf[:n]); err != nil {
			t.Fatal(err)
		}
		if !sent[p.OrigTime] {
			t.Fatalf("reply %d answers origin %v: not a request of the burst, or answered twice", i, p.OrigTime)
		}
		delete(sent, p.OrigTime)
		if p.XmitTime.Sub(p.RecvTime) < 0 {
			t.Errorf("reply %d: T3 %v before T2 %v", i, p.XmitTime, p.RecvTime)
		}
	}
}

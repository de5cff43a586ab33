package server

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

// TestControlMessageIO serves loopback sockets through cmIO, the path
// every platform but Linux uses, and checks that replies leave from the
// address each request was sent to: 127.0.0.2 asked on a socket bound to
// 0.0.0.0 must answer from 127.0.0.2, or the client's connected socket
// would never see the reply.
func TestControlMessageIO(t *testing.T) {
	for _, tc := range []struct{ network, laddr, target string }{
		{"udp4", "127.0.0.1:0", "127.0.0.1"},
		{"udp4", "0.0.0.0:0", "127.0.0.2"},
		{"udp6", "[::1]:0", "::1"},
		{"udp6", "[::]:0", "::1"},
	} {
		t.Run(tc.laddr+"->"+tc.target, func(t *testing.T) {
			pc, err := net.ListenPacket(tc.network, tc.laddr)
			if err != nil {
				t.Skipf("cannot listen on %s %s: %v", tc.network, tc.laddr, err)
			}
			defer pc.Close()
			newIO, ok := controlMessageIO(pc.(*net.UDPConn))
			if !ok {
				t.Fatal("no control messages on a UDP socket")
			}
			s := &Server{Source: NewLocalSource(nil, 3)}
			s.init()
			w := s.newWorker(newIO(), 1)
			done := make(chan error, 1)
			go func() { done <- w.run() }()
			defer func() {
				_ = pc.SetReadDeadline(aLongTimeAgo)
				<-done
			}()
			addr := netip.AddrPortFrom(netip.MustParseAddr(tc.target), localAddrPort(pc).Port())
			req := clientRequest(time.Now())
			raw := exchange(t, addr, req.AppendTo(nil), 2*time.Second)
			if raw == nil {
				t.Fatalf("no reply from %v", addr)
			}
			var rep ntpwire.Packet
			if err := rep.Decode(raw); err != nil {
				t.Fatal(err)
			}
			if rep.Mode != ntpwire.ModeServer || rep.Stratum != 3 || rep.OrigTime != req.XmitTime {
				t.Errorf("bad reply %+v", rep)
			}
		})
	}
}

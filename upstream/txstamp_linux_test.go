//go:build linux

package upstream

import (
	"net"
	"testing"
	"time"
)

// TestTxStampsOnLoopback: each request sent through a txStamper on
// loopback gets its own kernel transmit timestamp, taken during the send,
// and receive stamps keep working on the same socket.
func TestTxStampsOnLoopback(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := net.Dial("udp", srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !enableRxStamps(c) {
		t.Fatal("no receive stamps")
	}
	tx := enableTxStamps(c)
	if tx == nil {
		t.Skip("the kernel refused transmit timestamps")
	}
	buf, oob := make([]byte, 64), make([]byte, rxOOBLen)
	for i := range 5 {
		before := time.Now().UnixNano()
		wall, ok, err := tx.write([]byte{byte(i)})
		after := time.Now().UnixNano()
		if err != nil || !ok {
			t.Fatalf("send %d: stamped %v, %v", i, ok, err)
		}
		if wall < before || wall > after {
			t.Fatalf("send %d: stamp %d outside the send, %d–%d", i, wall, before, after)
		}
		// Echo it back: the receive stamp still arrives.
		n, from, err := srv.ReadFromUDP(buf)
		if err != nil || n != 1 || buf[0] != byte(i) {
			t.Fatalf("server read %d %v %v", n, buf[:n], err)
		}
		srv.WriteToUDP(buf[:n], from)
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, rx, err := readStamped(c, buf, oob)
		if err != nil || n != 1 || rx.UnixNano() < wall {
			t.Fatalf("reply %d: %d bytes, rx %v (sent %d), %v", i, n, rx, wall, err)
		}
	}
}

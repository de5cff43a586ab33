//go:build linux

package txstamp

import (
	"net"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pair returns a sending socket with stamps enabled and a receiver, both
// on loopback of the given network.
func pair(t *testing.T, network, addr string) (send *net.UDPConn, recv *net.UDPConn) {
	t.Helper()
	recv, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	t.Cleanup(func() { recv.Close() })
	send, err = net.DialUDP(network, nil, recv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { send.Close() })
	control(t, send, func(fd uintptr) error { return Enable(fd) })
	return send, recv
}

func control(t *testing.T, c *net.UDPConn, f func(fd uintptr) error) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(fd) }); err != nil {
		t.Fatal(err)
	}
	if ferr != nil {
		t.Fatal(ferr)
	}
}

// sendOne sends a datagram, asking for its stamp when stamp is set.
func sendOne(t *testing.T, c *net.UDPConn, stamp bool) {
	t.Helper()
	var oob []byte
	if stamp {
		oob = make([]byte, RequestSpace)
		oob = oob[:PutRequest(oob)]
	}
	if _, _, err := c.WriteMsgUDP([]byte("ntp"), oob, nil); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, c *net.UDPConn, q *Queue) []Stamp {
	t.Helper()
	var all []Stamp
	control(t, c, func(fd uintptr) error {
		for {
			s, err := q.Read(fd)
			if err != nil {
				return err
			}
			if len(s) == 0 {
				return nil
			}
			all = append(all, s...)
		}
	})
	return all
}

func TestStampsOnlyRequested(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"udp4", "127.0.0.1:0"},
		{"udp6", "[::1]:0"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			send, _ := pair(t, tc.network, tc.addr)
			before := time.Now().UnixNano()
			sendOne(t, send, true)
			sendOne(t, send, false)
			sendOne(t, send, true)
			sendOne(t, send, true)
			after := time.Now().UnixNano()
			// Loopback stamps are taken inside the send call; a batch
			// of 2 takes two reads.
			got := readAll(t, send, NewQueue(2))
			if len(got) != 3 {
				t.Fatalf("got %d stamps %v, want 3", len(got), got)
			}
			for i, s := range got {
				if s.ID != uint32(i) {
					t.Errorf("stamp %d has ID %d", i, s.ID)
				}
				if s.Time < before || s.Time > after {
					t.Errorf("stamp %d at %d, outside [%d, %d]", i, s.Time, before, after)
				}
				if i > 0 && s.Time < got[i-1].Time {
					t.Errorf("stamp %d earlier than stamp %d", i, i-1)
				}
			}
		})
	}
}

func TestReset(t *testing.T) {
	send, _ := pair(t, "udp4", "127.0.0.1:0")
	q := NewQueue(8)
	sendOne(t, send, true)
	sendOne(t, send, true)
	if got := readAll(t, send, q); len(got) != 2 || got[1].ID != 1 {
		t.Fatalf("before Reset: %v", got)
	}
	control(t, send, Reset)
	sendOne(t, send, true)
	if got := readAll(t, send, q); len(got) != 1 || got[0].ID != 0 {
		t.Fatalf("after Reset: %v, want one stamp with ID 0", got)
	}
}

// Receive stamps asked for with SO_TIMESTAMPNS keep arriving on a socket
// that reports transmit stamps, and its datagrams still arrive.
func TestReceiveStampsUnaffected(t *testing.T) {
	send, recv := pair(t, "udp4", "127.0.0.1:0")
	control(t, send, func(fd uintptr) error {
		return unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	})
	// The receiver answers to the sender's socket, which has both.
	if _, err := recv.WriteToUDP([]byte("reply"), send.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	oob := make([]byte, 256)
	if err := send.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, oobn, flags, _, err := send.ReadMsgUDP(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "reply" || flags&unix.MSG_CTRUNC != 0 {
		t.Fatalf("read %q flags %#x", buf[:n], flags)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS {
			found = true
		}
	}
	if !found {
		t.Fatalf("no SO_TIMESTAMPNS among %d control messages", len(msgs))
	}
	// Stamp reporting adds at most ReceiveSpace.
	if oobn > unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))+ReceiveSpace {
		t.Errorf("control messages take %d bytes", oobn)
	}
}

func TestReadAllocs(t *testing.T) {
	send, _ := pair(t, "udp4", "127.0.0.1:0")
	q := NewQueue(4)
	rc, err := send.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	oob := make([]byte, RequestSpace)
	oob = oob[:PutRequest(oob)]
	payload := []byte("ntp")
	n := 0
	read := func(fd uintptr) {
		s, _ := q.Read(fd)
		n += len(s)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := send.WriteMsgUDP(payload, oob, nil); err != nil {
			t.Fatal(err)
		}
		_ = rc.Control(read)
	})
	if allocs > 0 && !raceEnabled {
		t.Errorf("send and Read allocate %.1f times", allocs)
	}
	if n < 100 {
		t.Errorf("read %d stamps for 101 datagrams", n)
	}
}

func TestParseRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":      nil,
		"short":      make([]byte, 4),
		"zero len":   make([]byte, 64),
		"bad length": func() []byte { b := make([]byte, 32); (*unix.Cmsghdr)(unsafe.Pointer(&b[0])).SetLen(200); return b }(),
	} {
		if s, ok := parse(b); ok {
			t.Errorf("%s: parsed %v", name, s)
		}
	}
}

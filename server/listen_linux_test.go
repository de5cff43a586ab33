package server

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// intruder binds addr the way a second daemon would, with SO_REUSEPORT.
func intruder(addr string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return serr
	}}
	return lc.ListenPacket(context.Background(), "udp", addr)
}

// TestListenUDPExclusive checks that a second group on the address of a
// running one is refused with ErrAddressInUse, whatever its size.
func TestListenUDPExclusive(t *testing.T) {
	for _, n := range []int{1, 3} {
		conns, err := ListenUDP(context.Background(), "udp", "127.0.0.1:0", n)
		if err != nil {
			t.Fatal(err)
		}
		addr := conns[0].LocalAddr().String()
		if len(conns) != n {
			t.Fatalf("got %d sockets, want %d", len(conns), n)
		}
		for _, m := range []int{1, 2} {
			again, err := ListenUDP(context.Background(), "udp", addr, m)
			if !errors.Is(err, ErrAddressInUse) {
				for _, c := range again {
					c.Close()
				}
				t.Errorf("group of %d on %s: second group of %d: err %v, want ErrAddressInUse", n, addr, m, err)
			}
		}
		// A wildcard bind on the same port conflicts too.
		_, port, _ := net.SplitHostPort(addr)
		if again, err := ListenUDP(context.Background(), "udp4", "0.0.0.0:"+port, 2); !errors.Is(err, ErrAddressInUse) {
			for _, c := range again {
				c.Close()
			}
			t.Errorf("wildcard group on port %s: err %v, want ErrAddressInUse", port, err)
		}
		if n == 1 {
			if c, err := intruder(addr); err == nil {
				c.Close()
				t.Errorf("an SO_REUSEPORT socket joined a single socket on %s", addr)
			}
		}
		for _, c := range conns {
			c.Close()
		}
	}
}

// TestListenUDPIntruderGetsNothing adds a socket to our SO_REUSEPORT group
// as another process of the same user could, sends 300 datagrams from
// many source ports, and checks that all reach our sockets, spread over
// them, and none the intruder.
func TestListenUDPIntruderGetsNothing(t *testing.T) {
	const n, total = 3, 300
	conns, err := ListenUDP(context.Background(), "udp", "127.0.0.1:0", n)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	addr := conns[0].LocalAddr().String()
	in, err := intruder(addr)
	if err != nil {
		t.Fatalf("intruder could not bind (the test needs it to): %v", err)
	}
	defer in.Close()

	var ours [n]atomic.Int64
	var theirs atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(3 * time.Second)
	read := func(pc net.PacketConn, count *atomic.Int64) {
		defer wg.Done()
		pc.SetReadDeadline(deadline)
		buf := make([]byte, 64)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			count.Add(1)
		}
	}
	for i, c := range conns {
		wg.Add(1)
		go read(c, &ours[i])
	}
	wg.Add(1)
	go read(in, &theirs)
	for i := range total {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{byte(i), 1, 2, 3})
		c.Close()
	}
	sum := func() int64 {
		var s int64
		for i := range ours {
			s += ours[i].Load()
		}
		return s + theirs.Load()
	}
	for sum() < total && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for _, c := range conns {
		c.SetReadDeadline(time.Now())
	}
	in.SetReadDeadline(time.Now())
	wg.Wait()
	t.Logf("ours %d/%d/%d, intruder %d", ours[0].Load(), ours[1].Load(), ours[2].Load(), theirs.Load())
	if theirs.Load() != 0 {
		t.Errorf("intruder received %d of %d datagrams", theirs.Load(), total)
	}
	for i := range ours {
		if ours[i].Load() == 0 {
			t.Errorf("socket %d of our group received nothing", i)
		}
	}
}

// TestListenAndServeRefusesTakenAddress starts a Server and checks that
// a second one on its address fails at once with ErrAddressInUse.
func TestListenAndServeRefusesTakenAddress(t *testing.T) {
	conns, err := ListenUDP(context.Background(), "udp", "127.0.0.1:0", 2)
	if err != nil {
		t.Fatal(err)
	}
	first := &Server{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- first.ServeAll(ctx, conns) }()
	second := &Server{Sockets: 2}
	err = second.ListenAndServe(ctx, conns[0].LocalAddr().String())
	if !errors.Is(err, ErrAddressInUse) {
		t.Errorf("second server: %v, want ErrAddressInUse", err)
	}
	cancel()
	<-done
	for _, c := range conns {
		c.Close()
	}
}

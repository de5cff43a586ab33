package servertest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
)

// Server is a server.Server answering on a loopback UDP socket, for tests
// that need real datagrams: the NTP counterpart of httptest.Server.
type Server struct {
	// Addr is where the server listens: 127.0.0.1 and a free port.
	Addr netip.AddrPort
	// Server is the server being served. Read its Stats; do not change
	// its fields.
	Server *server.Server

	done   chan error
	closed chan struct{}
	err    error
}

// NewServer serves s (a zero server.Server when nil) on 127.0.0.1 and a
// free port until Close. Like httptest.NewServer it panics when it cannot
// listen: a test cannot go on without its server.
func NewServer(s *server.Server) *Server {
	if s == nil {
		s = &server.Server{}
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("servertest: listen on 127.0.0.1: %v", err))
	}
	ts := &Server{
		Addr:   pc.LocalAddr().(*net.UDPAddr).AddrPort(),
		Server: s,
		done:   make(chan error, 1),
		closed: make(chan struct{}),
	}
	go func() { ts.done <- s.Serve(context.Background(), pc) }()
	return ts
}

// Close shuts the server down, waits for Serve to return (it closes the
// socket) and returns Serve's error unless it is server.ErrServerClosed,
// the error of a clean shutdown. Close may be called more than once; later
// calls return the first call's result.
func (ts *Server) Close() error {
	select {
	case <-ts.closed:
		return ts.err
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Server.Shutdown(ctx); err != nil {
		ts.err = fmt.Errorf("servertest: shutdown: %w", err)
	} else if err := <-ts.done; !errors.Is(err, server.ErrServerClosed) {
		ts.err = err
	}
	close(ts.closed)
	return ts.err
}

// Query sends a client request to the server and returns its reply, as
// the package-level Query does.
func (ts *Server) Query(timeout time.Duration) (ntpwire.Packet, error) {
	return Query(ts.Addr.String(), timeout)
}

// Exchange sends req to the server and returns the first datagram that
// comes back, as the package-level Exchange does.
func (ts *Server) Exchange(req []byte, timeout time.Duration) ([]byte, error) {
	return Exchange(ts.Addr.String(), req, timeout)
}

// Query sends an NTPv4 client request with a random transmit timestamp
// to the UDP address addr and returns the first reply that echoes it as
// its origin timestamp, ignoring any other datagram. A kiss-o'-death is a
// reply too: check the reply's Stratum and RefID. When nothing answers
// within timeout the error wraps os.ErrDeadlineExceeded.
func Query(addr string, timeout time.Duration) (ntpwire.Packet, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:]) // never fails (crypto/rand panics instead)
	req := ClientPacket(time.Time{})
	req.XmitTime = ntpwire.Time(binary.BigEndian.Uint64(rnd[:]) | 1) // never zero
	var rep ntpwire.Packet
	c, err := net.Dial("udp", addr)
	if err != nil {
		return rep, fmt.Errorf("servertest: dial %s: %w", addr, err)
	}
	defer c.Close()
	if _, err := c.Write(req.AppendTo(nil)); err != nil {
		return rep, fmt.Errorf("servertest: send to %s: %w", addr, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, server.MaxPacket)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return rep, fmt.Errorf("servertest: no reply from %s: %w", addr, err)
		}
		if rep.Decode(buf[:n]) == nil && rep.Mode == ntpwire.ModeServer && rep.OrigTime == req.XmitTime {
			return rep, nil
		}
	}
}

// Exchange sends the datagram req to the UDP address addr from a new
// socket and returns the first datagram that comes back from addr. When
// nothing comes within timeout the error wraps os.ErrDeadlineExceeded:
// that is how a test sees a dropped request.
func Exchange(addr string, req []byte, timeout time.Duration) ([]byte, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("servertest: dial %s: %w", addr, err)
	}
	defer c.Close()
	if _, err := c.Write(req); err != nil {
		return nil, fmt.Errorf("servertest: send to %s: %w", addr, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("servertest: no reply from %s: %w", addr, err)
	}
	return buf[:n:n], nil
}

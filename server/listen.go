package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// ErrAddressInUse is wrapped by ListenUDP's error when another socket
// already holds the address: another NTP server, or another instance of
// this one.
var ErrAddressInUse = errors.New("server: address already in use by another socket (is another NTP server running?)")

// listenN opens n sockets on addr with lc; after the first, they bind to
// the port the first one got.
func listenN(ctx context.Context, lc net.ListenConfig, network, addr string, n int) ([]net.PacketConn, error) {
	conns := make([]net.PacketConn, 0, n)
	fail := func(err error) ([]net.PacketConn, error) {
		for _, c := range conns {
			c.Close()
		}
		return nil, fmt.Errorf("server: listen %s %s: %w", network, addr, err)
	}
	for i := 0; i < n; i++ {
		pc, err := lc.ListenPacket(ctx, network, addr)
		if err != nil {
			return fail(err)
		}
		conns = append(conns, pc)
		if i == 0 {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return fail(err)
			}
			addr = net.JoinHostPort(host, strconv.Itoa(int(localAddrPort(pc).Port())))
		}
	}
	return conns, nil
}

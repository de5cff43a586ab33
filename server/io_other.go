//go:build !linux

package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// Outside Linux the server reads one datagram per call through
// golang.org/x/net's ipv4/ipv6 packet conns (io_cm.go), with control
// messages so that a socket bound to a wildcard address still replies
// from the address each request was sent to.

func openPacketIO(pc net.PacketConn, batch int, kernelStamps, txStamps bool) (func() packetIO, error) {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return genericIO(pc), nil
	}
	if newIO, ok := controlMessageIO(uc); ok {
		return newIO, nil
	}
	return genericIO(pc), nil
}

// ListenUDP opens a UDP socket on addr. Outside Linux SO_REUSEPORT does
// not spread load, so n is ignored and one socket is returned. The error
// wraps ErrAddressInUse when another socket holds the address.
func ListenUDP(ctx context.Context, network, addr string, n int) ([]net.PacketConn, error) {
	conns, err := listenN(ctx, net.ListenConfig{}, network, addr, 1)
	if errors.Is(err, syscall.EADDRINUSE) {
		err = fmt.Errorf("%w: %w", ErrAddressInUse, err)
	}
	return conns, err
}

//go:build !linux

package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Outside Linux the server reads one datagram per call through
// golang.org/x/net's ipv4/ipv6 packet conns, with control messages so
// that a socket bound to a wildcard address still replies from the
// address each request was sent to.

func openPacketIO(pc net.PacketConn, batch int, kernelStamps bool) (func() packetIO, error) {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return genericIO(pc), nil
	}
	local := localAddrPort(pc)
	if local.Addr().Is4() {
		p := ipv4.NewPacketConn(uc)
		if err := p.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
			return genericIO(pc), nil
		}
		return func() packetIO { return &cmIO4{p: p, local: local} }, nil
	}
	p := ipv6.NewPacketConn(uc)
	if err := p.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
		return genericIO(pc), nil
	}
	return func() packetIO { return &cmIO6{p: p, local: local} }, nil
}

type cmIO4 struct {
	p     *ipv4.PacketConn
	local netip.AddrPort
}

func (c *cmIO4) localPort() uint16 { return c.local.Port() }

func (c *cmIO4) read(in []inMsg) (int, error) {
	m := &in[0]
	n, cm, addr, err := c.p.ReadFrom(m.buf)
	if err != nil {
		return 0, err
	}
	m.n, m.trunc, m.src, m.rxNanos = n, n >= len(m.buf), addrPortOf(addr), 0
	m.dst, m.ifindex = c.local.Addr(), 0
	if cm != nil {
		if a, ok := netip.AddrFromSlice(cm.Dst); ok {
			m.dst = a.Unmap()
		}
		m.ifindex = int32(cm.IfIndex)
	}
	return 1, nil
}

func (c *cmIO4) write(out []outMsg) int {
	failed := 0
	for i := range out {
		o := &out[i]
		var cm *ipv4.ControlMessage
		if c.local.Addr().IsUnspecified() && o.src.IsValid() {
			cm = &ipv4.ControlMessage{Src: o.src.AsSlice(), IfIndex: int(o.ifindex)}
		}
		if _, err := c.p.WriteTo(o.buf, cm, net.UDPAddrFromAddrPort(o.dst)); err != nil {
			failed++
		}
	}
	return failed
}

type cmIO6 struct {
	p     *ipv6.PacketConn
	local netip.AddrPort
}

func (c *cmIO6) localPort() uint16 { return c.local.Port() }

func (c *cmIO6) read(in []inMsg) (int, error) {
	m := &in[0]
	n, cm, addr, err := c.p.ReadFrom(m.buf)
	if err != nil {
		return 0, err
	}
	m.n, m.trunc, m.src, m.rxNanos = n, n >= len(m.buf), addrPortOf(addr), 0
	m.dst, m.ifindex = c.local.Addr(), 0
	if cm != nil {
		if a, ok := netip.AddrFromSlice(cm.Dst); ok {
			m.dst = a.Unmap()
		}
		m.ifindex = int32(cm.IfIndex)
	}
	return 1, nil
}

func (c *cmIO6) write(out []outMsg) int {
	failed := 0
	for i := range out {
		o := &out[i]
		var cm *ipv6.ControlMessage
		if c.local.Addr().IsUnspecified() && o.src.IsValid() {
			a := o.src.As16()
			cm = &ipv6.ControlMessage{Src: a[:], IfIndex: int(o.ifindex)}
		}
		if _, err := c.p.WriteTo(o.buf, cm, net.UDPAddrFromAddrPort(o.dst)); err != nil {
			failed++
		}
	}
	return failed
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

package server

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// The portable UDP path, used outside Linux (io_other.go) and built on
// every platform so that Linux tests exercise it too: one datagram per
// call through golang.org/x/net's ipv4 and ipv6 packet conns, with
// control messages for the destination address and interface.

// controlMessageIO returns cmIOs for uc, or false when uc cannot report
// destination addresses.
func controlMessageIO(uc *net.UDPConn) (func() packetIO, bool) {
	local := localAddrPort(uc)
	var c cmConn
	if local.Addr().Is4() {
		p := ipv4.NewPacketConn(uc)
		if err := p.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true); err != nil {
			return nil, false
		}
		c = cm4{p}
	} else {
		p := ipv6.NewPacketConn(uc)
		if err := p.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true); err != nil {
			return nil, false
		}
		c = cm6{p}
	}
	return func() packetIO { return &cmIO{c: c, local: local} }, true
}

// cmConn is what cmIO needs of an ipv4 or ipv6 packet conn: datagrams
// with their destination address and interface, and replies sent from a
// given address.
type cmConn interface {
	// readFrom reads one datagram into b; dst is nil when the kernel
	// gave no control message.
	readFrom(b []byte) (n int, dst net.IP, ifindex int, src net.Addr, err error)
	// writeTo sends b to dst, from src on interface ifindex when src is
	// valid, else from wherever the kernel chooses.
	writeTo(b []byte, src netip.Addr, ifindex int, dst net.Addr) error
}

type cm4 struct{ p *ipv4.PacketConn }

func (c cm4) readFrom(b []byte) (int, net.IP, int, net.Addr, error) {
	n, cm, src, err := c.p.ReadFrom(b)
	if cm == nil {
		return n, nil, 0, src, err
	}
	return n, cm.Dst, cm.IfIndex, src, err
}

func (c cm4) writeTo(b []byte, src netip.Addr, ifindex int, dst net.Addr) error {
	var cm *ipv4.ControlMessage
	if src.IsValid() {
		cm = &ipv4.ControlMessage{Src: src.AsSlice(), IfIndex: ifindex}
	}
	_, err := c.p.WriteTo(b, cm, dst)
	return err
}

type cm6 struct{ p *ipv6.PacketConn }

func (c cm6) readFrom(b []byte) (int, net.IP, int, net.Addr, error) {
	n, cm, src, err := c.p.ReadFrom(b)
	if cm == nil {
		return n, nil, 0, src, err
	}
	return n, cm.Dst, cm.IfIndex, src, err
}

func (c cm6) writeTo(b []byte, src netip.Addr, ifindex int, dst net.Addr) error {
	var cm *ipv6.ControlMessage
	if src.IsValid() {
		a := src.As16()
		cm = &ipv6.ControlMessage{Src: a[:], IfIndex: ifindex}
	}
	_, err := c.p.WriteTo(b, cm, dst)
	return err
}

// cmIO serves a UDP socket of either family one datagram at a time.
type cmIO struct {
	c     cmConn
	local netip.AddrPort
}

func (c *cmIO) localPort() uint16 { return c.local.Port() }

func (c *cmIO) read(in []inMsg) (int, error) {
	m := &in[0]
	n, dst, ifindex, addr, err := c.c.readFrom(m.buf)
	if err != nil {
		return 0, err
	}
	m.n, m.trunc, m.src, m.rxNanos = n, n >= len(m.buf), addrPortOf(addr), 0
	m.dst, m.ifindex = c.local.Addr(), int32(ifindex)
	if a, ok := netip.AddrFromSlice(dst); ok {
		m.dst = a.Unmap()
	}
	return 1, nil
}

func (c *cmIO) write(out []outMsg) int {
	failed := 0
	for i := range out {
		o := &out[i]
		// Only a wildcard socket needs to be told which address to
		// reply from.
		src := netip.Addr{}
		if c.local.Addr().IsUnspecified() {
			src = o.src
		}
		if err := c.c.writeTo(o.buf, src, int(o.ifindex), net.UDPAddrFromAddrPort(o.dst)); err != nil {
			failed++
		}
	}
	return failed
}

package server

import (
	"net"
	"net/netip"
)

// genericIO serves any net.PacketConn one datagram at a time. It is the
// fallback for connections that are not UDP sockets (and for platforms
// without batched I/O): it allocates an address per read and knows the
// destination address only as the socket's own.
func genericIO(pc net.PacketConn) func() packetIO {
	local := localAddrPort(pc)
	return func() packetIO { return &plainIO{pc: pc, local: local} }
}

type plainIO struct {
	pc    net.PacketConn
	local netip.AddrPort
}

func (p *plainIO) localPort() uint16 { return p.local.Port() }

func (p *plainIO) read(in []inMsg) (int, error) {
	m := &in[0]
	n, addr, err := p.pc.ReadFrom(m.buf)
	if err != nil {
		return 0, err
	}
	m.n = n
	m.trunc = n >= len(m.buf)
	m.src = addrPortOf(addr)
	m.dst = p.local.Addr()
	m.ifindex = 0
	m.rxNanos = 0
	return 1, nil
}

func (p *plainIO) write(out []outMsg) int {
	failed := 0
	for i := range out {
		if _, err := p.pc.WriteTo(out[i].buf, net.UDPAddrFromAddrPort(out[i].dst)); err != nil {
			failed++
		}
	}
	return failed
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ua, ok := a.(*net.UDPAddr); ok {
		ap := ua.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

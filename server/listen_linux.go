package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// ListenUDP opens n UDP sockets bound to addr that share it with
// SO_REUSEPORT, so the kernel spreads requests over them. network is
// "udp", "udp4" or "udp6". With port 0, all n share the port the first
// one was given.
//
// The address is ours alone. The first socket is bound without
// SO_REUSEPORT, so ListenUDP fails with an error wrapping
// ErrAddressInUse when any other socket, of this process or another,
// already holds the address: a second daemon cannot silently join the
// group and take part of the traffic. Only then is SO_REUSEPORT turned on
// for the other n-1 sockets, and a steering program (classic BPF) hands
// each datagram to one of these n sockets at random, so a socket another
// process of the same user adds to the group later receives nothing. (A
// process of the same user that replaces the program can still steer
// traffic; the kernel gives SO_REUSEPORT groups no stronger guard against
// their own user.) Checking by an exclusive first bind, rather than a
// probe socket closed again, leaves no moment in which another process
// could take the address between the check and our bind.
func ListenUDP(ctx context.Context, network, addr string, n int) ([]net.PacketConn, error) {
	n = max(1, n)
	var lc0 net.ListenConfig
	first, err := lc0.ListenPacket(ctx, network, addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			err = fmt.Errorf("%w: %w", ErrAddressInUse, err)
		}
		return nil, fmt.Errorf("server: listen %s %s: %w", network, addr, err)
	}
	if n == 1 {
		return []net.PacketConn{first}, nil
	}
	fail := func(err error) ([]net.PacketConn, error) {
		first.Close()
		return nil, fmt.Errorf("server: listen %s %s: %w", network, addr, err)
	}
	if err := control(first, func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return fail(fmt.Errorf("set SO_REUSEPORT: %w", err))
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fail(err)
	}
	addr = net.JoinHostPort(host, strconv.Itoa(int(localAddrPort(first).Port())))
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	rest, err := listenN(ctx, lc, network, addr, n-1)
	if err != nil {
		first.Close()
		return nil, err
	}
	conns := append([]net.PacketConn{first}, rest...)
	if err := control(first, func(fd int) error { return attachSteering(fd, n) }); err != nil {
		for _, c := range conns {
			c.Close()
		}
		return nil, fmt.Errorf("server: listen %s %s: attach SO_REUSEPORT steering: %w", network, addr, err)
	}
	return conns, nil
}

// attachSteering attaches to the SO_REUSEPORT group of fd a classic BPF
// program that returns a random index below n: the kernel delivers each
// datagram to the group's socket of that index, that is to one of the n
// sockets that joined first, ours.
func attachSteering(fd, n int) error {
	raw, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtRand},
		bpf.ALUOpConstant{Op: bpf.ALUOpMod, Val: uint32(n)},
		bpf.RetA{},
	})
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, ins := range raw {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &prog)
}

// control runs f on pc's file descriptor.
func control(pc net.PacketConn, f func(fd int) error) error {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return fmt.Errorf("%T has no file descriptor", pc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

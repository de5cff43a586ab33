//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ntpkit/ntpkit/ntpwire"
)

const floodHdr = 20 + 8 // IPv4 and UDP headers

// flood sends client requests from random addresses in cfg.spoof's prefix
// to the target through one raw socket (IP_HDRINCL), in batches of
// cfg.batch, at cfg.rate or as fast as the socket takes them, for
// cfg.duration. It counts what was sent; the replies go to addresses no
// socket listens on.
func flood(cfg *config) (*result, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("raw socket (-spoof needs root): %w", err)
	}
	defer unix.Close(fd)
	if cfg.bufSize > 0 {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, cfg.bufSize)
	}
	b := cfg.batch
	const pktLen = floodHdr + ntpwire.HeaderLen
	buf := make([]byte, b*pktLen)
	iov := make([]unix.Iovec, b)
	hdrs := make([]mmsghdr, b)
	dst := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: cfg.target.Addr().As4()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&dst.Port))[:], cfg.target.Port())
	req := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, Poll: 6, Precision: -20}
	dstIP := cfg.target.Addr().As4()
	for i := 0; i < b; i++ {
		p := buf[i*pktLen : (i+1)*pktLen]
		// IPv4: version/IHL, TOS, total length, ID (kernel fills 0),
		// flags+fragment, TTL, protocol, checksum (kernel fills),
		// source (per packet), destination.
		p[0], p[8], p[9] = 0x45, 64, unix.IPPROTO_UDP
		binary.BigEndian.PutUint16(p[2:], pktLen)
		copy(p[16:20], dstIP[:])
		// UDP: ports, length, checksum 0 (none, allowed over IPv4).
		binary.BigEndian.PutUint16(p[22:], cfg.target.Port())
		binary.BigEndian.PutUint16(p[24:], 8+ntpwire.HeaderLen)
		req.AppendTo(p[floodHdr:floodHdr])
		iov[i].Base = &p[0]
		iov[i].SetLen(pktLen)
		hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&dst))
		hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet4
		hdrs[i].hdr.Iov = &iov[i]
		hdrs[i].hdr.SetIovlen(1)
	}
	base := binary.BigEndian.Uint32(cfg.flood.prefix.Addr().AsSlice())
	hostBits := 32 - cfg.flood.prefix.Bits()
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	res := &result{}
	res.init()
	start := nowNanos()
	end := start + int64(cfg.duration)
	for {
		now := nowNanos()
		if now >= end {
			break
		}
		n := b
		if cfg.rate > 0 {
			due := int(cfg.rate*float64(now-start)/1e9) - int(res.sent)
			if due <= 0 {
				time.Sleep(100 * time.Microsecond)
				continue
			}
			n = min(n, due)
		}
		for i := 0; i < n; i++ {
			p := buf[i*pktLen:]
			src := base
			if hostBits > 0 {
				src |= uint32(rnd.Uint64()) & (1<<hostBits - 1)
			}
			binary.BigEndian.PutUint32(p[12:], src)
			binary.BigEndian.PutUint16(p[20:], uint16(1024+rnd.IntN(64512)))
			ntpwire.PutXmitTime(p[floodHdr:], ntpwire.Time(rnd.Uint64()))
		}
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(n), 0, 0, 0)
		if errno != 0 {
			res.sendErrors++
			continue
		}
		res.sent += uint64(r)
	}
	res.sendNanos = end - start
	return res, nil
}

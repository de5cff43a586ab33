package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// ErrServerClosed is returned by Serve and ListenAndServe after Shutdown.
var ErrServerClosed = errors.New("server: closed")

// Defaults for Server fields left zero.
const (
	// DefaultBatch is how many datagrams a worker reads or writes per
	// system call where batching is available.
	DefaultBatch = 32
	// MaxPacket is the largest request the server reads whole; larger
	// datagrams are dropped as truncated.
	MaxPacket = 2048
)

// Server reads NTP requests from UDP sockets and answers them through a
// Handler. The zero value serves the system clock as a stratum-10 local
// clock with the plain RFC 5905 responder, and serves interleaved mode to
// clients that ask for it (see the package documentation). A Server may
// serve several sockets at once; its fields must not change once serving
// has begun.
type Server struct {
	// Source is the clock served and its reference data: the one place
	// that decides both. Every Request carries its receive time and
	// reference data from Source, and the writer stamps transmit times
	// from it. Nil means NewLocalSource(clock.System{},
	// DefaultLocalStratum).
	Source Source
	// Handler answers requests. Nil means Responder().
	Handler Handler
	// Logger receives the server's few log lines. Nil means none.
	Logger *slog.Logger
	// Sockets is how many SO_REUSEPORT sockets ListenAndServe opens per
	// address (Linux; elsewhere 1). Zero means one per CPU.
	Sockets int
	// Workers is how many goroutines read each socket. Zero means 1.
	Workers int
	// Batch is the number of datagrams per read or write system call.
	// Zero means DefaultBatch.
	Batch int
	// SendBatch is the most replies sent per system call (sendmmsg on
	// Linux); each basic-mode reply carries the time it is predicted to
	// leave, learnt from the measured duration of earlier sends. One
	// sends each reply on its own, stamped just before its send: the
	// most exact transmit times, at about two thirds of the replies per
	// CPU-second. Zero means DefaultSendBatch.
	SendBatch int
	// ReadBuffer and WriteBuffer set the sockets' kernel buffer sizes in
	// bytes (SO_RCVBUF, SO_SNDBUF). Zero keeps the system default.
	ReadBuffer, WriteBuffer int
	// UserTimestamps makes the server read receive timestamps from its
	// clock after each read instead of asking the kernel for them. By
	// default, where the kernel also reports transmit stamps (Linux), the
	// server asks for one on about one basic reply in 32 and calibrates
	// the transmit times it writes against them, so that they name the
	// moment the kernel sends a reply rather than a moment before the
	// system call; UserTimestamps turns that off too.
	UserTimestamps bool
	// DisableInterleaved turns interleaved mode off: every request gets
	// a basic reply. By default (as in chrony) a client that asks for
	// interleaved mode gets it, with the previous reply's transmit time
	// taken from the kernel where the platform reports it (Linux);
	// clients that do not ask are served as before. See
	// ResponseWriter for the rules.
	DisableInterleaved bool
	// InterleavedTableSize is how many transmit times the server keeps
	// for interleaved clients, rounded up to a power of two (16 bytes
	// each, at most 2^24). Zero means DefaultInterleavedTableSize
	// (2^16, 1 MiB).
	InterleavedTableSize int

	initOnce sync.Once
	src      Source
	handler  Handler
	mapper   clock.SystemMapper // nil: kernel stamps cannot be used
	// uncalibrated turns off the calibration of transmit times against
	// kernel transmit stamps (tests compare with and without).
	uncalibrated bool
	xtable       *txTable // nil: interleaved mode is off
	stats        statsSet

	mu       sync.Mutex
	closed   bool
	conns    map[net.PacketConn]struct{}
	workers  sync.WaitGroup
	shutdown chan struct{}
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.src = s.Source
		if s.src == nil {
			s.src = NewLocalSource(clock.System{}, DefaultLocalStratum)
		}
		s.handler = s.Handler
		if s.handler == nil {
			s.handler = Responder()
		}
		if m, ok := canMapSystem(s.src); ok && !s.UserTimestamps {
			s.mapper = m
		}
		if !s.DisableInterleaved {
			size := s.InterleavedTableSize
			if size <= 0 {
				size = DefaultInterleavedTableSize
			}
			s.xtable = newTxTable(size)
		}
		s.conns = make(map[net.PacketConn]struct{})
		s.shutdown = make(chan struct{})
	})
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return s.stats.sum()
}

// Serve answers requests arriving on pc until Shutdown is called, ctx is
// done, or reading fails.
//
// Serve takes ownership of pc and closes it when it returns, whatever the
// reason (net/http's Server.Serve does the same with its listener). It
// always returns a non-nil error: ErrServerClosed after Shutdown (also
// when Shutdown came first), ctx.Err() when ctx ends, otherwise the error
// that stopped it. When Serve returns, every reply it staged has been
// sent or dropped and pc is closed. nts.KEServer.Serve follows the same
// rule for its listener.
//
// On Linux a *net.UDPConn is served with batched system calls, kernel
// receive timestamps and replies sent from the address each request was
// sent to; elsewhere a *net.UDPConn is read one datagram at a time with
// control messages for the same reply address, and any other PacketConn
// is served with plain reads.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn) error {
	s.init()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		pc.Close()
		return ErrServerClosed
	}
	s.conns[pc] = struct{}{}
	// Count this Serve as a worker while holding the lock that Shutdown
	// takes, so Shutdown's Wait never races with a late Add.
	s.workers.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, pc)
		s.mu.Unlock()
		// Close before Done, so that pc is closed once Shutdown returns.
		pc.Close()
		s.workers.Done()
	}()

	if uc, ok := pc.(*net.UDPConn); ok {
		if s.ReadBuffer > 0 {
			if err := uc.SetReadBuffer(s.ReadBuffer); err != nil {
				return fmt.Errorf("server: set read buffer: %w", err)
			}
		}
		if s.WriteBuffer > 0 {
			if err := uc.SetWriteBuffer(s.WriteBuffer); err != nil {
				return fmt.Errorf("server: set write buffer: %w", err)
			}
		}
	}
	batch := s.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	// Kernel transmit stamps are only worth asking for when interleaved
	// mode can hand them out and the Source can put them on its
	// timescale.
	newIO, err := openPacketIO(pc, batch, s.mapper != nil, s.mapper != nil)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = pc.SetReadDeadline(aLongTimeAgo) })
	defer stop()

	workers := max(1, s.Workers)
	errs := make(chan error, workers)
	for i := 0; i < workers; i++ {
		w := s.newWorker(newIO(), batch)
		go func() { errs <- w.run() }()
	}
	var first error
	for i := 0; i < workers; i++ {
		if err := <-errs; first == nil {
			first = err
			// One worker failing stops its siblings.
			_ = pc.SetReadDeadline(aLongTimeAgo)
		}
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return ErrServerClosed
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("server: read from %v: %w", pc.LocalAddr(), first)
}

// aLongTimeAgo is a deadline in the past, used to unblock reads.
var aLongTimeAgo = time.Unix(1, 0)

// ListenAndServe listens on the UDP address addr ("127.0.0.1:123",
// "[::]:123", ":123") with s.Sockets SO_REUSEPORT sockets and serves them
// all until Shutdown or ctx ends, as ServeAll does. It always returns a
// non-nil error, and the sockets are closed when it returns.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	s.init()
	n := s.Sockets
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	conns, err := ListenUDP(ctx, "udp", addr, n)
	if err != nil {
		return err
	}
	if s.Logger != nil {
		s.Logger.Info("serving NTP", "addr", conns[0].LocalAddr().String(), "sockets", len(conns))
	}
	return s.ServeAll(ctx, conns)
}

// ServeAll serves every conn in conns concurrently, as Serve does for one,
// and returns when all have stopped, with the first error. Like Serve it
// takes ownership of conns: each is closed when ServeAll returns.
func (s *Server) ServeAll(ctx context.Context, conns []net.PacketConn) error {
	errs := make(chan error, len(conns))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, c := range conns {
		go func() {
			err := s.Serve(ctx, c)
			cancel() // one socket failing stops the rest
			errs <- err
		}()
	}
	var first error
	for range conns {
		if err := <-errs; first == nil || errors.Is(first, context.Canceled) {
			first = err
		}
	}
	return first
}

// Shutdown stops the server: reading stops at once, replies already
// being handled are sent, and Shutdown returns when every worker has
// exited and every served conn is closed, or when ctx ends (then with
// ctx.Err()). Serve calls, current and later, return ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.shutdown)
	}
	for pc := range s.conns {
		_ = pc.SetReadDeadline(aLongTimeAgo)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.workers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// packetIO is one worker's view of a socket: batched where the platform
// allows. Each worker has its own, so nothing here is shared.
type packetIO interface {
	// read blocks until at least one datagram arrives and fills in[:n].
	read(in []inMsg) (n int, err error)
	// write sends out[:n]; it reports datagrams that failed via
	// the returned count of failures.
	write(out []outMsg) (failed int)
	// localPort is the socket's local port.
	localPort() uint16
}

// txStamper is implemented by a packetIO that can ask the kernel for
// transmit timestamps of the replies flagged save or probe: it hands
// each stamp, with what the reply left for it, to the sink.
type txStamper interface {
	setTxSink(sink func(sent txSent, ns int64))
	// txStamps reports whether the socket delivers transmit stamps.
	txStamps() bool
}

// txSent is what a reply that asked for a kernel transmit stamp leaves
// for it: for an interleaved save, the table key and the time saved
// (daemon); for a probe, the transmit time the reply carried (daemon)
// and its place in its send.
type txSent struct {
	key, daemon ntpwire.Time
	probe       bool
	place       uint8
}

// inMsg is one received datagram.
type inMsg struct {
	buf     []byte // capacity MaxPacket
	n       int
	trunc   bool
	src     netip.AddrPort
	dst     netip.Addr // zero when unknown
	ifindex int32
	rxNanos int64 // kernel receive stamp (Unix ns, system clock), 0 if none
}

// outMsg is one reply waiting to be sent.
type outMsg struct {
	buf       []byte
	dst       netip.AddrPort
	src       netip.Addr // local address to send from; zero: let the kernel choose
	ifindex   int32
	stampXmit bool // set the transmit timestamp just before sending
	// save: the request asked for interleaved mode; record this reply's
	// transmit time under key (the reply's receive timestamp) and ask
	// the kernel to stamp the datagram.
	save        bool
	interleaved bool // the reply is interleaved (counted when sent)
	key         ntpwire.Time
	daemonTx    ntpwire.Time // the transmit time saved or, for a probe, sent; set by flush
	// probe: ask the kernel to stamp this basic reply, to calibrate the
	// transmit time prediction (leadClock); place is its place in its send.
	probe bool
	place uint8
}

// wantsStamp reports whether the reply asks the kernel for a transmit
// stamp.
func (o *outMsg) wantsStamp() bool { return o.save || o.probe }

// localPort returns the port of the socket w reads.
func (s *Server) localPort(w *worker) uint16 { return w.io.localPort() }

// netipAddrPort joins a destination address and port; a zero address stays
// an invalid AddrPort's address so callers can tell it is unknown.
func netipAddrPort(a netip.Addr, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(a, port)
}

// localAddrPort returns pc's local address as a netip.AddrPort.
func localAddrPort(pc net.PacketConn) netip.AddrPort {
	if ua, ok := pc.LocalAddr().(*net.UDPAddr); ok {
		return ua.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(pc.LocalAddr().String())
	return ap
}

// dropReason classifies a datagram before it reaches the handler; it
// returns nil for a request to hand on.
func classify(c *counters, m *inMsg, p *ntpwire.Packet) bool {
	switch {
	case m.trunc:
		c.truncated.Add(1)
		return false
	case m.n < ntpwire.HeaderLen:
		c.short.Add(1)
		return false
	case m.src.Port() == 0:
		// No reply can reach port 0; answering would only fail to send.
		c.zeroPort.Add(1)
		return false
	}
	_ = p.Decode(m.buf[:m.n])
	switch {
	case p.Version < 1 || p.Version > 4:
		c.version.Add(1)
		return false
	case p.Mode == ntpwire.ModeControl || p.Mode == ntpwire.ModePrivate:
		c.control.Add(1)
		return false
	case p.Mode != ntpwire.ModeClient:
		c.mode.Add(1)
		return false
	}
	if _, err := ntpwire.ParseTrailer(p.Version, m.buf[ntpwire.HeaderLen:m.n]); err != nil {
		c.malformed.Add(1)
		return false
	}
	return true
}

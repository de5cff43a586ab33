// Package daemon assembles ntpkit's parts into a complete NTP daemon: NTP
// service on several addresses through access control, rate limiting and
// authentication (symmetric keys, NTS), serving the local clock or time
// disciplined to upstream servers, with hot reload of the access and
// rate-limit rules and typed snapshots of its health, status and counters.
//
// Options is one plain value describing the daemon; New checks it and
// builds the parts; Run binds the sockets, serves until its context ends
// and waits for everything it started. Reload swaps in new access and
// rate-limit options, and re-reads the NTS certificate, all or nothing.
// Health, Status and Stats are what a management API needs; package
// server/ops serves them over HTTP and package server/metrics turns them
// into Prometheus metrics. Package server/daemon/daemonconfig reads the
// JSON configuration file of examples/standalone into Options.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/clock/kernelsync"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/upstream"
)

// shutdownTimeout bounds how long Run waits for requests and NTS-KE
// sessions in flight when its context ends.
const shutdownTimeout = 5 * time.Second

// ErrRunning is returned by Run when it was called before.
var ErrRunning = errors.New("daemon: Run called twice")

// Daemon is a running (or ready to run) NTP daemon. Create it with New.
// Its methods are safe for concurrent use; Health, Status and Stats never
// take a lock the NTP hot path takes.
type Daemon struct {
	opts   Options
	logger *slog.Logger
	clk    clock.Clock
	src    server.Source
	local  *server.LocalSource   // nil with upstream servers
	kernel kernelsync.Reader     // nil: the kernel is not consulted
	disc   *upstream.Discipliner // nil without upstream servers
	srv    *server.Server
	guards *guards
	authn  *authService

	started time.Time
	ran     atomic.Bool
	serving atomic.Bool
	ready   chan struct{} // closed when Run serves

	addrs  atomic.Pointer[[]string] // bound NTP addresses, set by Run
	keAddr atomic.Pointer[string]   // bound NTS-KE address, set by Run
	mu     sync.Mutex               // serializes Reload and ReloadFailed
	reload reloadState
}

// New checks o and builds the daemon's parts: the source (the local clock
// or an upstream Discipliner, not yet running), the middleware, the
// authentication layers and the NTP server. It reads the NTS certificate;
// it binds nothing.
func New(o Options) (*Daemon, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	o.Listen = slices.Clone(o.Listen)
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	clk := o.Clock
	if clk == nil {
		clk = clock.System{}
	}
	d := &Daemon{opts: o, logger: logger, clk: clk, ready: make(chan struct{}), started: clk.Now()}
	d.reload.begin(d.started)
	d.kernel = o.Local.Kernel
	if _, system := clk.(clock.System); d.kernel == nil && system {
		d.kernel = kernelsync.System{}
	}
	if len(o.Upstream.Servers) == 0 {
		d.local = server.NewLocalSource(clk, o.Local.Stratum)
		if o.Local.RefID != ([4]byte{}) {
			d.local.RefID = o.Local.RefID
		}
		d.local.Kernel = d.kernel
		d.local.WhenUnsynchronized = o.Local.WhenUnsynchronized
		d.src = d.local
	} else {
		uo := o.Upstream.Options
		if uo.Logger == nil {
			uo.Logger = logger
		}
		if uo.Clock == nil {
			uo.Clock = o.Clock
		}
		disc, err := upstream.New(o.Upstream.Servers, uo)
		if err != nil {
			return nil, fmt.Errorf("daemon: upstream: %w", err)
		}
		d.disc, d.src = disc, disc
	}
	var err error
	if d.guards, err = newGuards(o.Access, o.RateLimit, logger); err != nil {
		return nil, err
	}
	if d.authn, err = newAuthService(&o, logger); err != nil {
		return nil, err
	}
	if d.authn.ntsMW != nil {
		// NTS NAKs share the reflection budget with KoDs and leaked
		// replies (RateLimit.KissPerSecond).
		d.authn.ntsMW.SetNAKLimit(d.guards.cur.kiss)
		d.guards.onBudget = d.authn.ntsMW.SetNAKLimit
	}
	// Authentication sits inside access control and rate limiting.
	mw := append(d.guards.middleware(), d.authn.middleware()...)
	d.srv = &server.Server{
		Source:      d.src,
		Handler:     server.Chain(server.Responder(), mw...),
		Logger:      logger,
		Sockets:     o.Tuning.Sockets,
		Workers:     o.Tuning.Workers,
		ReadBuffer:  o.Tuning.ReadBuffer,
		WriteBuffer: o.Tuning.WriteBuffer,
		SendBatch:   o.Tuning.SendBatch,

		DisableInterleaved:   o.Tuning.DisableInterleaved,
		InterleavedTableSize: o.Tuning.InterleavedTableSize,
	}
	return d, nil
}

// Ready returns a channel closed once Run has bound every socket and
// serves.
func (d *Daemon) Ready() <-chan struct{} { return d.ready }

// Run binds every NTP address (and the NTS-KE address), then serves until
// ctx ends or serving fails, then shuts down: it stops the NTP server,
// NTS-KE, the name lookups and the upstream Discipliner and waits for all
// of them (the Discipliner writes its drift file as it stops). A daemon
// that cannot bind all its sockets returns the error without serving.
// Run returns nil after ctx ends and may be called once.
func (d *Daemon) Run(ctx context.Context) error {
	if !d.ran.CompareAndSwap(false, true) {
		return ErrRunning
	}
	n := d.opts.Tuning.Sockets
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	var conns []net.PacketConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var addrs []string
	for _, addr := range d.opts.Listen {
		cs, err := server.ListenUDP(ctx, "udp", addr, n)
		if err != nil {
			return err
		}
		conns = append(conns, cs...)
		a := cs[0].LocalAddr().String()
		d.logger.Info("listening", "addr", a, "sockets", len(cs))
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	keLn, err := d.authn.bind(ctx)
	if err != nil {
		return err
	}

	// Everything started below is stopped and waited for before Run
	// returns. The parts get a context of their own, cancelled at the
	// end, so that shutdown follows the order below whatever ctx does.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	if d.disc != nil {
		wg.Go(func() { d.disc.Run(runCtx) })
		d.logger.Info("upstream", "servers", len(d.opts.Upstream.Servers))
	}
	d.guards.start(runCtx)
	keErr := make(chan error, 1)
	if keLn != nil {
		wg.Go(func() { keErr <- d.authn.serve(runCtx, keLn) })
		a := keLn.Addr().String()
		d.keAddr.Store(&a)
		// Health looks the listener up in the KEServer; wait (briefly)
		// until Serve has taken it, so Ready never reports it dead.
		for i := 0; i < 1000 && len(d.authn.ke.Listeners()) == 0; i++ {
			time.Sleep(time.Millisecond)
		}
	}
	d.addrs.Store(&addrs)
	d.logger.Info("serving", d.sourceAttrs()...)
	srvErr := make(chan error, 1)
	wg.Go(func() { srvErr <- d.srv.ServeAll(runCtx, conns) })
	d.serving.Store(true)
	close(d.ready)

	var runErr error
	select {
	case runErr = <-srvErr:
		srvErr <- runErr // for the shutdown below
	case runErr = <-keErr:
		if runErr != nil {
			runErr = fmt.Errorf("nts-ke: %w", runErr)
		}
	case <-ctx.Done():
	}
	d.logger.Info("shutting down")
	d.serving.Store(false)
	sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer scancel()
	if err := d.srv.Shutdown(sctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("shutdown: %w", err)
	}
	if err := <-srvErr; !errors.Is(err, server.ErrServerClosed) && runErr == nil {
		runErr = err
	}
	if keLn != nil {
		if err := d.authn.ke.Shutdown(sctx); err != nil {
			d.logger.Warn("nts-ke shutdown", "err", err)
		}
	}
	cancel() // the Discipliner (which writes its drift file) and the name lookups
	d.guards.stop()
	wg.Wait()
	st := d.srv.Stats()
	d.logger.Info("stopped", "received", st.Received, "replies", st.Replies, "dropped", st.Dropped.Total())
	return runErr
}

// sourceAttrs describes the served source for the "serving" log line.
func (d *Daemon) sourceAttrs() []any {
	if d.local != nil {
		attrs := []any{"stratum", d.local.Stratum, "refid", d.local.RefID.String(), "precision", d.local.Precision}
		if k, err := d.kernelState(); err == nil {
			attrs = append(attrs, "kernel", k.String(), "when_unsynchronized", d.local.WhenUnsynchronized.String())
		}
		return attrs
	}
	ref := d.src.Reference()
	return []any{"source", "upstream", "synchronized", ref.Synchronized(), "precision", ref.Precision}
}

// Reload swaps in o.Access and o.RateLimit and re-reads the NTS
// certificate files, all or nothing: every new part is built first, and
// on any error nothing changes and the error is returned. Other fields of
// o are not looked at; they take effect only when a new Daemon is built.
// The outcome is logged and counted in Status().Reloads.
func (d *Daemon) Reload(o Options) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.tryReload(&o)
	d.recordLocked(err)
	return err
}

func (d *Daemon) tryReload(o *Options) error {
	d.guards.mu.Lock()
	defer d.guards.mu.Unlock()
	// Build everything before changing anything.
	p, err := d.guards.prepare(o.Access, o.RateLimit)
	if err != nil {
		return err
	}
	cert, err := d.authn.prepareCerts()
	if err != nil {
		return err
	}
	d.authn.commitCerts(cert)
	d.guards.commit(p)
	return nil
}

// ReloadFailed records a reload that failed before it could reach Reload
// (for example, a configuration file that did not parse): it is logged
// and counted in Status().Reloads as a refused reload, and nothing
// changes.
func (d *Daemon) ReloadFailed(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recordLocked(err)
}

// recordLocked records a reload's outcome and logs it. d.mu is held.
func (d *Daemon) recordLocked(err error) {
	d.reload.record(d.clk.Now(), err)
	if err != nil {
		d.logger.Error("config reload refused", "reason", err.Error())
		return
	}
	d.logger.Info("config reloaded", "generation", d.reload.snapshot().Generation)
}

// Health says whether the daemon serves synchronized time.
type Health struct {
	// Serving is true while Run serves NTP requests.
	Serving bool
	// Listeners are the daemon's listening sockets, NTP addresses first,
	// then NTS-KE; empty before Run binds them.
	Listeners []Listener
	// Synchronized is true when the served reference data is trusted
	// (leap not alarm, stratum 1–15) and, when the local clock is served,
	// the kernel does not report the system clock unsynchronised: a
	// local clock no time daemon keeps in sync is served (by default) but
	// is not healthy.
	Synchronized bool
	// Reason says why the time is not synchronized; empty when it is.
	Reason string
}

// Listener is the state of one listening socket of the daemon.
type Listener struct {
	// Kind is "ntp" or "nts-ke".
	Kind string
	// Addr is the bound address.
	Addr string
	// Serving reports whether requests on it are being read or
	// connections accepted.
	Serving bool
	// Err is why it is not serving or, while it is, the last temporary
	// accept error it is retrying after; empty when none.
	Err string
}

// OK reports whether the daemon serves synchronized time on every
// listener.
func (h Health) OK() bool { return h.Serving && h.Synchronized && h.ListenersOK() }

// ListenersOK reports whether every listener is serving.
func (h Health) ListenersOK() bool {
	for _, l := range h.Listeners {
		if !l.Serving {
			return false
		}
	}
	return true
}

// Health returns the daemon's health.
func (d *Daemon) Health() Health {
	h := Health{Serving: d.serving.Load()}
	h.Synchronized, h.Reason = d.syncState()
	if p := d.addrs.Load(); p != nil {
		for _, a := range *p {
			h.Listeners = append(h.Listeners, Listener{Kind: "ntp", Addr: a, Serving: h.Serving})
		}
	}
	if a := d.keAddr.Load(); a != nil {
		l := Listener{Kind: "nts-ke", Addr: *a, Err: "not accepting"}
		for _, st := range d.authn.ke.Listeners() {
			if st.Addr.String() == *a {
				l.Serving, l.Err = st.Serving, ""
				if st.Err != nil {
					l.Err = st.Err.Error()
				}
			}
		}
		h.Listeners = append(h.Listeners, l)
	}
	return h
}

// syncState reports whether the daemon serves synchronized time and, when
// not, why.
func (d *Daemon) syncState() (bool, string) {
	if d.disc != nil {
		if d.disc.Synchronized() {
			return true, ""
		}
		st := d.disc.Status()
		reachable := 0
		for _, s := range st.Sources {
			if s.Reach != 0 {
				reachable++
			}
		}
		return false, fmt.Sprintf("upstream not synchronized (%d of %d sources reachable)", reachable, len(st.Sources))
	}
	ref := d.src.Reference()
	if k, err := d.kernelState(); err == nil && !k.Synchronized {
		serving := "served as a local clock anyway"
		if !ref.Synchronized() {
			serving = "replies say unsynchronized"
		}
		return false, fmt.Sprintf("the kernel reports the system clock unsynchronized (%v, max error %v); %s", k.ClockState, k.MaxError, serving)
	}
	if ref.Synchronized() {
		return true, ""
	}
	return false, fmt.Sprintf("reference not synchronized (leap %s, stratum %d)", ref.Leap, ref.Stratum)
}

// errNoKernel is kernelState's error when the kernel is not consulted.
var errNoKernel = errors.New("not consulted: the daemon serves a clock other than the system clock")

// kernelState reads the kernel's state of the system clock.
func (d *Daemon) kernelState() (kernelsync.State, error) {
	if d.kernel == nil {
		return kernelsync.State{}, errNoKernel
	}
	return d.kernel.Read()
}

// Source returns what the daemon serves: a *server.LocalSource, or the
// *upstream.Discipliner when upstream servers are configured.
func (d *Daemon) Source() server.Source { return d.src }

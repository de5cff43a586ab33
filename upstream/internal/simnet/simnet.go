// Package simnet is a simulation harness for package upstream: NTP
// servers on loopback (real server.Server instances on real sockets)
// serving clocks with an injected offset, timestamp jitter and delay from
// a common simulated true time, and a probe that measures how far a
// disciplined clock is from that truth.
package simnet

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
)

// Truth is the simulated true time as a function of the system clock: the
// system clock plus Offset, running fast by FreqPPM from Epoch. A non-zero
// FreqPPM is a frequency error between the local clock and the sources.
type Truth struct {
	Epoch   time.Time
	Offset  time.Duration
	FreqPPM float64
}

// At returns the true time when the system clock shows sys.
func (t Truth) At(sys time.Time) time.Time {
	drift := time.Duration(float64(sys.Sub(t.Epoch)) * t.FreqPPM * 1e-6)
	return sys.Round(0).Add(t.Offset + drift)
}

// Peer describes one simulated upstream server.
type Peer struct {
	// Offset is added to the true time it serves (a falseticker has a
	// large one).
	Offset time.Duration
	// Jitter is the standard deviation of gaussian noise added to each
	// of its timestamps (receive and transmit) independently.
	Jitter time.Duration
	// Delay is how long it holds each request before replying.
	Delay time.Duration
	// PathJitter, when not zero, is the mean of an exponentially
	// distributed extra delay on each leg of every exchange, drawn
	// independently for the request and the reply (queues on a
	// network path): the request's receive timestamp is taken that much
	// after it arrived, and the reply leaves that much after its
	// transmit timestamp.
	PathJitter time.Duration
	// Stratum is what it reports (default 1).
	Stratum uint8
	// Leap is the leap indicator it announces.
	Leap ntpwire.Leap
	// Handler, when set, replaces the normal reply: it gets the request
	// and the peer's source (for kiss-o'-death or spoofing tests).
	Handler func(w server.ResponseWriter, r *server.Request, src server.Source)
	// Mangle, when set, rewrites every reply just before it is sent,
	// transmit timestamp included: a misbehaving server (wrong origin,
	// zero timestamps, bad stratum or leap, huge dispersion, ...). It
	// applies to replies of Handler too, not to kisses.
	Mangle func(p *ntpwire.Packet)
}

// Server is a running simulated peer.
type Server struct {
	Addr    string // 127.0.0.1:port
	Queries atomic.Int64
	down    atomic.Bool
	clk     *peerClock
}

// SetDown makes the server drop every request (true) or answer again.
func (s *Server) SetDown(down bool) { s.down.Store(down) }

// SetOffset changes the offset the server serves.
func (s *Server) SetOffset(d time.Duration) { s.clk.offset.Store(int64(d)) }

type peerClock struct {
	truth  Truth
	offset atomic.Int64
	jitter time.Duration
	p      Peer
	mu     sync.Mutex
	rng    *rand.Rand
}

func (c *peerClock) noise() time.Duration {
	if c.jitter == 0 {
		return 0
	}
	c.mu.Lock()
	n := c.rng.NormFloat64()
	c.mu.Unlock()
	return time.Duration(n * float64(c.jitter))
}

// legDelay draws one leg's extra delay (PathJitter).
func (c *peerClock) legDelay() time.Duration {
	c.mu.Lock()
	e := c.rng.ExpFloat64()
	c.mu.Unlock()
	return time.Duration(e * float64(c.p.PathJitter))
}

func (c *peerClock) at(sys time.Time) time.Time {
	return c.truth.At(sys).Add(time.Duration(c.offset.Load()) + c.noise())
}

func (c *peerClock) Now() time.Time                     { return c.at(time.Now()) }
func (c *peerClock) FromSystem(sys time.Time) time.Time { return c.at(sys) }
func (c *peerClock) Precision() int8                    { return -20 }
func (c *peerClock) Reference() ntpwire.Reference {
	return ntpwire.Reference{
		Leap:           c.p.Leap,
		Stratum:        c.p.Stratum,
		Precision:      -20,
		RefID:          ntpwire.RefIDString("SIM"),
		RefTime:        ntpwire.TimeOf(c.Now().Truncate(time.Second)),
		RootDispersion: ntpwire.ShortOf(100 * time.Microsecond),
	}
}

// Start runs one server per peer on 127.0.0.1 until ctx ends. seed makes
// the jitter reproducible.
func Start(ctx context.Context, truth Truth, peers []Peer, seed uint64) ([]*Server, error) {
	var out []*Server
	for i, p := range peers {
		if p.Stratum == 0 {
			p.Stratum = 1
		}
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		s, err := serve(ctx, pc, truth, p, seed+uint64(i))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Serve runs one simulated peer on pc until ctx ends, then closes pc.
func Serve(ctx context.Context, pc net.PacketConn, truth Truth, p Peer, seed uint64) (*Server, error) {
	if p.Stratum == 0 {
		p.Stratum = 1
	}
	return serve(ctx, pc, truth, p, seed)
}

func serve(ctx context.Context, pc net.PacketConn, truth Truth, p Peer, seed uint64) (*Server, error) {
	clk := &peerClock{truth: truth, jitter: p.Jitter, p: p, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	clk.offset.Store(int64(p.Offset))
	s := &Server{Addr: pc.LocalAddr().String(), clk: clk}
	resp := server.Responder()
	h := server.HandlerFunc(func(w server.ResponseWriter, r *server.Request) {
		s.Queries.Add(1)
		if s.down.Load() {
			return
		}
		if p.Delay > 0 {
			time.Sleep(p.Delay)
		}
		if p.PathJitter > 0 {
			time.Sleep(clk.legDelay())
			r.Received = clk.Now()
			w = delayWriter{w, clk.legDelay()}
		}
		if p.Mangle != nil {
			w = mangler{w, p.Mangle}
		}
		if p.Handler != nil {
			p.Handler(w, r, clk)
			return
		}
		resp.ServeNTP(w, r)
	})
	srv := &server.Server{Source: clk, Handler: h}
	go func() {
		err := srv.Serve(ctx, pc)
		_ = err
		pc.Close()
	}()
	return s, nil
}

// delayWriter holds each reply for d after its transmit timestamp is set.
type delayWriter struct {
	server.ResponseWriter
	d time.Duration
}

func (w delayWriter) Reply(p ntpwire.Packet) error {
	return w.ResponseWriter.ReplySealed(p, func(b []byte) ([]byte, error) {
		time.Sleep(w.d)
		return b, nil
	})
}

// Reader is a clock under test: a Discipliner.
type Reader interface {
	Now() time.Time
	Reference() ntpwire.Reference
}

// Stats summarises a probe's measurements of served time minus true time.
type Stats struct {
	Samples     int
	RMS, Max    time.Duration // over the measured window
	Mean        time.Duration
	Convergence time.Duration // from start until the error stayed under the bound
	Synced      time.Duration // from start until first synchronised
	// MaxSynced is the largest error of any reading taken while the
	// clock said it was synchronised, warmup included.
	MaxSynced time.Duration
}

// Probe reads r every interval and records the error of each reading
// against the truth: the reading is bracketed by two system clock
// readings and compared with the true time at their midpoint (readings
// whose bracket is wider than 200 µs are dropped). It keeps the errors,
// the times since the start they were taken at, and whether r said it
// was synchronised.
type Probe struct {
	Start  time.Time
	Errors []time.Duration
	At     []time.Duration
	Synced []bool
}

// Run samples r every interval until ctx ends.
func (p *Probe) Run(ctx context.Context, r Reader, truth Truth, interval time.Duration) {
	p.Start = time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s0 := time.Now()
		v := r.Now()
		s1 := time.Now()
		sync := r.Reference().Synchronized()
		// A reading the scheduler interrupted cannot be placed in time
		// precisely enough: skip it.
		if s1.Sub(s0) < 200*time.Microsecond {
			mid := s0.Add(s1.Sub(s0) / 2)
			p.Errors = append(p.Errors, v.Sub(truth.At(mid)))
			p.At = append(p.At, s0.Sub(p.Start))
			p.Synced = append(p.Synced, sync)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ErrNoData is returned by Summarise without readings after warmup.
var ErrNoData = errors.New("simnet: no readings after warmup")

// Summarise computes statistics over the readings taken after warmup;
// Convergence is the time after which every error stayed within bound.
func (p *Probe) Summarise(warmup, bound time.Duration) (Stats, error) {
	var st Stats
	var sum, sq float64
	for i, e := range p.Errors {
		if p.Synced[i] {
			if st.Synced == 0 {
				st.Synced = p.At[i]
			}
			st.MaxSynced = max(st.MaxSynced, e.Abs())
		}
		if e.Abs() > bound || !p.Synced[i] {
			st.Convergence = p.At[i]
		}
		if p.At[i] < warmup {
			continue
		}
		st.Samples++
		sum += float64(e)
		sq += float64(e) * float64(e)
		st.Max = max(st.Max, e.Abs())
	}
	if st.Samples == 0 {
		return st, ErrNoData
	}
	st.Mean = time.Duration(sum / float64(st.Samples))
	st.RMS = time.Duration(math.Sqrt(sq / float64(st.Samples)))
	return st, nil
}

// Percentile returns the q-quantile of |error| after warmup.
func (p *Probe) Percentile(warmup time.Duration, q float64) time.Duration {
	var v []time.Duration
	for i, e := range p.Errors {
		if p.At[i] >= warmup {
			v = append(v, e.Abs())
		}
	}
	if len(v) == 0 {
		return 0
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[int(q*float64(len(v)-1))]
}

// mangler is a ResponseWriter that rewrites replies once they are
// stamped: the writer sets the transmit timestamp of Reply itself, so the
// rewrite happens in ReplySealed's seal step, on the encoded header.
type mangler struct {
	server.ResponseWriter
	f func(p *ntpwire.Packet)
}

func (m mangler) Reply(p ntpwire.Packet) error {
	return m.ReplySealed(p, nil)
}

func (m mangler) ReplySealed(p ntpwire.Packet, seal func([]byte) ([]byte, error)) error {
	return m.ResponseWriter.ReplySealed(p, func(b []byte) ([]byte, error) {
		var q ntpwire.Packet
		if err := q.Decode(b[:ntpwire.HeaderLen]); err != nil {
			return nil, err
		}
		m.f(&q)
		b = q.AppendTo(b[:0])
		if seal != nil {
			return seal(b)
		}
		return b, nil
	})
}

// Flip returns a Mangle function that moves every other reply's receive
// and transmit timestamps by by: a server flipping between two times.
func Flip(by time.Duration) func(p *ntpwire.Packet) {
	var n atomic.Int64
	return func(p *ntpwire.Packet) {
		if n.Add(1)%2 == 0 {
			p.RecvTime = p.RecvTime.Add(by)
			p.XmitTime = p.XmitTime.Add(by)
		}
	}
}

package upstream

import (
	"context"
	"errors"
	"math"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/internal/ntpclient"
	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server/symkey"
)

// source is one upstream address being polled. Its fields are guarded by
// the Discipliner's mutex.
type source struct {
	e    *entry
	addr netip.AddrPort

	reach     uint8
	polls     int // queries sent since the address was set
	poll      time.Duration
	pollFloor time.Duration // raised by KoD RATE
	streak    int           // valid replies in a row
	// burst is how many queries of the current start-up burst are still
	// to be sent (0 when there is none): while it lasts, an
	// unsynchronised clock waits for the source's samples to pile up.
	burst int
	// predMean and predErr2 are running means of the distance of the
	// source's samples from the software clock's prediction (seconds)
	// and of its squared deviation from predMean: jitter plus the error
	// the clock gathered over the poll interval, without the source's
	// own constant bias (an asymmetric path).
	predMean, predErr2 float64
	backedOff          bool
	retired            bool
	state              SourceState

	filt      filter
	dist      time.Duration
	jitter    float64 // the clock filter's jitter at the last selection, seconds
	samples   uint64
	rej       Rejects
	stratum   uint8
	leap      ntpwire.Leap
	refID     ntpwire.RefID
	precision int8
	rootDelay time.Duration
	rootDisp  time.Duration

	spikes   int   // popcorn spikes suppressed in a row
	spikeReg uint8 // which of the last eight valid replies were spikes (bit 0: the last)

	xlSamples   uint64 // samples from interleaved replies
	interleaved bool   // the last sample came from an interleaved reply

	// Owned by the source's goroutine (runSource), not the mutex.
	sess   *ntske.Session // NTS session; nil before the first NTS-KE
	keRuns int            // NTS-KE sessions since the last authenticated reply
	xl     xleave         // interleaved mode: the last answered exchange
}

// popcornErratic is how many of a source's last eight replies may be
// spikes for them to be suppressed: a source that spikes as often as this
// is erratic rather than unlucky, and its samples are used as they are,
// so its jitter shows it and selection and clustering judge it.
const popcornErratic = 4

// startupPolls is how many queries a source that has never answered
// counts towards the majority for: the start-up burst (about six seconds
// with the default burst spacing), or four polls without one.
const startupPolls = ibursts

// ibursts is the number of quick queries at start and after a source
// moves to a new address (ntpd and chrony send 4–8).
const ibursts = 4

// outcome classifies one query.
type outcome int

const (
	outSample outcome = iota
	outTimeout
	outRejected // a matching reply that was not usable
	outRate
	outDeny
	outReKE     // NTS: a NAK, or no cookies left; run NTS-KE again
	outKEFailed // NTS: the NTS-KE session failed
	// outNoSample: a usable interleaved reply that completes an
	// exchange whose basic reply already gave a sample; the source
	// answered, but counting the exchange twice would weigh it double.
	outNoSample
)

var outcomeNames = [...]string{"sample", "timeout", "rejected", "kiss-rate", "kiss-deny", "nts-rekey", "nts-ke-failed", "no-sample"}

// String names the outcome, for logs.
func (o outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// runSource polls s until ctx ends or s is retired, re-dialing when s's
// address changes.
func (d *Discipliner) runSource(ctx context.Context, s *source) {
	burst := ibursts
	if d.o.NoIBurst {
		burst = 0
	}
	for ctx.Err() == nil {
		if s.e.nts() && (s.sess == nil || len(s.sess.Cookies) == 0) && !d.keyExchange(ctx, s) {
			continue
		}
		d.mu.Lock()
		addr := s.addr
		d.mu.Unlock()
		conn, err := d.o.Dial(ctx, "udp", addr.String())
		if err != nil {
			d.log.Warn("upstream: dial failed", "addr", addr.String(), "err", err)
			if !d.sleep(ctx, d.o.MinPoll) {
				return
			}
			continue
		}
		// Closing the connection when ctx ends unblocks a pending read.
		stopClose := context.AfterFunc(ctx, func() { conn.Close() })
		stamps := false
		var tx *txStamper
		if _, sys := d.o.Clock.(clock.System); sys {
			stamps = enableRxStamps(conn)
			tx = enableTxStamps(conn)
		}
		again := d.pollLoop(ctx, s, conn, burst, stamps, tx)
		stopClose()
		conn.Close()
		if !again {
			return
		}
		burst = ibursts
		if d.o.NoIBurst {
			burst = 0
		}
	}
}

// sleep waits for dur on the base clock's timescale (clock.AfterFunc), so
// that under a fake clock the poll schedule runs in virtual time. It
// reports false when ctx ended first.
func (d *Discipliner) sleep(ctx context.Context, dur time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	if dur <= 0 {
		return true
	}
	fired := make(chan struct{})
	t := clock.AfterFunc(d.base, dur, func() { close(fired) })
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-fired:
		return true
	}
}

// pollLoop queries s over conn on its poll schedule. It returns true when
// s got a new address or (NTS) needs a new session, and must be
// re-dialed; false when done.
func (d *Discipliner) pollLoop(ctx context.Context, s *source, conn net.Conn, burst int, stamps bool, tx *txStamper) bool {
	q := &querier{conn: conn, buf: make([]byte, 2048), stamps: stamps, tx: tx, own: d.ownRefIDs(conn)}
	if stamps {
		q.oob = make([]byte, rxOOBLen)
	}
	// A new connection is a new client to the server (another port):
	// the exchanges on the old one are not continued.
	s.xl = xleave{}
	var wait time.Duration
	d.mu.Lock()
	s.burst = burst
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		s.burst = 0
		d.mu.Unlock()
	}()
	for {
		if !d.sleep(ctx, wait) {
			return false
		}
		sent := d.base.Now()
		d.mu.Lock()
		s.reach <<= 1
		s.polls++
		interval := max(s.poll, s.pollFloor)
		burst = s.burst
		d.mu.Unlock()
		if burst > 0 {
			interval = min(interval, 2*time.Second, max(d.o.MinPoll, s.pollFloor))
		}
		timeout := min(2*time.Second, max(interval*3/4, 100*time.Millisecond))
		out, pkt, smp := d.query(ctx, s, q, timeout)
		if ctx.Err() != nil {
			return false
		}
		if out == outTimeout {
			s.xl.misses++
		}
		d.mu.Lock()
		stop, redial := d.queryDoneLocked(ctx, s, out, pkt, smp)
		if s.burst == 0 || out == outRate {
			interval = max(s.poll, s.pollFloor)
		}
		d.mu.Unlock()
		if stop {
			return false
		}
		if redial {
			return true
		}
		wait = max(0, interval-d.base.Now().Sub(sent))
	}
}

// querier is a source's connection and buffers.
type querier struct {
	conn     net.Conn
	buf, oob []byte
	stamps   bool            // conn delivers kernel receive timestamps
	tx       *txStamper      // sends with kernel transmit timestamps; nil without
	own      []ntpwire.RefID // refids that name this host: a source showing one is synchronised to us
}

// query sends one request and waits for the reply that echoes it. For
// an authenticated source the request carries NTS fields or a MAC, and
// only a reply that authenticates is judged; others are counted and
// ignored, as a forger's would be.
func (d *Discipliner) query(ctx context.Context, s *source, q *querier, timeout time.Duration) (outcome, ntpwire.Packet, sample) {
	conn, buf := q.conn, q.buf
	req, err := ntpclient.Request(d.o.Rand, 4)
	if err != nil {
		// A caller's reader failed: nothing is sent (a predictable
		// transmit timestamp would let replies be spoofed). The query
		// counts as lost, and the error is logged.
		d.log.Error("upstream: random source failed; query not sent", "addr", s.addr.String(), "err", err)
		d.sleep(ctx, timeout)
		return outTimeout, ntpwire.Packet{}, sample{}
	}
	d.mu.Lock()
	req.Poll = log2(max(s.poll, s.pollFloor))
	d.mu.Unlock()
	req.Precision = d.precision
	xl := &s.xl
	xl.sent = 0
	if xl.usable(d.o.DisableInterleaved) {
		if err := ntpclient.Interleave(&req, d.o.Rand, xl.recv, d.ntpTime(xl.t4)); err != nil {
			d.log.Error("upstream: random source failed; query not sent", "addr", s.addr.String(), "err", err)
			d.sleep(ctx, timeout)
			return outTimeout, ntpwire.Packet{}, sample{}
		}
		xl.sent = req.RecvTime
	}
	var (
		out     []byte
		pending *ntske.Pending
		key     = s.e.key()
	)
	switch {
	case s.sess != nil:
		var err error
		if out, pending, err = s.sess.AppendRequest(buf[:0], &req); err != nil {
			// No cookies left (or a broken session): start over.
			d.log.Debug("upstream: NTS request", "addr", s.addr.String(), "err", err)
			return outReKE, ntpwire.Packet{}, sample{}
		}
	case key != nil:
		out = key.AppendMAC(req.AppendTo(buf[:0]))
	default:
		out = req.AppendTo(buf[:0])
	}
	// The deadline is the connection's, on the system clock; waits of our
	// own are on the base clock.
	conn.SetDeadline(time.Now().Add(timeout))
	sent := d.base.Now()
	waitOut := func() { d.sleep(ctx, timeout-d.base.Now().Sub(sent)) }
	t1, kernelTx, err := d.send(q, out)
	if err != nil {
		d.log.Debug("upstream: send failed", "addr", s.addr.String(), "err", err)
		waitOut()
		return outTimeout, ntpwire.Packet{}, sample{}
	}
	var t4 time.Duration
	read := func(b []byte) (int, time.Time, error) {
		n, rx, err := readStamped(conn, b, q.oob)
		t4 = d.rawNow()
		return n, rx, err
	}
	skipped := func(why ntpclient.Skip) {
		d.count(s, func(r *Rejects) {
			if why == ntpclient.SkipMalformed {
				r.Malformed++
			} else {
				r.BadOrigin++
			}
		})
	}
	for {
		// Anti-spoofing first: only a reply echoing our random transmit
		// timestamp is looked at further, kisses included.
		// An interleaved reply echoes the receive timestamp we sent.
		alt := req.XmitTime
		if xl.sent != 0 {
			alt = xl.sent
		}
		p, n, rx, err := ntpclient.ReadReplyEither(read, buf, req.XmitTime, alt, skipped)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				// ICMP unreachable and the like: wait out the timeout
				// so an absent server is not hammered.
				d.log.Debug("upstream: receive failed", "addr", s.addr.String(), "err", err)
				waitOut()
			}
			return outTimeout, ntpwire.Packet{}, sample{}
		}
		if !rx.IsZero() {
			// The kernel's stamp is a wall-clock reading: put it on the
			// raw timescale, and use it only if it is plausible.
			if k := time.Duration(rx.UnixNano()-d.epochWall) - d.snap.Load().wallMono; k >= t1 && k <= t4 {
				t4 = k
			}
		}
		switch {
		case pending != nil:
			err := pending.Verify(buf[:n])
			if errors.Is(err, ntske.ErrNAK) {
				// The server no longer opens our cookies.
				d.count(s, func(r *Rejects) { r.NTSNAK++ })
				d.log.Info("upstream: NTS NAK, renewing the session", "addr", s.addr.String())
				return outReKE, p, sample{}
			}
			if err != nil {
				d.count(s, func(r *Rejects) { r.Auth++ })
				d.log.Debug("upstream: unauthenticated reply ignored", "addr", s.addr.String(), "err", err)
				continue
			}
		case key != nil:
			if !macValid(key, buf[:n]) {
				d.count(s, func(r *Rejects) { r.Auth++ })
				d.log.Debug("upstream: reply without a valid MAC ignored", "addr", s.addr.String(), "key", key.ID, "crypto_nak", symkey.IsCryptoNAK(buf[:n]))
				continue
			}
		}
		interleaved := xl.sent != 0 && p.OrigTime == xl.sent
		xlAsked := xl.sent != 0
		out, pkt, smp := d.judge(s, &p, t1, t4, q.own, interleaved)
		xl.done(out, &p, t1, t4, interleaved)
		d.log.Debug("upstream: reply", "addr", s.addr.String(), "outcome", out.String(), "asked_interleaved", xlAsked, "interleaved", interleaved, "kernel_tx", kernelTx, "offset", smp.offset, "delay", smp.delay)
		return out, pkt, smp
	}
}

// maxTxLag is how long after the send returned a transmit timestamp may
// be dated: the kernel takes it within the send, so this only covers the
// mapping of its wall-clock time onto the raw timescale.
const maxTxLag = 50 * time.Millisecond

// send writes out on q's connection and returns when it left, on the raw
// timescale: the kernel's transmit timestamp when there is a plausible
// one (not before the time read just before the send, not after the
// send returned), else that time; kernel says which.
func (d *Discipliner) send(q *querier, out []byte) (t time.Duration, kernel bool, err error) {
	t1 := d.rawNow()
	k, ok := time.Duration(0), false
	switch {
	case q.tx != nil:
		wall, stamped, err := q.tx.write(out)
		if err != nil {
			return t1, false, err
		}
		if stamped {
			// A wall-clock reading, like the kernel's receive stamps.
			k, ok = time.Duration(wall-d.epochWall)-d.snap.Load().wallMono, true
		}
	default:
		if _, err := q.conn.Write(out); err != nil {
			return t1, false, err
		}
		if d.txNow != nil {
			var at time.Time
			if at, ok = d.txNow(q.conn); ok {
				k = d.elapsed(at)
			}
		}
	}
	if ok && k >= t1 && k <= d.rawNow()+maxTxLag {
		return k, true, nil
	}
	return t1, false, nil
}

func (d *Discipliner) count(s *source, f func(*Rejects)) {
	d.mu.Lock()
	f(&s.rej)
	d.mu.Unlock()
}

// maxServerInterval bounds the time a server may say it held a request
// (its transmit minus receive timestamp): more means the timestamps are
// not of one exchange (chrony's MAX_SERVER_INTERVAL).
const maxServerInterval = 4 * time.Second

// judge decides whether a reply that echoes our request is usable, and
// turns it into a sample. t1 and t4 are when the request left and the
// reply arrived. An interleaved reply (one echoing the receive
// timestamp of an interleaved request) gives the sample of the source's
// previous exchange, s.xl, completed by the reply's transmit timestamp:
// when the server sent its previous reply, stamped after it left.
func (d *Discipliner) judge(s *source, p *ntpwire.Packet, t1, t4 time.Duration, own []ntpwire.RefID, interleaved bool) (outcome, ntpwire.Packet, sample) {
	rej := func(f func(*Rejects)) (outcome, ntpwire.Packet, sample) {
		d.count(s, f)
		return outRejected, *p, sample{}
	}
	switch {
	case p.Mode != ntpwire.ModeServer:
		return rej(func(r *Rejects) { r.BadMode++ })
	case p.IsKiss():
		switch p.RefID {
		case ntpwire.KissRate:
			return outRate, *p, sample{}
		case ntpwire.KissDeny, ntpwire.KissRstr:
			return outDeny, *p, sample{}
		}
		return rej(func(r *Rejects) { r.KissOther++ })
	case p.Stratum < 1 || p.Stratum >= ntpwire.MaxStratum:
		return rej(func(r *Rejects) { r.BadStratum++ })
	case p.Leap == ntpwire.LeapAlarm:
		return rej(func(r *Rejects) { r.LeapAlarm++ })
	case p.RecvTime == 0 || p.XmitTime == 0:
		return rej(func(r *Rejects) { r.BadTime++ })
	case p.RootDelay.Duration()/2+p.RootDispersion.Duration() > d.o.MaxDistance:
		return rej(func(r *Rejects) { r.BadDistance++ })
	case p.Stratum > 1 && slices.Contains(own, p.RefID):
		// The source is synchronised to this host: using it would be a
		// timing loop (RFC 5905 §11.2.1 drops such peers too).
		return rej(func(r *Rejects) { r.Loop++ })
	}
	T2 := p.RecvTime
	if interleaved {
		if s.xl.sampled {
			return outNoSample, *p, sample{}
		}
		t1, t4, T2 = s.xl.t1, s.xl.t4, s.xl.recv
	}
	T1, T3, T4 := d.ntpTime(t1), p.XmitTime, d.ntpTime(t4)
	prec := ntpwire.LogToDuration(d.precision) + ntpwire.LogToDuration(p.Precision)
	held := T3.Sub(T2)
	rawDelay := T4.Sub(T1) - held
	if held.Abs() > maxServerInterval || interleaved && rawDelay < -prec {
		// Not the timestamps of one exchange: a server that held the
		// request for seconds, or (interleaved) a transmit time that
		// is not of the reply we got.
		return rej(func(r *Rejects) { r.BadTime++ })
	}
	offset := (T2.Sub(T1) + T3.Sub(T4)) / 2
	delay := max(0, rawDelay)
	disp := prec + time.Duration(phi*float64(delay))
	return outSample, *p, sample{at: t1 + (t4-t1)/2, offset: offset, delay: delay, disp: disp, interleaved: interleaved}
}

// pollBudget is the fraction of the measured jitter that the frequency
// estimate's uncertainty may add to the error over one poll interval.
const pollBudget = 0.5

// pollTarget is how many samples per source the frequency fit should
// keep (chrony's polltarget): when it keeps fewer, the frequency is
// wandering faster than the samples come, and the poll shortens.
const pollTarget = 8

// wanderGain is the weight of each update's frequency change in the
// running wander estimate (Discipliner.wander2).
const wanderGain = 0.2

// wanderFrom is the frequency uncertainty (1 ppm) below which changes of
// the frequency estimate count as wander.
const wanderFrom = 1e-6

// predGain is the weight of each sample in a source's running mean of
// prediction errors (source.predErr2).
const predGain = 0.25

// biasGain is the weight of each sample in a source's running mean of
// prediction errors, its constant bias (source.predMean): slow, so that
// the clock's errors, which change from poll to poll, stay in predErr2.
const biasGain = 1.0 / 32

// predHalve and predDouble bound a source's mean squared prediction error
// in units of its squared jitter: over predHalve (the clock gathers about
// 1.4× the jitter between samples) the poll halves; it may double only
// below predDouble.
const (
	predHalve  = 3
	predDouble = 1.5
)

// wanderError returns how far the measured frequency wander moves the
// clock over interval, seconds: a random walk of the frequency drifts the
// phase by about wander·τ^1.5 before a sample can show it.
func (d *Discipliner) wanderError(interval time.Duration) float64 {
	t := interval.Seconds()
	return math.Sqrt(d.wander2) * t * math.Sqrt(t)
}

// adaptPollLocked adjusts s's poll interval after a usable sample (RFC
// 5905 §13's aim, the Allan intercept, with chrony's criteria); spike says
// the popcorn suppressor dropped the sample. It halves, down to MinPoll,
// when the sample falls further from the software clock's prediction,
// net of the source's constant bias, than three times the source's jitter
// (the frequency moved), when the source's running mean squared
// prediction error exceeds predHalve squared jitters, when the last fit
// kept fewer than pollTarget samples per source (the frequency wanders),
// when the frequency's uncertainty alone would exceed the jitter over the
// current interval, or when the measured frequency wander would move the
// clock by half the jitter (wanderError). Two samples in a row straying
// the same way halve every source's poll. It doubles after eight good
// samples in a row, up to MaxPoll, only while the errors the frequency's
// uncertainty and its wander let grow over the longer interval stay well
// below the jitter and the prediction errors are small.
func (d *Discipliner) adaptPollLocked(s *source, smp sample, spike bool) {
	s.streak++
	jit := max(s.jitter, 50e-6)
	r := smp.offset.Seconds() - d.predictLocked(smp.at)
	// A source's constant bias (an asymmetric path) is no error of the
	// clock: judge the sample net of it.
	resid := math.Abs(r - s.predMean)
	if d.synced && !spike {
		s.predMean += biasGain * (r - s.predMean)
		dev := r - s.predMean
		s.predErr2 += predGain * (min(dev*dev, 9*jit*jit) - s.predErr2)
	}
	if d.synced && !spike {
		// Two samples in a row (from any sources) that stray the same
		// way, each net of its source's bias, say the clock moved (its
		// frequency stepped), not a source: every source looks again
		// sooner.
		dir := 0
		if resid > 3*jit {
			dir = 1
			if r < s.predMean {
				dir = -1
			}
		}
		if dir != 0 && dir == d.strayDir {
			for _, o := range d.sources {
				if o != s && o.poll > d.o.MinPoll {
					o.poll, o.streak = max(o.poll/2, d.o.MinPoll), 0
				}
			}
		}
		d.strayDir = dir
	}
	switch {
	case d.synced && s.poll > d.o.MinPoll && (resid > 3*jit || d.fitPerSource < pollTarget || s.predErr2 > predHalve*jit*jit ||
		d.freqErr*s.poll.Seconds() > jit || d.wanderError(s.poll) > pollBudget*jit):
		s.poll, s.streak = max(s.poll/2, d.o.MinPoll), 0
	case s.streak >= 8 && s.poll < d.o.MaxPoll && (!d.synced ||
		d.freqErr*2*s.poll.Seconds() < pollBudget*jit && d.wanderError(2*s.poll) < pollBudget*pollBudget*jit &&
			s.predErr2 < predDouble*jit*jit):
		s.poll, s.streak = min(2*s.poll, d.o.MaxPoll), 0
	}
}

// queryDoneLocked counts a query of s against its start-up burst and
// handles its outcome (handleLocked). The burst counts the query as done
// before the sample is judged, so the last reply of a burst may
// synchronise the clock with however many samples the burst gave; a
// burst that ends in a lost reply runs the selection too, so a source
// that answered only part of its burst stops holding the clock back then,
// not a poll interval later.
func (d *Discipliner) queryDoneLocked(ctx context.Context, s *source, out outcome, p ntpwire.Packet, smp sample) (stop, redial bool) {
	ended := false
	switch {
	case s.burst > 0 && out != outRate:
		s.burst--
		ended = s.burst == 0
	default:
		s.burst = 0
	}
	stop, redial = d.handleLocked(ctx, s, out, p, smp)
	if ended && out != outSample && !stop && !redial && !d.synced && len(s.filt.hist) > 0 {
		d.updateLocked(d.rawNow())
	}
	return stop, redial
}

// predictLocked returns the offset of the raw clock (seconds) that the
// software clock applies at raw time at: what a sample should show. A
// sample from before the last update (an interleaved one is a poll old)
// is predicted by the frequency alone: the slew of the current
// correction had not started then.
func (d *Discipliner) predictLocked(at time.Duration) float64 {
	s := d.snap.Load()
	if at < s.e0 {
		return (s.c0 + s.freq*float64(at-s.e0)) / 1e9
	}
	return s.corr(at) / 1e9
}

// handleLocked applies the outcome of a query to s: reachability, poll
// interval, kisses, and the new sample to the clock. It reports whether s
// is retired, and whether its address changed.
func (d *Discipliner) handleLocked(ctx context.Context, s *source, out outcome, p ntpwire.Packet, smp sample) (stop, redial bool) {
	switch out {
	case outNoSample:
		s.keRuns = 0
		s.reach |= 1
		return false, false
	case outSample:
		s.keRuns = 0
		s.reach |= 1
		s.samples++
		s.interleaved = smp.interleaved
		if smp.interleaved {
			s.xlSamples++
		}
		if s.backedOff {
			s.poll, s.backedOff = d.o.MinPoll, false
		}
		s.stratum, s.leap, s.refID, s.precision = p.Stratum, p.Leap, p.RefID, p.Precision
		s.rootDelay, s.rootDisp = p.RootDelay.Duration(), p.RootDispersion.Duration()
		spike := s.filt.popcorn(smp, d.freq, d.freqErr)
		s.spikeReg <<= 1
		if spike {
			s.spikeReg |= 1
		}
		d.adaptPollLocked(s, smp, spike)
		if spike && bits.OnesCount8(s.spikeReg) < popcornErratic {
			if s.spikes < popcornRun {
				// The source answered (it stays reachable) but this
				// offset is not used.
				s.spikes++
				s.rej.Popcorn++
				return false, false
			}
			// Spikes in a row: the source's offset really changed.
			// Its history describes the old one.
			s.filt.reset()
		}
		s.spikes = 0
		s.filt.add(smp)
		// Now, not the sample's time: an interleaved sample is of the
		// previous exchange.
		d.updateLocked(d.rawNow())
		return false, false
	case outRate:
		s.rej.KissRate++
		s.streak = 0
		asked := ntpwire.LogToDuration(p.Poll)
		cap := max(d.o.MaxPoll, 16*d.o.MinPoll)
		s.pollFloor = min(max(2*max(s.poll, s.pollFloor), asked), cap)
		d.log.Warn("upstream: kiss-o'-death RATE, polling slower", "addr", s.addr.String(), "poll", s.pollFloor)
		return false, false
	case outDeny:
		if p.RefID == ntpwire.KissDeny {
			s.rej.KissDeny++
		} else {
			s.rej.KissRstr++
		}
		s.retired, s.state = true, StateKoD
		d.log.Warn("upstream: kiss-o'-death, source retired", "addr", s.addr.String(), "code", p.RefID.String())
		return true, false
	case outReKE:
		s.streak = 0
		return false, true
	case outKEFailed:
		s.rej.KEFailed++
	case outTimeout:
		s.rej.Timeout++
	}
	s.streak = 0
	if s.samples == 0 && s.polls == startupPolls {
		// Silent through the start-up burst: the source stops counting
		// towards the majority (updateLocked), which may now be met by
		// the sources that answered.
		d.log.Warn("upstream: source has not answered; not waiting for it", "addr", s.addr.String(), "queries", s.polls)
		d.updateLocked(d.rawNow())
	}
	if s.reach&0x0f == 0 && s.polls >= 4 && s.poll < d.o.MaxPoll {
		s.poll, s.backedOff = min(2*s.poll, d.o.MaxPoll), true
	}
	if s.reach == 0 && s.polls >= 8 {
		if s.state != StateUnreachable {
			d.log.Warn("upstream: source unreachable", "addr", s.addr.String())
		}
		s.state = StateUnreachable
		if !s.e.ip.IsValid() && !s.e.nts() && s.polls%8 == 0 {
			return false, d.reresolveLocked(ctx, s)
		}
	}
	return false, false
}

// reresolveLocked looks the name of an unreachable source up again and
// moves the source to an address no other source uses. It drops the lock
// while resolving.
func (d *Discipliner) reresolveLocked(ctx context.Context, s *source) bool {
	d.mu.Unlock()
	addrs, err := d.lookup(ctx, s.e)
	d.mu.Lock()
	if err != nil {
		d.log.Warn("upstream: re-resolve failed", "name", s.e.name, "err", err)
		return false
	}
	local := d.localAddrs()
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, s.e.port)
		if d.inUse[ap] || slices.Contains(local, a) {
			continue
		}
		d.log.Info("upstream: unreachable source replaced", "name", s.e.name, "old", s.addr.String(), "new", ap.String())
		delete(d.inUse, s.addr)
		d.inUse[ap] = true
		s.addr = ap
		s.filt.reset()
		s.reach, s.polls, s.streak, s.backedOff = 0, 0, 0, false
		s.poll, s.state = d.o.MinPoll, StateInit
		return true
	}
	return false
}

// ownRefIDs returns the refids that would name this host to a source
// reached over conn: its local address and the host's interface addresses.
func (d *Discipliner) ownRefIDs(conn net.Conn) []ntpwire.RefID {
	var own []ntpwire.RefID
	if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok {
		if ap := ua.AddrPort(); ap.Addr().IsValid() && !ap.Addr().IsUnspecified() {
			own = append(own, ntpwire.RefIDFromAddr(ap.Addr()))
		}
	}
	for _, a := range d.localAddrs() {
		own = append(own, ntpwire.RefIDFromAddr(a))
	}
	return own
}

// interfaceAddrs returns the host's interface addresses, except loopback
// ones; nil if they cannot be listed.
func interfaceAddrs() []netip.Addr {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil && !p.Addr().IsLoopback() {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// log2 returns the poll exponent for d, rounded up.
func log2(d time.Duration) int8 {
	p := int8(0)
	for ; p < 17 && ntpwire.LogToDuration(p) < d; p++ {
	}
	for ; p > -6 && ntpwire.LogToDuration(p-1) >= d; p-- {
	}
	return p
}

package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// maxFreq bounds the frequency correction: ±5000 ppm. RFC 5905 assumes
// at most 500 ppm, but virtual machines' clocks are seen far beyond it
// (chrony's default limit is ±500000 ppm); 5000 ppm (7 minutes a day)
// covers them while still telling a real clock from a source that
// jumped (see regress).
const maxFreq = 5000e-6

// minSlew is the shortest time over which an offset is slewed away: the
// served clock follows a new estimate smoothly rather than jumping to it.
const minSlew = time.Second

// ErrRunning is returned by Run when the Discipliner is already running.
var ErrRunning = errors.New("upstream: Run called twice")

// Discipliner is a software clock disciplined to upstream NTP servers. It
// implements clock.Clock, clock.Precisioner, clock.SystemMapper and the
// Reference method of server.Source, so a server.Server can serve it.
// Create it with New and start it with Run; until it has synchronised it
// serves the base clock with leap alarm and stratum 16. The served time
// never goes backwards: backward steps and inserted leap seconds are
// served as time held still (or smeared, with Options.LeapSmear). Its
// methods are safe for concurrent use; Now, FromSystem and Reference never
// lock and never allocate.
type Discipliner struct {
	o         Options
	base      clock.Clock
	epoch     time.Time // base clock reading at New (monotonic if it has one)
	epochWall int64     // its wall time, Unix nanoseconds
	precision int8
	entries   []*entry
	log       *slog.Logger
	snap      atomic.Pointer[snapshot]
	running   atomic.Bool
	// wallNow, when set (tests), reads the system clock's wall time
	// separately from the base clock, so a test can step it.
	wallNow func() int64
	// txNow, when set (tests), reports when the last datagram written
	// to a connection left, as a base clock reading: the kernel transmit
	// timestamp of a simulated connection.
	txNow func(c net.Conn) (time.Time, bool)
	// localAddrs lists the host's own (non-loopback) addresses: a name
	// that resolves to one of them is not polled (a pool this server has
	// joined), and a source whose refid names one is refused (a loop).
	localAddrs func() []netip.Addr

	mu      sync.Mutex
	sources []*source
	inUse   map[netip.AddrPort]bool
	pending int // names not yet resolved once
	synced  bool
	sysPeer *source
	freq    float64
	freqErr float64 // standard error of freq
	// fitPerSource is how many samples per source the last fit kept: few
	// means the frequency wandered and old samples no longer fit.
	fitPerSource int
	// wander2 is the squared frequency wander (s/s per √s, a random
	// walk's diffusion): a running mean of the squared change of the
	// frequency estimate per second between updates, net of its noise.
	// Over an interval τ the wander moves the clock by about
	// √wander2·τ^1.5; the poll is kept where that stays within the jitter.
	wander2  float64
	fitAt    time.Duration // raw time of the last update
	wanderOn bool          // the frequency has converged once: wander2 is measured
	// strayDir is the direction (±1) in which the last usable sample
	// strayed from the prediction by over three times its source's
	// jitter, 0 if it did not.
	strayDir int
	jitter   float64 // the system peer's jitter and the fit's residuals, seconds
	offset   float64 // last estimate minus the correction at the update, ns
	steps    uint64
	updates  uint64
	rootDist time.Duration

	why       string        // why the last selection did not update the clock; "" if it did
	whyLogged string        // the reason last logged while unsynchronised
	whyLogAt  time.Duration // raw time it was logged

	everSynced bool   // synchronised at least once since start: MaxStep applies
	refusing   bool   // the last update was refused by MaxStep
	refused    uint64 // updates refused by MaxStep

	leaps         uint64        // leap seconds carried out
	lastLeap      int64         // Unix ns of the last leap, 0 if none
	leapRaw       time.Duration // raw time of the last leap
	leapIgnoredAt int64         // month end of the last announcement ignored (not June or December)
	leapRawSet    bool

	driftWritten  float64 // frequency last written to (or read from) the drift file
	driftWriteAt  time.Duration
	driftWriteSet bool
}

// entry is one configured server: a name or address and a port.
type entry struct {
	name string // as configured
	host string
	port uint16
	ip   netip.Addr  // valid when host is an IP literal
	auth *serverAuth // NTS or a symmetric key (auth.go); nil for none

	// Guarded by the Discipliner's mutex: failed lookups of a name that
	// has not yielded a source yet.
	resolveFailures uint64
	resolveErr      string
	resolved        bool
}

// New returns a Discipliner for sources (see Source and Addresses). A
// plain source's address is "host:port" or "host" (port 123), where host
// is an IP address or a name; a name that resolves to several addresses
// (a pool) becomes several sources. An NTS source gets its NTP address
// from NTS-KE. Sources are only ever authenticated one way: an NTS or
// keyed source never uses an unauthenticated reply, not even a
// kiss-o'-death. Nothing is sent until Run.
func New(sources []Source, o Options) (*Discipliner, error) {
	if len(sources) == 0 {
		return nil, errors.New("upstream: no sources")
	}
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	d := &Discipliner{o: o, base: o.Clock, log: o.Logger, inUse: make(map[netip.AddrPort]bool), localAddrs: interfaceAddrs}
	for i, src := range sources {
		name, auth, err := src.check()
		if err == nil {
			var e *entry
			if e, err = parseServer(name); err == nil {
				e.auth = auth
				d.entries = append(d.entries, e)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("upstream: sources[%d]: %w", i, err)
		}
	}
	// Sources for IP literals and NTS servers exist from the start, so
	// Status lists them and the first reply cannot make a quorum on its
	// own. An NTS source gets its address from NTS-KE.
	for _, e := range d.entries {
		switch {
		case e.nts():
			d.sources = append(d.sources, &source{e: e, poll: d.o.MinPoll})
		case e.ip.IsValid():
			d.addSourceLocked(e, netip.AddrPortFrom(e.ip, e.port))
		default:
			d.pending++
		}
	}
	d.epoch = d.base.Now()
	d.epochWall = d.epoch.UnixNano()
	d.precision = clock.Precision(d.base)
	d.freqErr = freqPrior
	d.loadDrift()
	d.snap.Store(&snapshot{
		epochWall: d.epochWall,
		smear:     o.LeapSmear,
		holdover:  o.Holdover,
		precision: d.precision,
		ref:       ntpwire.Reference{Leap: ntpwire.LeapAlarm, Stratum: ntpwire.MaxStratum, RefID: ntpwire.RefIDString("INIT")},
	})
	return d, nil
}

func (o *Options) setDefaults() error {
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	if o.MinPoll == 0 {
		o.MinPoll = DefaultMinPoll
	}
	if o.MaxPoll == 0 {
		o.MaxPoll = max(DefaultMaxPoll, o.MinPoll)
	}
	if o.StepThreshold == 0 {
		o.StepThreshold = DefaultStepThreshold
	}
	if o.MaxSlewRate == 0 {
		o.MaxSlewRate = DefaultMaxSlewRate
	}
	if o.Holdover == 0 {
		o.Holdover = max(4*o.MaxPoll, time.Minute)
	}
	if o.MinSources == 0 {
		o.MinSources = 1
	}
	if o.MaxDistance == 0 {
		o.MaxDistance = DefaultMaxDistance
	}
	if o.MaxPerName == 0 {
		o.MaxPerName = DefaultMaxPerName
	}
	if o.MaxStep == 0 {
		o.MaxStep = DefaultMaxStep
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Dial == nil {
		o.Dial = (&net.Dialer{}).DialContext
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.MinPoll < 0 || o.MaxPoll < o.MinPoll:
		return fmt.Errorf("upstream: poll bounds %v–%v are not a valid range", o.MinPoll, o.MaxPoll)
	case o.MaxPoll > 36*time.Hour:
		return fmt.Errorf("upstream: max poll %v is over 36h", o.MaxPoll)
	case o.StepThreshold < 0:
		return fmt.Errorf("upstream: step threshold %v is negative", o.StepThreshold)
	case o.MaxSlewRate < 0 || o.MaxSlewRate > 0.5:
		return fmt.Errorf("upstream: max slew rate %g is outside (0, 0.5]", o.MaxSlewRate)
	case o.Holdover < 0:
		return fmt.Errorf("upstream: holdover %v is negative", o.Holdover)
	case o.MinSources < 0:
		return fmt.Errorf("upstream: min sources %d is negative", o.MinSources)
	case o.MaxDistance < 0:
		return fmt.Errorf("upstream: max distance %v is negative", o.MaxDistance)
	case o.MaxPerName < 0:
		return fmt.Errorf("upstream: max per name %d is negative", o.MaxPerName)
	case o.LeapSmear != 0 && (o.LeapSmear < time.Second || o.LeapSmear > 48*time.Hour):
		return fmt.Errorf("upstream: leap smear %v is outside 1s–48h", o.LeapSmear)
	case o.MaxStep > 0 && o.MaxStep < o.StepThreshold:
		return fmt.Errorf("upstream: max step %v is below the step threshold %v", o.MaxStep, o.StepThreshold)
	}
	return nil
}

func parseServer(s string) (*entry, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		// No port: the whole string is the host (bracketless IPv6 too).
		host, portStr = s, strconv.Itoa(DefaultPort)
	}
	if host == "" {
		return nil, fmt.Errorf("%q: empty host", s)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("%q: port %q is not a number in 1–65535", s, portStr)
	}
	e := &entry{name: s, host: host, port: uint16(port)}
	if ip, err := netip.ParseAddr(host); err == nil {
		e.ip = ip.Unmap()
	}
	return e, nil
}

// Run polls the sources and disciplines the clock until ctx ends, then
// returns ctx.Err(). The caller owns the goroutine. It may be called once.
func (d *Discipliner) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	var wg sync.WaitGroup
	start := func(s *source) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.runSource(ctx, s)
		}()
	}
	d.mu.Lock()
	lit := slices.Clone(d.sources)
	d.mu.Unlock()
	for _, s := range lit {
		start(s)
	}
	for _, e := range d.entries {
		if !e.ip.IsValid() && !e.nts() { // NTS names are resolved by NTS-KE
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.resolveEntry(ctx, e, start)
			}()
		}
	}
	for d.sleep(ctx, time.Second) {
		d.housekeep()
		d.saveDrift(false)
	}
	wg.Wait()
	d.saveDrift(true)
	return ctx.Err()
}

// resolveEntry resolves a name until it yields addresses, retrying with
// backoff, and starts a source for each new address.
func (d *Discipliner) resolveEntry(ctx context.Context, e *entry, start func(*source)) {
	wait := time.Second
	first := true
	for {
		addrs, err := d.lookup(ctx, e)
		var added []*source
		d.mu.Lock()
		if first {
			d.pending--
			first = false
		}
		if err != nil {
			e.resolveFailures++
			e.resolveErr = err.Error()
		}
		local := d.localAddrs()
		for _, a := range addrs {
			if len(added) == d.o.MaxPerName {
				break
			}
			if slices.Contains(local, a) {
				d.log.Info("upstream: skipping an address of this host", "name", e.name, "addr", a.String())
				continue
			}
			if s := d.addSourceLocked(e, netip.AddrPortFrom(a, e.port)); s != nil {
				added = append(added, s)
			}
		}
		if len(added) > 0 {
			e.resolved = true
		}
		d.mu.Unlock()
		for _, s := range added {
			d.log.Info("upstream source added", "name", e.name, "addr", s.addr.String())
			start(s)
		}
		if len(added) > 0 {
			return
		}
		if err == nil {
			err = errors.New("no unused address")
		}
		d.log.Warn("upstream resolve failed", "name", e.name, "err", err, "retry", wait)
		if !d.sleep(ctx, wait) {
			return
		}
		wait = min(2*wait, max(d.o.MaxPoll, time.Minute), 10*time.Minute)
	}
}

func (d *Discipliner) lookup(ctx context.Context, e *entry) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := d.o.Resolver.LookupNetIP(ctx, "ip", e.host)
	if err != nil {
		return nil, fmt.Errorf("upstream: resolve %q: %w", e.host, err)
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

// addSourceLocked adds a source for ap unless another source uses it.
func (d *Discipliner) addSourceLocked(e *entry, ap netip.AddrPort) *source {
	if d.inUse[ap] {
		return nil
	}
	d.inUse[ap] = true
	s := &source{e: e, addr: ap, poll: d.o.MinPoll}
	d.sources = append(d.sources, s)
	return s
}

// elapsed returns the raw time of the base clock reading t.
func (d *Discipliner) elapsed(t time.Time) time.Duration { return t.Sub(d.epoch) }

func (d *Discipliner) rawNow() time.Duration { return d.elapsed(d.base.Now()) }

// ntpTime returns raw time e as an NTP timestamp on the raw timescale.
func (d *Discipliner) ntpTime(e time.Duration) ntpwire.Time {
	return ntpwire.TimeOf(time.Unix(0, d.epochWall+int64(e)))
}

// Now returns the disciplined time. It never returns a time earlier than
// one it returned before (as long as the base clock's monotonic reading
// advances).
func (d *Discipliner) Now() time.Time {
	e := d.rawNow()
	return time.Unix(0, d.snap.Load().served(d.epochWall, e))
}

// FromSystem returns the disciplined time at the moment the base clock
// showed sys: servers use it to put kernel receive timestamps on the
// served timescale. sys without a monotonic reading is taken as a wall
// clock reading of the base clock. It is only meaningful when the base
// clock is the system clock (the default); a server serving a Discipliner
// built on another clock should set server.Server.UserTimestamps.
//
// A wall-clock reading is mapped with the wall-to-monotonic offset read
// now. If that offset moved by more than wallStepTolerance since it was
// last refreshed (every second), the system clock was stepped by someone
// (timesyncd, a host daemon, an administrator) and sys may come from
// either side of the step; and a reading that maps into the future or
// more than maxStampAge into the past is not from the current mapping
// either. Then FromSystem returns the current time instead: a reply's
// receive and transmit timestamps always come from one mapping, never a
// receive timestamp off by the step.
func (d *Discipliner) FromSystem(sys time.Time) time.Time {
	s := d.snap.Load()
	if w := sys.Round(0); w != sys {
		return time.Unix(0, s.served(d.epochWall, sys.Sub(d.epoch))) // has a monotonic reading
	}
	wall, raw := d.wallRaw()
	fresh := time.Duration(wall-d.epochWall) - raw
	e := time.Duration(sys.UnixNano()-d.epochWall) - fresh
	if (fresh-s.wallMono).Abs() > wallStepTolerance || e > raw || e < raw-maxStampAge {
		e = raw
	}
	return time.Unix(0, s.served(d.epochWall, e))
}

// wallStepTolerance is how far the system clock's wall-minus-monotonic
// offset may move between refreshes (a second apart) without being taken
// for a step: a kernel slewing at its 500 ppm limit moves it 0.5 ms.
const wallStepTolerance = time.Millisecond

// maxStampAge is the oldest a kernel receive timestamp may be when it is
// mapped.
const maxStampAge = time.Second

// wallRaw returns a wall-clock reading of the base clock (Unix
// nanoseconds) and the raw time at that moment, from one reading.
func (d *Discipliner) wallRaw() (int64, time.Duration) {
	if d.wallNow != nil {
		return d.wallNow(), d.rawNow()
	}
	now := d.base.Now()
	return now.UnixNano(), d.elapsed(now)
}

// Precision returns the base clock's precision in log2 seconds.
func (d *Discipliner) Precision() int8 { return d.precision }

// Reference returns the reference data to serve now: the system peer's
// stratum plus one and its address as refid, the time of the last update,
// the accumulated root delay and dispersion (growing with time since the
// update) and the sources' leap warning; or leap alarm and stratum 16
// while unsynchronised.
func (d *Discipliner) Reference() ntpwire.Reference {
	return d.snap.Load().reference(d.rawNow())
}

// Synchronized reports whether the served reference data says the clock
// is synchronised.
func (d *Discipliner) Synchronized() bool { return d.Reference().Synchronized() }

// publishLocked stores a new snapshot, refreshing the wall-minus-monotonic
// difference that FromSystem uses for kernel timestamps.
func (d *Discipliner) publishLocked(s snapshot) {
	wall, raw := d.wallRaw()
	s.wallMono = time.Duration(wall-d.epochWall) - raw
	// Readers never see time go back: not after a backward step, nor
	// when a new curve starts a little below the old one.
	if old := d.snap.Load(); old != nil {
		s.floor = max(s.floor, old.served(d.epochWall, raw))
		if step := s.wallMono - old.wallMono; step.Abs() > wallStepTolerance {
			d.log.Warn("upstream: system clock stepped; served time unaffected, kernel receive stamps remapped", "by", step)
		}
	}
	d.snap.Store(&s)
}

// housekeep runs every second: it ends synchronisation after the holdover
// and keeps the snapshot's wall-to-monotonic offset fresh.
func (d *Discipliner) housekeep() {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.rawNow()
	d.leapTickLocked(now)
	s := *d.snap.Load()
	if d.synced && now-s.updated > s.holdover {
		d.synced = false
		s.synced = false
		d.log.Warn("upstream: lost synchronisation", "since_update", (now - s.updated).Round(time.Millisecond))
	}
	d.logUnsyncLocked(now)
	d.publishLocked(s)
}

// unsyncLogEvery is how often the reason for being unsynchronised is
// logged again while it stays the same; unsyncLogAfter is how long after
// start the first burst may take before it is logged at all.
const (
	unsyncLogEvery = 10 * time.Minute
	unsyncLogAfter = 10 * time.Second
)

// logUnsyncLocked says why the clock is not synchronised: once when the
// reason changes and every unsyncLogEvery while it persists.
func (d *Discipliner) logUnsyncLocked(now time.Duration) {
	if d.synced || d.refusing || now < unsyncLogAfter {
		d.whyLogged = ""
		return
	}
	why := d.why
	if why == "" {
		reach := 0
		for _, s := range d.sources {
			if s.reach != 0 {
				reach++
			}
		}
		why = fmt.Sprintf("no usable samples (%d of %d sources reachable)", reach, len(d.sources))
		if d.updates > 0 {
			why = fmt.Sprintf("holdover expired without a usable update (%d of %d sources reachable)", reach, len(d.sources))
		}
	}
	if why == d.whyLogged && now-d.whyLogAt < unsyncLogEvery {
		return
	}
	d.whyLogged, d.whyLogAt = why, now
	d.log.Warn("upstream: not synchronised", "reason", why)
}

// startSamples is how many samples a source needs in its register before
// an unsynchronised clock is set from it, while its start-up burst is
// still giving more: one exchange says little about a path whose delay
// jitters, and a line through a single point has no frequency. chrony
// likewise waits for several samples of its burst.
const startSamples = 3

// startReadyLocked reports whether s may take part in a selection that
// would synchronise the clock: it has startSamples samples, or it is not
// in a start-up burst (the burst is over, and a lossy source counts with
// what it gave; or there was none, Options.NoIBurst).
func (d *Discipliner) startReadyLocked(s *source) bool {
	return len(s.filt.hist) >= startSamples || s.burst == 0
}

// candidate is a source taking part in one selection.
type candidate struct {
	s    *source
	out  filterOutput
	iv   interval
	dist float64
	mean float64 // mean offset of the register, seconds
}

// updateLocked runs selection, clustering and combining at raw time now,
// after a new sample, and updates the clock when a majority agrees.
func (d *Discipliner) updateLocked(now time.Duration) {
	d.leapTickLocked(now)
	prec := ntpwire.LogToDuration(d.precision).Seconds()
	var cands []candidate
	eligible := d.pending
	wait := 0 // sources that answered but are still in their start-up burst
	for _, s := range d.sources {
		switch {
		case s.retired:
			s.state = StateKoD
			continue
		case s.reach == 0 && s.polls >= 8:
			s.state = StateUnreachable
			continue
		case s.samples == 0 && s.polls >= startupPolls:
			// Never answered, not even during the start-up burst: it
			// does not hold back the sources that did. A minority of
			// the sources that answer still never sets the clock.
			s.state = StateUnreachable
			continue
		}
		eligible++
		if s.reach == 0 {
			s.state = StateInit
			continue
		}
		if !d.synced && !d.startReadyLocked(s) {
			// Its burst is still coming in: wait for enough samples
			// to judge the path rather than synchronise on one.
			s.state = StateInit
			wait++
			continue
		}
		out := s.filt.output(now, prec+ntpwire.LogToDuration(s.precision).Seconds(), d.freq)
		if !out.ok {
			s.state = StateInit
			continue
		}
		dist := (s.rootDelay+out.best.delay).Seconds()/2 + s.rootDisp.Seconds() + out.disp.Seconds() + out.jitter.Seconds()
		s.dist = seconds(dist)
		s.jitter = out.jitter.Seconds()
		if s.dist > d.o.MaxDistance {
			s.state = StateUnreachable
			continue
		}
		off := out.best.offset.Seconds() + d.freq*(now-out.best.at).Seconds()
		// The cluster algorithm compares the sources' mean offsets over
		// the register rather than single samples: with noisy timestamps
		// the lowest-delay sample is no better than any other, and
		// comparing single samples would drop good sources at random.
		var mean float64
		reg := s.filt.hist[max(0, len(s.filt.hist)-filterLen):]
		for _, smp := range reg {
			mean += smp.offset.Seconds() + d.freq*(now-smp.at).Seconds()
		}
		mean /= float64(len(reg))
		cands = append(cands, candidate{s: s, out: out, iv: interval{off, dist}, dist: dist, mean: mean})
	}
	need := max(eligible/2+1, d.o.MinSources)
	if len(cands) < need {
		// Not enough sources to outvote a falseticker: keep the clock
		// (and the states of the last selection) as they are.
		reach := 0
		for _, s := range d.sources {
			if s.reach != 0 {
				reach++
			}
		}
		d.why = fmt.Sprintf("%d usable sources, %d needed to agree (%d of %d sources reachable)", len(cands), need, reach, len(d.sources))
		if !d.synced && wait > 0 {
			d.why = fmt.Sprintf("%d usable sources, %d needed to agree (%d of %d sources reachable, %d still in their start-up burst)", len(cands), need, reach, len(d.sources), wait)
		}
		return
	}
	ivs := make([]interval, len(cands))
	for i, c := range cands {
		ivs[i] = c.iv
	}
	low, high, _, ok := marzullo(ivs)
	if !ok {
		d.why = fmt.Sprintf("no majority of the %d usable sources agree", len(cands))
		return
	}
	var truech, falset []candidate
	for _, c := range cands {
		if c.iv.offset+c.iv.dist < low || c.iv.offset-c.iv.dist > high {
			falset = append(falset, c)
			continue
		}
		truech = append(truech, c)
	}
	if len(truech) < need {
		d.why = fmt.Sprintf("%d of %d usable sources agree, %d needed", len(truech), len(cands), need)
		return
	}
	d.why = ""
	for _, c := range falset {
		c.s.state = StateFalseticker
	}
	items := make([]clusterItem, len(truech))
	for i, c := range truech {
		items[i] = clusterItem{offset: c.mean, jitter: c.out.jitter.Seconds()}
		c.s.state = StateOutlier
	}
	alive := cluster(items, min(3, max(need, 1)))
	surv := make([]candidate, len(alive))
	for i, j := range alive {
		surv[i] = truech[j]
		surv[i].s.state = StateCandidate
	}
	// The system peer: the old one if it survived (no clock hopping),
	// else the survivor of lowest stratum, then root distance.
	var peer *candidate
	for i := range surv {
		if surv[i].s == d.sysPeer {
			peer = &surv[i]
		}
	}
	if peer == nil {
		peer = &surv[0]
		for i := range surv[1:] {
			c := &surv[i+1]
			if c.s.stratum < peer.s.stratum || c.s.stratum == peer.s.stratum && c.dist < peer.dist {
				peer = c
			}
		}
	}
	peer.s.state = StateSelected

	f := d.combine(now, surv)
	d.apply(now, f, peer, surv)
}

// combine fits offset and frequency through the survivors' recent samples.
func (d *Discipliner) combine(now time.Duration, surv []candidate) fit {
	var pts []point
	yRef := surv[0].out.best.offset
	for _, c := range surv {
		// A sample's weight within its source: the source's noise that
		// delay does not explain (the scatter of its lowest-delay
		// samples), plus half its delay above the least, which bounds
		// the error a slow leg adds. The source's whole jitter would
		// swamp the delay term and weight slow samples nearly as much
		// as fast ones. The weights are inverse variances to the fit
		// (its frequency error, the prior's strength), so the source's
		// total stays what its whole jitter says.
		fl, j := c.out.floor.Seconds(), c.out.jitter.Seconds()
		var sumOld, sumNew float64
		first := len(pts)
		for _, smp := range c.s.filt.hist {
			ex := (smp.delay - c.out.minDelay).Seconds() / 2
			w := 1 / (fl*fl + ex*ex + 1e-18)
			sumOld += 1 / (j*j + ex*ex + 1e-18)
			sumNew += w
			pts = append(pts, point{
				x: (smp.at - now).Seconds(),
				y: (smp.offset - yRef).Seconds(),
				w: w,
			})
		}
		for i := first; i < len(pts); i++ {
			pts[i].w *= sumOld / sumNew
		}
	}
	slices.SortFunc(pts, func(a, b point) int {
		switch {
		case a.x < b.x:
			return -1
		case a.x > b.x:
			return 1
		}
		return 0
	})
	f := regress(pts, d.freq)
	if b := max(-maxFreq, min(maxFreq, f.freq)); b != f.freq {
		// A slope beyond any real clock's (the sources jumped): refit
		// the offset at the bounded slope rather than extrapolate the
		// wild one, which could overshoot the samples by far.
		f = fixedSlope(pts[len(pts)-max(f.used, 1):], b)
	}
	f.offset += yRef.Seconds()
	return f
}

// apply moves the software clock towards the estimate f and publishes the
// new reference data.
func (d *Discipliner) apply(at time.Duration, f fit, peer *candidate, surv []candidate) {
	// The fit is for raw time at, the sample's; the reply may have been
	// handled a little later. The new curve leaves from the old one now,
	// not at, so readers see no jump.
	now := max(d.rawNow(), at)
	old := d.snap.Load()
	target := (f.offset + f.freq*(now-at).Seconds()) * 1e9
	first := !d.synced
	gap := target - old.corr(now)
	if d.o.MaxStep > 0 && math.Abs(gap) > float64(d.o.MaxStep) {
		if d.everSynced {
			d.refuseLocked(gap, peer)
			return
		}
		d.log.Warn("upstream: first synchronisation steps beyond max step", "by", time.Duration(gap), "max_step", d.o.MaxStep)
	}
	if d.refusing {
		d.refusing = false
		d.log.Info("upstream: sources agree with the clock again", "offset", time.Duration(gap))
	}
	next, stepped := old.retarget(now, target, f.freq, first, d.o.StepThreshold, d.o.MaxSlewRate, minSlew)
	if stepped {
		if gap < 0 {
			next.floor = max(next.floor, old.served(d.epochWall, now))
		}
		if !first || math.Abs(gap) > float64(time.Millisecond) {
			d.steps++
			d.log.Info("upstream: clock stepped", "by", time.Duration(gap))
		}
	}
	d.log.Debug("upstream: update", "at", now, "gap", time.Duration(gap), "freq_ppm", f.freq*1e6, "freq_err_ppm", f.freqErr*1e6, "used", f.used, "rms", f.rms)
	// The convergence after start (from the frequency prior to the
	// host's, hundreds of ppm away) is no wander: count changes only
	// once two estimates in a row have been good to a ppm.
	if d.updates > 0 && max(f.freqErr, d.freqErr) < wanderFrom {
		d.wanderOn = true
	}
	if d.wanderOn && now > d.fitAt {
		df := f.freq - d.freq
		v := max(0, df*df-f.freqErr*f.freqErr) / (now - d.fitAt).Seconds()
		d.wander2 += wanderGain * (v - d.wander2)
	}
	d.fitAt = now
	d.freq = f.freq
	d.freqErr = f.freqErr
	d.fitPerSource = f.used / len(surv)
	d.offset = gap
	d.updates++

	p := peer.s
	var insert, del int
	for _, c := range surv {
		switch c.s.leap {
		case ntpwire.LeapInsert:
			insert++
		case ntpwire.LeapDelete:
			del++
		}
	}
	leap := ntpwire.LeapNone
	if 2*insert > len(surv) {
		leap = ntpwire.LeapInsert
	} else if 2*del > len(surv) {
		leap = ntpwire.LeapDelete
	}
	d.scheduleLeapLocked(&next, now, leap)
	stratum := min(p.stratum+1, ntpwire.MaxStratum)
	rootDelay := p.rootDelay + peer.out.best.delay
	j := peer.out.jitter.Seconds()
	d.jitter = math.Sqrt(j*j + f.rms*f.rms)
	rootDisp := p.rootDisp.Seconds() + peer.out.disp.Seconds() + d.jitter + math.Abs(gap)/1e9
	next.ref = ntpwire.Reference{
		Leap:      ntpwire.LeapNone, // the snapshot announces a scheduled leap
		Stratum:   stratum,
		Precision: d.precision,
		RefID:     ntpwire.RefIDFromAddr(p.addr.Addr()),
		RefTime:   ntpwire.TimeOf(time.Unix(0, next.served(d.epochWall, now))),
		RootDelay: ntpwire.ShortOf(rootDelay),
	}
	next.rootDisp = rootDisp
	next.updated = now
	next.synced = stratum < ntpwire.MaxStratum
	d.rootDist = rootDelay/2 + seconds(rootDisp)
	if next.synced && !d.synced {
		d.log.Info("upstream: synchronised", "peer", p.addr.String(), "stratum", stratum, "offset", time.Duration(gap), "sources", len(surv))
	} else if p != d.sysPeer {
		d.log.Debug("upstream: new system peer", "peer", p.addr.String(), "stratum", stratum)
	}
	d.synced = next.synced
	d.everSynced = d.everSynced || next.synced
	d.sysPeer = p
	d.publishLocked(next)
}

// refuseLocked handles an update beyond MaxStep after the first
// synchronisation: the clock keeps running on its own (as in a holdover)
// but says it is unsynchronised, so clients stop trusting it, until the
// sources agree with it again.
func (d *Discipliner) refuseLocked(gap float64, peer *candidate) {
	d.refused++
	if !d.refusing {
		d.refusing = true
		d.log.Error("upstream: refusing to step beyond max step; serving unsynchronised", "by", time.Duration(gap), "max_step", d.o.MaxStep, "peer", peer.s.addr.String())
	}
	d.offset = gap
	if d.synced {
		d.synced = false
		next := *d.snap.Load()
		next.synced = false
		d.publishLocked(next)
	}
}

// Status returns the state of the Discipliner and its sources.
func (d *Discipliner) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.rawNow()
	snap := d.snap.Load()
	ref := snap.reference(e)
	st := Status{
		Synchronized:   ref.Synchronized(),
		Stratum:        ref.Stratum,
		RefID:          ref.RefID,
		Leap:           ref.Leap,
		Offset:         time.Duration(d.offset),
		Correction:     time.Duration(snap.corr(e)),
		Frequency:      d.freq * 1e6,
		RootDelay:      ref.RootDelay.Duration(),
		RootDispersion: ref.RootDispersion.Duration(),
		Steps:          d.steps,
		Updates:        d.updates,
		RefusedSteps:   d.refused,
		Leaps:          d.leaps,
	}
	if snap.leapDir != 0 && !snap.leapDone {
		st.LeapSecond = ntpwire.LeapInsert
		if snap.leapDir < 0 {
			st.LeapSecond = ntpwire.LeapDelete
		}
		st.LeapTime = time.Unix(0, snap.leapAt).UTC()
		st.LeapSmear = snap.smear
	}
	for _, e := range d.entries {
		if !e.ip.IsValid() && !e.resolved && e.resolveFailures > 0 {
			st.Unresolved = append(st.Unresolved, NameStatus{Name: e.name, Failures: e.resolveFailures, LastError: e.resolveErr})
		}
	}
	st.RootDistance = st.RootDelay/2 + st.RootDispersion
	if d.updates > 0 {
		st.LastUpdate = ref.RefTime.In(time.Unix(0, d.epochWall))
	}
	for _, s := range d.sources {
		ss := SourceStatus{
			Name:               s.e.name,
			Addr:               s.addr,
			State:              s.state,
			Reach:              s.reach,
			Poll:               max(s.poll, s.pollFloor),
			Stratum:            s.stratum,
			RefID:              s.refID,
			Leap:               s.leap,
			Samples:            s.samples,
			InterleavedSamples: s.xlSamples,
			Interleaved:        s.interleaved,
			Rejects:            s.rej,
			RootDistance:       s.dist,
		}
		if n := len(s.filt.hist); n > 0 {
			last := s.filt.hist[n-1]
			ss.LastSample = time.Unix(0, snap.served(d.epochWall, last.at))
			ss.Offset = last.offset - time.Duration(snap.corr(last.at))
			ss.Delay = last.delay
			ss.Jitter = s.filt.output(e, 0, d.freq).jitter
		}
		st.Sources = append(st.Sources, ss)
		st.Rejects.add(s.rej)
	}
	return st
}

package server

import (
	"sync/atomic"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/ratelimit"
)

// RateLimitOptions configures a RateLimiter. The zero value limits
// nothing.
type RateLimitOptions struct {
	// Table limits each client (chrony's ratelimit interval and burst);
	// its memory is fixed when it is built, whatever the number of
	// distinct sources. Nil: no per-client limit.
	//
	// With a Table, every reply and KoD behind the limiter advertises a
	// poll of at least the Table's interval (log2 seconds, rounded up:
	// 8 s is 3), and the client's own poll when that is longer, as
	// chrony's replies do: a client polling faster than it may is told
	// to back off. The limiter raises the request's Packet.Poll, which
	// Responder and every ResponseWriter's Kiss echo.
	Table *ratelimit.Table
	// Global caps the requests answered per second from all clients
	// together; over it requests are dropped silently (the overload is
	// not the client's fault, and replying is the work being shed). It is
	// consulted only for requests within their client's limit. Nil: no
	// cap.
	Global *ratelimit.Global
	// Leak, when not zero, answers 1 in 2^Leak of a client's consecutive
	// over-limit requests anyway, like chrony's leak option (chrony
	// defaults to 2). It keeps a real client served, if slowly, while an
	// attacker spoofing its address holds its bucket empty. Values above
	// 31 count as 31. Leaked replies draw from LeakLimit.
	Leak uint
	// LeakLimit is the budget of leaked replies; over it, requests Leak
	// would let through are dropped instead (counted in Limited, Dropped
	// and LeakLimited). Give it the same *ratelimit.Global as KissLimit,
	// AccessControl's KissLimit and nts.Middleware's NAK limit to put
	// every reply a flood with a spoofed source can draw, beyond the
	// victim's own rate limit, under one global budget. Nil means no
	// bound: a spoofed flood then gets 1 in 2^Leak of its requests
	// answered at full size.
	LeakLimit *ratelimit.Global
	// Kiss sends a kiss-o'-death RATE to a client over its limit, which
	// tells ntpd and chrony clients to poll less often, instead of no
	// reply. A client is sent one on its first refused request and then
	// whenever its run of consecutive refused requests reaches a power of
	// two (2, 4, 8, ...; a request Leak lets through gets its normal
	// reply instead), so a flood with one spoofed address draws a
	// logarithmic number of KoDs, and all KoDs together stay within
	// KissLimit. The zero value drops silently.
	Kiss bool
	// KissLimit is the budget of kiss-o'-death replies; over it, clients
	// due a KoD are dropped silently. Share one with AccessControl. Nil
	// means no bound beyond the per-client spacing.
	KissLimit *ratelimit.Global
}

// RateLimitStats counts a RateLimiter's decisions. Every request counts
// in exactly one of Allowed, Leaked, Limited and LimitedGlobal; every
// refused one (Limited and LimitedGlobal) in exactly one of Kissed and
// Dropped.
type RateLimitStats struct {
	Allowed       uint64 // within the limits, passed on
	Leaked        uint64 // over the client's limit but passed on by Leak
	Limited       uint64 // refused: over the client's limit
	LimitedGlobal uint64 // refused: over the Global cap
	Kissed        uint64 // refused and sent a kiss-o'-death RATE
	Dropped       uint64 // refused and sent nothing
	// KissLimited counts refused requests that were due a KoD but were
	// dropped (and counted in Dropped) because KissLimit was spent.
	KissLimited uint64
	// LeakLimited counts over-limit requests Leak would have answered
	// but that were dropped (and counted in Limited and Dropped) because
	// LeakLimit was spent.
	LeakLimited uint64
}

// Indexes of RateLimiter's counters.
const (
	rlAllowed = iota
	rlLeaked
	rlLimited
	rlLimitedGlobal
	rlKissed
	rlDropped
	rlKissLimited
	rlLeakLimited
)

// RateLimiter is middleware that limits how often each client, and all
// clients together, are answered. Create it with NewRateLimiter and
// install it with Wrap. It takes the current time from each request's
// Received stamp, so it reads no clock, and it allocates nothing on the
// packet path. Update replaces its options atomically. It is safe for
// concurrent use.
type RateLimiter struct {
	opts atomic.Pointer[rateOptions]
	c    stripedCounters
}

// rateOptions is RateLimitOptions with what the packet path derives from
// them.
//
// Every worker reads it for every request, so it is padded to keep
// objects that are written often off its cache lines.
type rateOptions struct {
	_ [cacheLine]byte
	RateLimitOptions
	minPoll int8 // the Table's interval as a poll exponent
	_       [cacheLine]byte
}

// Poll exponents a reply may advertise for a rate limit interval: NTP's
// MAXPOLL (36 h) and far below any client's poll.
const (
	minAdvertisedPoll = -7
	maxAdvertisedPoll = 17
)

// pollFor returns the smallest poll exponent (log2 seconds) whose interval
// is at least d, within -7 (1/128 s) and 17 (36 h): the poll a reply
// advertises to clients rate-limited to one request per d.
func pollFor(d time.Duration) int8 {
	p := int8(minAdvertisedPoll)
	for p < maxAdvertisedPoll && pollDuration(p) < d {
		p++
	}
	return p
}

// pollDuration returns 2^p seconds.
func pollDuration(p int8) time.Duration {
	if p >= 0 {
		return time.Second << p
	}
	return time.Second >> -p
}

// NewRateLimiter returns a RateLimiter applying opts.
func NewRateLimiter(opts RateLimitOptions) *RateLimiter {
	l := new(RateLimiter)
	l.Update(opts)
	return l
}

// Update replaces l's options. Requests being handled finish with the old
// options; later ones see all of the new options at once. The counters
// are kept; the clients' state is that of opts.Table, so keep the same
// Table to keep it.
func (l *RateLimiter) Update(opts RateLimitOptions) {
	opts.Leak = min(opts.Leak, 31)
	o := &rateOptions{RateLimitOptions: opts, minPoll: minAdvertisedPoll}
	if opts.Table != nil {
		o.minPoll = pollFor(opts.Table.Config().Interval)
	}
	l.opts.Store(o)
}

// Options returns the options in force.
func (l *RateLimiter) Options() RateLimitOptions { return l.opts.Load().RateLimitOptions }

// MinPoll returns the poll exponent (log2 seconds) the limiter's replies
// advertise at least: the Table's interval rounded up to a power of two
// seconds, or -7 (no effect) without a Table.
func (l *RateLimiter) MinPoll() int8 { return l.opts.Load().minPoll }

// Wrap returns next behind l. Its method value is a Middleware.
func (l *RateLimiter) Wrap(next Handler) Handler {
	return rateHandler{l: l, next: next}
}

type rateHandler struct {
	l    *RateLimiter
	next Handler
}

func (h rateHandler) ServeNTP(w ResponseWriter, r *Request) {
	l := h.l
	o := l.opts.Load()
	now := r.Received
	outcome := rlAllowed
	if o.Table != nil {
		// Replies and KoDs echo the request's poll: ask for no more
		// than the limit allows.
		r.Packet.Poll = max(r.Packet.Poll, o.minPoll)
		res := o.Table.CheckLane(now, r.Src.Addr(), r.lane)
		// Dropped is 0 only for an address the table cannot key (the
		// zero Addr, which a server never sees): let it through.
		if !res.Allowed && res.Dropped != 0 {
			if o.Leak == 0 || !res.Leak(o.Leak) {
				l.c.add(r, rlLimited)
				l.refuse(w, r, o, res.Dropped&(res.Dropped-1) == 0)
				return
			}
			if !o.LeakLimit.Allow(now) {
				l.c.add(r, rlLimited)
				l.c.add(r, rlLeakLimited)
				l.c.add(r, rlDropped)
				return
			}
			outcome = rlLeaked
		}
	}
	if !o.Global.Allow(now) {
		l.c.add(r, rlLimitedGlobal)
		l.c.add(r, rlDropped)
		return
	}
	l.c.add(r, outcome)
	h.next.ServeNTP(w, r)
}

// refuse answers an over-limit request: a KoD RATE when one is due and the
// budget allows, else nothing.
func (l *RateLimiter) refuse(w ResponseWriter, r *Request, o *rateOptions, due bool) {
	if o.Kiss && due {
		sent, overBudget := sendKiss(w, r, ntpwire.KissRate, o.KissLimit)
		if sent {
			l.c.add(r, rlKissed)
			return
		}
		if overBudget {
			l.c.add(r, rlKissLimited)
		}
	}
	l.c.add(r, rlDropped)
}

// Stats returns l's counters since it was created. Counters are read one
// at a time, so while requests are being handled the totals may be off by
// the few requests in flight.
func (l *RateLimiter) Stats() RateLimitStats {
	return RateLimitStats{
		Allowed:       l.c.load(rlAllowed),
		Leaked:        l.c.load(rlLeaked),
		Limited:       l.c.load(rlLimited),
		LimitedGlobal: l.c.load(rlLimitedGlobal),
		Kissed:        l.c.load(rlKissed),
		Dropped:       l.c.load(rlDropped),
		KissLimited:   l.c.load(rlKissLimited),
		LeakLimited:   l.c.load(rlLeakLimited),
	}
}

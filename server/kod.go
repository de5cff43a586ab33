package server

import (
	"sync/atomic"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/ratelimit"
)

// Kiss-o'-death replies are built by ntpwire.NewKiss and sent through
// ResponseWriter.Kiss, which follows RFC 5905 §7.4: stratum 0, the code in
// the reference ID, leap alarm, the client's transmit timestamp echoed in
// the origin, receive and transmit timestamps so the KoD carries no usable
// time, and no extension fields, so a KoD is never longer than the request
// it answers.
//
// A KoD goes to the request's source address, which UDP does not
// authenticate: a flood with a victim's spoofed address would turn every
// denied or over-limit request into a reply to the victim. A KoD is no
// larger than the request, so there is no amplification, but the
// middlewares bound the reflection too: each takes a KissLimit, a global
// budget of KoDs per second shared by every client, and RateLimiter also
// spaces the KoDs to any one client (see RateLimitOptions.Kiss).

// sendKiss sends a KoD with code unless the budget is spent. It reports
// whether the KoD went out and, when not, whether the budget was why.
func sendKiss(w ResponseWriter, r *Request, code ntpwire.RefID, budget *ratelimit.Global) (sent, overBudget bool) {
	if !budget.Allow(r.Received) {
		return false, true
	}
	return w.Kiss(code) == nil, false
}

// counterStripes is the number of copies of each middleware's counters.
// A request counts in the copy of the worker that read it
// (Request.lane), so up to counterStripes workers each write cache lines
// of their own, which stay in their core's cache. Striping by anything
// the client chooses (its address or port) would not: every core would
// write every stripe, and each count would move a line between cores.
const counterStripes = 32

// maxCounters is the number of counters in one stripe.
const maxCounters = 8

// counterStripe is one copy of a middleware's counters, two cache lines
// long so that neighbouring copies share none.
type counterStripe struct {
	v [maxCounters]atomic.Uint64
	_ [128 - maxCounters*8]byte
}

// stripedCounters is a set of up to maxCounters event counters, striped to keep
// concurrent increments off shared cache lines. The zero value is ready.
// It begins with two cache lines of padding, so that the field before it
// in a middleware (the options pointer, read for every request) is not on
// a line that a worker's counting keeps taking away from the other cores.
type stripedCounters struct {
	_ [128]byte
	s [counterStripes]counterStripe
}

// add counts one event of kind i for request r, in the stripe of the
// worker that read it.
func (c *stripedCounters) add(r *Request, i int) {
	c.s[r.lane%counterStripes].v[i].Add(1)
}

// load returns the count of events of kind i.
func (c *stripedCounters) load(i int) uint64 {
	var n uint64
	for j := range c.s {
		n += c.s[j].v[i].Load()
	}
	return n
}

package server

import (
	"sync/atomic"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/policy"
	"github.com/ntpkit/ntpkit/ratelimit"
)

// AccessOptions configures an AccessControl middleware. The zero value
// allows every client.
type AccessOptions struct {
	// Addrs holds the address rules (most specific prefix wins, see
	// package policy). Nil leaves every address to Names, or allows it
	// when Names is nil too.
	Addrs *policy.ACL
	// Names, when set, decides for clients that no address rule matches
	// (policy.ACL.Match reports no match; a "/0" or "all" rule is a
	// match): its cached reverse-DNS decision, or its Default while the
	// client's name is not known yet. An address rule thus always wins
	// over a name rule, and Addrs' own default is not used. The caller
	// runs Names.Run, which does the lookups off the packet path.
	Names *policy.NameACL
	// Kiss sends a denied client a kiss-o'-death instead of no reply.
	// chrony and ntpd clients stop polling a server that answers DENY or
	// RSTR, which a silent drop never makes them do; the price is one
	// reply (no larger than the request) per denied request, bounded by
	// KissLimit. The zero value drops silently.
	Kiss bool
	// KissCode is the kiss code sent when Kiss is set; the zero RefID
	// means ntpwire.KissDeny. ntpwire.KissRstr is the other usual choice.
	KissCode ntpwire.RefID
	// KissLimit is the budget of kiss-o'-death replies; over it, denied
	// clients are dropped silently. Share one budget between
	// AccessControl and RateLimiter so that their KoDs together are
	// bounded. Nil means no bound.
	KissLimit *ratelimit.Global
}

// AccessStats counts an AccessControl's decisions. Every request counts
// in exactly one of Allowed, DeniedAddr and DeniedName, and every denied
// one in exactly one of Kissed and Dropped.
type AccessStats struct {
	Allowed    uint64 // passed on to the next handler
	DeniedAddr uint64 // denied by an address rule
	DeniedName uint64 // denied by a name rule, or by the name default
	Kissed     uint64 // denied and sent a kiss-o'-death
	Dropped    uint64 // denied and sent nothing
	// KissLimited counts the denied requests that were dropped (and
	// counted in Dropped) because the KissLimit budget was spent.
	KissLimited uint64
}

// Indexes of AccessControl's counters.
const (
	acAllowed = iota
	acDeniedAddr
	acDeniedName
	acKissed
	acDropped
	acKissLimited
)

// AccessControl is middleware that answers only the clients its rules
// allow: the others get a kiss-o'-death or no reply (AccessOptions.Kiss).
// Create it with NewAccessControl and install it with Wrap. Its options
// can be replaced at any time with Update, for instance on a
// configuration reload, without a lock on the packet path. It is safe for
// concurrent use, and on the packet path it allocates nothing (except
// when a NameACL queues a lookup for a client it has not seen).
type AccessControl struct {
	opts atomic.Pointer[AccessOptions]
	c    stripedCounters
}

// NewAccessControl returns an AccessControl applying opts.
func NewAccessControl(opts AccessOptions) *AccessControl {
	a := new(AccessControl)
	a.Update(opts)
	return a
}

// Update replaces a's options. Requests being handled finish with the old
// options; later ones see all of the new options at once. The counters
// are kept.
func (a *AccessControl) Update(opts AccessOptions) {
	if opts.KissCode == (ntpwire.RefID{}) {
		opts.KissCode = ntpwire.KissDeny
	}
	// Every worker reads the options for every request: keep objects
	// that are written often off their cache lines.
	p := &struct {
		_    [cacheLine]byte
		opts AccessOptions
		_    [cacheLine]byte
	}{opts: opts}
	a.opts.Store(&p.opts)
}

// Options returns the options in force, with defaults filled in.
func (a *AccessControl) Options() AccessOptions { return *a.opts.Load() }

// Wrap returns next guarded by a. Its method value is a Middleware:
//
//	h := server.Chain(server.Responder(), acl.Wrap, limiter.Wrap)
func (a *AccessControl) Wrap(next Handler) Handler {
	return accessHandler{a: a, next: next}
}

type accessHandler struct {
	a    *AccessControl
	next Handler
}

func (h accessHandler) ServeNTP(w ResponseWriter, r *Request) {
	a := h.a
	o := a.opts.Load()
	ip := r.Src.Addr()
	act, matched := o.Addrs.Match(ip)
	reason := acDeniedAddr
	if !matched && o.Names != nil {
		act, reason = o.Names.Decide(r.Received, ip), acDeniedName
	}
	if act == policy.Allow {
		a.c.add(r, acAllowed)
		h.next.ServeNTP(w, r)
		return
	}
	a.c.add(r, reason)
	if o.Kiss {
		sent, overBudget := sendKiss(w, r, o.KissCode, o.KissLimit)
		if sent {
			a.c.add(r, acKissed)
			return
		}
		if overBudget {
			a.c.add(r, acKissLimited)
		}
	}
	a.c.add(r, acDropped)
}

// Stats returns a's counters since it was created. Counters are read one
// at a time, so while requests are being handled the totals may be off by
// the few requests in flight.
func (a *AccessControl) Stats() AccessStats {
	return AccessStats{
		Allowed:     a.c.load(acAllowed),
		DeniedAddr:  a.c.load(acDeniedAddr),
		DeniedName:  a.c.load(acDeniedName),
		Kissed:      a.c.load(acKissed),
		Dropped:     a.c.load(acDropped),
		KissLimited: a.c.load(acKissLimited),
	}
}

package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// NameRule is one reverse-DNS rule of a NameACL. Suffix is a domain such as
// ".example.net" (a leading dot is optional). It matches a PTR name equal to
// the domain or ending in "." plus the domain, compared case-insensitively
// and ignoring a trailing dot, so ".example.net" matches "example.net" and
// "ntp1.Example.NET." but not "badexample.net".
type NameRule struct {
	Action Action
	Suffix string
}

// Resolver looks up the names of an address and the addresses of a name.
// *net.Resolver satisfies it.
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Defaults used by NewNameACL for zero fields of NameACLConfig.
const (
	DefaultNameTTL         = time.Hour
	DefaultNameNegativeTTL = 5 * time.Minute
	DefaultNameMaxEntries  = 4096
	DefaultNameWorkers     = 2
	DefaultNameQueueLen    = 256
	DefaultLookupTimeout   = 5 * time.Second
	// DefaultLookupsPerSecond bounds the background lookups started per
	// second (bursts of as many), so a flood of spoofed sources costs a
	// bounded amount of DNS work and cache churn.
	DefaultLookupsPerSecond = 20
	// maxConfirmNames bounds the PTR names of one address that are
	// confirmed by forward lookups.
	maxConfirmNames = 4
	// namePrealloc bounds the cache entries allocated up front.
	namePrealloc = 1024
)

// NameACLConfig configures a NameACL. Zero fields take the defaults noted.
type NameACLConfig struct {
	// Rules are matched against each PTR name of a client; for one name the
	// longest matching Suffix wins (the later rule for equal suffixes), and
	// across several names a Deny wins over an Allow.
	Rules []NameRule
	// Default is the decision while a client's name is unknown (not yet
	// looked up, lookup queued or failed) and for names no rule matches.
	Default Action
	// Resolver does the PTR lookups; nil means net.DefaultResolver.
	Resolver Resolver
	// TTL is how long a successful lookup is cached (default 1h).
	TTL time.Duration
	// NegativeTTL is how long a failed lookup is cached (default 5m).
	NegativeTTL time.Duration
	// MaxEntries bounds the cache (default 4096). When it is full a new
	// entry replaces, oldest first, an expired entry, else one whose
	// lookup matched no rule (failed, unconfirmed or unmatched), and only
	// when every entry matched a rule, the oldest of them: a flood of
	// unknown sources does not push out the clients the rules are for.
	MaxEntries int
	// Workers is the number of concurrent lookups Run performs (default 2).
	Workers int
	// QueueLen bounds the addresses waiting for a lookup (default 256);
	// when the queue is full further misses are not queued.
	QueueLen int
	// LookupTimeout bounds each lookup (default 5s), the reverse lookup
	// and the forward lookups that confirm it together.
	LookupTimeout time.Duration
	// LookupsPerSecond bounds how many addresses Decide queues for a
	// lookup per second, in bursts of as many (default
	// DefaultLookupsPerSecond); misses over it are not queued.
	LookupsPerSecond float64
	// Logger receives debug records about failed lookups; nil means no
	// logging.
	Logger *slog.Logger
}

type nameEntry struct {
	addr    netip.Addr
	action  Action
	expires time.Time
	matched bool // a confirmed name matched a rule
}

type nameJob struct {
	addr netip.Addr
	now  time.Time
}

// NameACL decides by the reverse-DNS names of clients. Build one with
// NewNameACL and run its lookup workers with Run. It is safe for concurrent
// use.
//
// A PTR name counts only when it is forward-confirmed (FCrDNS): a lookup
// of the name must return the client's address. Whoever controls an
// address's reverse zone can make it claim any name, but not make that
// name's forward zone point back.
type NameACL struct {
	rules    []NameRule // normalized: lower case, no leading or trailing dot
	def      Action
	res      Resolver
	ttl      time.Duration
	negTTL   time.Duration
	timeout  time.Duration
	workers  int
	log      *slog.Logger
	queue    chan nameJob
	limiter  *rate.Limiter    // lookups queued per second
	resolved func(netip.Addr) // test hook, called after a background lookup is cached

	mu         sync.RWMutex
	maxEntries int
	index      map[netip.Addr]int
	slots      []nameEntry // used as a FIFO ring once full
	next       int         // slot to replace next when full

	pmu     sync.Mutex
	pending map[netip.Addr]struct{}
}

// NewNameACL validates cfg, fills in defaults and returns a NameACL. Its
// cache is empty until Run is started or Resolve is called.
func NewNameACL(cfg NameACLConfig) (*NameACL, error) {
	if !cfg.Default.valid() {
		return nil, fmt.Errorf("policy: NameACLConfig.Default: invalid action %d", uint8(cfg.Default))
	}
	n := &NameACL{def: cfg.Default, res: cfg.Resolver, log: cfg.Logger}
	for i, r := range cfg.Rules {
		if !r.Action.valid() {
			return nil, fmt.Errorf("policy: NameACLConfig.Rules[%d].Action: invalid action %d", i, uint8(r.Action))
		}
		s := strings.ToLower(strings.Trim(r.Suffix, "."))
		if s == "" {
			return nil, fmt.Errorf("policy: NameACLConfig.Rules[%d].Suffix: empty domain %q", i, r.Suffix)
		}
		n.rules = append(n.rules, NameRule{Action: r.Action, Suffix: s})
	}
	var err error
	if n.ttl, err = durationOr("TTL", cfg.TTL, DefaultNameTTL); err != nil {
		return nil, err
	}
	if n.negTTL, err = durationOr("NegativeTTL", cfg.NegativeTTL, DefaultNameNegativeTTL); err != nil {
		return nil, err
	}
	if n.timeout, err = durationOr("LookupTimeout", cfg.LookupTimeout, DefaultLookupTimeout); err != nil {
		return nil, err
	}
	maxEntries, err := intOr("MaxEntries", cfg.MaxEntries, DefaultNameMaxEntries)
	if err != nil {
		return nil, err
	}
	if n.workers, err = intOr("Workers", cfg.Workers, DefaultNameWorkers); err != nil {
		return nil, err
	}
	queueLen, err := intOr("QueueLen", cfg.QueueLen, DefaultNameQueueLen)
	if err != nil {
		return nil, err
	}
	lps := cfg.LookupsPerSecond
	switch {
	case lps < 0 || math.IsNaN(lps) || math.IsInf(lps, 0):
		return nil, fmt.Errorf("policy: NameACLConfig.LookupsPerSecond: %v is not a positive rate", lps)
	case lps == 0:
		lps = DefaultLookupsPerSecond
	}
	n.limiter = rate.NewLimiter(rate.Limit(lps), max(1, int(math.Ceil(lps))))
	if n.res == nil {
		n.res = net.DefaultResolver
	}
	n.queue = make(chan nameJob, queueLen)
	// The cache grows as entries arrive (at most LookupsPerSecond a
	// second), so a huge MaxEntries costs nothing at start.
	n.maxEntries = maxEntries
	n.index = make(map[netip.Addr]int, min(maxEntries, namePrealloc))
	n.slots = make([]nameEntry, 0, min(maxEntries, namePrealloc))
	n.pending = make(map[netip.Addr]struct{}, queueLen)
	return n, nil
}

func durationOr(field string, d, def time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, fmt.Errorf("policy: NameACLConfig.%s: negative duration %v", field, d)
	case d == 0:
		return def, nil
	}
	return d, nil
}

func intOr(field string, v, def int) (int, error) {
	switch {
	case v < 0:
		return 0, fmt.Errorf("policy: NameACLConfig.%s: negative value %d", field, v)
	case v == 0:
		return def, nil
	}
	return v, nil
}

func nameKey(ip netip.Addr) netip.Addr { return ip.Unmap().WithZone("") }

// Decide returns the cached decision for ip if it has not expired at now.
// Otherwise it queues ip for a background lookup, unless it is already
// queued, the queue is full or LookupsPerSecond is spent, and returns the
// configured Default. Decide
// never blocks on a lookup and, on a cache hit, does not allocate.
func (n *NameACL) Decide(now time.Time, ip netip.Addr) Action {
	ip = nameKey(ip)
	if !ip.IsValid() {
		return n.def
	}
	n.mu.RLock()
	i, ok := n.index[ip]
	var e nameEntry
	if ok {
		e = n.slots[i]
	}
	n.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.action
	}
	n.enqueue(now, ip)
	return n.def
}

// Allowed reports whether Decide(now, ip) is Allow.
func (n *NameACL) Allowed(now time.Time, ip netip.Addr) bool { return n.Decide(now, ip) == Allow }

func (n *NameACL) enqueue(now time.Time, ip netip.Addr) {
	n.pmu.Lock()
	defer n.pmu.Unlock()
	if _, ok := n.pending[ip]; ok {
		return
	}
	if len(n.queue) == cap(n.queue) || !n.limiter.AllowN(now, 1) {
		return
	}
	select {
	case n.queue <- nameJob{addr: ip, now: now}:
		n.pending[ip] = struct{}{}
	default: // queue full: drop, a later Decide will retry
	}
}

// Run performs the queued lookups with the configured number of workers
// until ctx is done, then returns ctx.Err(). The caller owns the goroutine
// that calls Run.
func (n *NameACL) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range n.workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-n.queue:
					n.background(ctx, j)
				}
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}

func (n *NameACL) background(ctx context.Context, j nameJob) {
	if ctx.Err() == nil {
		n.lookup(ctx, j.now, j.addr)
	}
	n.pmu.Lock()
	delete(n.pending, j.addr)
	n.pmu.Unlock()
	if n.resolved != nil {
		n.resolved(j.addr)
	}
}

// Resolve looks up ip synchronously, caches the result as of now and
// returns the decision. It is for callers that can afford to wait, such as
// warming the cache at start-up; the packet path should use Decide.
func (n *NameACL) Resolve(ctx context.Context, now time.Time, ip netip.Addr) Action {
	ip = nameKey(ip)
	if !ip.IsValid() {
		return n.def
	}
	return n.lookup(ctx, now, ip)
}

func (n *NameACL) lookup(ctx context.Context, now time.Time, ip netip.Addr) Action {
	lctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	names, err := n.res.LookupAddr(lctx, ip.String())
	if err == nil {
		names, err = n.confirm(lctx, ip, names)
	}
	if err != nil && ctx.Err() != nil {
		return n.def // shutting down: the failure says nothing about ip
	}
	act, ttl, matched := n.def, n.ttl, false
	if err != nil {
		ttl = n.negTTL
		if n.log != nil {
			n.log.LogAttrs(ctx, slog.LevelDebug, "policy: reverse lookup failed",
				slog.String("addr", ip.String()), slog.String("err", err.Error()))
		}
	} else {
		act, matched = n.match(names)
	}
	n.store(nameEntry{addr: ip, action: act, expires: now.Add(ttl), matched: matched}, now)
	return act
}

// errUnconfirmed is why an address whose PTR names all fail forward
// confirmation is decided by Default, for NegativeTTL.
var errUnconfirmed = errors.New("policy: no PTR name resolves back to the address")

// confirm returns the names (at most maxConfirmNames are tried) whose
// forward lookup returns ip.
func (n *NameACL) confirm(ctx context.Context, ip netip.Addr, names []string) ([]string, error) {
	var ok []string
	for i, name := range names {
		if i == maxConfirmNames {
			break
		}
		addrs, err := n.res.LookupNetIP(ctx, "ip", strings.TrimSuffix(name, "."))
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			continue
		}
		for _, a := range addrs {
			if a.Unmap().WithZone("") == ip {
				ok = append(ok, name)
				break
			}
		}
	}
	if len(ok) == 0 {
		return nil, errUnconfirmed
	}
	return ok, nil
}

// store caches e. When the cache is full, it replaces, scanning from the
// oldest, the first entry expired at now or not matched by a rule, or
// else the oldest entry.
func (n *NameACL) store(e nameEntry, now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if i, ok := n.index[e.addr]; ok {
		n.slots[i] = e
		return
	}
	if len(n.slots) < n.maxEntries {
		n.index[e.addr] = len(n.slots)
		n.slots = append(n.slots, e)
		return
	}
	if len(n.slots) == 0 {
		return
	}
	i := n.next
	for k := range len(n.slots) {
		j := (n.next + k) % len(n.slots)
		if s := &n.slots[j]; !s.matched || !now.Before(s.expires) {
			i = j
			break
		}
	}
	delete(n.index, n.slots[i].addr)
	n.slots[i] = e
	n.index[e.addr] = i
	n.next = (i + 1) % len(n.slots)
}

// match applies the rules to the PTR names: per name the longest matching
// suffix wins; across names Deny wins over Allow; no match gives Default.
// matched reports whether a rule matched.
func (n *NameACL) match(names []string) (act Action, matched bool) {
	allowed := false
	for _, name := range names {
		name = strings.TrimSuffix(name, ".")
		best, act := -1, n.def
		for _, r := range n.rules {
			if len(r.Suffix) >= best && hasDomainSuffix(name, r.Suffix) {
				best, act = len(r.Suffix), r.Action
			}
		}
		if best < 0 {
			continue
		}
		if act == Deny {
			return Deny, true
		}
		allowed = true
	}
	if allowed {
		return Allow, true
	}
	return n.def, false
}

func hasDomainSuffix(name, suffix string) bool {
	if len(name) < len(suffix) || !strings.EqualFold(name[len(name)-len(suffix):], suffix) {
		return false
	}
	return len(name) == len(suffix) || name[len(name)-len(suffix)-1] == '.'
}

// Len returns the number of cached names.
func (n *NameACL) Len() int {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.slots)
}

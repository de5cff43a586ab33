package daemon

// Access control, rate limiting and kiss-o'-death: Options.Access and
// Options.RateLimit turned into the server.AccessControl and
// server.RateLimiter middleware.
//
// New builds them once with newGuards and installs g.middleware() around
// the responder (access control first, then the rate limit); Run starts
// the reverse-DNS lookups with g.start and stops them with g.stop. A
// reload builds every new part first (ACL, name rules, tables, budgets)
// with g.prepare and only then swaps them in with g.commit, which uses the
// middlewares' Update. Parts whose settings did not change are kept, so a
// reload does not forget the clients' rate-limit state or the cached
// names. The counters survive reloads.

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"sync"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/policy"
	"github.com/ntpkit/ntpkit/ratelimit"
	"github.com/ntpkit/ntpkit/server"
)

// guardParts are the middlewares' building blocks for one set of options.
type guardParts struct {
	access Access
	rate   RateLimit
	acl    *policy.ACL
	names  *policy.NameACL // nil: no name rules
	table  *ratelimit.Table
	global *ratelimit.Global
	kiss   *ratelimit.Global
}

// buildParts builds the parts a and r describe, reusing those of prev
// (which may be nil) whose settings are unchanged.
func buildParts(a Access, r RateLimit, prev *guardParts, logger *slog.Logger) (*guardParts, error) {
	if err := r.validate(&a); err != nil {
		return nil, err
	}
	p := &guardParts{access: a, rate: r}
	if p.access.KissCode == (ntpwire.RefID{}) {
		p.access.KissCode = ntpwire.KissDeny
	}
	if c := p.access.KissCode; c != ntpwire.KissDeny && c != ntpwire.KissRstr {
		return nil, fmt.Errorf("daemon: Access.KissCode %q is neither DENY nor RSTR", c.String())
	}
	var err error
	if p.acl, err = policy.New(a.Rules, a.Default); err != nil {
		return nil, fmt.Errorf("daemon: Access: %w", err)
	}
	switch {
	case a.Names == nil:
	case prev != nil && prev.names != nil && prev.access.Default == a.Default && reflect.DeepEqual(prev.access.Names, a.Names):
		p.names = prev.names // keep the cached names
	default:
		nc := *a.Names
		nc.Default = a.Default
		if nc.Logger == nil {
			nc.Logger = logger
		}
		if p.names, err = policy.NewNameACL(nc); err != nil {
			return nil, fmt.Errorf("daemon: Access.Names: %w", err)
		}
	}
	switch {
	case !r.Enabled:
		// No table: nothing is allocated while the limits are off.
	case prev != nil && prev.table != nil && prev.table.Config() == r.Client:
		p.table = prev.table // keep the clients' state
	default:
		if p.table, err = ratelimit.New(r.Client); err != nil {
			return nil, fmt.Errorf("daemon: RateLimit.Client: %w", err)
		}
	}
	if r.Enabled && r.GlobalPerSecond > 0 {
		if prev != nil && prev.global != nil && prev.rate.GlobalPerSecond == r.GlobalPerSecond && prev.rate.GlobalBurst == r.GlobalBurst {
			p.global = prev.global
		} else {
			burst := r.GlobalBurst
			if burst == 0 {
				burst = int(math.Ceil(r.GlobalPerSecond))
			}
			p.global = ratelimit.NewGlobal(r.GlobalPerSecond, burst)
		}
	}
	if r.KissPerSecond > 0 {
		if prev != nil && prev.kiss != nil && prev.rate.KissPerSecond == r.KissPerSecond {
			p.kiss = prev.kiss
		} else {
			p.kiss = ratelimit.NewGlobal(r.KissPerSecond, int(math.Ceil(r.KissPerSecond)))
		}
	}
	return p, nil
}

// guards owns the daemon's access-control and rate-limit middleware.
type guards struct {
	logger *slog.Logger
	ac     *server.AccessControl
	rl     *server.RateLimiter

	mu        sync.Mutex // serializes reloads
	cur       *guardParts
	ctx       context.Context // set by start; nil before and after stop
	stopNames context.CancelFunc
	wg        sync.WaitGroup
	// onBudget, when set, is called with the reflection budget each time
	// commit replaces it; the daemon puts NTS NAKs under it.
	onBudget func(*ratelimit.Global)
}

// newGuards builds the middleware for a and r. Call start to run name
// lookups.
func newGuards(a Access, r RateLimit, logger *slog.Logger) (*guards, error) {
	p, err := buildParts(a, r, nil, logger)
	if err != nil {
		return nil, err
	}
	g := &guards{logger: logger, cur: p}
	g.ac = server.NewAccessControl(p.accessOptions())
	g.rl = server.NewRateLimiter(p.rateOptions())
	g.logConfig(p)
	return g, nil
}

// middleware returns the middlewares in order, for server.Chain: access
// control first, so denied clients cost no rate-limit state and cannot
// push allowed clients out of the table; then the rate limit. Both are
// always installed, so a reload can turn either on.
func (g *guards) middleware() []server.Middleware {
	return []server.Middleware{g.ac.Wrap, g.rl.Wrap}
}

// start runs the reverse-DNS lookups of the name rules in force, and of
// those later reloads bring, until ctx ends or stop is called.
func (g *guards) start(ctx context.Context) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ctx = ctx
	g.runNames(g.cur.names)
}

// stop ends the name lookups and waits for them.
func (g *guards) stop() {
	g.mu.Lock()
	if g.stopNames != nil {
		g.stopNames()
		g.stopNames = nil
	}
	g.ctx = nil
	g.mu.Unlock()
	g.wg.Wait()
}

// runNames starts n's lookups and stops the previous NameACL's. g.mu is
// held.
func (g *guards) runNames(n *policy.NameACL) {
	if g.ctx == nil {
		return
	}
	if g.stopNames != nil {
		g.stopNames()
		g.stopNames = nil
	}
	if n == nil {
		return
	}
	ctx, cancel := context.WithCancel(g.ctx)
	g.stopNames = cancel
	g.wg.Go(func() { n.Run(ctx) })
}

// prepare builds the parts for a and r without changing anything. The
// caller holds g.mu until commit.
func (g *guards) prepare(a Access, r RateLimit) (*guardParts, error) {
	return buildParts(a, r, g.cur, g.logger)
}

// commit swaps p in. The caller holds g.mu.
func (g *guards) commit(p *guardParts) {
	if p.names != g.cur.names {
		g.runNames(p.names)
	}
	g.ac.Update(p.accessOptions())
	g.rl.Update(p.rateOptions())
	if p.kiss != g.cur.kiss && g.onBudget != nil {
		g.onBudget(p.kiss)
	}
	g.cur = p
	g.logConfig(p)
}

func (g *guards) logConfig(p *guardParts) {
	if g.logger == nil {
		return
	}
	g.logger.Info("access control",
		"rules", len(p.acl.Rules()), "default", p.access.Default.String(), "name_rules", p.names != nil, "kiss", p.access.Kiss)
	if p.table == nil {
		g.logger.Info("rate limiting off")
		return
	}
	c := p.table.Config()
	g.logger.Info("rate limiting", "interval", c.Interval, "burst", c.Burst, "clients", p.table.Entries(),
		"memory", c.MemoryBytes, "leak", p.rate.Leak, "kiss", p.rate.Kiss, "global_per_second", p.rate.GlobalPerSecond)
}

func (p *guardParts) accessOptions() server.AccessOptions {
	return server.AccessOptions{
		Addrs:     p.acl,
		Names:     p.names,
		Kiss:      p.access.Kiss,
		KissCode:  p.access.KissCode,
		KissLimit: p.kiss,
	}
}

func (p *guardParts) rateOptions() server.RateLimitOptions {
	if !p.rate.Enabled {
		return server.RateLimitOptions{}
	}
	return server.RateLimitOptions{
		Table:     p.table,
		Global:    p.global,
		Leak:      p.rate.Leak,
		Kiss:      p.rate.Kiss,
		KissLimit: p.kiss,
		LeakLimit: p.kiss,
	}
}

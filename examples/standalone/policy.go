package main

// Access control, rate limiting and kiss-o'-death: the "access" and
// "rate_limit" sections of the configuration, turned into the
// server.AccessControl and server.RateLimiter middleware.
//
// serve builds them once with newGuards, installs g.middleware() around the
// responder (access control first, then the rate limit), starts the
// reverse-DNS lookups with g.start and stops them with g.stop. A reload
// calls g.reload(cfg) with the new, validated configuration: it builds
// every new part first (ACL, name rules, tables, budgets) and only then
// swaps them in with the middlewares' Update; if anything fails, it
// returns the error and nothing changes. Parts whose settings did not
// change are kept, so a reload does not forget the clients' rate-limit
// state or the cached names. The counters survive reloads.

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/policy"
	"github.com/ntpkit/ntpkit/ratelimit"
	"github.com/ntpkit/ntpkit/server"
)

// AccessConfig is the "access" section: who is answered. Address rules
// follow chrony's allow/deny: the most specific matching prefix wins,
// whichever list it is in, and for a prefix listed in both, deny wins.
// Name rules are consulted only for addresses that no address rule
// matches ("all" and /0 rules match every address); while a client's name
// is not known yet, Default applies.
type AccessConfig struct {
	// Allow lists prefixes ("192.0.2.0/24", "2001:db8::/32"), addresses
	// or "all" to answer.
	Allow []string `json:"allow"`
	// Deny lists prefixes, addresses or "all" not to answer.
	Deny []string `json:"deny"`
	// Default is "allow" or "deny": the decision for clients no rule
	// matches.
	Default string `json:"default"`
	// Kiss sends denied clients a kiss-o'-death (which makes chrony and
	// ntpd clients stop polling) instead of no reply. KoDs, of both
	// sections, are limited by rate_limit.kiss_per_second.
	Kiss bool `json:"kiss"`
	// KissCode is the code sent to denied clients: "DENY" or "RSTR".
	KissCode string `json:"kiss_code"`
	// Names holds the reverse-DNS rules.
	Names NamesConfig `json:"names"`
}

// NamesConfig is "access.names": rules on clients' reverse-DNS names,
// looked up in the background and cached.
type NamesConfig struct {
	// Allow and Deny list domain suffixes (".example.net"); the longest
	// matching suffix wins.
	Allow []string `json:"allow"`
	Deny  []string `json:"deny"`
	// TTL is how long a name is cached (a Go duration, "1h").
	TTL string `json:"ttl"`
	// NegativeTTL is how long a failed lookup is cached ("5m").
	NegativeTTL string `json:"negative_ttl"`
	// MaxEntries bounds the name cache.
	MaxEntries int `json:"max_entries"`
}

// RateLimitConfig is the "rate_limit" section, after chrony's ratelimit
// directive, plus a global cap and the budget of kiss-o'-death replies.
type RateLimitConfig struct {
	// Enabled turns the per-client and global limits on.
	Enabled bool `json:"enabled"`
	// Interval is the minimum average interval between one client's
	// requests (a Go duration, "1s").
	Interval string `json:"interval"`
	// Burst is how many requests a client may send back to back.
	Burst int `json:"burst"`
	// IPv4Prefix and IPv6Prefix group clients by prefix (32 and 64).
	IPv4Prefix int `json:"ipv4_prefix"`
	IPv6Prefix int `json:"ipv6_prefix"`
	// Memory is the size of the client table in bytes; it holds
	// Memory/16 clients and never grows, whatever the number of sources.
	Memory int `json:"memory"`
	// Leak answers 1 in 2^leak of a client's over-limit requests anyway
	// (chrony's leak); 0 turns it off.
	Leak uint `json:"leak"`
	// Kiss sends over-limit clients a kiss-o'-death RATE, spaced out per
	// client, instead of no reply.
	Kiss bool `json:"kiss"`
	// GlobalPerSecond caps the requests answered per second in total; 0
	// means no cap. GlobalBurst is the cap's burst (0: one second's
	// worth).
	GlobalPerSecond float64 `json:"global_per_second"`
	GlobalBurst     int     `json:"global_burst"`
	// KissPerSecond is the reflection budget, per second: kiss-o'-death
	// replies of "access" and "rate_limit", replies let through by leak
	// and NTS NAKs all draw from it (it applies even when the limits are
	// disabled), so that a flood with a spoofed source cannot turn the
	// server into a reflector. It must be above 0 when either section
	// sends KoDs or leak is on.
	KissPerSecond float64 `json:"kiss_per_second"`
}

// validatePolicy checks the "access" and "rate_limit" sections by
// building everything they describe, and returns the first problem as a
// *FieldError.
func (c *Config) validatePolicy() error {
	_, err := buildParts(*c, nil, false)
	return err
}

// guardParts are the middlewares' building blocks for one configuration.
type guardParts struct {
	access AccessConfig
	rate   RateLimitConfig
	acl    *policy.ACL
	names  *policy.NameACL // nil: no name rules
	table  *ratelimit.Table
	global *ratelimit.Global
	kiss   *ratelimit.Global
	code   ntpwire.RefID // access.kiss_code
}

// buildParts builds the parts cfg describes, reusing those of prev (which
// may be nil) whose settings are unchanged. With build false it only
// validates: it allocates no table and starts nothing.
func buildParts(cfg Config, prev *guardParts, build bool) (*guardParts, error) {
	a, r := cfg.Access, cfg.RateLimit
	p := &guardParts{access: a, rate: r}

	def, err := parseAction(a.Default)
	if err != nil {
		return nil, fieldErr("access.default", "%v", err)
	}
	var rules []policy.Rule
	for _, list := range []struct {
		name   string
		action string
		items  []string
	}{{"access.allow", "allow", a.Allow}, {"access.deny", "deny", a.Deny}} {
		for i, s := range list.items {
			rule, err := policy.ParseRule(list.action + " " + strings.TrimSpace(s))
			if err != nil {
				return nil, fieldErr(fmt.Sprintf("%s[%d]", list.name, i), "%q is not an address, a prefix or \"all\": %v", s, err)
			}
			rules = append(rules, rule)
		}
	}
	if p.acl, err = policy.New(rules, def); err != nil {
		return nil, fieldErr("access", "%v", err)
	}
	if p.code, err = parseKissCode(a.KissCode); err != nil {
		return nil, fieldErr("access.kiss_code", "%v", err)
	}

	if prev != nil && reflect.DeepEqual(prev.access.Names, a.Names) && prev.access.Default == a.Default {
		p.names = prev.names
	} else if p.names, err = buildNames(a.Names, def, build); err != nil {
		return nil, err
	}

	interval, err := parseDuration("rate_limit.interval", r.Interval)
	if err != nil {
		return nil, err
	}
	tcfg := ratelimit.Config{Interval: interval, Burst: r.Burst, IPv4Prefix: r.IPv4Prefix, IPv6Prefix: r.IPv6Prefix, MemoryBytes: r.Memory}
	for _, f := range []struct {
		name string
		bad  bool
		why  string
	}{
		{"rate_limit.interval", interval <= 0, "must be above 0"},
		{"rate_limit.burst", r.Burst < 1, "must be at least 1"},
		{"rate_limit.ipv4_prefix", r.IPv4Prefix < 1 || r.IPv4Prefix > 32, "must be 1–32"},
		{"rate_limit.ipv6_prefix", r.IPv6Prefix < 1 || r.IPv6Prefix > 128, "must be 1–128"},
		{"rate_limit.memory", r.Memory < ratelimit.MinMemoryBytes || r.Memory > 1<<34, fmt.Sprintf("must be %d bytes to 16 GiB", ratelimit.MinMemoryBytes)},
		{"rate_limit.leak", r.Leak > 31, "must be 0–31"},
		{"rate_limit.global_per_second", !(r.GlobalPerSecond >= 0) || math.IsInf(r.GlobalPerSecond, 0), "must be 0 (no cap) or above"},
		{"rate_limit.global_burst", r.GlobalBurst < 0, "must not be negative"},
		{"rate_limit.kiss_per_second", !(r.KissPerSecond >= 0) || math.IsInf(r.KissPerSecond, 0), "must be 0 or above"},
		{"rate_limit.kiss_per_second", r.KissPerSecond == 0 && (a.Kiss || r.Kiss && r.Enabled), "must be above 0 when access.kiss or rate_limit.kiss is on"},
		{"rate_limit.kiss_per_second", r.KissPerSecond == 0 && r.Enabled && r.Leak > 0, "must be above 0 when rate_limit.leak is on: it bounds leaked replies"},
	} {
		if f.bad {
			return nil, fieldErr(f.name, "%s", f.why)
		}
	}
	if err := tcfg.Validate(); err != nil {
		return nil, fieldErr("rate_limit", "%v", err)
	}
	switch {
	case !build:
	case !r.Enabled:
		// No table: nothing is allocated while the limits are off.
	case prev != nil && prev.table != nil && prev.table.Config() == tcfg:
		p.table = prev.table // keep the clients' state
	default:
		if p.table, err = ratelimit.New(tcfg); err != nil {
			return nil, fieldErr("rate_limit", "%v", err)
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

func buildNames(n NamesConfig, def policy.Action, build bool) (*policy.NameACL, error) {
	if len(n.Allow) == 0 && len(n.Deny) == 0 {
		return nil, nil
	}
	var rules []policy.NameRule
	for _, list := range []struct {
		name   string
		action policy.Action
		items  []string
	}{{"access.names.allow", policy.Allow, n.Allow}, {"access.names.deny", policy.Deny, n.Deny}} {
		for i, s := range list.items {
			d := strings.Trim(strings.TrimSpace(s), ".")
			if d == "" || strings.ContainsAny(d, " /*") {
				return nil, fieldErr(fmt.Sprintf("%s[%d]", list.name, i), "%q is not a domain suffix such as \".example.net\"", s)
			}
			rules = append(rules, policy.NameRule{Action: list.action, Suffix: d})
		}
	}
	ttl, err := parseDuration("access.names.ttl", n.TTL)
	if err != nil {
		return nil, err
	}
	negTTL, err := parseDuration("access.names.negative_ttl", n.NegativeTTL)
	if err != nil {
		return nil, err
	}
	if n.MaxEntries < 0 {
		return nil, fieldErr("access.names.max_entries", "%d is negative", n.MaxEntries)
	}
	if !build {
		return nil, nil
	}
	names, err := policy.NewNameACL(policy.NameACLConfig{
		Rules: rules, Default: def, TTL: ttl, NegativeTTL: negTTL, MaxEntries: n.MaxEntries,
	})
	if err != nil {
		return nil, fieldErr("access.names", "%v", err)
	}
	return names, nil
}

func parseAction(s string) (policy.Action, error) {
	switch strings.ToLower(s) {
	case "allow":
		return policy.Allow, nil
	case "deny":
		return policy.Deny, nil
	}
	return 0, fmt.Errorf("%q is neither \"allow\" nor \"deny\"", s)
}

func parseKissCode(s string) (ntpwire.RefID, error) {
	switch strings.ToUpper(s) {
	case "", "DENY":
		return ntpwire.KissDeny, nil
	case "RSTR":
		return ntpwire.KissRstr, nil
	}
	return ntpwire.RefID{}, fmt.Errorf("%q is neither \"DENY\" nor \"RSTR\"", s)
}

// parseDuration parses a Go duration; empty means 0 (the default).
func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fieldErr(field, "%q is not a duration such as \"1s\" or \"1h\"", s)
	}
	return d, nil
}

// guards owns the daemon's access-control and rate-limit middleware.
type guards struct {
	logger *slog.Logger
	ac     *server.AccessControl
	rl     *server.RateLimiter

	mu        sync.Mutex // serializes reloads
	cur       *guardParts
	ctx       context.Context // set by start; nil before
	stopNames context.CancelFunc
	wg        sync.WaitGroup
	budgetFns []func(*ratelimit.Global) // shareBudget's users
}

// shareBudget puts another reply path under the reflection budget
// (rate_limit.kiss_per_second, shared by KoDs and leaked replies): set is
// called with the budget now and again whenever a reload replaces it. The
// daemon uses it for NTS NAKs.
func (g *guards) shareBudget(set func(*ratelimit.Global)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	set(g.cur.kiss)
	g.budgetFns = append(g.budgetFns, set)
}

// newGuards builds the middleware for cfg. Call start to run name lookups.
func newGuards(cfg Config, logger *slog.Logger) (*guards, error) {
	p, err := buildParts(cfg, nil, true)
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
	}
	g.ctx = nil
	g.mu.Unlock()
	g.wg.Wait()
}

// runNames starts n's lookups and stops the previous NameACL's. g.mu is held.
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

// reload applies the "access" and "rate_limit" sections of cfg: all of
// them, or, on error, none.
func (g *guards) reload(cfg Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, err := buildParts(cfg, g.cur, true)
	if err != nil {
		return err
	}
	if p.names != g.cur.names {
		g.runNames(p.names)
	}
	g.ac.Update(p.accessOptions())
	g.rl.Update(p.rateOptions())
	if p.kiss != g.cur.kiss {
		for _, set := range g.budgetFns {
			set(p.kiss)
		}
	}
	g.cur = p
	g.logConfig(p)
	return nil
}

func (g *guards) logConfig(p *guardParts) {
	if g.logger == nil {
		return
	}
	g.logger.Info("access control",
		"rules", len(p.acl.Rules()), "default", p.access.Default, "name_rules", p.names != nil, "kiss", p.access.Kiss)
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
		KissCode:  p.code,
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

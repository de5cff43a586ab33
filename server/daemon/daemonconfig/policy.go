package daemonconfig

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/policy"
	"github.com/ntpkit/ntpkit/ratelimit"
	"github.com/ntpkit/ntpkit/server/daemon"
)

// Access is the "access" section: who is answered. Address rules follow
// chrony's allow/deny: the most specific matching prefix wins, whichever
// list it is in, and for a prefix listed in both, deny wins. Name rules
// are consulted only for addresses that no address rule matches ("all"
// and /0 rules match every address); while a client's name is not known
// yet, Default applies.
type Access struct {
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
	Names Names `json:"names"`
}

// Names is "access.names": rules on clients' reverse-DNS names, looked up
// in the background and cached.
type Names struct {
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

// RateLimit is the "rate_limit" section, after chrony's ratelimit
// directive, plus a global cap and the budget of kiss-o'-death replies.
type RateLimit struct {
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
	// KissPerSecond is the budget of kiss-o'-death replies per second,
	// shared by "access" and "rate_limit" (and applied even when the
	// limits are disabled), so that a flood with a spoofed source cannot
	// turn the server into a KoD reflector. It must be above 0 when
	// either section sends KoDs.
	KissPerSecond float64 `json:"kiss_per_second"`
}

// Policy checks the "access" and "rate_limit" sections, the reloadable
// ones, and converts them; errors are *FieldError. A reload passes them to
// daemon.Daemon.Reload.
func (c *Config) Policy() (daemon.Access, daemon.RateLimit, error) {
	a, r := c.Access, c.RateLimit
	var da daemon.Access
	var dr daemon.RateLimit
	def, err := parseAction(a.Default)
	if err != nil {
		return da, dr, fieldErr("access.default", "%v", err)
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
				return da, dr, fieldErr(fmt.Sprintf("%s[%d]", list.name, i), "%q is not an address, a prefix or \"all\": %v", s, err)
			}
			rules = append(rules, rule)
		}
	}
	if _, err := policy.New(rules, def); err != nil {
		return da, dr, fieldErr("access", "%v", err)
	}
	code, err := parseKissCode(a.KissCode)
	if err != nil {
		return da, dr, fieldErr("access.kiss_code", "%v", err)
	}
	names, err := a.Names.config()
	if err != nil {
		return da, dr, err
	}
	da = daemon.Access{Rules: rules, Default: def, Kiss: a.Kiss, KissCode: code, Names: names}

	interval, err := parseDuration("rate_limit.interval", r.Interval)
	if err != nil {
		return da, dr, err
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
		{"rate_limit.memory", r.Memory < ratelimit.MinMemoryBytes || r.Memory > MaxRateLimitMemory, fmt.Sprintf("must be %d bytes to 1 GiB", ratelimit.MinMemoryBytes)},
		{"rate_limit.leak", r.Leak > 31, "must be 0–31"},
		{"rate_limit.global_per_second", !(r.GlobalPerSecond >= 0) || math.IsInf(r.GlobalPerSecond, 0), "must be 0 (no cap) or above"},
		{"rate_limit.global_burst", r.GlobalBurst < 0, "must not be negative"},
		{"rate_limit.kiss_per_second", !(r.KissPerSecond >= 0) || math.IsInf(r.KissPerSecond, 0), "must be 0 or above"},
		{"rate_limit.kiss_per_second", r.KissPerSecond == 0 && (a.Kiss || r.Kiss && r.Enabled), "must be above 0 when access.kiss or rate_limit.kiss is on"},
		{"rate_limit.kiss_per_second", r.KissPerSecond == 0 && r.Enabled && r.Leak > 0, "must be above 0 when rate_limit.leak is on: it bounds leaked replies"},
	} {
		if f.bad {
			return da, dr, fieldErr(f.name, "%s", f.why)
		}
	}
	if err := tcfg.Validate(); err != nil {
		return da, dr, fieldErr("rate_limit", "%v", err)
	}
	dr = daemon.RateLimit{
		Enabled:         r.Enabled,
		Client:          tcfg,
		Leak:            r.Leak,
		Kiss:            r.Kiss,
		GlobalPerSecond: r.GlobalPerSecond,
		GlobalBurst:     r.GlobalBurst,
		KissPerSecond:   r.KissPerSecond,
	}
	return da, dr, nil
}

// config converts the name rules; nil when there are none.
func (n Names) config() (*policy.NameACLConfig, error) {
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
	if n.MaxEntries < 0 || n.MaxEntries > MaxNameEntries {
		return nil, fieldErr("access.names.max_entries", "%d is outside 0–%d", n.MaxEntries, MaxNameEntries)
	}
	if len(rules) == 0 {
		return nil, nil
	}
	return &policy.NameACLConfig{Rules: rules, TTL: ttl, NegativeTTL: negTTL, MaxEntries: n.MaxEntries}, nil
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
	return parseDurationField(field, s, false)
}

package policy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Action is the decision for a client: Allow or Deny.
type Action uint8

const (
	// Allow means the client is answered. It is the zero Action.
	Allow Action = iota
	// Deny means the client is not answered.
	Deny
)

// String returns "allow" or "deny".
func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Deny:
		return "deny"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

func (a Action) valid() bool { return a == Allow || a == Deny }

// Rule is one address rule of an ACL.
//
// A Rule whose Prefix is the zero netip.Prefix{} is the rule "all": it
// matches every address, as both 0.0.0.0/0 and ::/0. ParseRule returns such
// a Rule for "allow all" and "deny all".
type Rule struct {
	Action Action
	Prefix netip.Prefix
}

// IsAll reports whether r is an "all" rule (its Prefix is the zero value).
func (r Rule) IsAll() bool { return r.Prefix == netip.Prefix{} }

// String returns r in the form ParseRule accepts, such as "deny 192.0.2.0/24"
// or "allow all".
func (r Rule) String() string {
	if r.IsAll() {
		return r.Action.String() + " all"
	}
	return r.Action.String() + " " + r.Prefix.String()
}

// ParseRule parses a rule of the form "ACTION TARGET", where ACTION is
// "allow" or "deny" and TARGET is a CIDR prefix ("192.0.2.0/24",
// "2001:db8::/32"), a bare address (a /32 or /128 prefix) or "all". Host bits
// of a prefix are cleared, IPv4-mapped IPv6 prefixes of at least /96 become
// IPv4 prefixes, and IPv6 zones are dropped.
func ParseRule(s string) (Rule, error) {
	r, err := parseRule(s)
	if err != nil {
		return Rule{}, fmt.Errorf("policy: rule %q: %w", s, err)
	}
	return r, nil
}

func parseRule(s string) (Rule, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return Rule{}, errors.New(`want "allow|deny ADDRESS[/BITS]|all"`)
	}
	var r Rule
	switch strings.ToLower(f[0]) {
	case "allow":
		r.Action = Allow
	case "deny":
		r.Action = Deny
	default:
		return Rule{}, fmt.Errorf("unknown action %q (want allow or deny)", f[0])
	}
	t := f[1]
	switch {
	case strings.EqualFold(t, "all"):
		return r, nil
	case strings.Contains(t, "/"):
		p, err := netip.ParsePrefix(t)
		if err != nil {
			return Rule{}, err
		}
		r.Prefix = p
	default:
		a, err := netip.ParseAddr(t)
		if err != nil {
			return Rule{}, err
		}
		a = a.WithZone("")
		r.Prefix = netip.PrefixFrom(a, a.BitLen())
	}
	r.Prefix = canonical(r.Prefix)
	return r, nil
}

// canonical masks p, drops any zone and turns an IPv4-mapped IPv6 prefix of
// at least /96 into the equivalent IPv4 prefix.
func canonical(p netip.Prefix) netip.Prefix {
	a, bits := p.Addr().WithZone(""), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked()
}

type u128 struct{ hi, lo uint64 }

type v4Table struct {
	mask uint32
	m    map[uint32]Action
}

type v6Table struct {
	mask u128
	m    map[u128]Action
}

// ACL is an immutable set of address rules with a default Action. Build one
// with New or Parse. It is safe for concurrent use. A nil *ACL allows every
// address.
type ACL struct {
	rules []Rule
	def   Action
	v4def Action // decision for IPv4 addresses no longer prefix matches (/0 rule or def)
	v6def Action
	v4all bool      // a /0 or "all" rule covers IPv4
	v6all bool      // a /0 or "all" rule covers IPv6
	v4    []v4Table // longest prefix first
	v6    []v6Table // longest prefix first
}

// New builds an ACL from rules and the default Action def, which applies to
// addresses no rule matches. See the package documentation for precedence.
// The rules are copied.
func New(rules []Rule, def Action) (*ACL, error) {
	if !def.valid() {
		return nil, fmt.Errorf("policy: invalid default action %d", uint8(def))
	}
	a := &ACL{rules: slices.Clone(rules), def: def, v4def: def, v6def: def}
	v4 := map[int]map[uint32]Action{}
	v6 := map[int]map[u128]Action{}
	for i, r := range rules {
		if !r.Action.valid() {
			return nil, fmt.Errorf("policy: rule %d: invalid action %d", i, uint8(r.Action))
		}
		if r.IsAll() {
			a.v4def, a.v6def = r.Action, r.Action
			a.v4all, a.v6all = true, true
			continue
		}
		if !r.Prefix.IsValid() {
			return nil, fmt.Errorf("policy: rule %d (%s %v): invalid prefix", i, r.Action, r.Prefix)
		}
		p := canonical(r.Prefix)
		bits := p.Bits()
		if p.Addr().Is4() {
			if bits == 0 {
				a.v4def, a.v4all = r.Action, true
				continue
			}
			m := v4[bits]
			if m == nil {
				m = map[uint32]Action{}
				v4[bits] = m
			}
			m[key4(p.Addr())] = r.Action
			continue
		}
		if bits == 0 {
			a.v6def, a.v6all = r.Action, true
			continue
		}
		m := v6[bits]
		if m == nil {
			m = map[u128]Action{}
			v6[bits] = m
		}
		m[key6(p.Addr())] = r.Action
	}
	for _, bits := range sortedDesc(v4) {
		a.v4 = append(a.v4, v4Table{mask: ^uint32(0) << (32 - bits), m: v4[bits]})
	}
	for _, bits := range sortedDesc(v6) {
		a.v6 = append(a.v6, v6Table{mask: mask6(bits), m: v6[bits]})
	}
	return a, nil
}

// Parse parses each rule with ParseRule and builds an ACL with New.
func Parse(rules []string, def Action) (*ACL, error) {
	rs := make([]Rule, 0, len(rules))
	for _, s := range rules {
		r, err := ParseRule(s)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return New(rs, def)
}

func sortedDesc[V any](m map[int]V) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	slices.Reverse(ks)
	return ks
}

func mask6(bits int) u128 {
	switch {
	case bits <= 0:
		return u128{}
	case bits < 64:
		return u128{hi: ^uint64(0) << (64 - bits)}
	case bits < 128:
		return u128{hi: ^uint64(0), lo: ^uint64(0) << (128 - bits)}
	}
	return u128{^uint64(0), ^uint64(0)}
}

func key4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func key6(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// Decide returns the Action for ip: that of the longest matching prefix, or
// the default when no rule matches (also for the zero netip.Addr). A nil
// *ACL returns Allow. Decide does not allocate.
func (a *ACL) Decide(ip netip.Addr) Action {
	act, _ := a.Match(ip)
	return act
}

// Match is Decide, also reporting whether a rule matched ip: matched is
// false when the Action is only the default. A /0 or "all" rule matches
// every address of its family. Callers that combine an ACL with other
// rules, such as a NameACL consulted only for addresses no address rule
// covers, use it. A nil *ACL returns (Allow, false). Match does not
// allocate.
func (a *ACL) Match(ip netip.Addr) (act Action, matched bool) {
	if a == nil {
		return Allow, false
	}
	ip = ip.Unmap()
	switch {
	case ip.Is4():
		k := key4(ip)
		for i := range a.v4 {
			t := &a.v4[i]
			if act, ok := t.m[k&t.mask]; ok {
				return act, true
			}
		}
		return a.v4def, a.v4all
	case ip.Is6():
		k := key6(ip)
		for i := range a.v6 {
			t := &a.v6[i]
			if act, ok := t.m[u128{k.hi & t.mask.hi, k.lo & t.mask.lo}]; ok {
				return act, true
			}
		}
		return a.v6def, a.v6all
	}
	return a.def, false
}

// Allowed reports whether Decide(ip) is Allow.
func (a *ACL) Allowed(ip netip.Addr) bool { return a.Decide(ip) == Allow }

// Rules returns a copy of the rules a was built from, in their original
// order, for display. A nil *ACL has no rules.
func (a *ACL) Rules() []Rule {
	if a == nil {
		return nil
	}
	return slices.Clone(a.rules)
}

// Default returns the Action for addresses no rule matches. A nil *ACL
// returns Allow.
func (a *ACL) Default() Action {
	if a == nil {
		return Allow
	}
	return a.def
}

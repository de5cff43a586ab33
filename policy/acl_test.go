package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRule(t *testing.T) {
	tests := []struct {
		in   string
		want Rule
	}{
		{"allow 192.0.2.0/24", Rule{Allow, netip.MustParsePrefix("192.0.2.0/24")}},
		{"deny 2001:db8::/32", Rule{Deny, netip.MustParsePrefix("2001:db8::/32")}},
		{"allow all", Rule{Action: Allow}},
		{"DENY ALL", Rule{Action: Deny}},
		{"  deny\t192.0.2.7 ", Rule{Deny, netip.MustParsePrefix("192.0.2.7/32")}},
		{"allow 2001:db8::1", Rule{Allow, netip.MustParsePrefix("2001:db8::1/128")}},
		{"allow fe80::1%eth0", Rule{Allow, netip.MustParsePrefix("fe80::1/128")}},
		{"allow 192.0.2.77/24", Rule{Allow, netip.MustParsePrefix("192.0.2.0/24")}},
		{"deny ::ffff:192.0.2.0/120", Rule{Deny, netip.MustParsePrefix("192.0.2.0/24")}},
		{"deny ::ffff:192.0.2.1", Rule{Deny, netip.MustParsePrefix("192.0.2.1/32")}},
	}
	for _, tt := range tests {
		got, err := ParseRule(tt.in)
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseRule(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseRuleErrors(t *testing.T) {
	for _, in := range []string{
		"", "allow", "allow 1.2.3.4 extra", "permit 1.2.3.4", "allow 1.2.3", "allow 1.2.3.4/33",
		"deny 2001:db8::/129", "allow everything",
	} {
		_, err := ParseRule(in)
		if err == nil {
			t.Errorf("ParseRule(%q) succeeded, want error", in)
			continue
		}
		if want := fmt.Sprintf("policy: rule %q: ", in); !strings.HasPrefix(err.Error(), want) {
			t.Errorf("ParseRule(%q) error %q does not start with %q", in, err, want)
		}
	}
}

func TestRuleStringRoundTrip(t *testing.T) {
	for _, in := range []string{"allow 192.0.2.0/24", "deny 2001:db8::/32", "allow all", "deny 10.0.0.1/32"} {
		r, err := ParseRule(in)
		if err != nil {
			t.Fatal(err)
		}
		if r.String() != in {
			t.Errorf("ParseRule(%q).String() = %q", in, r.String())
		}
	}
}

func TestDecide(t *testing.T) {
	acl, err := Parse([]string{
		"allow 192.0.2.0/24",
		"deny 192.0.2.7",
		"deny 192.0.2.128/25",
		"allow 192.0.2.200", // more specific than the deny /25
		"allow 2001:db8::/32",
		"deny 2001:db8:bad::/48",
		"allow 198.51.100.0/24",
		"deny 198.51.100.0/24", // same prefix: later wins
		"deny 203.0.113.0/24",
		"allow 203.0.113.0/24",
		"allow 203.0.113.0/24",
	}, Deny)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ip   string
		want Action
	}{
		{"192.0.2.1", Allow},
		{"192.0.2.7", Deny},
		{"192.0.2.129", Deny},
		{"192.0.2.200", Allow},
		{"192.0.3.1", Deny}, // default
		{"::ffff:192.0.2.1", Allow},
		{"::ffff:192.0.2.7", Deny},
		{"2001:db8::1", Allow},
		{"2001:db8:bad::1", Deny},
		{"2001:db8:bad:1::1", Deny},
		{"2001:db9::1", Deny},
		{"198.51.100.5", Deny},
		{"203.0.113.5", Allow},
		{"fe80::1%eth0", Deny},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		if got := acl.Decide(ip); got != tt.want {
			t.Errorf("Decide(%s) = %v, want %v", tt.ip, got, tt.want)
		}
		if got := acl.Allowed(ip); got != (tt.want == Allow) {
			t.Errorf("Allowed(%s) = %v", tt.ip, got)
		}
	}
	if got := acl.Decide(netip.Addr{}); got != Deny {
		t.Errorf("Decide(zero Addr) = %v, want the default deny", got)
	}
}

func TestDecideAllAndZeroPrefix(t *testing.T) {
	acl, err := Parse([]string{"deny all", "allow 192.0.2.0/24", "allow 2001:db8::/32"}, Allow)
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]Action{
		"192.0.2.1": Allow, "10.0.0.1": Deny, "2001:db8::1": Allow, "2001:db9::1": Deny,
	} {
		if got := acl.Decide(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Decide(%s) = %v, want %v", ip, got, want)
		}
	}
	// An explicit /0 applies to its own family only.
	acl, err = Parse([]string{"deny 0.0.0.0/0", "allow 192.0.2.1"}, Allow)
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]Action{"192.0.2.1": Allow, "10.0.0.1": Deny, "2001:db8::1": Allow} {
		if got := acl.Decide(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Decide(%s) = %v, want %v", ip, got, want)
		}
	}
}

func TestNilACL(t *testing.T) {
	var acl *ACL
	if !acl.Allowed(netip.MustParseAddr("192.0.2.1")) {
		t.Error("nil ACL denied")
	}
	if acl.Rules() != nil || acl.Default() != Allow {
		t.Error("nil ACL has rules or a deny default")
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(nil, Action(7)); err == nil {
		t.Error("New accepted an invalid default")
	}
	if _, err := New([]Rule{{Action: Action(9), Prefix: netip.MustParsePrefix("10.0.0.0/8")}}, Deny); err == nil {
		t.Error("New accepted an invalid action")
	}
	if _, err := New([]Rule{{Action: Deny, Prefix: netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 40)}}, Deny); err == nil {
		t.Error("New accepted an invalid prefix")
	}
	if _, err := Parse([]string{"allow 10.0.0.0/8", "bogus"}, Deny); err == nil || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("Parse error %v does not name the rule", err)
	}
}

func TestRulesCopy(t *testing.T) {
	in := []Rule{{Allow, netip.MustParsePrefix("10.0.0.0/8")}, {Action: Deny}}
	acl, err := New(in, Deny)
	if err != nil {
		t.Fatal(err)
	}
	in[0].Action = Deny
	got := acl.Rules()
	want := []Rule{{Allow, netip.MustParsePrefix("10.0.0.0/8")}, {Action: Deny}}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("Rules() mismatch (-want +got):\n%s", d)
	}
	got[0].Action = Deny
	if acl.Rules()[0].Action != Allow {
		t.Error("Rules() returned the ACL's own slice")
	}
}

// TestDecideMatchesLinearScan checks the hash lookup against a brute-force
// longest-prefix match over random rules.
func TestDecideMatchesLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	rules := randomRules(r, 500)
	acl, err := New(rules, Deny)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range randomAddrs(r, rules, 5000) {
		want, best := Deny, -1
		u := ip.Unmap()
		for _, rl := range rules {
			if rl.Prefix.Contains(u) && rl.Prefix.Bits() >= best {
				want, best = rl.Action, rl.Prefix.Bits()
			}
		}
		if got := acl.Decide(ip); got != want {
			t.Fatalf("Decide(%s) = %v, linear scan says %v", ip, got, want)
		}
	}
}

func TestDecideAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	rules := randomRules(r, 1000)
	acl, err := New(rules, Deny)
	if err != nil {
		t.Fatal(err)
	}
	ips := randomAddrs(r, rules, 256)
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		acl.Decide(ips[i%len(ips)])
		i++
	})
	if n != 0 {
		t.Errorf("Decide allocates %v times per call", n)
	}
}

// randomRules returns n rules, roughly half IPv4 and half IPv6, with
// prefixes of assorted lengths that often nest.
func randomRules(r *rand.Rand, n int) []Rule {
	v4lens := []int{8, 16, 20, 24, 28, 32}
	v6lens := []int{32, 48, 56, 64, 128}
	rules := make([]Rule, 0, n)
	for i := range n {
		act := Action(r.IntN(2))
		if i%2 == 0 {
			var b [4]byte
			b[0], b[1], b[2], b[3] = 10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))
			bits := v4lens[r.IntN(len(v4lens))]
			rules = append(rules, Rule{act, netip.PrefixFrom(netip.AddrFrom4(b), bits).Masked()})
			continue
		}
		var b [16]byte
		b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
		b[4], b[5], b[7], b[15] = byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(4)), byte(r.IntN(256))
		bits := v6lens[r.IntN(len(v6lens))]
		rules = append(rules, Rule{act, netip.PrefixFrom(netip.AddrFrom16(b), bits).Masked()})
	}
	return rules
}

// randomAddrs returns n addresses, many inside the rules' prefixes.
func randomAddrs(r *rand.Rand, rules []Rule, n int) []netip.Addr {
	ips := make([]netip.Addr, 0, n)
	for range n {
		p := rules[r.IntN(len(rules))].Prefix
		if p.Addr().Is4() {
			b := p.Addr().As4()
			if r.IntN(4) != 0 {
				b[3] = byte(r.IntN(256))
			} else {
				b[1] = byte(r.IntN(256))
			}
			ip := netip.AddrFrom4(b)
			if r.IntN(3) == 0 {
				ip = netip.AddrFrom16(ip.As16()) // IPv4-mapped
			}
			ips = append(ips, ip)
			continue
		}
		b := p.Addr().As16()
		b[15] = byte(r.IntN(256))
		if r.IntN(2) == 0 {
			b[6] = byte(r.IntN(256))
		}
		ips = append(ips, netip.AddrFrom16(b))
	}
	return ips
}

func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{10, 5000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(5, 6))
			rules := randomRules(r, n)
			acl, err := New(rules, Deny)
			if err != nil {
				b.Fatal(err)
			}
			ips := randomAddrs(r, rules, 4096)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				acl.Decide(ips[i&4095])
				i++
			}
		})
	}
}

func TestMatch(t *testing.T) {
	a, err := Parse([]string{"allow 192.0.2.0/24", "deny 2001:db8::/32"}, Deny)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip      string
		act     Action
		matched bool
	}{
		{"192.0.2.9", Allow, true},
		{"::ffff:192.0.2.9", Allow, true},
		{"198.51.100.1", Deny, false},
		{"2001:db8::1", Deny, true},
		{"2001:db9::1", Deny, false},
	} {
		act, ok := a.Match(netip.MustParseAddr(tc.ip))
		if act != tc.act || ok != tc.matched {
			t.Errorf("Match(%s) = %v, %v; want %v, %v", tc.ip, act, ok, tc.act, tc.matched)
		}
	}
	all, err := Parse([]string{"deny 0.0.0.0/0"}, Allow)
	if err != nil {
		t.Fatal(err)
	}
	if act, ok := all.Match(netip.MustParseAddr("203.0.113.1")); act != Deny || !ok {
		t.Errorf("a /0 rule: Match = %v, %v; want deny, true", act, ok)
	}
	if act, ok := all.Match(netip.MustParseAddr("2001:db8::1")); act != Allow || ok {
		t.Errorf("IPv6 with only an IPv4 /0 rule: Match = %v, %v; want allow, false", act, ok)
	}
	if act, ok := (*ACL)(nil).Match(netip.MustParseAddr("192.0.2.1")); act != Allow || ok {
		t.Errorf("nil ACL: Match = %v, %v; want allow, false", act, ok)
	}
}

package daemonconfig

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/policy"
	"github.com/ntpkit/ntpkit/ratelimit"
	"github.com/ntpkit/ntpkit/server/daemon"
)

func TestPolicyConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		json, field string
	}{
		{`{"access": {"allow": ["127.0.0.0/8", "::1", "10.0.0.0/33"]}}`, "access.allow[2]"},
		{`{"access": {"deny": ["example.com"]}}`, "access.deny[0]"},
		{`{"access": {"default": "maybe"}}`, "access.default"},
		{`{"access": {"kiss_code": "RATE"}}`, "access.kiss_code"},
		{`{"access": {"names": {"allow": ["ok.example", ""]}}}`, "access.names.allow[1]"},
		{`{"access": {"names": {"deny": [".x.example"], "ttl": "soon"}}}`, "access.names.ttl"},
		{`{"rate_limit": {"interval": "0s"}}`, "rate_limit.interval"},
		{`{"rate_limit": {"burst": 0}}`, "rate_limit.burst"},
		{`{"rate_limit": {"ipv6_prefix": 129}}`, "rate_limit.ipv6_prefix"},
		{`{"rate_limit": {"memory": 100}}`, "rate_limit.memory"},
		{`{"rate_limit": {"leak": 40}}`, "rate_limit.leak"},
		{`{"rate_limit": {"kiss_per_second": 0}}`, "rate_limit.kiss_per_second"},
		{`{"rate_limit": {"global_per_second": -1}}`, "rate_limit.global_per_second"},
	} {
		_, err := Parse([]byte(tc.json))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: error %v, want one naming %s", tc.json, err, tc.field)
		}
	}
	// KoDs and leak off everywhere: no budget needed.
	if _, err := Parse([]byte(`{"access": {"kiss": false}, "rate_limit": {"kiss": false, "leak": 0, "kiss_per_second": 0}}`)); err != nil {
		t.Errorf("KoDs and leak off without a budget: %v", err)
	}
	// Leak on without a budget would let a spoofed flood draw 1 in 2^leak
	// of its requests answered.
	_, err := Parse([]byte(`{"access": {"kiss": false}, "rate_limit": {"kiss": false, "leak": 2, "kiss_per_second": 0}}`))
	if fe := (*FieldError)(nil); !errors.As(err, &fe) || fe.Field != "rate_limit.kiss_per_second" {
		t.Errorf("leak without a budget: %v, want an error naming rate_limit.kiss_per_second", err)
	}
}

func TestDefaultPolicy(t *testing.T) {
	cfg := Default()
	a, r, err := cfg.Policy()
	if err != nil {
		t.Fatal(err)
	}
	want := daemon.RateLimit{
		Enabled: true,
		Client: ratelimit.Config{
			Interval: time.Second, Burst: 8, IPv4Prefix: 32, IPv6Prefix: 64, MemoryBytes: 16 << 20,
		},
		Leak:          2,
		Kiss:          true,
		KissPerSecond: 100,
	}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("default rate limit (-want +got):\n%s", diff)
	}
	if !a.Kiss || a.KissCode != ntpwire.KissDeny || a.Default != policy.Allow || len(a.Rules) != 0 || a.Names != nil {
		t.Errorf("default access %+v", a)
	}
}

func TestPolicyConverts(t *testing.T) {
	cfg, err := Parse([]byte(`{
		"access": {"allow": ["192.0.2.0/24"], "deny": ["192.0.2.66", "all"], "default": "deny", "kiss_code": "rstr",
			"names": {"allow": [".example.net."], "ttl": "2h", "negative_ttl": "1m", "max_entries": 10}},
		"rate_limit": {"global_per_second": 1000, "global_burst": 50}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	a, r, err := cfg.Policy()
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, rule := range a.Rules {
		rules = append(rules, rule.String())
	}
	if diff := cmp.Diff([]string{"allow 192.0.2.0/24", "deny 192.0.2.66/32", "deny all"}, rules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if a.Default != policy.Deny || a.KissCode != ntpwire.KissRstr {
		t.Errorf("access %+v", a)
	}
	wantNames := &policy.NameACLConfig{
		Rules: []policy.NameRule{{Action: policy.Allow, Suffix: "example.net"}},
		TTL:   2 * time.Hour, NegativeTTL: time.Minute, MaxEntries: 10,
	}
	if diff := cmp.Diff(wantNames, a.Names, cmpopts.IgnoreUnexported(policy.NameACLConfig{})); diff != "" {
		t.Errorf("name rules (-want +got):\n%s", diff)
	}
	if r.GlobalPerSecond != 1000 || r.GlobalBurst != 50 {
		t.Errorf("rate limit %+v", r)
	}
}

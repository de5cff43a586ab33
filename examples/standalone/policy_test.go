package main

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/servertest"
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
		_, err := ParseConfig([]byte(tc.json))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: error %v, want one naming %s", tc.json, err, tc.field)
		}
	}
	// KoDs off everywhere: no budget needed.
	if _, err := ParseConfig([]byte(`{"access": {"kiss": false}, "rate_limit": {"kiss": false, "kiss_per_second": 0}}`)); err != nil {
		t.Errorf("KoDs off without a budget: %v", err)
	}
}

func TestDefaultPolicyConfig(t *testing.T) {
	cfg := DefaultConfig()
	g, err := newGuards(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.RateLimit.Enabled || g.cur.table == nil || g.cur.table.Entries() != 1<<20 {
		t.Errorf("default rate limit: enabled %v, table %v", cfg.RateLimit.Enabled, g.cur.table)
	}
	if o := g.ac.Options(); !o.Kiss || o.KissCode != ntpwire.KissDeny || o.KissLimit == nil || o.Names != nil {
		t.Errorf("default access options %+v", o)
	}
	if o := g.rl.Options(); o.Leak != 2 || !o.Kiss || o.KissLimit != g.ac.Options().KissLimit {
		t.Errorf("default rate-limit options %+v: want leak 2, KoDs, the budget shared with access", o)
	}
}

// answer runs h on one request from src and reports "reply", "kiss CODE"
// or "drop".
func answer(h server.Handler, src string, rx time.Time) string {
	req := servertest.NewRequest(servertest.ClientPacket(rx), netip.MustParseAddrPort(src), rx, nil)
	rec := &servertest.Recorder{}
	rec.Reset(req)
	h.ServeNTP(rec, req)
	switch {
	case rec.IsKiss:
		return "kiss " + rec.Kissed.String()
	case rec.Replied:
		return "reply"
	}
	return "drop"
}

func TestGuardsReload(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{
		"access": {"allow": ["192.0.2.0/24"], "deny": ["192.0.2.66"], "default": "deny", "kiss": true},
		"rate_limit": {"interval": "1h", "burst": 2, "leak": 0}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := newGuards(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := server.Chain(server.Responder(), g.middleware()...)
	now := time.Now()
	got := []string{
		answer(h, "192.0.2.1:123", now),
		answer(h, "192.0.2.1:123", now),
		answer(h, "192.0.2.1:123", now), // over the burst
		answer(h, "192.0.2.66:123", now),
		answer(h, "198.51.100.1:123", now),
	}
	want := []string{"reply", "reply", "kiss RATE", "kiss DENY", "kiss DENY"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("before reload: got %q, want %q", got, want)
	}
	table := g.cur.table

	// A bad reload changes nothing.
	bad := cfg
	bad.Access.Allow = []string{"not-an-address"}
	if err := g.reload(bad); err == nil || !strings.Contains(err.Error(), "access.allow[0]") {
		t.Fatalf("bad reload: %v", err)
	}
	if a := answer(h, "198.51.100.1:123", now); a != "kiss DENY" {
		t.Fatalf("after a refused reload: %s", a)
	}

	// A good one swaps the rules, keeps the table (and the limited
	// client's state) and can silence the access KoDs.
	next := cfg
	next.Access.Allow = []string{"all"}
	next.Access.Kiss = false
	if err := g.reload(next); err != nil {
		t.Fatal(err)
	}
	if g.cur.table != table {
		t.Error("the rate-limit table was rebuilt although its settings did not change")
	}
	got = []string{
		answer(h, "198.51.100.1:123", now),
		answer(h, "192.0.2.66:123", now), // the more specific deny still wins over "all"
		answer(h, "192.0.2.1:123", now),  // still over its limit: 2nd refusal in a row, a KoD is due
	}
	want = []string{"reply", "drop", "kiss RATE"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after reload: got %q, want %q", got, want)
	}

	// Changing the table's settings builds a new one; disabling removes it.
	next.RateLimit.Burst = 3
	if err := g.reload(next); err != nil || g.cur.table == table {
		t.Fatalf("reload with a new burst: %v, table kept: %v", err, g.cur.table == table)
	}
	next.RateLimit.Enabled = false
	if err := g.reload(next); err != nil || g.rl.Options().Table != nil {
		t.Fatalf("reload disabling the limit: %v, %+v", err, g.rl.Options())
	}
	st := g.ac.Stats()
	if st.Allowed == 0 || st.DeniedAddr != 4 {
		t.Errorf("access counters %+v: want them kept across reloads", st)
	}
}

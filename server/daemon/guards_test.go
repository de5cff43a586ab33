package daemon

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/policy"
	"github.com/ntpkit/ntpkit/ratelimit"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/servertest"
)

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

func mustRule(t *testing.T, s string) policy.Rule {
	t.Helper()
	r, err := policy.ParseRule(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// guardOptions are access and rate-limit options for the tests: clients
// in 192.0.2.0/24 but 192.0.2.66 are answered and the others sent a DENY
// kiss; each client may send 2 requests an hour.
func guardOptions(t *testing.T) (Access, RateLimit) {
	a := Access{
		Rules:   []policy.Rule{mustRule(t, "allow 192.0.2.0/24"), mustRule(t, "deny 192.0.2.66")},
		Default: policy.Deny,
		Kiss:    true,
	}
	r := RateLimit{
		Enabled:       true,
		Client:        ratelimit.Config{Interval: time.Hour, Burst: 2, IPv4Prefix: 32, IPv6Prefix: 64, MemoryBytes: 1 << 20},
		Kiss:          true,
		KissPerSecond: 100,
	}
	return a, r
}

// reload applies a and r to g as Daemon.Reload does.
func reload(g *guards, a Access, r RateLimit) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	p, err := g.prepare(a, r)
	if err != nil {
		return err
	}
	g.commit(p)
	return nil
}

func TestGuardsReload(t *testing.T) {
	a, r := guardOptions(t)
	g, err := newGuards(a, r, nil)
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
	bad := r
	bad.Leak = 40
	if err := reload(g, a, bad); err == nil || !strings.Contains(err.Error(), "RateLimit.Leak") {
		t.Fatalf("bad reload: %v", err)
	}
	if a := answer(h, "198.51.100.1:123", now); a != "kiss DENY" {
		t.Fatalf("after a refused reload: %s", a)
	}

	// A good one swaps the rules, keeps the table (and the limited
	// client's state) and can silence the access KoDs.
	next := a
	next.Rules = append([]policy.Rule{mustRule(t, "allow all")}, a.Rules...)
	next.Kiss = false
	if err := reload(g, next, r); err != nil {
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
	r.Client.Burst = 3
	if err := reload(g, next, r); err != nil || g.cur.table == table {
		t.Fatalf("reload with a new burst: %v, table kept: %v", err, g.cur.table == table)
	}
	r.Enabled = false
	if err := reload(g, next, r); err != nil || g.rl.Options().Table != nil {
		t.Fatalf("reload disabling the limit: %v, %+v", err, g.rl.Options())
	}
	st := g.ac.Stats()
	if st.Allowed == 0 || st.DeniedAddr != 4 {
		t.Errorf("access counters %+v: want them kept across reloads", st)
	}
}

// TestGuardsKeepNames checks that a reload keeps the name cache when the
// name rules did not change, and builds a new one when they did.
func TestGuardsKeepNames(t *testing.T) {
	a, r := guardOptions(t)
	a.Names = &policy.NameACLConfig{Rules: []policy.NameRule{{Action: policy.Allow, Suffix: "example.net"}}}
	g, err := newGuards(a, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := g.cur.names
	if names == nil || g.ac.Options().Names != names {
		t.Fatal("no name ACL installed")
	}
	next := a
	next.Names = &policy.NameACLConfig{Rules: []policy.NameRule{{Action: policy.Allow, Suffix: "example.net"}}}
	if err := reload(g, next, r); err != nil || g.cur.names != names {
		t.Fatalf("reload with equal name rules: %v, cache kept: %v", err, g.cur.names == names)
	}
	next.Names = &policy.NameACLConfig{Rules: []policy.NameRule{{Action: policy.Deny, Suffix: "example.net"}}}
	if err := reload(g, next, r); err != nil || g.cur.names == names || g.ac.Options().Names != g.cur.names {
		t.Fatalf("reload with new name rules: %v, cache kept: %v", err, g.cur.names == names)
	}
	next.Names = nil
	if err := reload(g, next, r); err != nil || g.ac.Options().Names != nil {
		t.Fatalf("reload without name rules: %v, %v", err, g.ac.Options().Names)
	}
}

func TestGuardsDefaults(t *testing.T) {
	g, err := newGuards(Access{}, RateLimit{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o := g.ac.Options(); o.Kiss || o.KissCode != ntpwire.KissDeny || o.KissLimit != nil || o.Names != nil {
		t.Errorf("zero access options %+v", o)
	}
	if o := g.rl.Options(); o.Table != nil || o.Global != nil {
		t.Errorf("zero rate-limit options %+v: want no limit", o)
	}
	h := server.Chain(server.Responder(), g.middleware()...)
	if a := answer(h, "198.51.100.1:123", time.Now()); a != "reply" {
		t.Errorf("zero options: %s, want a reply", a)
	}
}

package policy

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeResolver answers from a map; unknown addresses fail. It honours ctx
// and, when gate is non-nil, waits for a value on gate before answering.
type fakeResolver struct {
	names   map[string][]string
	gate    chan struct{}
	started chan string
	calls   atomic.Int32
	// forward, when it has the name, answers forward lookups; otherwise
	// they are answered from names, as honest DNS would.
	forward  map[string][]string
	forwards atomic.Int32
}

var errNXDomain = errors.New("fake: no such host")

func (f *fakeResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	f.calls.Add(1)
	if f.started != nil {
		f.started <- addr
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n, ok := f.names[addr]; ok {
		return n, nil
	}
	return nil, errNXDomain
}

func (f *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	f.forwards.Add(1)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if fw, ok := f.forward[host]; ok {
		for _, a := range fw {
			addrs = append(addrs, netip.MustParseAddr(a))
		}
	} else {
		for a, names := range f.names {
			for _, n := range names {
				if strings.TrimSuffix(n, ".") == host {
					addrs = append(addrs, netip.MustParseAddr(a))
				}
			}
		}
	}
	if len(addrs) == 0 {
		return nil, errNXDomain
	}
	return addrs, nil
}

// startRun runs n.Run in the background and returns a channel that receives
// each address whose background lookup finished, plus a stop function that
// cancels Run and checks its result.
func startRun(t *testing.T, n *NameACL) (<-chan netip.Addr, func()) {
	t.Helper()
	done := make(chan netip.Addr, 64)
	n.resolved = func(a netip.Addr) { done <- a }
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- n.Run(ctx) }()
	return done, func() {
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	}
}

func TestNameACLBackgroundLookup(t *testing.T) {
	res := &fakeResolver{names: map[string][]string{
		"192.0.2.1":   {"ntp1.Example.NET."},
		"192.0.2.2":   {"host.bad.example.net."},
		"2001:db8::1": {"other.org."},
	}}
	n, err := NewNameACL(NameACLConfig{
		Rules: []NameRule{
			{Allow, ".example.net"},
			{Deny, "bad.example.net."},
		},
		Default:  Deny,
		Resolver: res,
		TTL:      time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	done, stop := startRun(t, n)
	defer stop()

	tests := []struct {
		ip   string
		want Action
	}{
		{"192.0.2.1", Allow},
		{"192.0.2.2", Deny},
		{"2001:db8::1", Deny}, // no rule matches: Default
		{"192.0.2.99", Deny},  // lookup fails: Default
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		if got := n.Decide(t0, ip); got != Deny {
			t.Errorf("first Decide(%s) = %v, want Default (deny) while unknown", tt.ip, got)
		}
		if got := <-done; got != ip {
			t.Fatalf("resolved %v, want %v", got, ip)
		}
		if got := n.Decide(t0.Add(time.Minute), ip); got != tt.want {
			t.Errorf("cached Decide(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
	// IPv4-mapped addresses share the IPv4 entry.
	if got := n.Decide(t0, netip.MustParseAddr("::ffff:192.0.2.1")); got != Allow {
		t.Errorf("Decide(::ffff:192.0.2.1) = %v, want allow from the cache", got)
	}
	if c := res.calls.Load(); c != 4 {
		t.Errorf("resolver called %d times, want 4", c)
	}
	// After the TTL the entry is stale: Default, and a new lookup.
	ip := netip.MustParseAddr("192.0.2.1")
	if got := n.Decide(t0.Add(time.Hour), ip); got != Deny {
		t.Errorf("Decide after TTL = %v, want Default", got)
	}
	<-done
	if got := n.Decide(t0.Add(time.Hour+time.Second), ip); got != Allow {
		t.Errorf("Decide after refresh = %v, want allow", got)
	}
	if c := res.calls.Load(); c != 5 {
		t.Errorf("resolver called %d times, want 5", c)
	}
}

func TestNameACLNegativeTTL(t *testing.T) {
	res := &fakeResolver{}
	n, err := NewNameACL(NameACLConfig{
		Rules:       []NameRule{{Deny, "example.net"}},
		Default:     Allow,
		Resolver:    res,
		NegativeTTL: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	done, stop := startRun(t, n)
	defer stop()
	ip := netip.MustParseAddr("192.0.2.1")
	n.Decide(t0, ip)
	<-done
	for _, d := range []time.Duration{0, time.Second, time.Minute - 1} {
		if got := n.Decide(t0.Add(d), ip); got != Allow {
			t.Errorf("Decide(+%v) = %v, want Default", d, got)
		}
	}
	if c := res.calls.Load(); c != 1 {
		t.Errorf("resolver called %d times within NegativeTTL, want 1", c)
	}
	// Now the name exists; the negative entry expires and is replaced.
	res.names = nil // not read concurrently: the worker is idle
	n.Decide(t0.Add(time.Minute), ip)
	<-done
	if c := res.calls.Load(); c != 2 {
		t.Errorf("resolver called %d times after NegativeTTL, want 2", c)
	}
}

func TestNameACLSlowResolver(t *testing.T) {
	res := &fakeResolver{
		names:   map[string][]string{"192.0.2.1": {"a.example.net"}},
		gate:    make(chan struct{}),
		started: make(chan string, 8),
	}
	n, err := NewNameACL(NameACLConfig{
		Rules:    []NameRule{{Deny, "example.net"}},
		Default:  Allow,
		Resolver: res,
		Workers:  1,
		QueueLen: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	done, stop := startRun(t, n)
	defer stop()

	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	if got := n.Decide(t0, a); got != Allow {
		t.Fatalf("Decide = %v, want Default", got)
	}
	<-res.started // the only worker is now blocked on a
	// Repeated misses for a do not queue it again; b fills the queue of
	// length 1 and c is dropped. None of this blocks.
	for range 100 {
		for _, ip := range []netip.Addr{a, b, c} {
			if got := n.Decide(t0, ip); got != Allow {
				t.Fatalf("Decide(%v) = %v while lookups are slow, want Default", ip, got)
			}
		}
	}
	if q := len(n.queue); q != 1 {
		t.Errorf("queue holds %d addresses, want 1", q)
	}
	n.pmu.Lock()
	pending := len(n.pending)
	n.pmu.Unlock()
	if pending != 2 {
		t.Errorf("%d pending addresses, want 2 (a in flight, b queued)", pending)
	}
	res.gate <- struct{}{} // finish a
	if got := <-done; got != a {
		t.Fatalf("resolved %v, want %v", got, a)
	}
	if got := <-res.started; got != b.String() {
		t.Fatalf("second lookup for %v, want %v", got, b)
	}
	res.gate <- struct{}{} // finish b
	<-done
	if got := n.Decide(t0, a); got != Deny {
		t.Errorf("Decide(a) = %v, want deny after the lookup", got)
	}
	if got := res.calls.Load(); got != 2 {
		t.Errorf("resolver called %d times, want 2 (a and b)", got)
	}
}

func TestNameACLLookupTimeout(t *testing.T) {
	res := &fakeResolver{gate: make(chan struct{})} // never opened
	n, err := NewNameACL(NameACLConfig{
		Default:       Deny,
		Resolver:      res,
		LookupTimeout: time.Nanosecond, // already expired when the lookup starts
		NegativeTTL:   time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("2001:db8::5")
	if got := n.Resolve(context.Background(), t0, ip); got != Deny {
		t.Errorf("Resolve = %v, want Default after timeout", got)
	}
	if n.Len() != 1 {
		t.Errorf("Len = %d, want a negative entry", n.Len())
	}
	// Cancelled context (shutdown) caches nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.Resolve(ctx, t0, netip.MustParseAddr("2001:db8::6"))
	if n.Len() != 1 {
		t.Errorf("Len = %d after a cancelled lookup, want 1", n.Len())
	}
}

func TestNameACLMatch(t *testing.T) {
	n, err := NewNameACL(NameACLConfig{
		Rules: []NameRule{
			{Allow, ".example.net"},
			{Deny, ".bad.example.net"},
			{Allow, "good.bad.example.net"},
			{Deny, "evil.org"},
			{Allow, "evil.org"}, // same suffix: later wins
			{Deny, "Spam.COM."},
		},
		Default: Deny,
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		names []string
		want  Action
	}{
		{nil, Deny},
		{[]string{"example.net."}, Allow},
		{[]string{"a.EXAMPLE.net."}, Allow},
		{[]string{"badexample.net"}, Deny}, // not on a label boundary
		{[]string{"x.bad.example.net"}, Deny},
		{[]string{"x.good.bad.example.net"}, Allow},
		{[]string{"evil.org."}, Allow},
		{[]string{"a.example.net", "b.spam.com"}, Deny}, // deny wins across names
		{[]string{"b.spam.com", "a.example.net"}, Deny},
		{[]string{"unknown.org", "a.example.net"}, Allow},
		{[]string{"net"}, Deny},
	}
	for _, tt := range tests {
		if got, _ := n.match(tt.names); got != tt.want {
			t.Errorf("match(%q) = %v, want %v", tt.names, got, tt.want)
		}
	}
}

func TestNameACLCacheBound(t *testing.T) {
	res := &fakeResolver{names: map[string][]string{}}
	for i := range 10 {
		res.names[netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String()] = []string{"x.example.net"}
	}
	n, err := NewNameACL(NameACLConfig{
		Rules: []NameRule{{Deny, "example.net"}}, Default: Allow, Resolver: res, MaxEntries: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		n.Resolve(context.Background(), t0, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
	}
	if n.Len() != 4 {
		t.Errorf("Len = %d, want MaxEntries 4", n.Len())
	}
	for i := range 10 {
		want := Allow // evicted: unknown again
		if i >= 6 {
			want = Deny
		}
		// Decide would queue the evicted ones; nobody runs the queue here.
		if got := n.Decide(t0, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})); got != want {
			t.Errorf("Decide(192.0.2.%d) = %v, want %v", i, got, want)
		}
	}
}

func TestNameACLDecideAllocs(t *testing.T) {
	res := &fakeResolver{names: map[string][]string{"2001:db8::1": {"a.example.net"}}}
	n, err := NewNameACL(NameACLConfig{Rules: []NameRule{{Deny, "example.net"}}, Resolver: res})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("2001:db8::1")
	n.Resolve(context.Background(), t0, ip)
	allocs := testing.AllocsPerRun(1000, func() {
		if n.Decide(t0, ip) != Deny {
			t.Fatal("cache miss")
		}
	})
	if allocs != 0 {
		t.Errorf("Decide on a cache hit allocates %v times", allocs)
	}
}

func TestNameACLConcurrent(t *testing.T) {
	res := &fakeResolver{names: map[string][]string{}}
	for i := range 64 {
		res.names[netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}).String()] = []string{"h.example.net"}
	}
	n, err := NewNameACL(NameACLConfig{
		Rules: []NameRule{{Deny, "example.net"}}, Default: Allow, Resolver: res, MaxEntries: 32, QueueLen: 8,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- n.Run(ctx) }()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				n.Decide(t0.Add(time.Duration(i)*time.Second), netip.AddrFrom4([4]byte{10, 0, 0, byte((i + g) % 64)}))
			}
		})
	}
	wg.Wait()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
	if n.Len() > 32 {
		t.Errorf("Len = %d exceeds MaxEntries", n.Len())
	}
}

func TestNewNameACLErrors(t *testing.T) {
	tests := []struct {
		cfg  NameACLConfig
		want string
	}{
		{NameACLConfig{Rules: []NameRule{{Allow, "a.net"}, {Deny, ""}}}, "policy: NameACLConfig.Rules[1].Suffix"},
		{NameACLConfig{Rules: []NameRule{{Deny, "."}}}, "Rules[0].Suffix"},
		{NameACLConfig{Rules: []NameRule{{Action(5), "a.net"}}}, "Rules[0].Action"},
		{NameACLConfig{Default: Action(3)}, "Default"},
		{NameACLConfig{TTL: -time.Second}, "TTL"},
		{NameACLConfig{NegativeTTL: -1}, "NegativeTTL"},
		{NameACLConfig{MaxEntries: -1}, "MaxEntries"},
		{NameACLConfig{Workers: -1}, "Workers"},
		{NameACLConfig{QueueLen: -1}, "QueueLen"},
		{NameACLConfig{LookupTimeout: -1}, "LookupTimeout"},
	}
	for _, tt := range tests {
		_, err := NewNameACL(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "policy: ") {
			t.Errorf("NewNameACL(%+v) error = %v, want one mentioning %q", tt.cfg, err, tt.want)
		}
	}
}

func BenchmarkNameACLDecide(b *testing.B) {
	res := &fakeResolver{names: map[string][]string{}}
	ips := make([]netip.Addr, 1024)
	for i := range ips {
		ips[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		res.names[ips[i].String()] = []string{"h.example.net"}
	}
	n, err := NewNameACL(NameACLConfig{Rules: []NameRule{{Deny, "example.net"}}, Resolver: res})
	if err != nil {
		b.Fatal(err)
	}
	for _, ip := range ips {
		n.Resolve(context.Background(), t0, ip)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		n.Decide(t0, ips[i&1023]) // cache hit
		i++
	}
}

// TestNameACLForwardConfirmation checks that a PTR name counts only when
// its forward lookup returns the client's address.
func TestNameACLForwardConfirmation(t *testing.T) {
	res := &fakeResolver{
		names: map[string][]string{
			"192.0.2.10": {"ntp.good.example."}, // honest
			"192.0.2.66": {"ntp.good.example."}, // a reverse zone claiming an allowed name
			"192.0.2.67": {"x.other.example.", "ntp.good.example."},
			"192.0.2.68": {"liar.good.example."},                   // forward lookup fails
			"192.0.2.69": {"host.bad.example.", "y.good.example."}, // only the bad name confirms
		},
		forward: map[string][]string{
			"ntp.good.example":  {"192.0.2.10", "2001:db8::10"},
			"x.other.example":   {"192.0.2.67"},
			"y.good.example":    {"192.0.2.1"},
			"host.bad.example":  {"::ffff:192.0.2.69"},
			"liar.good.example": {},
		},
	}
	n, err := NewNameACL(NameACLConfig{
		Rules:    []NameRule{{Allow, ".good.example"}, {Deny, ".bad.example"}},
		Default:  Deny,
		Resolver: res,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want Action
	}{
		{"192.0.2.10", Allow},
		{"192.0.2.66", Deny}, // unconfirmed: Default
		{"192.0.2.67", Deny}, // only x.other.example confirms; no rule: Default
		{"192.0.2.68", Deny},
		{"192.0.2.69", Deny}, // the confirmed name is denied
	} {
		if got := n.Resolve(context.Background(), t0, netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Resolve(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	// With Default Allow, the spoofed claim is not enough to be denied
	// either: only confirmed names decide.
	n2, _ := NewNameACL(NameACLConfig{Rules: []NameRule{{Deny, ".good.example"}}, Default: Allow, Resolver: res})
	if got := n2.Resolve(context.Background(), t0, netip.MustParseAddr("192.0.2.66")); got != Allow {
		t.Errorf("unconfirmed name decided %v, want Default", got)
	}
}

// TestNameACLFloodKeepsConfirmed floods Decide with 50,000 spoofed
// sources over 10 s while the lookups run, into a cache of 64 entries
// holding one confirmed, allowed client: the client must stay allowed, and
// the flood must cost at most LookupsPerSecond lookups a second.
func TestNameACLFloodKeepsConfirmed(t *testing.T) {
	res := &fakeResolver{names: map[string][]string{"192.0.2.10": {"ntp.good.example."}}}
	const lps = 20
	n, err := NewNameACL(NameACLConfig{
		Rules: []NameRule{{Allow, ".good.example"}}, Default: Deny, Resolver: res,
		MaxEntries: 64, LookupsPerSecond: lps,
	})
	if err != nil {
		t.Fatal(err)
	}
	legit := netip.MustParseAddr("192.0.2.10")
	if got := n.Resolve(context.Background(), t0, legit); got != Allow {
		t.Fatalf("Resolve(legit) = %v", got)
	}
	calls0 := res.calls.Load()
	const total, seconds = 50000, 10
	now := t0
	for i := range total {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		n.Decide(now, ip)
		if i%(total/seconds/10) == 0 {
			// The workers keep up: run what was queued.
			for len(n.queue) > 0 {
				n.background(context.Background(), <-n.queue)
			}
		}
		now = now.Add(seconds * time.Second / total)
	}
	for len(n.queue) > 0 {
		n.background(context.Background(), <-n.queue)
	}
	lookups := res.calls.Load() - calls0
	t.Logf("%d spoofed sources in %d s: %d lookups, cache %d entries", total, seconds, lookups, n.Len())
	if max := int32(lps*seconds + lps); lookups > max {
		t.Errorf("flood caused %d lookups, want at most %d", lookups, max)
	}
	if lookups < lps*seconds/2 {
		t.Errorf("only %d lookups: the flood test did not churn the cache", lookups)
	}
	if got := n.Decide(now, legit); got != Allow {
		t.Errorf("after the flood the confirmed client is decided %v, want Allow", got)
	}
}

// TestNameACLHugeMaxEntries checks that a huge MaxEntries is not
// allocated up front: building the ACL must not take gigabytes.
func TestNameACLHugeMaxEntries(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, err := NewNameACL(NameACLConfig{Rules: []NameRule{{Deny, "example.net"}}, Resolver: &fakeResolver{}, MaxEntries: 2_000_000_000})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("NewNameACL with MaxEntries 2e9 allocated %d bytes", grew)
	}
	if n.Len() != 0 {
		t.Fatal("cache not empty")
	}
}

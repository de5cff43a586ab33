package ratelimit

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustNew(t testing.TB, cfg Config) *Table {
	t.Helper()
	tab, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestTokenBucket(t *testing.T) {
	tab := mustNew(t, Config{Interval: time.Second, Burst: 4, MemoryBytes: MinMemoryBytes})
	ip := netip.MustParseAddr("192.0.2.1")
	steps := []struct {
		at   time.Duration
		want Result
	}{
		// A new client starts with a full bucket of 4.
		{0, Result{Allowed: true}},
		{0, Result{Allowed: true}},
		{0, Result{Allowed: true}},
		{0, Result{Allowed: true}},
		{0, Result{Dropped: 1}},
		{0, Result{Dropped: 2}},
		{999 * time.Millisecond, Result{Dropped: 3}},
		// One token per Interval.
		{time.Second, Result{Allowed: true}},
		{time.Second, Result{Dropped: 1}},
		// 2.5 s later: two tokens earned.
		{3500 * time.Millisecond, Result{Allowed: true}},
		{3500 * time.Millisecond, Result{Allowed: true}},
		{3500 * time.Millisecond, Result{Dropped: 1}},
		// A long pause refills to Burst, not beyond.
		{time.Hour, Result{Allowed: true}},
		{time.Hour, Result{Allowed: true}},
		{time.Hour, Result{Allowed: true}},
		{time.Hour, Result{Allowed: true}},
		{time.Hour, Result{Dropped: 1}},
	}
	for i, s := range steps {
		if got := tab.Check(t0.Add(s.at), ip); got != s.want {
			t.Fatalf("step %d (+%v): Check = %+v, want %+v", i, s.at, got, s.want)
		}
	}
	want := Stats{Lookups: uint64(len(steps)), Allowed: 11, Limited: 6, Entries: 1}
	if d := cmp.Diff(want, tab.Stats()); d != "" {
		t.Errorf("Stats mismatch (-want +got):\n%s", d)
	}
}

func TestDefaults(t *testing.T) {
	tab := mustNew(t, Config{})
	want := Config{Interval: time.Second, Burst: 8, IPv4Prefix: 32, IPv6Prefix: 64, MemoryBytes: 16 << 20}
	if d := cmp.Diff(want, tab.Config()); d != "" {
		t.Errorf("Config mismatch (-want +got):\n%s", d)
	}
	if got := tab.Entries(); got != 1048576 {
		t.Errorf("Entries = %d, want 1048576", got)
	}
	ip := netip.MustParseAddr("2001:db8::1")
	for i := range 8 {
		if !tab.Allow(t0, ip) {
			t.Fatalf("request %d refused within the default burst", i)
		}
	}
	if tab.Allow(t0, ip) {
		t.Error("9th request allowed")
	}
}

func TestGrouping(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		a, b       string
		sameBucket bool
	}{
		{"v6 same /64", Config{}, "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"v6 other /64", Config{}, "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"v6 /128", Config{IPv6Prefix: 128}, "2001:db8::1", "2001:db8::2", false},
		{"v6 /48", Config{IPv6Prefix: 48}, "2001:db8:1:2::1", "2001:db8:1:3::1", true},
		{"v6 /96", Config{IPv6Prefix: 96}, "2001:db8::1:0:1", "2001:db8::1:0:2", true},
		{"v4 /32", Config{}, "192.0.2.1", "192.0.2.2", false},
		{"v4 /24", Config{IPv4Prefix: 24}, "192.0.2.1", "192.0.2.200", true},
		{"v4 mapped", Config{}, "192.0.2.1", "::ffff:192.0.2.1", true},
		{"v4 vs v6 with same bits", Config{IPv6Prefix: 128}, "0.0.0.1", "::1", false},
		{"zone ignored", Config{}, "fe80::1%eth0", "fe80::1%eth1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Burst, cfg.MemoryBytes = 2, MinMemoryBytes
			tab := mustNew(t, cfg)
			a, b := netip.MustParseAddr(tt.a), netip.MustParseAddr(tt.b)
			tab.Allow(t0, a)
			tab.Allow(t0, a) // a's bucket is now empty
			if got := tab.Allow(t0, b); got == tt.sameBucket {
				t.Errorf("Allow(%v) after exhausting %v = %v, want %v", b, a, got, !tt.sameBucket)
			}
		})
	}
}

func TestInvalidAddr(t *testing.T) {
	tab := mustNew(t, Config{MemoryBytes: MinMemoryBytes})
	if tab.Allow(t0, netip.Addr{}) {
		t.Error("zero Addr allowed")
	}
	if got := tab.Stats(); got != (Stats{}) {
		t.Errorf("Stats = %+v after an invalid address, want zero", got)
	}
}

func TestClockStepBack(t *testing.T) {
	tab := mustNew(t, Config{Interval: time.Second, Burst: 2, MemoryBytes: MinMemoryBytes})
	ip := netip.MustParseAddr("192.0.2.1")
	later := t0.Add(24 * time.Hour)
	tab.Allow(later, ip)
	tab.Allow(later, ip)
	// The clock steps back a day: the client waits at most one refill
	// period, not a day.
	if tab.Allow(t0, ip) {
		t.Error("allowed right after the step")
	}
	if !tab.Allow(t0.Add(2*time.Second), ip) {
		t.Error("still refused 2 s after the step")
	}
}

func TestResultLeak(t *testing.T) {
	tests := []struct {
		r    Result
		n    uint
		want bool
	}{
		{Result{Allowed: true}, 3, true},
		{Result{Dropped: 1}, 0, true},
		{Result{Dropped: 1}, 1, false},
		{Result{Dropped: 2}, 1, true},
		{Result{Dropped: 3}, 2, false},
		{Result{Dropped: 4}, 2, true},
		{Result{Dropped: 8}, 2, true},
		{Result{Dropped: 1 << 31}, 40, true},
	}
	for _, tt := range tests {
		if got := tt.r.Leak(tt.n); got != tt.want {
			t.Errorf("%+v.Leak(%d) = %v, want %v", tt.r, tt.n, got, tt.want)
		}
	}
	// Against a table: 1 in 4 refused requests leaks.
	tab := mustNew(t, Config{Burst: 1, MemoryBytes: MinMemoryBytes})
	ip := netip.MustParseAddr("192.0.2.1")
	tab.Allow(t0, ip)
	leaked := 0
	for range 100 {
		if tab.Check(t0, ip).Leak(2) {
			leaked++
		}
	}
	if leaked != 25 {
		t.Errorf("leaked %d of 100 refused requests, want 25", leaked)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string // "" = valid
	}{
		{Config{}, ""},
		{Config{Interval: time.Millisecond, Burst: 1, IPv4Prefix: 1, IPv6Prefix: 128, MemoryBytes: MinMemoryBytes}, ""},
		{Config{Interval: -1}, "ratelimit: Config.Interval: negative"},
		{Config{Burst: -1}, "ratelimit: Config.Burst: negative"},
		{Config{IPv4Prefix: 33}, "ratelimit: Config.IPv4Prefix: 33 out of range"},
		{Config{IPv4Prefix: -1}, "ratelimit: Config.IPv4Prefix"},
		{Config{IPv6Prefix: 129}, "ratelimit: Config.IPv6Prefix: 129 out of range"},
		{Config{MemoryBytes: -5}, "ratelimit: Config.MemoryBytes: negative"},
		{Config{MemoryBytes: MinMemoryBytes - 1}, "ratelimit: Config.MemoryBytes: 4095 is too small"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		_, nerr := New(tt.cfg)
		switch {
		case tt.want == "" && (err != nil || nerr != nil):
			t.Errorf("%+v: Validate = %v, New = %v; want valid", tt.cfg, err, nerr)
		case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
			t.Errorf("%+v: Validate = %v, want %q...", tt.cfg, err, tt.want)
		case tt.want != "" && nerr == nil:
			t.Errorf("%+v: New succeeded", tt.cfg)
		}
	}
}

func TestTableSize(t *testing.T) {
	for _, mem := range []int{MinMemoryBytes, 1 << 20, 1<<20 + 12345, 3 << 20} {
		tab := mustNew(t, Config{MemoryBytes: mem})
		size := tab.Entries() * EntryBytes
		if size > mem || size <= mem/2 {
			t.Errorf("MemoryBytes %d: %d entries take %d bytes", mem, tab.Entries(), size)
		}
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestFlood sends one request each from 2 million distinct addresses. The
// table must not grow, and a client that was being limited must stay
// limited: flooders, having spent only one token, are evicted first.
func TestFlood(t *testing.T) {
	const mem = 1 << 20
	before := heapAlloc()
	tab := mustNew(t, Config{Interval: time.Second, Burst: 4, MemoryBytes: mem})
	afterNew := heapAlloc()
	if d := afterNew - before; d < mem*9/10 || d > mem*11/10 {
		t.Errorf("New(MemoryBytes %d) grew the heap by %d bytes", mem, d)
	}
	abuser := netip.MustParseAddr("198.51.100.1")
	for tab.Allow(t0, abuser) {
	}
	n := 2_000_000
	if testing.Short() {
		n = 200_000
	}
	for i := range n {
		now := t0.Add(time.Duration(i) * time.Microsecond)
		var ip netip.Addr
		if i%2 == 0 {
			ip = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		} else {
			ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i), 15: 1})
		}
		tab.Allow(now, ip)
	}
	end := t0.Add(time.Duration(n) * time.Microsecond) // 2 s after t0: the abuser earned 2 of 4 tokens back
	afterFlood := heapAlloc()
	if d := int64(afterFlood) - int64(afterNew); d > 256<<10 {
		t.Errorf("flood of %d addresses grew the heap by %d bytes", n, d)
	}
	st := tab.Stats()
	if st.Entries != tab.Entries() {
		t.Errorf("Stats.Entries = %d, want the full table %d", st.Entries, tab.Entries())
	}
	if st.Evictions == 0 || st.Lookups != uint64(n)+5 {
		t.Errorf("Stats = %+v", st)
	}
	if tab.Entries() != mem/EntryBytes {
		t.Errorf("Entries = %d, want %d", tab.Entries(), mem/EntryBytes)
	}
	allowed := 0
	for tab.Allow(end, abuser) {
		allowed++
	}
	if earned := int(end.Sub(t0) / time.Second); allowed != earned {
		t.Errorf("limited client allowed %d requests after the flood, want the %d it earned (the flood must not reset its bucket)", allowed, earned)
	}
	runtime.KeepAlive(tab)
}

func TestConcurrent(t *testing.T) {
	const burst = 5
	tab := mustNew(t, Config{Interval: time.Minute, Burst: burst, MemoryBytes: 64 << 10})
	shared := netip.MustParseAddr("2001:db8::1")
	const goroutines, calls = 8, 5000
	var wg sync.WaitGroup
	allowedShared := make([]int, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				if tab.Allow(t0, shared) {
					allowedShared[g]++
				}
				tab.Allow(t0.Add(time.Duration(i)*time.Millisecond), netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)}))
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			tab.Stats()
		}
	})
	wg.Wait()
	total := 0
	for _, n := range allowedShared {
		total += n
	}
	if total != burst {
		t.Errorf("shared client allowed %d times, want exactly the burst %d", total, burst)
	}
	st := tab.Stats()
	if st.Lookups != 2*goroutines*calls || st.Allowed+st.Limited != st.Lookups {
		t.Errorf("Stats = %+v, want %d lookups split into allowed and limited", st, 2*goroutines*calls)
	}
}

func TestAllowAllocs(t *testing.T) {
	tab := mustNew(t, Config{MemoryBytes: 1 << 20})
	ips := randomAddrs(1024)
	i := 0
	n := testing.AllocsPerRun(1000, func() {
		tab.Allow(t0.Add(time.Duration(i)), ips[i%len(ips)])
		i++
	})
	if n != 0 {
		t.Errorf("Allow allocates %v times per call", n)
	}
	g := NewGlobal(1000, 10)
	n = testing.AllocsPerRun(1000, func() {
		g.Allow(t0.Add(time.Duration(i)))
		i++
	})
	if n != 0 {
		t.Errorf("Global.Allow allocates %v times per call", n)
	}
}

func TestGlobal(t *testing.T) {
	g := NewGlobal(10, 2)
	want := []struct {
		at time.Duration
		ok bool
	}{
		{0, true}, {0, true}, {0, false},
		{50 * time.Millisecond, false},
		{100 * time.Millisecond, true},
		{100 * time.Millisecond, false},
		{time.Hour, true}, {time.Hour, true}, {time.Hour, false},
	}
	for i, w := range want {
		if got := g.Allow(t0.Add(w.at)); got != w.ok {
			t.Errorf("step %d (+%v): Allow = %v, want %v", i, w.at, got, w.ok)
		}
	}
	var nilG *Global
	for _, u := range []*Global{NewGlobal(0, 0), NewGlobal(-1, 5), nilG} {
		for range 1000 {
			if !u.Allow(t0) {
				t.Fatal("unlimited Global refused a request")
			}
		}
	}
	g = NewGlobal(1, 0) // burst raised to 1
	if !g.Allow(t0) || g.Allow(t0) {
		t.Error("burst 0 not treated as 1")
	}
}

func randomAddrs(n int) []netip.Addr {
	r := rand.New(rand.NewPCG(1, 2))
	ips := make([]netip.Addr, n)
	for i := range ips {
		if i%2 == 0 {
			ips[i] = netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
			continue
		}
		var b [16]byte
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		ips[i] = netip.AddrFrom16(b)
	}
	return ips
}

// benchSizes are table sizes to benchmark: the default, mostly outside the
// CPU caches, and a small one that fits in them.
var benchSizes = []struct {
	name string
	mem  int
}{{"mem=16MiB", 0}, {"mem=256KiB", 256 << 10}}

func BenchmarkAllow(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			tab := mustNew(b, Config{MemoryBytes: sz.mem})
			ips := randomAddrs(1 << 16)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tab.Allow(t0.Add(time.Duration(i)*time.Microsecond), ips[i&(1<<16-1)])
				i++
			}
		})
	}
}

func BenchmarkAllowParallel(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			tab := mustNew(b, Config{MemoryBytes: sz.mem})
			ips := randomAddrs(1 << 16)
			var seq atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seq.Add(1)) * 7919
				for pb.Next() {
					tab.Allow(t0.Add(time.Duration(i)*time.Microsecond), ips[i&(1<<16-1)])
					i++
				}
			})
		})
	}
}

func BenchmarkGlobalAllow(b *testing.B) {
	g := NewGlobal(1e6, 1000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		g.Allow(t0.Add(time.Duration(i) * time.Microsecond))
		i++
	}
}

func TestCheckLane(t *testing.T) {
	tab := mustNew(t, Config{Interval: time.Second, Burst: 1, MemoryBytes: MinMemoryBytes})
	ip := netip.MustParseAddr("192.0.2.1")
	for i, lane := range []uint32{0, 1, Lanes - 1, Lanes, 7 * Lanes, ^uint32(0)} {
		r := tab.CheckLane(t0, ip, lane)
		if want := i == 0; r.Allowed != want || (!want && r.Dropped != uint32(i)) {
			t.Errorf("call %d (lane %d) = %+v, want allowed %v, dropped %d", i, lane, r, want, i)
		}
	}
	if st := tab.Stats(); st != (Stats{Lookups: 6, Allowed: 1, Limited: 5, Entries: 1}) {
		t.Errorf("Stats = %+v", st)
	}
}

// TestDroppedWrap checks that a client's refusal count, which shares a
// word with its bucket's lock when the client is the bucket's first
// entry, goes on from 2^30 after 2^31-1 and leaves the bucket unlocked.
func TestDroppedWrap(t *testing.T) {
	tab := mustNew(t, Config{Interval: time.Hour, Burst: 1, MemoryBytes: MinMemoryBytes})
	ip := netip.MustParseAddr("192.0.2.1")
	tab.Check(t0, ip) // the first entry of an empty bucket
	var e *entry
	for i := range tab.buckets {
		if b := &tab.buckets[i]; b[0].fp != 0 {
			e = &b[0]
		}
	}
	if e == nil {
		t.Fatal("the client is not in the first entry of a bucket")
	}
	e.setDropped(lockBit - 2)
	for _, want := range []uint32{lockBit - 1, lockBit >> 1, lockBit>>1 + 1} {
		if r := tab.Check(t0, ip); r.Allowed || r.Dropped != want {
			t.Errorf("Check = %+v, want %d dropped", r, want)
		}
		if e.dropped&lockBit != 0 {
			t.Fatal("the bucket was left locked")
		}
	}
	if r := tab.Check(t0.Add(2*time.Hour), ip); !r.Allowed || e.dropped != 0 {
		t.Errorf("Check after the interval = %+v, dropped word %#x", r, e.dropped)
	}
}

package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/policy"
	"github.com/ntpkit/ntpkit/ratelimit"
)

// mwRecorder is a ResponseWriter that encodes what a handler sends, as the
// real writer does, and remembers it. (servertest.Recorder cannot be used
// from package server's own tests: servertest imports server.)
type mwRecorder struct {
	req     *Request
	replied bool
	kissed  bool
	code    ntpwire.RefID
	pkt     ntpwire.Packet
	buf     []byte
}

func (rec *mwRecorder) reset(r *Request) {
	rec.req, rec.replied, rec.kissed, rec.code, rec.pkt = r, false, false, ntpwire.RefID{}, ntpwire.Packet{}
}

func (rec *mwRecorder) Reply(p ntpwire.Packet) error {
	if rec.replied {
		return ErrReplied
	}
	rec.buf = p.AppendTo(rec.buf[:0])
	rec.replied, rec.pkt = true, p
	return nil
}

func (rec *mwRecorder) ReplySealed(p ntpwire.Packet, seal func([]byte) ([]byte, error)) error {
	if rec.replied {
		return ErrReplied
	}
	b, err := seal(p.AppendTo(rec.buf[:0]))
	if err != nil {
		return err
	}
	rec.buf, rec.replied, rec.pkt = b, true, p
	return nil
}

func (rec *mwRecorder) Kiss(code ntpwire.RefID) error {
	if rec.replied {
		return ErrReplied
	}
	rec.pkt = ntpwire.NewKiss(&rec.req.Packet, code)
	rec.buf = rec.pkt.AppendTo(rec.buf[:0])
	rec.replied, rec.kissed, rec.code = true, true, code
	return nil
}

// outcome is what a client got.
type outcome int

const (
	gotNothing outcome = iota
	gotReply
	gotKiss
)

func (o outcome) String() string {
	return [...]string{"nothing", "reply", "kiss"}[o]
}

// mwReq returns a client request from src received at rx.
func mwReq(src string, rx time.Time) *Request {
	p := clientRequest(rx.Add(-time.Millisecond))
	return &Request{
		Packet:    p,
		Raw:       p.AppendTo(nil),
		Received:  rx,
		Reference: fixedSource().Reference(),
		Src:       netip.MustParseAddrPort(src),
		Dst:       netip.MustParseAddrPort("192.0.2.123:123"),
	}
}

// serve runs h on a request from src at rx and reports what came back.
func serveOnce(h Handler, src string, rx time.Time) (outcome, *mwRecorder) {
	rec := &mwRecorder{}
	r := mwReq(src, rx)
	rec.reset(r)
	h.ServeNTP(rec, r)
	switch {
	case rec.kissed:
		return gotKiss, rec
	case rec.replied:
		return gotReply, rec
	}
	return gotNothing, rec
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedSource() *LocalSource {
	return NewLocalSource(clocktest.New(t0), 2)
}

func mustACL(t testing.TB, def policy.Action, rules ...string) *policy.ACL {
	t.Helper()
	a, err := policy.Parse(rules, def)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustTable(t testing.TB, cfg ratelimit.Config) *ratelimit.Table {
	t.Helper()
	tb, err := ratelimit.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestAccessControl(t *testing.T) {
	acl := mustACL(t, policy.Deny, "allow 192.0.2.0/24", "deny 192.0.2.66", "allow 2001:db8::/32")
	for _, tc := range []struct {
		name string
		opts AccessOptions
		want map[string]outcome
		code ntpwire.RefID
	}{
		{
			name: "drop",
			opts: AccessOptions{Addrs: acl},
			want: map[string]outcome{
				"192.0.2.1:123":          gotReply,
				"[::ffff:192.0.2.1]:123": gotReply,
				"192.0.2.66:123":         gotNothing,
				"198.51.100.1:123":       gotNothing,
				"[2001:db8::1]:123":      gotReply,
				"[2001:db9::1]:123":      gotNothing,
			},
		},
		{
			name: "kiss DENY",
			opts: AccessOptions{Addrs: acl, Kiss: true},
			want: map[string]outcome{
				"192.0.2.1:123":     gotReply,
				"192.0.2.66:123":    gotKiss,
				"[2001:db9::1]:123": gotKiss,
			},
			code: ntpwire.KissDeny,
		},
		{
			name: "kiss RSTR",
			opts: AccessOptions{Addrs: acl, Kiss: true, KissCode: ntpwire.KissRstr},
			want: map[string]outcome{"198.51.100.1:123": gotKiss},
			code: ntpwire.KissRstr,
		},
		{
			name: "zero options allow all",
			opts: AccessOptions{},
			want: map[string]outcome{"198.51.100.1:123": gotReply, "[2001:db9::1]:123": gotReply},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ac := NewAccessControl(tc.opts)
			h := Chain(Responder(), ac.Wrap)
			var want AccessStats
			for src, w := range tc.want {
				got, rec := serveOnce(h, src, t0)
				if got != w {
					t.Errorf("%s: got %v, want %v", src, got, w)
				}
				switch w {
				case gotReply:
					want.Allowed++
				case gotKiss:
					want.DeniedAddr++
					want.Kissed++
					if rec.code != tc.code {
						t.Errorf("%s: kiss code %v, want %v", src, rec.code, tc.code)
					}
				case gotNothing:
					want.DeniedAddr++
					want.Dropped++
				}
			}
			if diff := cmp.Diff(want, ac.Stats()); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAccessControlKissBudget(t *testing.T) {
	budget := ratelimit.NewGlobal(1, 2) // 1 KoD/s, bursts of 2
	ac := NewAccessControl(AccessOptions{Addrs: mustACL(t, policy.Deny), Kiss: true, KissLimit: budget})
	h := ac.Wrap(Responder())
	var got []outcome
	for i := range 5 {
		o, _ := serveOnce(h, fmt.Sprintf("203.0.113.%d:123", i), t0)
		got = append(got, o)
	}
	o, _ := serveOnce(h, "203.0.113.9:123", t0.Add(time.Second)) // one more token
	got = append(got, o)
	want := []outcome{gotKiss, gotKiss, gotNothing, gotNothing, gotNothing, gotKiss}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	wantSt := AccessStats{DeniedAddr: 6, Kissed: 3, Dropped: 3, KissLimited: 3}
	if diff := cmp.Diff(wantSt, ac.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// staticResolver answers PTR lookups from a map; unknown addresses fail.
type staticResolver struct {
	mu    sync.Mutex
	names map[string][]string
	calls int
}

func (r *staticResolver) LookupAddr(_ context.Context, addr string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if n, ok := r.names[addr]; ok {
		return n, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: addr, IsNotFound: true}
}

// LookupNetIP answers forward lookups from the same map, as honest DNS
// would, so that PTR names are confirmed.
func (r *staticResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var addrs []netip.Addr
	for a, names := range r.names {
		for _, n := range names {
			if strings.TrimSuffix(n, ".") == host {
				addrs = append(addrs, netip.MustParseAddr(a))
			}
		}
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

func TestAccessControlNames(t *testing.T) {
	res := &staticResolver{names: map[string][]string{
		"198.51.100.1": {"ntp.good.example."},
		"198.51.100.2": {"host.bad.example."},
		"192.0.2.7":    {"host.bad.example."},
	}}
	names, err := policy.NewNameACL(policy.NameACLConfig{
		Rules: []policy.NameRule{
			{Action: policy.Allow, Suffix: ".good.example"},
			{Action: policy.Deny, Suffix: ".bad.example"},
		},
		Default:  policy.Allow,
		Resolver: res,
	})
	if err != nil {
		t.Fatal(err)
	}
	ac := NewAccessControl(AccessOptions{
		// 192.0.2.0/24 is decided by address; the names decide the rest.
		Addrs: mustACL(t, policy.Deny, "allow 192.0.2.0/24"),
		Names: names,
		Kiss:  true,
	})
	h := ac.Wrap(Responder())

	// Names not known yet: the name default (allow) applies, and the
	// packet path never waits for a lookup.
	for _, src := range []string{"198.51.100.1:1", "198.51.100.2:1", "198.51.100.3:1"} {
		if o, _ := serveOnce(h, src, t0); o != gotReply {
			t.Errorf("%s before lookup: got %v, want reply", src, o)
		}
	}
	ctx := context.Background()
	for _, ip := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3", "192.0.2.7"} {
		names.Resolve(ctx, t0, netip.MustParseAddr(ip))
	}
	for src, want := range map[string]outcome{
		"198.51.100.1:1":  gotReply, // allowed by name
		"198.51.100.2:1":  gotKiss,  // denied by name
		"198.51.100.3:1":  gotReply, // lookup failed: the default
		"192.0.2.7:1":     gotReply, // an address rule wins over a name
		"203.0.113.1:1":   gotReply, // unknown name: default allow
		"[2001:db8::1]:1": gotReply, // IPv6 too
	} {
		if o, _ := serveOnce(h, src, t0.Add(time.Second)); o != want {
			t.Errorf("%s: got %v, want %v", src, o, want)
		}
	}
	st := ac.Stats()
	if st.DeniedName != 1 || st.DeniedAddr != 0 || st.Kissed != 1 || st.Allowed != 8 {
		t.Errorf("stats %+v: want 1 denied by name and kissed, 8 allowed", st)
	}
}

func TestAccessControlUpdate(t *testing.T) {
	ac := NewAccessControl(AccessOptions{Addrs: mustACL(t, policy.Allow)})
	h := ac.Wrap(Responder())
	if o, _ := serveOnce(h, "192.0.2.1:1", t0); o != gotReply {
		t.Fatalf("before update: %v", o)
	}
	ac.Update(AccessOptions{Addrs: mustACL(t, policy.Allow, "deny 192.0.2.0/24"), Kiss: true})
	if o, _ := serveOnce(h, "192.0.2.1:1", t0); o != gotKiss {
		t.Fatalf("after update: %v, want kiss", o)
	}
	if got := ac.Options().KissCode; got != ntpwire.KissDeny {
		t.Errorf("default kiss code %v, want DENY", got)
	}
	if st := ac.Stats(); st.Allowed != 1 || st.DeniedAddr != 1 {
		t.Errorf("stats %+v: counters must survive Update", st)
	}
}

func TestRateLimiter(t *testing.T) {
	clk := clocktest.New(t0)
	tb := mustTable(t, ratelimit.Config{Interval: time.Second, Burst: 4, MemoryBytes: ratelimit.MinMemoryBytes})
	rl := NewRateLimiter(RateLimitOptions{Table: tb, Kiss: true})
	h := rl.Wrap(Responder())
	send := func(src string) outcome {
		o, _ := serveOnce(h, src, clk.Now())
		return o
	}
	// A burst of 4 passes, then the client is limited; it gets a KoD on
	// its 1st, 2nd, 4th and 8th refused request in a row.
	var got []outcome
	for range 12 {
		got = append(got, send("192.0.2.1:123"))
	}
	want := []outcome{gotReply, gotReply, gotReply, gotReply,
		gotKiss, gotKiss, gotNothing, gotKiss, gotNothing, gotNothing, gotNothing, gotKiss}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flooding client (-want +got):\n%s", diff)
	}
	// Another client is unaffected.
	if o := send("192.0.2.2:123"); o != gotReply {
		t.Errorf("other client: %v", o)
	}
	// One interval later the flooder has earned one request.
	clk.Advance(time.Second)
	if o := send("192.0.2.1:123"); o != gotReply {
		t.Errorf("after an interval: %v, want reply", o)
	}
	if o := send("192.0.2.1:123"); o != gotKiss {
		t.Errorf("right after: %v, want kiss", o)
	}
	wantSt := RateLimitStats{Allowed: 6, Limited: 9, Kissed: 5, Dropped: 4}
	if diff := cmp.Diff(wantSt, rl.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestRateLimiterLeak(t *testing.T) {
	tb := mustTable(t, ratelimit.Config{Interval: time.Hour, Burst: 1, MemoryBytes: ratelimit.MinMemoryBytes})
	rl := NewRateLimiter(RateLimitOptions{Table: tb, Leak: 2}) // 1 in 4
	h := rl.Wrap(Responder())
	var got []outcome
	for range 9 {
		o, _ := serveOnce(h, "[2001:db8::1]:123", t0)
		got = append(got, o)
	}
	want := []outcome{gotReply, gotNothing, gotNothing, gotNothing, gotReply,
		gotNothing, gotNothing, gotNothing, gotReply}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if st := rl.Stats(); st.Allowed != 1 || st.Leaked != 2 || st.Limited != 6 || st.Dropped != 6 {
		t.Errorf("stats %+v", st)
	}
}

func TestRateLimiterGlobalAndKissBudget(t *testing.T) {
	clk := clocktest.New(t0)
	tb := mustTable(t, ratelimit.Config{Interval: time.Hour, Burst: 1, MemoryBytes: ratelimit.MinMemoryBytes})
	rl := NewRateLimiter(RateLimitOptions{
		Table:     tb,
		Global:    ratelimit.NewGlobal(10, 3), // 3 at once, then 10/s
		Kiss:      true,
		KissLimit: ratelimit.NewGlobal(1, 1),
	})
	h := rl.Wrap(Responder())
	var got []outcome
	for i := range 5 { // 5 distinct clients at once: the global cap allows 3
		o, _ := serveOnce(h, fmt.Sprintf("192.0.2.%d:1", i), clk.Now())
		got = append(got, o)
	}
	// Clients 0-2 are now over their own limit: only one KoD fits the budget.
	for i := range 3 {
		o, _ := serveOnce(h, fmt.Sprintf("192.0.2.%d:1", i), clk.Now())
		got = append(got, o)
	}
	clk.Advance(100 * time.Millisecond) // one global token back
	o, _ := serveOnce(h, "192.0.2.9:1", clk.Now())
	got = append(got, o)
	want := []outcome{gotReply, gotReply, gotReply, gotNothing, gotNothing,
		gotKiss, gotNothing, gotNothing, gotReply}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	wantSt := RateLimitStats{Allowed: 4, Limited: 3, LimitedGlobal: 2, Kissed: 1, Dropped: 4, KissLimited: 2}
	if diff := cmp.Diff(wantSt, rl.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestRateLimiterZeroOptions(t *testing.T) {
	rl := NewRateLimiter(RateLimitOptions{})
	h := rl.Wrap(Responder())
	for range 100 {
		if o, _ := serveOnce(h, "192.0.2.1:1", t0); o != gotReply {
			t.Fatalf("zero options limited a request: %v", o)
		}
	}
	rl.Update(RateLimitOptions{Leak: 99})
	if got := rl.Options().Leak; got != 31 {
		t.Errorf("Leak capped to %d, want 31", got)
	}
}

// TestRateLimiterAdvertisesPoll checks that replies and KoDs behind a
// rate limiter carry a poll of at least its interval, and the client's own
// when that is longer, as chrony's do.
func TestRateLimiterAdvertisesPoll(t *testing.T) {
	for _, tc := range []struct {
		interval   time.Duration
		clientPoll int8
		min        int8 // the limiter's poll
	}{
		{8 * time.Second, 0, 3},
		{8 * time.Second, 3, 3},
		{8 * time.Second, 10, 3},
		{3 * time.Second, -2, 2}, // rounded up: 4 s
		{time.Second, -6, 0},
		{250 * time.Millisecond, -6, -2},
		{time.Minute, 4, 6}, // 64 s
		{1000 * time.Hour, 4, 17},
	} {
		tb := mustTable(t, ratelimit.Config{Interval: tc.interval, Burst: 1, MemoryBytes: ratelimit.MinMemoryBytes})
		rl := NewRateLimiter(RateLimitOptions{Table: tb, Kiss: true})
		if got := rl.MinPoll(); got != tc.min {
			t.Errorf("interval %v: MinPoll %d, want %d", tc.interval, got, tc.min)
		}
		h := rl.Wrap(Responder())
		var got []int8
		for _, want := range []outcome{gotReply, gotKiss} {
			rec := &mwRecorder{}
			r := mwReq("192.0.2.1:123", t0)
			r.Packet.Poll = tc.clientPoll
			rec.reset(r)
			h.ServeNTP(rec, r)
			if o := map[bool]outcome{true: gotKiss, false: gotReply}[rec.kissed]; !rec.replied || o != want {
				t.Fatalf("interval %v: replied %v kissed %v, want %v", tc.interval, rec.replied, rec.kissed, want)
			}
			got = append(got, rec.pkt.Poll)
		}
		if w := max(tc.min, tc.clientPoll); !slices.Equal(got, []int8{w, w}) {
			t.Errorf("interval %v, client poll %d: reply and KoD polls %v, want %d", tc.interval, tc.clientPoll, got, w)
		}
	}
	// Without a per-client limit the poll is the client's.
	rl := NewRateLimiter(RateLimitOptions{Global: ratelimit.NewGlobal(1000, 1000)})
	_, rec := serveOnce(rl.Wrap(Responder()), "192.0.2.1:123", t0)
	if want := clientRequest(t0).Poll; rec.pkt.Poll != want {
		t.Errorf("no Table: reply poll %d, want the client's %d", rec.pkt.Poll, want)
	}
}

// TestRateKissPollOverLoopback checks a RATE KoD on the wire: it tells the
// client to poll no faster than the limit.
func TestRateKissPollOverLoopback(t *testing.T) {
	tb := mustTable(t, ratelimit.Config{Interval: 16 * time.Second, Burst: 1, MemoryBytes: ratelimit.MinMemoryBytes})
	rl := NewRateLimiter(RateLimitOptions{Table: tb, Kiss: true})
	s := &Server{Handler: Chain(Responder(), rl.Wrap)}
	addr := startServer(t, s, "udp4")
	var got []ntpwire.Packet
	for range 2 {
		req := clientRequest(time.Now())
		req.Poll = 1
		rep := exchange(t, addr, req.AppendTo(nil), 2*time.Second)
		var p ntpwire.Packet
		if err := p.Decode(rep); err != nil {
			t.Fatalf("reply %x: %v", rep, err)
		}
		got = append(got, p)
	}
	if got[0].IsKiss() || got[0].Poll != 4 {
		t.Errorf("first reply: kiss %v poll %d, want a reply with poll 4", got[0].IsKiss(), got[0].Poll)
	}
	if !got[1].IsKiss() || got[1].RefID != ntpwire.KissRate || got[1].Poll != 4 {
		t.Errorf("second reply: kiss %v %v poll %d, want RATE with poll 4", got[1].IsKiss(), got[1].RefID, got[1].Poll)
	}
}

// TestKissOverLoopback checks the KoD a denied client gets on the wire:
// RFC 5905 §7.4 fields, and never longer than the request, even when the
// request carried an extension field.
func TestKissOverLoopback(t *testing.T) {
	ac := NewAccessControl(AccessOptions{Addrs: mustACL(t, policy.Allow, "deny 127.0.0.0/8"), Kiss: true})
	s := &Server{Handler: Chain(Responder(), ac.Wrap)}
	addr := startServer(t, s, "udp4")
	req := clientRequest(time.Now())
	raw := req.AppendTo(nil)
	// An RFC 7822 extension field: type 0x0104 (unique identifier), 36 bytes.
	ef := make([]byte, 36)
	binary.BigEndian.PutUint16(ef[0:], 0x0104)
	binary.BigEndian.PutUint16(ef[2:], 36)
	for _, r := range [][]byte{raw, append(append([]byte(nil), raw...), ef...)} {
		rep := exchange(t, addr, r, 2*time.Second)
		if rep == nil {
			t.Fatalf("no KoD for a %d-byte request", len(r))
		}
		if len(rep) != ntpwire.HeaderLen {
			t.Errorf("KoD is %d bytes, want %d", len(rep), ntpwire.HeaderLen)
		}
		var got ntpwire.Packet
		if err := got.Decode(rep); err != nil {
			t.Fatal(err)
		}
		want := ntpwire.Packet{
			Leap: ntpwire.LeapAlarm, Version: req.Version, Mode: ntpwire.ModeServer, Stratum: 0,
			Poll: req.Poll, RefID: ntpwire.KissDeny,
			OrigTime: req.XmitTime, RecvTime: req.XmitTime, XmitTime: req.XmitTime,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("KoD (-want +got):\n%s", diff)
		}
		if !got.IsKiss() {
			t.Error("IsKiss is false")
		}
	}
	waitFor(t, func() bool { return s.Stats().Kisses == 2 }, "2 kisses counted by the server")
	if st := ac.Stats(); st.Kissed != 2 || st.DeniedAddr != 2 {
		t.Errorf("access stats %+v", st)
	}
}

// chainFor builds the chain the benchmarks and flood tests use: an ACL of
// about a thousand rules, then a per-client limit with KoDs.
func chainFor(t testing.TB, tb *ratelimit.Table) (Handler, *AccessControl, *RateLimiter) {
	t.Helper()
	rules := []string{"allow all"}
	for i := range 1000 {
		rules = append(rules, fmt.Sprintf("deny 10.%d.%d.0/24", i/256, i%256))
	}
	rules = append(rules, "deny 198.18.0.0/15", "deny 2001:db8:dead::/48", "allow 2001:db8::/32")
	kod := ratelimit.NewGlobal(100, 100)
	ac := NewAccessControl(AccessOptions{Addrs: mustACL(t, policy.Deny, rules...), Kiss: true, KissLimit: kod})
	rl := NewRateLimiter(RateLimitOptions{Table: tb, Kiss: true, KissLimit: kod, Leak: 2})
	return Chain(Responder(), ac.Wrap, rl.Wrap), ac, rl
}

func TestMiddlewareDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	tb := mustTable(t, ratelimit.Config{Interval: time.Second, Burst: 2, MemoryBytes: 1 << 20})
	h, ac, rl := chainFor(t, tb)
	rec := &mwRecorder{buf: make([]byte, 0, 64)}
	reqs := []*Request{
		mwReq("192.0.2.1:123", t0),     // allowed, then limited with KoDs
		mwReq("10.1.2.3:123", t0),      // denied with a KoD
		mwReq("[2001:db8::1]:123", t0), // IPv6
		mwReq("198.18.0.1:123", t0),    // denied
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		r := reqs[i%len(reqs)]
		r.Received = r.Received.Add(time.Millisecond)
		i++
		rec.reset(r)
		h.ServeNTP(rec, r)
	})
	if allocs != 0 {
		t.Fatalf("the middleware chain allocates %v times per request, want 0", allocs)
	}
	if st := rl.Stats(); st.Limited == 0 || st.Kissed == 0 || st.Allowed == 0 {
		t.Errorf("rate limiter stats %+v: want every path exercised", st)
	}
	if st := ac.Stats(); st.Kissed == 0 || st.Allowed == 0 {
		t.Errorf("access stats %+v: want every path exercised", st)
	}
}

// TestSpoofedFloodMemory pushes millions of distinct spoofed source
// addresses through the whole chain and checks that the heap grows by no
// more than the rate limit table's configured size.
func TestSpoofedFloodMemory(t *testing.T) {
	n := 10_000_000
	if raceEnabled || testing.Short() {
		n = 1_000_000
	}
	const memory = ratelimit.DefaultMemoryBytes // 16 MiB
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	tb := mustTable(t, ratelimit.Config{MemoryBytes: memory})
	h, ac, rl := chainFor(t, tb)
	rec := &mwRecorder{buf: make([]byte, 0, 64)}
	r := mwReq("192.0.2.1:123", t0)
	var peak uint64
	for i := range n {
		// Spread over 100.64.0.0/10 and beyond: n distinct addresses.
		a := uint32(0x64400000) + uint32(i)
		r.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), uint16(i))
		r.Received = t0.Add(time.Duration(i) * time.Microsecond)
		rec.reset(r)
		h.ServeNTP(rec, r)
		if i%(n/4) == 0 {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	peak = max(peak, after.HeapAlloc)
	growth := int64(peak) - int64(before.HeapAlloc)
	garbage := after.TotalAlloc - before.TotalAlloc
	tst := tb.Stats()
	t.Logf("%d spoofed sources: heap growth %.2f MiB (table %d MiB, %d entries, %d in use), allocated in total %.2f MiB; %+v",
		n, float64(growth)/(1<<20), memory>>20, tb.Entries(), tst.Entries, float64(garbage)/(1<<20), rl.Stats())
	// The bound: the table itself plus its counters and some slack for
	// the ACL and the test's own bookkeeping.
	if limit := int64(memory + memory/8); growth > limit {
		t.Errorf("heap grew by %d bytes under the flood, want at most %d", growth, limit)
	}
	if garbage > memory+memory/4 {
		t.Errorf("the flood allocated %d bytes in total: the packet path allocates", garbage)
	}
	if st := rl.Stats(); st.Allowed+st.Leaked+st.Limited != uint64(n) || ac.Stats().Allowed != uint64(n) {
		t.Errorf("not every request was counted: %+v %+v", ac.Stats(), st)
	}
}

// TestFloodOverLoopback floods a real server from 200 sockets on ten
// loopback addresses while a few well-behaved clients poll: the good
// clients must all be answered, the flooders limited, and their KoDs kept
// within the budget.
func TestFloodOverLoopback(t *testing.T) {
	const (
		interval   = 100 * time.Millisecond
		burst      = 4
		kissPerSec = 20
		duration   = 2 * time.Second
		badAddrs   = 10
		goodPolls  = 8
		goodEvery  = duration / goodPolls // 4/s: well within 10/s
	)
	// 200 flooding sockets send about 20,000 requests a second; the race
	// detector slows the server so much that the kernel would drop
	// datagrams from everyone, so the flood is smaller under -race.
	badSockets := 200
	if raceEnabled {
		badSockets = 60
	}
	tb := mustTable(t, ratelimit.Config{Interval: interval, Burst: burst, MemoryBytes: 1 << 20})
	kod := ratelimit.NewGlobal(kissPerSec, kissPerSec)
	rl := NewRateLimiter(RateLimitOptions{Table: tb, Kiss: true, KissLimit: kod})
	s := &Server{Handler: Chain(Responder(), rl.Wrap), ReadBuffer: 4 << 20}
	addr := startServer(t, s, "udp4")
	srvAddr := net.UDPAddrFromAddrPort(addr)

	listen := func(ip string) *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			t.Skipf("cannot bind %s (loopback /8 not routable here?): %v", ip, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var bad []*net.UDPConn
	for i := range badSockets {
		bad = append(bad, listen(fmt.Sprintf("127.0.1.%d", 1+i%badAddrs)))
	}
	var good []*net.UDPConn
	for i := range 3 {
		good = append(good, listen(fmt.Sprintf("127.0.2.%d", 1+i)))
	}

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var sent, replies, kisses atomic.Uint64
	var wg sync.WaitGroup
	req := reqBytes()
	for _, c := range bad {
		wg.Go(func() { // reader: count what the flooders get back
			buf := make([]byte, 512)
			for {
				c.SetReadDeadline(time.Now().Add(duration + time.Second))
				n, err := c.Read(buf)
				if err != nil {
					return
				}
				var p ntpwire.Packet
				if p.Decode(buf[:n]) == nil && p.IsKiss() {
					kisses.Add(1)
				} else {
					replies.Add(1)
				}
			}
		})
		wg.Go(func() { // writer: about 100 requests per second per socket
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if _, err := c.WriteToUDP(req, srvAddr); err == nil {
					sent.Add(1)
				}
			}
		})
	}
	type goodResult struct {
		answered, kissed, retries int
	}
	results := make([]goodResult, len(good))
	var gwg sync.WaitGroup
	for i, c := range good {
		gwg.Go(func() {
			buf := make([]byte, 512)
			for range goodPolls {
				start := time.Now()
				// Like a real client, retry a lost poll; every try
				// counts against the limit.
				for try := 0; try < 3; try++ {
					q := clientRequest(time.Now())
					if _, err := c.WriteToUDP(q.AppendTo(nil), srvAddr); err != nil {
						t.Error(err)
						return
					}
					// Under -race on a loaded machine the flood can delay
					// replies: skip late answers to earlier tries.
					c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
					var p ntpwire.Packet
					matched := false
					for !matched {
						n, err := c.Read(buf)
						if err != nil {
							break
						}
						matched = p.Decode(buf[:n]) == nil && p.OrigTime == q.XmitTime
					}
					if !matched {
						results[i].retries++
						continue
					}
					if p.IsKiss() {
						results[i].kissed++
					} else {
						results[i].answered++
					}
					break
				}
				time.Sleep(goodEvery - time.Since(start))
			}
		})
	}
	gwg.Wait()
	<-ctx.Done()
	for _, c := range bad {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	}
	wg.Wait()

	st := rl.Stats()
	srvSt := s.Stats()
	t.Logf("flooders sent %d requests, got %d replies and %d KoDs; good clients %+v; limiter %+v; server received %d",
		sent.Load(), replies.Load(), kisses.Load(), results, st, srvSt.Received)
	for i, r := range results {
		if r.answered != goodPolls || r.kissed != 0 {
			t.Errorf("good client %d: %d of %d polls answered, %d KoDs, %d retries", i, r.answered, goodPolls, r.kissed, r.retries)
		}
	}
	// Each flooding address may be answered about once per interval, and
	// the KoD budget refills in real time: bounds use the time it took.
	elapsed := time.Since(start) + time.Second
	maxReplies := uint64(badAddrs * (burst + int(elapsed/interval) + 1))
	if replies.Load() > maxReplies {
		t.Errorf("flooders got %d replies, want at most %d", replies.Load(), maxReplies)
	}
	if st.Limited < sent.Load()/2 {
		t.Errorf("only %d of the flooders' %d requests were limited", st.Limited, sent.Load())
	}
	if maxKiss := uint64(kissPerSec * (1 + elapsed.Seconds())); st.Kissed > maxKiss || kisses.Load() > maxKiss {
		t.Errorf("%d KoDs sent (%d received), want at most %d: the KoD budget leaks", st.Kissed, kisses.Load(), maxKiss)
	}
	if st.KissLimited == 0 {
		t.Error("the KoD budget was never reached: the flood is too weak to test it")
	}
}

// Benchmarks: the bare responder against the whole chain (an ACL of
// about a thousand rules, then the rate limiter with its default 16 MiB
// table), through the handler alone and through the server's request path
// (decode, handler, encode; no system calls). Each client stays within its
// limit, the common case. With 1024 clients the table's part stays in the
// CPU caches; with 65536 clients spread over the table each lookup is a
// cache miss, as on a busy public server.

var benchClientCounts = []int{1 << 10, 1 << 16}

func benchAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)}), 123)
}

func benchHandlers(b *testing.B, run func(b *testing.B, clients int, h func() Handler)) {
	for _, clients := range benchClientCounts {
		b.Run(fmt.Sprintf("clients=%d/responder", clients), func(b *testing.B) {
			run(b, clients, Responder)
		})
		b.Run(fmt.Sprintf("clients=%d/chain", clients), func(b *testing.B) {
			// A burst large enough that no client is limited however
			// fast the loop runs.
			tb := mustTable(b, ratelimit.Config{Burst: 1 << 24})
			run(b, clients, func() Handler {
				h, _, _ := chainFor(b, tb)
				return h
			})
			if st := tb.Stats(); st.Limited != 0 {
				b.Fatalf("%d requests limited: the benchmark should measure the common path", st.Limited)
			}
		})
	}
}

func BenchmarkMiddlewareHandler(b *testing.B) {
	benchHandlers(b, func(b *testing.B, clients int, mk func() Handler) {
		h := mk()
		rs := make([]*Request, clients)
		for i := range rs {
			rs[i] = mwReq(benchAddr(i).String(), t0)
		}
		rec := &mwRecorder{buf: make([]byte, 0, 64)}
		now := time.Now()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			r := rs[i&(clients-1)]
			r.Received = now
			rec.reset(r)
			h.ServeNTP(rec, r)
		}
	})
}

// floodIO is a packetIO serving a batch of requests from many clients.
type floodIO struct {
	reqs [][]byte
	srcs []netip.AddrPort
	next int
}

func (m *floodIO) localPort() uint16 { return 123 }

func (m *floodIO) read(in []inMsg) (int, error) {
	for i, r := range m.reqs {
		in[i].n = copy(in[i].buf, r)
		in[i].src = m.srcs[m.next&(len(m.srcs)-1)]
		in[i].dst, in[i].trunc, in[i].rxNanos = netip.AddrFrom4([4]byte{127, 0, 0, 1}), false, 0
		m.next++
	}
	return len(m.reqs), nil
}

func (m *floodIO) write([]outMsg) int { return 0 }

func BenchmarkMiddlewareServerPath(b *testing.B) {
	benchHandlers(b, func(b *testing.B, clients int, mk func() Handler) {
		src := NewLocalSource(nil, 0)
		s := &Server{Source: src, Handler: mk()}
		s.init()
		io := &floodIO{}
		for i := range clients {
			io.srcs = append(io.srcs, benchAddr(i))
		}
		for range DefaultBatch {
			io.reqs = append(io.reqs, reqBytes())
		}
		w := s.newWorker(io, DefaultBatch)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i += DefaultBatch {
			n, _ := w.io.read(w.in)
			w.handleBatch(n)
		}
	})
}

// manyClients is middleware for benchmarks that makes each request appear
// to come from the next of benchClients addresses, so that the chain sees
// a busy server's spread of clients while replies still go to the real
// (loopback) sender.
func manyClients(next Handler) Handler {
	var n atomic.Uint32
	return HandlerFunc(func(w ResponseWriter, r *Request) {
		r.Src = benchAddr(int(n.Add(1) % benchClients))
		next.ServeNTP(w, r)
	})
}

const benchClients = 1 << 16

// BenchmarkMiddlewareLoopback measures requests per second over real
// loopback sockets: 16 client sockets on 8 addresses keep 8 requests each
// in flight against a server with the bare responder or the chain, the
// requests spread over 65536 apparent clients (manyClients) in both.
func BenchmarkMiddlewareLoopback(b *testing.B) {
	for _, name := range []string{"responder", "chain"} {
		b.Run(name, func(b *testing.B) {
			src := NewLocalSource(nil, 0)
			var h Handler = Responder()
			if name == "chain" {
				h, _, _ = chainFor(b, mustTable(b, ratelimit.Config{Burst: 1 << 24}))
			}
			h = manyClients(h)
			s := &Server{Source: src, Handler: h, ReadBuffer: 4 << 20}
			addr := startServer(b, s, "udp4")
			srvAddr := net.UDPAddrFromAddrPort(addr)
			const socks, window = 16, 8
			var conns []*net.UDPConn
			for i := range socks {
				c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 3, byte(1+i%8))})
				if err != nil {
					b.Skipf("bind: %v", err)
				}
				defer c.Close()
				conns = append(conns, c)
			}
			req := reqBytes()
			var left atomic.Int64
			left.Store(int64(b.N))
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, c := range conns {
				wg.Go(func() {
					buf := make([]byte, 512)
					inflight := 0
					for {
						for inflight < window && left.Add(-1) >= 0 {
							c.WriteToUDP(req, srvAddr)
							inflight++
						}
						if inflight == 0 {
							return
						}
						c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
						if _, _, err := c.ReadFromUDP(buf); err != nil {
							inflight = 0 // lost: move on
							continue
						}
						inflight--
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// BenchmarkMiddlewareParallel runs the responder and the chain on
// GOMAXPROCS goroutines at once, each standing for one of a Server's
// workers: its own lane, its own padded request and writer, and 4096
// clients of its own, as SO_REUSEPORT spreads clients over sockets. It
// does not use b.RunParallel: the testing.PB values of its goroutines are
// 32-byte objects written on every iteration, and the allocator may put
// two of them, or one and a read-mostly part of the chain, on one cache
// line, which measures that line and not the chain.
func BenchmarkMiddlewareParallel(b *testing.B) {
	for _, name := range []string{"responder", "chain"} {
		b.Run(name, func(b *testing.B) {
			var h Handler = Responder()
			if name == "chain" {
				h, _, _ = chainFor(b, mustTable(b, ratelimit.Config{Burst: 1 << 24}))
			}
			procs := runtime.GOMAXPROCS(0)
			type workerState struct {
				_   [128]byte
				rec mwRecorder
				r   Request
				buf [64]byte
				_   [128]byte
			}
			states := make([]*workerState, procs)
			for lane := range states {
				st := &workerState{r: *mwReq("192.0.2.1:123", time.Now())}
				st.rec.buf = st.buf[:0]
				st.r.lane = uint32(lane)
				states[lane] = st
			}
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for lane, st := range states {
				n := b.N / procs
				if lane < b.N%procs {
					n++
				}
				wg.Go(func() {
					rec, r := &st.rec, &st.r
					base := uint32(lane+1) << 12
					for i := range uint32(n) {
						a := base + i&0xfff
						r.Src = netip.AddrPortFrom(netip.AddrFrom4([4]byte{100, byte(64 + a>>16), byte(a >> 8), byte(a)}), uint16(1024+i*7919))
						r.Received = time.Now()
						rec.reset(r)
						h.ServeNTP(rec, r)
					}
				})
			}
			wg.Wait()
		})
	}
}

// TestWorkerLanes checks that each worker a Server starts has a lane of
// its own, which picks its stripe of the middlewares' counters.
func TestWorkerLanes(t *testing.T) {
	s := &Server{}
	for want := range uint32(3) {
		if got := s.newWorker(nil, 1).req.lane; got != want {
			t.Errorf("worker %d has lane %d", want, got)
		}
	}
}

// TestCountersOverLanes checks that the middlewares count requests from
// every lane, including lanes beyond the number of stripes.
func TestCountersOverLanes(t *testing.T) {
	tb := mustTable(t, ratelimit.Config{Interval: time.Second, Burst: 1})
	h, ac, rl := chainFor(t, tb)
	rec := &mwRecorder{}
	const n = 3 * counterStripes
	for i := range uint32(n) {
		r := mwReq(fmt.Sprintf("192.0.2.%d:123", i), t0)
		r.lane = i * 7
		rec.reset(r)
		h.ServeNTP(rec, r)
		r.Received = t0.Add(time.Millisecond)
		rec.reset(r)
		h.ServeNTP(rec, r) // over the limit, the first refusal: a KoD
	}
	if got := ac.Stats().Allowed; got != 2*n {
		t.Errorf("AccessControl allowed %d, want %d", got, 2*n)
	}
	want := RateLimitStats{Allowed: n, Limited: n, Kissed: n}
	if got := rl.Stats(); got != want {
		t.Errorf("RateLimiter stats %+v, want %+v", got, want)
	}
	if st := tb.Stats(); st.Allowed != n || st.Limited != n || st.Entries != n {
		t.Errorf("Table stats %+v, want %d allowed, %d limited, %d entries", st, n, n, n)
	}
}

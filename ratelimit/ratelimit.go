package ratelimit

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"
)

// Defaults used by New for zero fields of Config.
const (
	// DefaultInterval lets a client send one request per second on average.
	// chrony's default (8 s) suits its own clients; 1 s is gentler to
	// clients that poll in bursts (iburst) and to many hosts behind one NAT.
	DefaultInterval = time.Second
	// DefaultBurst is the number of requests a client may send at once,
	// as chrony's default burst.
	DefaultBurst = 8
	// DefaultIPv4Prefix groups IPv4 clients by full address.
	DefaultIPv4Prefix = 32
	// DefaultIPv6Prefix groups IPv6 clients by /64, the usual size of one
	// site's subnet, so one host cannot dodge the limit by changing its
	// interface identifier.
	DefaultIPv6Prefix = 64
	// DefaultMemoryBytes is the default table size, 16 MiB.
	DefaultMemoryBytes = 16 << 20
)

// EntryBytes is the memory one client entry takes in a Table: the
// bucket state (8 bytes), a 32-bit fingerprint of the masked address
// (4 bytes) and the count of consecutive refused requests (4 bytes).
// Entries are kept in hash buckets of 4, one 64-byte cache line, so a
// lookup touches one line of the table.
const EntryBytes = 16

// ways is the number of entries per hash bucket.
const ways = 4

// bucketBytes is the size of one hash bucket.
const bucketBytes = ways * EntryBytes

// MinMemoryBytes is the smallest Config.MemoryBytes accepted: 64 hash
// buckets of 4 entries, 256 clients.
const MinMemoryBytes = 4096

// Lanes is the number of copies of a Table's counters. CheckLane counts
// in copy lane%Lanes, so that up to Lanes goroutines calling it at once
// on different cores (a server's workers) each write cache lines of
// their own.
const Lanes = 32

// Config configures a Table. The zero value selects all defaults.
type Config struct {
	// Interval is the minimum average interval between requests from one
	// client: a client earns one token per Interval. Zero means
	// DefaultInterval (1 s).
	Interval time.Duration
	// Burst is the most tokens a client can hold, that is the number of
	// requests it may send back to back. Zero means DefaultBurst (8).
	Burst int
	// IPv4Prefix is the prefix length by which IPv4 clients are grouped,
	// 1 to 32. Zero means DefaultIPv4Prefix (32).
	IPv4Prefix int
	// IPv6Prefix is the prefix length by which IPv6 clients are grouped,
	// 1 to 128. Zero means DefaultIPv6Prefix (64).
	IPv6Prefix int
	// MemoryBytes is the size of the table; it holds
	// MemoryBytes/EntryBytes clients, rounded down to a power of two
	// buckets. Zero means DefaultMemoryBytes (16 MiB); otherwise it must be
	// at least MinMemoryBytes.
	MemoryBytes int
}

// Validate reports the first invalid field of c, if any. Zero fields are
// valid: they mean the default.
func (c Config) Validate() error {
	switch {
	case c.Interval < 0:
		return fmt.Errorf("ratelimit: Config.Interval: negative interval %v", c.Interval)
	case c.Burst < 0:
		return fmt.Errorf("ratelimit: Config.Burst: negative burst %d", c.Burst)
	case c.IPv4Prefix < 0 || c.IPv4Prefix > 32:
		return fmt.Errorf("ratelimit: Config.IPv4Prefix: %d out of range 1-32", c.IPv4Prefix)
	case c.IPv6Prefix < 0 || c.IPv6Prefix > 128:
		return fmt.Errorf("ratelimit: Config.IPv6Prefix: %d out of range 1-128", c.IPv6Prefix)
	case c.MemoryBytes < 0:
		return fmt.Errorf("ratelimit: Config.MemoryBytes: negative size %d", c.MemoryBytes)
	case c.MemoryBytes != 0 && c.MemoryBytes < MinMemoryBytes:
		return fmt.Errorf("ratelimit: Config.MemoryBytes: %d is too small (minimum %d)", c.MemoryBytes, MinMemoryBytes)
	}
	return nil
}

// withDefaults returns c with zero fields replaced by the defaults.
func (c Config) withDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.IPv4Prefix == 0 {
		c.IPv4Prefix = DefaultIPv4Prefix
	}
	if c.IPv6Prefix == 0 {
		c.IPv6Prefix = DefaultIPv6Prefix
	}
	if c.MemoryBytes == 0 {
		c.MemoryBytes = DefaultMemoryBytes
	}
	return c
}

// entry is one client. Its bucket state is GCRA's theoretical arrival time
// (tat): the bucket is full when tat <= now, and each token spent moves tat
// one Interval later. A single int64 thus stands for "tokens + last time".
//
// The client is known by a 32-bit fingerprint of its hashed address, drawn
// from other hash bits than the bucket index: two clients are confused only
// if both land in the same bucket and their fingerprints match, about once
// in a billion lookups even with the table full. The hash is keyed with a
// random per-table seed, so an attacker cannot arrange it; the harm would
// be two clients sharing one rate limit for a while.
//
// The top bit of the first entry's dropped word is the lock of its bucket
// (see bucket.lock), so dropped counts have 31 bits: after 2^31-1
// refusals in a row the count goes on from 2^30, which keeps it from
// reading 0 and keeps multiples of 2^n (n <= 30) and powers of two
// coming. The dropped words are only accessed atomically; tat and fp
// only under the bucket's lock.
type entry struct {
	tat     int64  // Unix nanoseconds
	fp      uint32 // fingerprint; 0: free
	dropped uint32 // consecutive refused requests; lockBit in way 0
}

// lockBit, in the dropped word of a bucket's first entry, is set while a
// goroutine holds the bucket.
const lockBit = 1 << 31

// lockSpins is how many times bucket.lock retries before it yields the
// processor between retries: the lock is held for a few nanoseconds, and
// only two requests from the same client at once contend for it.
const lockSpins = 64

// bucket is one hash bucket, one cache line, with its lock inside: a
// lookup locks and touches that line alone, which stays in the cache of
// the core serving the bucket's clients. (A separate array of locks
// would be written by every core in turn, its lines moving between
// cores' caches on most requests whatever clients they serve.)
type bucket [ways]entry

// lock acquires b's lock.
func (b *bucket) lock() {
	w := &b[0].dropped
	if v := atomic.LoadUint32(w) &^ lockBit; !atomic.CompareAndSwapUint32(w, v, v|lockBit) {
		b.lockSlow()
	}
}

// lockSlow is lock when the bucket is held: it retries, spinning at
// first, then yielding the processor between tries.
func (b *bucket) lockSlow() {
	w := &b[0].dropped
	for spins := 0; ; spins++ {
		if v := atomic.LoadUint32(w); v&lockBit == 0 && atomic.CompareAndSwapUint32(w, v, v|lockBit) {
			return
		}
		if spins >= lockSpins {
			runtime.Gosched()
		}
	}
}

// unlock releases b's lock.
func (b *bucket) unlock() {
	w := &b[0].dropped
	atomic.StoreUint32(w, atomic.LoadUint32(w)&^lockBit)
}

// droppedCount returns e's count of consecutive refused requests.
func (e *entry) droppedCount() uint32 { return atomic.LoadUint32(&e.dropped) &^ lockBit }

// setDropped sets e's count of consecutive refused requests to n (below
// lockBit), keeping the lock bit. The caller holds the bucket's lock.
func (e *entry) setDropped(n uint32) {
	atomic.StoreUint32(&e.dropped, atomic.LoadUint32(&e.dropped)&lockBit|n)
}

// laneCounters is one copy of a Table's counters, two cache lines long
// so that neighbouring copies share none. Lookups are allowed+limited.
type laneCounters struct {
	allowed   atomic.Uint64
	limited   atomic.Uint64
	evictions atomic.Uint64
	used      atomic.Uint64
	_         [128 - 4*8]byte
}

// Table is a fixed-size per-client rate limiter. Build one with New. It is
// safe for concurrent use.
type Table struct {
	cfg       Config
	key       [4]uint64 // hash seed
	interval  int64     // nanoseconds per token
	tolerance int64     // (Burst-1) * interval
	mask4     uint32
	mask6     [2]uint64
	buckets   []bucket
	bmask     uint64
	counters  []laneCounters // Lanes copies
}

// New validates cfg and allocates a Table of cfg.MemoryBytes (rounded down
// to a power of two buckets).
func New(cfg Config) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	nb := uint64(1) << (bits.Len64(uint64(cfg.MemoryBytes/bucketBytes)) - 1)
	t := &Table{
		cfg:       cfg,
		key:       [4]uint64{rand.Uint64(), rand.Uint64(), rand.Uint64(), rand.Uint64()},
		interval:  int64(cfg.Interval),
		tolerance: int64(cfg.Burst-1) * int64(cfg.Interval),
		mask4:     ^uint32(0) << (32 - cfg.IPv4Prefix),
		buckets:   make([]bucket, nb),
		bmask:     nb - 1,
		counters:  make([]laneCounters, Lanes),
	}
	if p := cfg.IPv6Prefix; p <= 64 {
		t.mask6 = [2]uint64{^uint64(0) << (64 - p), 0}
	} else {
		t.mask6 = [2]uint64{^uint64(0), ^uint64(0) << (128 - p)}
	}
	return t, nil
}

// Config returns the configuration of t with defaults filled in.
func (t *Table) Config() Config { return t.cfg }

// Entries returns the number of clients t can hold, its fixed capacity.
func (t *Table) Entries() int { return len(t.buckets) * ways }

// Result is the outcome of Table.Check.
type Result struct {
	// Allowed reports whether the request is within the client's limit.
	Allowed bool
	// Dropped is the number of consecutive requests from this client,
	// including this one, that were over the limit; 0 when Allowed.
	Dropped uint32
}

// Leak reports whether to answer a request when 1 in 2^n over-limit
// requests of a client is let through anyway, like chrony's leak option:
// it is true if r.Allowed or r.Dropped is a multiple of 2^n. n == 0 answers
// every request; n is capped at 31.
func (r Result) Leak(n uint) bool {
	n = min(n, 31)
	return r.Allowed || r.Dropped&(1<<n-1) == 0
}

// Allow reports whether a request from ip at now is within its client's
// limit, spending a token if it is. It does not allocate. The zero
// netip.Addr is never allowed.
func (t *Table) Allow(now time.Time, ip netip.Addr) bool {
	return t.Check(now, ip).Allowed
}

// Check is Allow, also reporting the client's consecutive refused
// requests. It counts in a copy of the counters picked by the client's
// hash; CheckLane lets the caller pick one of its own.
func (t *Table) Check(now time.Time, ip netip.Addr) Result {
	return t.check(now, ip, Lanes)
}

// CheckLane is Check counting in copy lane%Lanes of t's counters.
// Goroutines that call it at the same time on different cores, such as a
// server's workers, should pass different lanes (their index): counting
// then writes no cache line that another core writes too, and a lookup
// shares with other cores only the hash bucket of its client.
func (t *Table) CheckLane(now time.Time, ip netip.Addr, lane uint32) Result {
	return t.check(now, ip, lane%Lanes)
}

// check is Check counting in lane, or in a lane picked by the hash when
// lane is Lanes.
func (t *Table) check(now time.Time, ip netip.Addr, lane uint32) Result {
	var hi, lo, family uint64
	ip = ip.Unmap()
	switch {
	case ip.Is4():
		b := ip.As4()
		lo = uint64(binary.BigEndian.Uint32(b[:]) & t.mask4)
	case ip.Is6():
		b := ip.As16()
		hi = binary.BigEndian.Uint64(b[:8]) & t.mask6[0]
		lo = binary.BigEndian.Uint64(b[8:]) & t.mask6[1]
		family = 1
	default:
		return Result{}
	}
	h := t.hash(hi, lo, family)
	fp := uint32(h >> 32)
	if fp == 0 {
		fp = 1
	}
	bi := h & t.bmask
	b := &t.buckets[bi]
	if lane == Lanes {
		lane = uint32(bi) % Lanes
	}
	c := &t.counters[lane]
	nowNS := now.UnixNano()

	b.lock()
	var e *entry
	// The victim, if ip is new, is a free way or else the way with the
	// smallest tat: the client with the most tokens left.
	victim, vtat := 0, int64(math.MaxInt64)
	for i := range b {
		x := &b[i]
		if x.fp == fp {
			e = x
			break
		}
		xt := x.tat
		if x.fp == 0 {
			xt = math.MinInt64
		}
		if xt < vtat {
			victim, vtat = i, xt
		}
	}
	if e == nil {
		e = &b[victim]
		switch {
		case e.fp == 0:
			c.used.Add(1)
		case e.tat > nowNS:
			c.evictions.Add(1) // the old client still had tokens owing
		}
		e.tat, e.fp = nowNS, fp
		if e.droppedCount() != 0 {
			e.setDropped(0)
		}
	}
	// Under a monotonic clock tat never exceeds now+tolerance+interval; if
	// the clock stepped back, forget the excess so clients are not shut out
	// for the length of the step.
	tat := min(max(e.tat, nowNS), nowNS+t.tolerance+t.interval)
	var r Result
	if tat-nowNS > t.tolerance {
		e.tat = tat
		n := e.droppedCount() + 1
		if n == lockBit {
			n = lockBit >> 1
		}
		e.setDropped(n)
		r.Dropped = n
	} else {
		e.tat = tat + t.interval
		if e.droppedCount() != 0 {
			e.setDropped(0)
		}
		r.Allowed = true
	}
	b.unlock()
	if r.Allowed {
		c.allowed.Add(1)
	} else {
		c.limited.Add(1)
	}
	return r
}

// hash mixes a masked address with the table's secret key, in the manner
// of wyhash: two rounds of a 64x64->128-bit multiply folded to 64 bits.
func (t *Table) hash(hi, lo, family uint64) uint64 {
	x1, x0 := bits.Mul64(hi^t.key[0], lo^t.key[1])
	y1, y0 := bits.Mul64(x1^x0^t.key[2], family^t.key[3])
	return y1 ^ y0
}

// Stats are cumulative counters of a Table.
type Stats struct {
	Lookups   uint64 // calls to Allow and Check with a valid address
	Allowed   uint64 // requests within the limit
	Limited   uint64 // requests over the limit
	Evictions uint64 // clients replaced while their bucket was not yet full
	Entries   int    // entries holding a client (at most Table.Entries)
}

// Stats returns t's counters. They are read one at a time, so the result
// is not an atomic snapshot while other goroutines call Allow.
func (t *Table) Stats() Stats {
	var st Stats
	for i := range t.counters {
		c := &t.counters[i]
		st.Allowed += c.allowed.Load()
		st.Limited += c.limited.Load()
		st.Evictions += c.evictions.Load()
		st.Entries += int(c.used.Load())
	}
	st.Lookups = st.Allowed + st.Limited
	return st
}

// Package ratelimit limits how often an NTP server answers each client, in
// the manner of chrony's ratelimit directive, and in total.
//
// A Table keeps a token bucket per client: a client earns one token per
// Config.Interval up to Config.Burst tokens, each request spends one, and a
// client seen for the first time starts with a full bucket. Clients are
// grouped by address prefix (Config.IPv4Prefix, Config.IPv6Prefix), so a
// whole IPv6 /64 shares one bucket by default.
//
// The table is allocated once, by New, from Config.MemoryBytes and never
// grows: it is a set-associative hash table of EntryBytes-byte (16-byte)
// entries in buckets of 4, each bucket one 64-byte cache line. When the hash bucket of a new client is full, the entry with
// the most tokens left (the one idle longest relative to its use) is
// replaced, so a
// flood of spoofed source addresses costs no memory and cannot wipe out the
// state of a client that is being limited. Addresses are hashed with a
// per-table random seed, so an attacker cannot aim at one bucket. The
// default 16 MiB holds 1048576 clients; the counters add 4 KiB.
// Ten million spoofed addresses cost no more than one: the table's size.
//
// Table.Allow is safe for concurrent use and allocates nothing. Each
// bucket has its own lock, a bit in its own cache line, so a lookup writes
// only its client's line, and the counters have a copy per caller's lane
// (Table.CheckLane): on many cores, lookups for different clients share
// no cache line. Table.Check also
// reports how many requests in a row a client has had refused, so a server
// can let a few through (chrony's leak option, see Result.Leak) and send
// kiss-o'-death replies at a rate it chooses.
//
// Global caps the total rate of replies with a golang.org/x/time/rate
// Limiter. Everything that depends on time takes the current time as an
// argument.
package ratelimit

// Package policy decides which clients an NTP server answers, by source
// address (ACL) or by reverse-DNS name (NameACL).
//
// # Address rules
//
// An ACL is built from rules such as
//
//	allow 192.0.2.0/24
//	deny 192.0.2.7
//	deny 2001:db8::/32
//	allow all
//
// with Parse or New, and a default Action for addresses no rule matches.
// Precedence follows chrony's allow/deny directives:
//
//   - the most specific (longest) matching prefix wins, whatever the order
//     of the rules, so "allow 192.0.2.0/24" with "deny 192.0.2.7" denies
//     192.0.2.7 and allows the rest of the /24;
//   - when the same prefix is listed more than once, the later rule wins;
//   - "all" is shorthand for both 0.0.0.0/0 and ::/0, so it is the least
//     specific rule of each family;
//   - an address no rule matches gets the default Action.
//
// A bare address is a /32 (IPv4) or /128 (IPv6) prefix. IPv4-mapped IPv6
// addresses (::ffff:192.0.2.1) are treated as the IPv4 addresses they carry,
// both in rules and in lookups, and IPv6 zones are ignored.
//
// An ACL is immutable once built and safe for concurrent use without locks.
// ACL.Decide allocates nothing; it does one hash lookup per distinct prefix
// length present in the rules, longest first, so it stays fast with
// thousands of rules. A nil *ACL allows everything.
//
// # Name rules
//
// A NameACL matches the PTR names of the client address against domain
// suffixes ("allow .example.net"). Name lookups are slow and may fail, so
// NameACL.Decide never waits for one: it answers from a bounded cache, and on
// a miss it queues the address for the background workers started by
// NameACL.Run and returns the configured Default. Reverse-DNS names are
// chosen by whoever controls the reverse zone of the address, so name rules
// are a convenience, not an authentication mechanism; prefer address rules
// for anything that matters.
//
// Decisions that depend on time take the current time as an argument, so
// callers and tests control it.
package policy

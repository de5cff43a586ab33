package policy_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/ntpkit/ntpkit/policy"
)

func Example() {
	acl, err := policy.Parse([]string{
		"allow 192.0.2.0/24",
		"deny 192.0.2.7",      // more specific than the /24, so it wins
		"allow 2001:db8::/32", // IPv6 works the same way
	}, policy.Deny)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range []string{"192.0.2.1", "192.0.2.7", "::ffff:192.0.2.1", "198.51.100.1", "2001:db8::123"} {
		fmt.Println(s, acl.Decide(netip.MustParseAddr(s)))
	}
	// Output:
	// 192.0.2.1 allow
	// 192.0.2.7 deny
	// ::ffff:192.0.2.1 allow
	// 198.51.100.1 deny
	// 2001:db8::123 allow
}

// staticResolver stands in for net.DefaultResolver: it maps addresses to
// names and, for the forward confirmation, names back to addresses.
type staticResolver map[string][]string

func (r staticResolver) LookupAddr(_ context.Context, addr string) ([]string, error) {
	return r[addr], nil
}

func (r staticResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	for a, names := range r {
		for _, n := range names {
			if strings.TrimSuffix(n, ".") == host {
				addrs = append(addrs, netip.MustParseAddr(a))
			}
		}
	}
	return addrs, nil
}

func ExampleNameACL() {
	names, err := policy.NewNameACL(policy.NameACLConfig{
		Rules:    []policy.NameRule{{Action: policy.Deny, Suffix: ".dialup.example.net"}},
		Default:  policy.Allow, // answer clients whose name is not known yet
		Resolver: staticResolver{"192.0.2.1": {"host1.dialup.example.net."}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go names.Run(ctx) // background lookups for Decide's cache misses

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ip := netip.MustParseAddr("192.0.2.1")
	fmt.Println(names.Decide(now, ip))                  // not known yet: Default, lookup queued
	fmt.Println(names.Resolve(ctx, now, ip))            // wait for the answer (not on the packet path)
	fmt.Println(names.Decide(now.Add(time.Minute), ip)) // cached
	// Output:
	// allow
	// deny
	// deny
}

package ratelimit_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/ntpkit/ntpkit/ratelimit"
)

func Example() {
	// Each client (IPv4 address or IPv6 /64) may send 3 requests at once
	// and then one every 2 seconds; the server as a whole answers at most
	// 10000 requests per second.
	clients, err := ratelimit.New(ratelimit.Config{Interval: 2 * time.Second, Burst: 3})
	if err != nil {
		fmt.Println(err)
		return
	}
	total := ratelimit.NewGlobal(10000, 100)

	answer := func(now time.Time, src netip.Addr) string {
		r := clients.Check(now, src)
		switch {
		case !r.Leak(2): // over the limit, and not one of the 1 in 4 let through (chrony's "leak 2")
			return "drop"
		case !total.Allow(now):
			return "drop (server busy)"
		case !r.Allowed:
			return "reply (leaked)"
		}
		return "reply"
	}

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // from the server's clock
	src := netip.MustParseAddr("2001:db8::123")
	for i := range 8 {
		fmt.Println(i, answer(now, src))
	}
	fmt.Println("2s later:", answer(now.Add(2*time.Second), src))
	fmt.Println("same /64:", answer(now.Add(2*time.Second), netip.MustParseAddr("2001:db8::456")))
	fmt.Printf("table holds %d clients in %d bytes\n", clients.Entries(), clients.Entries()*ratelimit.EntryBytes)
	// Output:
	// 0 reply
	// 1 reply
	// 2 reply
	// 3 drop
	// 4 drop
	// 5 drop
	// 6 reply (leaked)
	// 7 drop
	// 2s later: reply
	// same /64: drop
	// table holds 1048576 clients in 16777216 bytes
}

package server_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"time"

	"github.com/ntpkit/ntpkit/policy"
	"github.com/ntpkit/ntpkit/ratelimit"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/servertest"
)

// A server in ten lines: the system clock as a stratum-10 local reference,
// answered by the default responder, until the context ends (a signal, in
// a daemon: signal.NotifyContext). Serve owns the socket and closes it
// when it returns. A real server listens on ":123", or calls
// ListenAndServe(ctx, ":123").
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &server.Server{} // zero values: LocalSource on the system clock, Responder
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, pc) }()

	rep, err := servertest.Query(pc.LocalAddr().String(), 5*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stratum", rep.Stratum, "refid", rep.RefID)
	cancel()
	fmt.Println(<-done)
	// Output:
	// stratum 10 refid 127.127.1.1
	// context canceled
}

// A public server's defences: access control, then a per-client rate
// limit like chrony's "ratelimit interval 1 burst 8 leak 2", with
// kiss-o'-death replies bounded by one budget shared by both.
func Example_accessControlAndRateLimit() {
	src := server.NewLocalSource(nil, 0)
	acl, err := policy.Parse([]string{"deny 192.0.2.0/24", "allow 192.0.2.123"}, policy.Allow)
	if err != nil {
		log.Fatal(err)
	}
	table, err := ratelimit.New(ratelimit.Config{Interval: time.Second, Burst: 8}) // 16 MiB, 1M clients
	if err != nil {
		log.Fatal(err)
	}
	// One reflection budget: at most 100 KoDs and leaked replies a second
	// in all, whatever the sources claim to be.
	kod := ratelimit.NewGlobal(100, 100)
	access := server.NewAccessControl(server.AccessOptions{Addrs: acl, Kiss: true, KissLimit: kod})
	limiter := server.NewRateLimiter(server.RateLimitOptions{Table: table, Leak: 2, Kiss: true, KissLimit: kod, LeakLimit: kod})
	srv := &server.Server{
		Source:  src,
		Handler: server.Chain(server.Responder(), access.Wrap, limiter.Wrap),
	}
	_ = srv // srv.ListenAndServe(ctx, ":123")

	// What clients get, without sockets:
	now := time.Now()
	ask := func(from string) string {
		req := servertest.NewRequest(servertest.ClientPacket(now), netip.MustParseAddrPort(from), now, nil)
		rec := &servertest.Recorder{}
		rec.Reset(req)
		srv.Handler.ServeNTP(rec, req)
		switch {
		case rec.IsKiss:
			return "KoD " + rec.Kissed.String()
		case rec.Replied:
			return "time"
		}
		return "nothing"
	}
	fmt.Println("192.0.2.1:", ask("192.0.2.1:123"))
	fmt.Println("192.0.2.123:", ask("192.0.2.123:123"))
	for i := 1; i <= 10; i++ {
		fmt.Printf("198.51.100.7 request %d: %s\n", i, ask("198.51.100.7:123"))
	}
	fmt.Printf("%+v\n", access.Stats())
	fmt.Printf("%+v\n", limiter.Stats())
	// Output:
	// 192.0.2.1: KoD DENY
	// 192.0.2.123: time
	// 198.51.100.7 request 1: time
	// 198.51.100.7 request 2: time
	// 198.51.100.7 request 3: time
	// 198.51.100.7 request 4: time
	// 198.51.100.7 request 5: time
	// 198.51.100.7 request 6: time
	// 198.51.100.7 request 7: time
	// 198.51.100.7 request 8: time
	// 198.51.100.7 request 9: KoD RATE
	// 198.51.100.7 request 10: KoD RATE
	// {Allowed:11 DeniedAddr:1 DeniedName:0 Kissed:1 Dropped:0 KissLimited:0}
	// {Allowed:9 Leaked:0 Limited:2 LimitedGlobal:0 Kissed:2 Dropped:0 KissLimited:0 LeakLimited:0}
}

// Package ntpkit is an embeddable NTP server for Go programs: a library to
// serve time over NTP (RFC 5905, RFC 4330) inside your own process, and
// example binaries that assemble it into a full daemon.
//
// The packages, leaves first:
//
//   - ntpwire: the wire codec. Packet, the Time and Short fixed-point
//     formats with era handling, kiss codes, reference IDs, and a walker
//     for extension fields and MACs. No allocations.
//   - clock: the Clock interface, the system clock, precision measurement;
//     clock/clocktest has a fake clock for tests, and clock/kernelsync
//     reads what the kernel knows about the system clock's sync.
//   - server: a Server that reads requests from UDP sockets (batched, with
//     kernel receive timestamps on Linux) and answers them through a
//     Handler. Responder is the RFC 5905 server; middleware
//     (func(Handler) Handler) wraps it with access control, rate limiting
//     and kiss-o'-death. server/servertest helps test handlers.
//   - policy and ratelimit: the allow/deny rules and the bounded
//     per-client rate-limit table the middleware is built on.
//   - server/nts, server/symkey, server/auth: authenticated time. An
//     NTS-KE server and NTS middleware (RFC 8915) with rotating cookie
//     keys, and symmetric-key MACs (RFC 5905, RFC 8573) from chrony-style
//     key files.
//   - upstream: a Discipliner that polls upstream NTP servers (plain, NTS
//     or keyed), filters and selects them, and serves a disciplined
//     software clock with the matching reference data and leap-second
//     handling, without touching the system clock.
//
// A server in a few lines, serving the system clock as a stratum-10 local
// clock until the context ends:
//
//	srv := &server.Server{}
//	log.Print(srv.ListenAndServe(context.Background(), "127.0.0.1:12300"))
//
// The same server fed by upstream servers, with access control and rate
// limiting in front of the responder. The Server's Source is the one clock
// served: it gives the reference data and every timestamp of every reply.
//
//	ctx := context.Background()
//	d, err := upstream.New(upstream.Addresses("time.example.net:123"), upstream.Options{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	go d.Run(ctx)
//	acl, err := policy.Parse([]string{"deny 192.0.2.0/24"}, policy.Allow)
//	if err != nil {
//		log.Fatal(err)
//	}
//	table, err := ratelimit.New(ratelimit.Config{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	ac := server.NewAccessControl(server.AccessOptions{Addrs: acl, Kiss: true})
//	rl := server.NewRateLimiter(server.RateLimitOptions{Table: table, Kiss: true})
//	srv := &server.Server{Source: d, Handler: server.Chain(server.Responder(), ac.Wrap, rl.Wrap)}
//	log.Fatal(srv.ListenAndServe(ctx, ":123"))
//
// Package server/daemon assembles all of this into a complete daemon
// (daemon.Options, New, Run, Reload, Health/Status/Stats snapshots);
// server/ops serves its health, status, counters and metrics over HTTP,
// server/metrics is its metric set, and server/daemon/daemonconfig reads
// its JSON configuration file. examples/standalone is the daemon's
// command, examples/ntpquery a query tool and examples/ntpload a load
// generator.
package ntpkit

// Package server serves time over NTP (RFC 5905, RFC 4330): a Server reads
// requests from UDP sockets and answers each through a Handler, the way
// net/http serves HTTP.
//
// # Serving
//
// The zero Server is ready: it serves the system clock as a stratum-10
// local clock (like chrony's "local stratum 10") with the plain RFC 5905
// responder.
//
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
//	defer stop()
//	srv := &server.Server{}
//	err := srv.ListenAndServe(ctx, "127.0.0.1:12300") // context.Canceled after ^C
//	log.Print(err)
//
// ListenAndServe opens the sockets (Server.Sockets SO_REUSEPORT sockets
// per address on Linux); Serve and ServeAll serve sockets the caller
// opened. Serve takes ownership of its net.PacketConn and closes it when
// it returns, and it always returns a non-nil error: ErrServerClosed after
// Shutdown, ctx.Err() when its context ends, else the read error that
// stopped it. Shutdown stops reading at once, lets replies being handled
// go out and waits until every Serve has returned. nts.KEServer.Serve
// follows the same rule for its TLS listener.
//
// # Source: one clock per Server
//
// Server.Source is the clock served and what is said about it: Now gives
// the receive (T2) and transmit (T3) timestamps, Reference the header
// fields that describe the clock (leap, stratum, precision, reference ID
// and time, root delay and dispersion). It is the only place that decides
// either. LocalSource serves a local clock at a fixed stratum;
// upstream.Discipliner serves time disciplined to upstream servers. Swap
// the Source and every reply follows, whatever handlers are in the chain:
//
//	ctx := context.Background()
//	d, err := upstream.New(upstream.Addresses("time.example.net"), upstream.Options{})
//	if err != nil {
//		log.Fatal(err)
//	}
//	go d.Run(ctx)
//	srv := &server.Server{Source: d}
//	log.Fatal(srv.ListenAndServe(ctx, ":123"))
//
// # Handlers and middleware
//
// A Handler answers one Request through a ResponseWriter: Reply,
// ReplySealed (for replies that authenticate their own transmit
// timestamp: NTS, symmetric-key MACs) or Kiss (a kiss-o'-death), or
// nothing, which drops the request. Responder is the default handler, the
// server side of RFC 5905: it builds the reply from the Request alone.
// Middleware (func(next Handler) Handler) wraps it; Chain composes them,
// the first outermost. AccessControl and RateLimiter guard a public
// server, server/nts and server/auth authenticate:
//
//	acl, err := policy.Parse([]string{"deny 192.0.2.0/24"}, policy.Allow)
//	if err != nil {
//		log.Fatal(err)
//	}
//	table, err := ratelimit.New(ratelimit.Config{Interval: time.Second, Burst: 8})
//	if err != nil {
//		log.Fatal(err)
//	}
//	access := server.NewAccessControl(server.AccessOptions{Addrs: acl, Kiss: true})
//	limiter := server.NewRateLimiter(server.RateLimitOptions{Table: table, Leak: 2, Kiss: true})
//	srv := &server.Server{Handler: server.Chain(server.Responder(), access.Wrap, limiter.Wrap)}
//	log.Fatal(srv.ListenAndServe(context.Background(), ":123"))
//
// # Requests and their lifetime
//
// A Request carries the decoded header (Packet), the whole datagram
// (Raw), the receive timestamp (Received), the Source's reference data
// (Reference, read once per batch of requests), the client's address
// (Src) and the local address the request was sent to (Dst), from which
// the reply leaves. The writer stamps the transmit time from the Source
// as late as it can, just before the send. Requests and writers live in
// memory each worker reuses: a handler must not keep r, r.Raw or w after
// ServeNTP returns. Handlers run concurrently on several workers.
//
// Before a request reaches the handler the server drops, and counts,
// anything but a well-formed client request: datagrams shorter than a
// header or larger than MaxPacket, versions 0 and above 4, modes other
// than client (mode 6 and 7 control queries included), malformed
// extension fields. A reply is never longer than its request, so the
// server cannot amplify a spoofed flood.
//
// # Interleaved mode
//
// The transmit timestamp of a basic reply is written before the send, so
// it misses however long the send takes. In interleaved mode
// (draft-ietf-ntp-interleaved-modes, as chrony serves it to clients with
// "xleave") each reply carries instead the time the client's previous
// reply really left: on Linux the kernel's transmit timestamp of that
// datagram, elsewhere the time the server read just before sending it.
// The ResponseWriter does it for every handler chain (Reply and
// ReplySealed alike, so NTS and MAC replies authenticate the interleaved
// timestamps): every mode-4 reply that is not a KoD has the low bit of
// its receive timestamp set and that of its transmit timestamp clear; a
// version 4 request whose origin timestamp has the low bit set and whose
// receive and transmit timestamps differ asks for interleaved mode. Its
// reply is interleaved when the server still holds the transmit time of
// the reply whose receive timestamp is that origin (each is used once),
// basic otherwise, and either way the new reply's transmit time is kept
// for the next request, in a fixed-size table (Server.InterleavedTableSize)
// whose memory no number of sources can grow. Requests that do not ask
// cost no table write and no kernel stamp. Server.DisableInterleaved
// turns the mode off.
//
// # Multiple cores
//
// Per core: each worker has its own socket reads, buffers, Request and
// counters, and its lane (its index) picks its own stripe of every
// middleware's counters and of the rate-limit table's (up to 32 workers).
// SO_REUSEPORT hashes each client to one socket, so the table bucket of a
// client, one cache line with its lock, is written by one core. Shared but
// only read: the options, the ACL, the reference data. Shared and written:
// the interleaved-mode table's 256 lock stripes (interleaved clients
// only), the KoD and leak budgets (refused requests only) and, when set,
// RateLimitOptions.Global (one lock for every answered request). Without
// those a request should cost the same on 8–16 cores as on one, and
// replies per second grow with cores until the NIC's queues are the limit.
//
// # Statistics
//
// Server.Stats returns counters of datagrams and bytes in and out,
// replies, kiss-o'-death replies, interleaved replies, kernel transmit
// stamps used and drops by reason (DropStats). Each
// worker counts into its own cache line; Stats sums them. The middlewares
// keep their own counters (AccessControl.Stats, RateLimiter.Stats).
//
// # Platforms
//
// On Linux a *net.UDPConn is served with recvmmsg and sendmmsg in batches
// of Server.Batch datagrams, kernel receive timestamps (SO_TIMESTAMPNS)
// mapped onto the Source's timescale when the Source's clock derives from
// the system clock, kernel transmit timestamps (SO_TIMESTAMPING, see
// internal/txstamp) for the replies interleaved clients will ask about,
// mapped the same way, and IP_PKTINFO / IPV6_PKTINFO so that a socket bound
// to a wildcard address replies from the address each request was sent
// to; the request path allocates nothing. Elsewhere a *net.UDPConn is
// read one datagram at a time through golang.org/x/net's ipv4 and ipv6
// packet conns, with control messages for the reply address, and the
// receive timestamp is read from the Source after each read. Any other
// net.PacketConn is served with plain ReadFrom and WriteTo.
//
// server/servertest has a Recorder and NewRequest for testing handlers
// without sockets, and NewServer for a Server on a loopback socket.
package server

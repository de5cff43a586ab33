package upstream_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"sync"
	"time"

	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/upstream"
)

// A stratum-2 server: the Discipliner syncs to its upstream servers and a
// server.Server serves its clock and reference data. Until a majority of
// the sources agree, replies say leap alarm and stratum 16. Here the
// upstream is a stratum-1 server on loopback; in production the sources
// would be names such as "0.pool.ntp.org" or "time.cloudflare.com:123",
// and Options would keep the default polls (64–1024 s).
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	// The upstream: a stratum-1 server on 127.0.0.1.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	stratum1 := server.NewLocalSource(nil, 1)
	wg.Add(1)
	go func() { defer wg.Done(); (&server.Server{Source: stratum1}).Serve(ctx, pc) }()

	// The Discipliner, polling it quickly.
	d, err := upstream.New(upstream.Addresses(pc.LocalAddr().String()), upstream.Options{
		MinPoll: 50 * time.Millisecond, MaxPoll: 50 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); d.Run(ctx) }()
	// A server.Server serving it would be: &server.Server{Source: d}.

	for !d.Synchronized() {
		time.Sleep(10 * time.Millisecond)
	}
	ref := d.Reference()
	fmt.Println("stratum", ref.Stratum, "refid", ref.RefID.Addr())
	// Output: stratum 2 refid 127.0.0.1
}

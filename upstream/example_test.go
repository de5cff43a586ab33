package upstream_test

import (
	"context"
	"log"
	"log/slog"
	"os"

	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/upstream"
)

// A stratum-2 server: the Discipliner syncs to several upstream servers
// and a server.Server serves its clock and reference data. Until a
// majority of the sources agree, replies say leap alarm and stratum 16.
func Example() {
	ctx := context.Background()
	d, err := upstream.New([]string{
		"0.pool.ntp.org", // a pool name: several sources
		"time.cloudflare.com:123",
		"ptbtime1.ptb.de",
	}, upstream.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		log.Fatal(err)
	}
	go d.Run(ctx)
	srv := &server.Server{Source: d}
	log.Fatal(srv.ListenAndServe(ctx, ":123"))
}

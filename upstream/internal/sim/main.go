// Command sim measures the accuracy of upstream.Discipliner in a
// simulation: N loopback NTP servers serve a common true time with
// gaussian timestamp jitter, optionally with a frequency error between
// them and the local clock and a falseticker, and a probe compares the
// Discipliner's time with the truth every 10 ms.
//
//	go run ./upstream/internal/sim -duration 60s
//	go run ./upstream/internal/sim -duration 60s -drift 20
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/ntpkit/ntpkit/upstream"
	"github.com/ntpkit/ntpkit/upstream/internal/simnet"
)

func main() {
	duration := flag.Duration("duration", 60*time.Second, "how long to run")
	warmup := flag.Duration("warmup", 20*time.Second, "readings before this are left out of RMS and max")
	sources := flag.Int("sources", 4, "good sources")
	falsetickers := flag.Int("falsetickers", 0, "sources 500 ms off")
	jitter := flag.Duration("jitter", time.Millisecond, "gaussian timestamp jitter (standard deviation)")
	poll := flag.Duration("poll", 250*time.Millisecond, "poll interval (min = max)")
	drift := flag.Float64("drift", 0, "frequency error of the local clock against the sources, ppm")
	offset := flag.Duration("offset", 0, "initial offset of the local clock against the sources")
	bound := flag.Duration("bound", time.Millisecond, "convergence: error stays within this")
	seed := flag.Uint64("seed", 1, "jitter seed")
	verbose := flag.Bool("v", false, "log the Discipliner's events")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	truth := simnet.Truth{Epoch: time.Now(), Offset: *offset, FreqPPM: *drift}
	var peers []simnet.Peer
	for range *sources {
		peers = append(peers, simnet.Peer{Jitter: *jitter})
	}
	for range *falsetickers {
		peers = append(peers, simnet.Peer{Jitter: *jitter, Offset: 500 * time.Millisecond})
	}
	srvs, err := simnet.Start(ctx, truth, peers, *seed)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var addrs []string
	for _, s := range srvs {
		addrs = append(addrs, s.Addr)
	}
	o := upstream.Options{MinPoll: *poll, MaxPoll: *poll}
	if *verbose {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	d, err := upstream.New(upstream.Addresses(addrs...), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go d.Run(ctx)
	var p simnet.Probe
	p.Run(ctx, d, truth, 10*time.Millisecond)
	st, err := p.Summarise(*warmup, *bound)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ds := d.Status()
	fmt.Printf("sources=%d falsetickers=%d jitter=%v poll=%v drift=%+gppm offset=%v duration=%v warmup=%v\n",
		*sources, *falsetickers, *jitter, *poll, *drift, *offset, *duration, *warmup)
	fmt.Printf("error after warmup: rms=%v max=%v mean=%v p99=%v (n=%d)\n",
		st.RMS.Round(time.Microsecond), st.Max.Round(time.Microsecond), st.Mean.Round(time.Microsecond),
		p.Percentile(*warmup, 0.99).Round(time.Microsecond), st.Samples)
	fmt.Printf("first synchronised after %v; converged (error < %v for good) after %v; max error while synchronised %v\n",
		st.Synced.Round(time.Millisecond), *bound, st.Convergence.Round(time.Millisecond), st.MaxSynced.Round(time.Microsecond))
	fmt.Printf("discipliner: stratum=%d refid=%s freq=%.2fppm root_distance=%v steps=%d updates=%d\n",
		ds.Stratum, ds.RefID, ds.Frequency, ds.RootDistance.Round(time.Microsecond), ds.Steps, ds.Updates)
	for _, s := range ds.Sources {
		fmt.Printf("  %-22s %-11s reach=%03o offset=%v jitter=%v\n", s.Addr, s.State, s.Reach, s.Offset.Round(time.Microsecond), s.Jitter.Round(time.Microsecond))
	}
}

// Command sim measures the accuracy of upstream.Discipliner in a
// simulation: N loopback NTP servers serve a common true time with
// gaussian timestamp jitter, optionally with a frequency error between
// them and the local clock, a falseticker, and exponential delay jitter
// on each leg of the path, and a probe compares the Discipliner's time
// with the truth every 10 ms. With -chronyd, chronyd -x (its own config
// in a temporary directory) polls the same servers at the same interval
// in the same run, and a second probe compares the time it serves on a
// loopback port with the truth.
//
//	go run ./upstream/internal/sim -duration 60s
//	go run ./upstream/internal/sim -duration 60s -drift 20
//	go run ./upstream/internal/sim -duration 120s -warmup 30s -pathjitter 200us -chronyd
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
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
	pathJitter := flag.Duration("pathjitter", 0, "mean of the exponential extra delay on each leg of every exchange")
	withChronyd := flag.Bool("chronyd", false, "run chronyd -x against the same servers and measure it too")
	verbose := flag.Bool("v", false, "log the Discipliner's events")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	truth := simnet.Truth{Epoch: time.Now(), Offset: *offset, FreqPPM: *drift}
	var peers []simnet.Peer
	for range *sources {
		peers = append(peers, simnet.Peer{Jitter: *jitter, PathJitter: *pathJitter})
	}
	for range *falsetickers {
		peers = append(peers, simnet.Peer{Jitter: *jitter, PathJitter: *pathJitter, Offset: 500 * time.Millisecond})
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
	var ch *chronyd
	if *withChronyd {
		if ch, err = startChronyd(addrs, *poll); err != nil {
			fmt.Fprintln(os.Stderr, "chronyd:", err)
			os.Exit(1)
		}
	}
	go d.Run(ctx)
	var p, cp simnet.Probe
	var wg sync.WaitGroup
	if ch != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cp.Run(ctx, ch, truth, 10*time.Millisecond)
		}()
	}
	p.Run(ctx, d, truth, 10*time.Millisecond)
	wg.Wait()
	st, err := p.Summarise(*warmup, *bound)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ds := d.Status()
	fmt.Printf("sources=%d falsetickers=%d jitter=%v pathjitter=%v poll=%v drift=%+gppm offset=%v duration=%v warmup=%v\n",
		*sources, *falsetickers, *jitter, *pathJitter, *poll, *drift, *offset, *duration, *warmup)
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
	if ch != nil {
		if err := ch.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "chronyd:", err)
		}
		cst, err := cp.Summarise(*warmup, *bound)
		if err != nil {
			fmt.Fprintln(os.Stderr, "chronyd:", err)
			os.Exit(1)
		}
		fmt.Printf("chronyd error after warmup: rms=%v max=%v mean=%v p99=%v (n=%d, %d failed queries)\n",
			cst.RMS.Round(time.Microsecond), cst.Max.Round(time.Microsecond), cst.Mean.Round(time.Microsecond),
			cp.Percentile(*warmup, 0.99).Round(time.Microsecond), cst.Samples, ch.fail)
		fmt.Printf("chronyd first synchronised after %v; max error while synchronised %v\n",
			cst.Synced.Round(time.Millisecond), cst.MaxSynced.Round(time.Microsecond))
	}
}

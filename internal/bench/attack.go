package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"time"
)

// Under attack: a spoofed-source flood (ntpload -spoof: random source
// addresses in 127.64.0.0/10, four million of them, through a raw
// socket) runs at full speed while well-behaved clients (attackClients
// sockets, each on its own source address, about one request per two
// seconds each) measure what they still get. Both servers rate-limit
// alike: our daemon with its default rate limiting (1 s interval, burst
// 8, leak 2, 16 MiB of client state), chronyd with "ratelimit interval 0
// burst 8 leak 2" and "clientloglimit 16777216".
const (
	attackPrefix  = "127.64.0.0/10"
	attackClients = 2048
	attackRate    = 1000 // well-behaved requests/s in all
)

// attackScenario measures both servers under the flood.
func (b *bench) attackScenario(ours, chronyd string) error {
	ourSrv, err := b.startOursWith(ours, freePort(), 1, b.o.serverCPU, true, "", "")
	if err != nil {
		return err
	}
	defer ourSrv.stop()
	chronySrv, err := b.startChrony(chronyd, freePort(), "ratelimit interval 0 burst 8 leak 2", "clientloglimit 16777216")
	if err != nil {
		return err
	}
	defer chronySrv.stop()
	var a, c []sample
	for r := 0; r < b.o.rounds; r++ {
		order := []*server{ourSrv, chronySrv}
		if r%2 == 1 {
			order = []*server{chronySrv, ourSrv}
		}
		for _, s := range order {
			m, err := b.underFlood(s)
			if err != nil {
				return err
			}
			if s == ourSrv {
				a = append(a, m)
			} else {
				c = append(c, m)
			}
		}
	}
	printTableOf(fmt.Sprintf("under attack: spoofed flood from %s at full speed, %d well-behaved clients at %d requests/s", attackPrefix, attackClients, attackRate),
		"ntpkit", "chronyd", a, c, attackMetrics)
	return nil
}

var attackMetrics = []metric{
	{"flood requests/s sent", func(s sample) float64 { return s.floodPerS }, "%.0f"},
	{"server CPU (% of a core)", sample.cpuPct, "%.1f"},
	{"requests offered per CPU-s", func(s sample) float64 { return (s.floodPerS + s.RepliesPerS) * s.wallSec / max(s.cpuSec, 0.01) }, "%.0f"},
	{"clients' replies/s", func(s sample) float64 { return s.RepliesPerS }, "%.0f"},
	{"clients' loss %", func(s sample) float64 { return s.LossPercent }, "%.3f"},
	{"clients' |offset| p99 µs", func(s sample) float64 { return s.AbsOffset.P99 }, "%.1f"},
}

// underFlood runs the flood and, while it runs, the well-behaved clients
// against s.
func (b *bench) underFlood(s *server) (sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.o.duration+30*time.Second)
	defer cancel()
	floodFor := b.o.duration + time.Second
	args := []string{b.load, "-json", "-duration", floodFor.String(), "-spoof", attackPrefix, fmt.Sprintf("127.0.0.1:%d", s.port)}
	if b.o.loadCPU != "" {
		args = append([]string{b.taskset, "-c", b.o.loadCPU}, args...)
	}
	fl := exec.CommandContext(ctx, args[0], args[1:]...)
	floodOut := make(chan []byte, 1)
	floodErr := make(chan error, 1)
	go func() {
		out, err := fl.Output()
		floodOut <- out
		floodErr <- err
	}()
	time.Sleep(300 * time.Millisecond) // let the flood fill the server's queue
	m, err := b.measure(s, b.o.loadCPU, []string{"-rate", strconv.Itoa(attackRate), "-buffer", "0",
		"-src", fmt.Sprintf("127.1.0.0-127.1.%d.255", attackClients/256-1)}, attackClients, 1)
	out, ferr := <-floodOut, <-floodErr
	if err != nil {
		return sample{}, err
	}
	if ferr != nil {
		return sample{}, fmt.Errorf("flood against %s (needs root for the raw socket): %w", s.name, ferr)
	}
	var fr struct {
		SentPerS float64 `json:"sent_per_s"`
	}
	if err := json.Unmarshal(out, &fr); err != nil {
		return sample{}, fmt.Errorf("flood output: %w", err)
	}
	m.floodPerS = fr.SentPerS
	if b.o.verbose {
		fmt.Printf("  %-18s flood %8.0f/s  CPU %5.1f%%  clients' loss %.3f%%\n", s.name, m.floodPerS, m.cpuPct(), m.LossPercent)
	}
	return m, nil
}

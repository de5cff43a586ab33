package main

import (
	"fmt"
	"strconv"
)

// Stamps: the plain scenarios' offsets are dominated by ntpload's own T1
// noise (taken in user space before its sendmmsg). ntpload -interleaved
// takes T1 from kernel transmit stamps and T4 from kernel receive stamps;
// against a server that never answers interleaved every reply is basic,
// and its offset is then the server's own T2/T3 timestamping error. Our
// daemon runs with server.disable_interleaved, chronyd with noclientlog
// (it serves interleaved mode only with client logging).

// maxStampsXleavePct is the most interleaved replies (% of valid ones) a
// stamps run may see; more means a server still answers interleaved.
const maxStampsXleavePct = 0.1

// stampsScenario measures both servers' transmit-timestamp error with
// fresh processes at -rate and at full load.
func (b *bench) stampsScenario(ours, chronyd string) error {
	ourSrv, err := b.startOursWith(ours, freePort(), 1, b.o.serverCPU, false, `,"disable_interleaved":true`, "")
	if err != nil {
		return err
	}
	defer ourSrv.stop()
	chronySrv, err := b.startChrony(chronyd, freePort(), "noclientlog")
	if err != nil {
		return err
	}
	defer chronySrv.stop()
	runs := []struct {
		name string
		args []string
	}{
		{fmt.Sprintf("server stamps, fixed rate %.0f requests/s (kernel T1/T4, basic replies only)", b.o.rate),
			[]string{"-interleaved", "-rate", strconv.FormatFloat(b.o.rate, 'f', 0, 64)}},
		{"server stamps, full load (kernel T1/T4, basic replies only)", []string{"-interleaved"}},
	}
	for _, r := range runs {
		a, c, err := b.alternate(ourSrv, chronySrv, r.args, r.args)
		if err != nil {
			return err
		}
		if err := basicOnly(ourSrv.name, a); err != nil {
			return err
		}
		if err := basicOnly(chronySrv.name, c); err != nil {
			return err
		}
		printTableOf(r.name, "ntpkit", "chronyd", a, c, stampsMetrics)
	}
	return nil
}

// basicOnly reports an error unless every run of xs, against the server
// called name, came back basic but for at most maxStampsXleavePct of its
// replies: else the server serves interleaved mode and the run's offsets
// are not of its pre-send stamps alone.
func basicOnly(name string, xs []sample) error {
	for _, s := range xs {
		if s.Interleaved == nil {
			return fmt.Errorf("stamps: ntpload against %s reported no interleaved figures (not run with -interleaved?)", name)
		}
		if p := s.Interleaved.InterleavedPercent; p > maxStampsXleavePct {
			return fmt.Errorf("stamps: %.2f%% of %s's replies were interleaved (at most %.1f%% allowed): it still serves interleaved mode", p, name, maxStampsXleavePct)
		}
	}
	return nil
}

// The signed offsets are of all valid replies, basic ones but for at most
// maxStampsXleavePct; the |offset| rows are of the basic replies alone.
var stampsMetrics = []metric{
	{"replies/s", func(s sample) float64 { return s.RepliesPerS }, "%.0f"},
	{"replies per CPU-second", sample.perCPU, "%.0f"},
	{"server CPU (% of a core)", sample.cpuPct, "%.1f"},
	{"loss %", func(s sample) float64 { return s.LossPercent }, "%.3f"},
	{"interleaved % of replies", func(s sample) float64 { return xleaveOf(s).InterleavedPercent }, "%.3f"},
	{"offset p1 µs", func(s sample) float64 { return s.Offset.P1 }, "%.1f"},
	{"offset p50 µs", func(s sample) float64 { return s.Offset.P50 }, "%.1f"},
	{"offset p99 µs", func(s sample) float64 { return s.Offset.P99 }, "%.1f"},
	{"basic |offset| p50 µs", func(s sample) float64 { return xleaveOf(s).AbsOffsetBasic.P50 }, "%.1f"},
	{"basic |offset| p99 µs", func(s sample) float64 { return xleaveOf(s).AbsOffsetBasic.P99 }, "%.1f"},
	{"basic |offset| p99.9 µs", func(s sample) float64 { return xleaveOf(s).AbsOffsetBasic.P999 }, "%.1f"},
}

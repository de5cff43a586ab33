// Command bench measures ntpkit's daemon side by side with chronyd on
// loopback: it builds examples/standalone and examples/ntpload, starts
// both servers on unprivileged ports (chronyd with -x and a configuration
// of its own: local stratum 10, no upstream, no rate limiting, no command
// port), drives them alternately with the same ntpload runs, and prints
// medians and ratios of replies/s, replies per CPU-second of the server
// process and its children (utime+stime from /proc/<pid>/stat), loss, RTT, server time
// (T3-T2) and the offset the client computes. On loopback client and
// server share one clock, so any offset is timestamping error.
//
// Run it from the module root (it is not a test and CI does not run it):
//
//	go run ./internal/bench
//
// The NTS scenario runs both servers with NTS on (chronyd with
// ntsserverkey/ntsservercert in its own configuration, our daemon with
// nts.enabled) and a throwaway test CA that ntpload trusts: each client
// socket runs NTS-KE once, then sends NTS-authenticated requests and
// checks every reply's authenticator.
//
// The stamps scenario measures each server's own timestamping error,
// which the plain scenarios' offsets cannot show: there ntpload takes T1
// in user space, and its own noise dominates. It runs ntpload
// -interleaved (T1 and T4 from the client's kernel stamps) at -rate and
// at full load against fresh servers that answer in basic mode only (our
// daemon with server.disable_interleaved, chronyd with noclientlog), so
// each reply's offset is the server's T2/T3 error; it fails if more than
// a trace of the replies came back interleaved. Just that scenario:
//
//	go run ./internal/bench -only stamps
//
// The interleaved scenario runs ntpload -interleaved against both
// servers at -rate (50,000 requests/s) and, with -interleaved-full, at
// full load: each request quotes an earlier reply (chrony's interleaved
// client mode), T1 and T4 come from the client's kernel stamps, and the
// table gives replies per CPU-second and |offset| percentiles of basic
// and of interleaved replies separately, for both servers. To run just
// that scenario, 5 rounds of 5 s each:
//
//	go run ./internal/bench -only interleaved -rounds 5
//
// (-interleaved-full=false skips the full-load half; -v prints every run.)
//
// Every table gives the median and, in brackets, the spread (lowest and
// highest) of the rounds; rounds alternate which server goes first.
//
// On a machine with two CPUs or more the servers are pinned to one CPU and
// the load generator to another with taskset, so each server gets exactly
// one core, like single-threaded chronyd. The scaling runs then give our
// daemon 1 and 2 SO_REUSEPORT sockets with both CPUs shared with the load
// generator.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	rounds    int
	duration  time.Duration
	rate      float64
	serverCPU string
	loadCPU   string
	sockets   int
	chronyd   string
	scaling   bool
	nts       bool
	plain     bool
	attack    bool
	xleave    bool
	stamps    bool
	// xleaveFull adds a full-load run to the interleaved scenario.
	xleaveFull bool
	only       string
	readBuf    int
	verbose    bool
}

func run() error {
	var o options
	flag.IntVar(&o.rounds, "rounds", 5, "alternating rounds per scenario (medians are reported)")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each load run")
	flag.Float64Var(&o.rate, "rate", 50000, "offered requests/s of the fixed-rate scenario")
	flag.StringVar(&o.serverCPU, "server-cpu", "1", "CPU list the servers are pinned to (taskset -c)")
	flag.StringVar(&o.loadCPU, "load-cpu", "0", "CPU list the load generator is pinned to")
	flag.IntVar(&o.sockets, "sockets", 16, "ntpload client sockets")
	flag.StringVar(&o.chronyd, "chronyd", "chronyd", "chronyd binary")
	flag.BoolVar(&o.scaling, "scaling", true, "also measure our daemon with 1 and 2 sockets on all CPUs")
	flag.BoolVar(&o.attack, "attack", true, "also measure both servers rate limiting under a spoofed-source flood (needs root)")
	flag.BoolVar(&o.plain, "plain", true, "measure plain NTP at full load and at -rate")
	flag.BoolVar(&o.nts, "nts", true, "also measure NTS-authenticated requests at full load")
	flag.BoolVar(&o.xleave, "interleaved", true, "also measure interleaved-mode requests (ntpload -interleaved) at -rate")
	flag.BoolVar(&o.stamps, "stamps", true, "also measure the servers' own timestamping error (ntpload -interleaved against servers that answer basic only) at -rate and full load")
	flag.BoolVar(&o.xleaveFull, "interleaved-full", true, "the interleaved scenario also runs at full load")
	flag.StringVar(&o.only, "only", "", "run just one `scenario`: plain, stamps, interleaved, nts, attack or scaling")
	flag.IntVar(&o.readBuf, "read-buffer", 1<<20, "our daemon's server.read_buffer and write_buffer")
	flag.BoolVar(&o.verbose, "v", false, "print every run")
	flag.Parse()
	if o.only != "" {
		sel := map[string]*bool{"plain": &o.plain, "stamps": &o.stamps, "interleaved": &o.xleave, "nts": &o.nts, "attack": &o.attack, "scaling": &o.scaling}
		if sel[o.only] == nil {
			return fmt.Errorf("-only %q: want plain, stamps, interleaved, nts, attack or scaling", o.only)
		}
		for _, p := range sel {
			*p = false
		}
		*sel[o.only] = true
	}

	if runtime.GOOS != "linux" {
		return errors.New("needs Linux (/proc, taskset, chronyd)")
	}
	chronyd, err := exec.LookPath(o.chronyd)
	if err != nil {
		return fmt.Errorf("chronyd not found (apt-get install chrony): %w", err)
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("taskset not found (util-linux): %w", err)
	}
	if runtime.NumCPU() < 2 {
		return fmt.Errorf("needs at least 2 CPUs, have %d", runtime.NumCPU())
	}
	dir, err := os.MkdirTemp("", "ntpkit-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// chronyd started as root drops to its own user; let it write here.
	_ = os.Chmod(dir, 0o777)

	fmt.Printf("building daemon and load generator in %s\n", dir)
	ours := filepath.Join(dir, "standalone")
	load := filepath.Join(dir, "ntpload")
	for bin, pkg := range map[string]string{ours: "./examples/standalone", load: "./examples/ntpload"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s (run from the module root): %w", pkg, err)
		}
	}
	out, _ := exec.Command(chronyd, "--version").Output()
	fmt.Printf("%s", out)
	fmt.Printf("%d CPUs; servers on CPU %s, ntpload on CPU %s; %d rounds of %v per scenario\n\n",
		runtime.NumCPU(), o.serverCPU, o.loadCPU, o.rounds, o.duration)

	b := &bench{o: o, dir: dir, taskset: taskset, load: load}
	ourPort, chronyPort := freePort(), freePort()
	ourSrv, err := b.startOurs(ours, ourPort, 1, o.serverCPU)
	if err != nil {
		return err
	}
	defer ourSrv.stop()
	chronySrv, err := b.startChrony(chronyd, chronyPort)
	if err != nil {
		return err
	}
	defer chronySrv.stop()

	full := []string{}
	fixed := []string{"-rate", strconv.FormatFloat(o.rate, 'f', 0, 64)}
	scenarios := []struct {
		name string
		args []string
	}{
		{"full load (as fast as replies come back)", full},
		{fmt.Sprintf("fixed rate %.0f requests/s", o.rate), fixed},
	}
	if !o.plain {
		scenarios = nil
	}
	for _, sc := range scenarios {
		a, c, err := b.alternate(ourSrv, chronySrv, sc.args, sc.args)
		if err != nil {
			return err
		}
		printTable(sc.name, "ntpkit", "chronyd", a, c)
	}
	ourSrv.stop()
	chronySrv.stop()

	if o.stamps {
		if err := b.stampsScenario(ours, chronyd); err != nil {
			return err
		}
	}
	if o.xleave {
		if err := b.interleavedScenario(ours, chronyd); err != nil {
			return err
		}
	}
	if o.nts {
		if err := b.ntsScenario(ours, chronyd); err != nil {
			return err
		}
	}
	if o.attack {
		if err := b.attackScenario(ours, chronyd); err != nil {
			return err
		}
	}

	if o.scaling {
		if err := b.scaling(ours); err != nil {
			return err
		}
	}
	return nil
}

// alternate runs o.rounds rounds of ntpload against ours (with ourArgs)
// and theirs (with theirArgs), alternating which goes first so drift in
// background load hits both alike.
func (b *bench) alternate(ours, theirs *server, ourArgs, theirArgs []string) (a, c []sample, err error) {
	for r := 0; r < b.o.rounds; r++ {
		order := []*server{ours, theirs}
		if r%2 == 1 {
			order = []*server{theirs, ours}
		}
		for _, s := range order {
			args := ourArgs
			if s == theirs {
				args = theirArgs
			}
			m, err := b.measure(s, b.o.loadCPU, args, b.o.sockets, 1)
			if err != nil {
				return nil, nil, err
			}
			if s == ours {
				a = append(a, m)
			} else {
				c = append(c, m)
			}
		}
	}
	return a, c, nil
}

type bench struct {
	o       options
	dir     string
	taskset string
	load    string
}

// server is a running server process.
type server struct {
	name string
	port int
	cmd  *exec.Cmd
	out  bytes.Buffer
}

func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

func freePort() int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return 12300 + os.Getpid()%1000
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func (b *bench) start(name string, port int, cpus string, argv ...string) (*server, error) {
	s := &server{name: name, port: port}
	if cpus != "" {
		argv = append([]string{b.taskset, "-c", cpus}, argv...)
	}
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	// taskset execs its command, so the pid is the server's.
	deadline := time.Now().Add(10 * time.Second)
	for !queryOK(port) {
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s did not answer on port %d: %s", name, port, s.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s, nil
}

func (b *bench) startOurs(bin string, port, sockets int, cpus string) (*server, error) {
	return b.startOursWith(bin, port, sockets, cpus, false, "", "")
}

// startOursWith starts our daemon with extra members of its "server"
// object (",\"disable_interleaved\":true") and extra top-level JSON
// members (",\"nts\":{...}") added to the benchmark configuration.
// With rateLimit the daemon's default rate limiting stays on.
func (b *bench) startOursWith(bin string, port, sockets int, cpus string, rateLimit bool, serverExtra, extra string) (*server, error) {
	if !rateLimit {
		extra = `,"rate_limit":{"enabled":false}` + extra
	}
	cfg := fmt.Sprintf(`{"listen":["127.0.0.1:%d"],"server":{"sockets":%d,"workers":1,"read_buffer":%d,"write_buffer":%d%s},"api":{"listen":""},"log_level":"warn"%s}`,
		port, sockets, b.o.readBuf, b.o.readBuf, serverExtra, extra)
	path := filepath.Join(b.dir, fmt.Sprintf("ntpkit-%d-%d.json", sockets, port))
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return b.start(fmt.Sprintf("ntpkit (%d socket)", sockets), port, cpus, bin, "-config", path)
}

func (b *bench) startChrony(bin string, port int, extra ...string) (*server, error) {
	// No "ratelimit" directive: chronyd then does not rate limit.
	// Client logging (on by default) stays on, as operators run it.
	conf := fmt.Sprintf(`port %d
bindaddress 127.0.0.1
allow 127.0.0.0/8
local stratum 10
cmdport 0
pidfile %s/chronyd-%d.pid
`, port, b.dir, port)
	for _, e := range extra {
		conf += e + "\n"
	}
	path := filepath.Join(b.dir, fmt.Sprintf("chrony-%d.conf", port))
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	// -x: never touch the system clock; -d: stay in the foreground.
	return b.start("chronyd", port, b.o.serverCPU, bin, "-x", "-d", "-f", path)
}

// queryOK sends one NTP request and reports whether a reply came back.
func queryOK(port int) bool {
	c, err := net.Dial("udp4", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	defer c.Close()
	req := make([]byte, 48)
	req[0] = 4<<3 | 3
	req[40] = 1
	if _, err := c.Write(req); err != nil {
		return false
	}
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	return err == nil && n >= 48
}

// cpuTicks returns utime+stime in clock ticks (USER_HZ, 100/s) of pid
// and of its child processes (chronyd's NTS-KE helper is one; our daemon
// does NTS-KE in-process), so both servers' whole work is counted.
func cpuTicks(pid int) (int64, error) {
	total, _, err := procTicks(pid)
	if err != nil {
		return 0, err
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if t, ppid, err := procTicks(child); err == nil && ppid == pid {
			total += t
		}
	}
	return total, nil
}

// procTicks returns utime+stime and the parent of pid.
func procTicks(pid int) (ticks int64, ppid int, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces; fields resume after its ')'.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	pp, err0 := strconv.Atoi(f[1])
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err0, err1, err2); err != nil {
		return 0, 0, err
	}
	return u + st, pp, nil
}

const clkTck = 100 // USER_HZ on Linux

// report is the part of ntpload's -json output the bench reads.
type report struct {
	Sent        uint64  `json:"sent"`
	Replies     uint64  `json:"replies"`
	Valid       uint64  `json:"valid"`
	LossPercent float64 `json:"loss_percent"`
	RepliesPerS float64 `json:"replies_per_s"`
	RTT         pct     `json:"rtt_us"`
	Proc        pct     `json:"server_time_us"`
	Offset      pct     `json:"offset_us"`
	AbsOffset   pct     `json:"abs_offset_us"`
	Invalid     map[string]uint64
	// Interleaved is there only for ntpload -interleaved.
	Interleaved *xleaveReport `json:"interleaved"`
}

type pct struct {
	P1   float64 `json:"p1"`
	P50  float64 `json:"p50"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99.9"`
}

// sample is one load run against one server.
type sample struct {
	report
	cpuSec, wallSec float64
	floodPerS       float64 // spoofed requests/s sent during the run, if any
}

func (s sample) perCPU() float64 { return float64(s.Replies) / max(s.cpuSec, 0.01) }
func (s sample) cpuPct() float64 { return 100 * s.cpuSec / s.wallSec }

func (b *bench) measure(s *server, cpus string, extra []string, sockets, threads int) (sample, error) {
	args := []string{b.load, "-json", "-duration", b.o.duration.String(), "-sockets", strconv.Itoa(sockets), "-threads", strconv.Itoa(threads)}
	args = append(args, extra...)
	args = append(args, fmt.Sprintf("127.0.0.1:%d", s.port))
	if cpus != "" {
		args = append([]string{b.taskset, "-c", cpus}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.o.duration+30*time.Second)
	defer cancel()
	pid := s.cmd.Process.Pid
	t0, err := cpuTicks(pid)
	if err != nil {
		return sample{}, err
	}
	w0 := time.Now()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).Output()
	wall := time.Since(w0).Seconds()
	t1, err2 := cpuTicks(pid)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return sample{}, fmt.Errorf("ntpload against %s: %w: %s", s.name, err, bytes.TrimSpace(ee.Stderr))
		}
		return sample{}, fmt.Errorf("ntpload against %s: %w", s.name, err)
	}
	if err2 != nil {
		return sample{}, fmt.Errorf("%s exited? %w: %s", s.name, err2, s.out.String())
	}
	var m sample
	if err := json.Unmarshal(out, &m.report); err != nil {
		return sample{}, fmt.Errorf("ntpload output: %w", err)
	}
	m.cpuSec = float64(t1-t0) / clkTck
	m.wallSec = wall
	if b.o.verbose {
		fmt.Printf("  %-18s replies/s %8.0f  per CPU-s %8.0f  CPU %5.1f%%  loss %.3f%%  |offset| p99 %.1f µs\n",
			s.name, m.RepliesPerS, m.perCPU(), m.cpuPct(), m.LossPercent, m.AbsOffset.P99)
		if x := m.Interleaved; x != nil {
			fmt.Printf("  %-18s interleaved %.1f%% of replies  |offset| p99 basic %.1f µs, interleaved %.1f µs\n",
				"", x.InterleavedPercent, x.AbsOffsetBasic.P99, x.AbsOffsetXleave.P99)
		}
	}
	return m, nil
}

func median(xs []sample, f func(sample) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

type metric struct {
	name   string
	f      func(sample) float64
	format string
}

var metrics = []metric{
	{"replies/s", func(s sample) float64 { return s.RepliesPerS }, "%.0f"},
	{"replies per CPU-second", sample.perCPU, "%.0f"},
	{"server CPU (% of a core)", sample.cpuPct, "%.1f"},
	{"loss %", func(s sample) float64 { return s.LossPercent }, "%.3f"},
	{"RTT p50 µs", func(s sample) float64 { return s.RTT.P50 }, "%.1f"},
	{"RTT p99 µs", func(s sample) float64 { return s.RTT.P99 }, "%.1f"},
	{"T3-T2 p50 µs", func(s sample) float64 { return s.Proc.P50 }, "%.1f"},
	{"T3-T2 p99 µs", func(s sample) float64 { return s.Proc.P99 }, "%.1f"},
	// ntpload in basic mode takes T1 in user space before its sendmmsg,
	// interpolated over the batch, so these offsets hold the client's own
	// T1 error too; the stamps scenario measures the servers' alone.
	{"offset p50 µs (client T1 in user space)", func(s sample) float64 { return s.Offset.P50 }, "%.1f"},
	{"|offset| p50 µs (client T1 in user space)", func(s sample) float64 { return s.AbsOffset.P50 }, "%.1f"},
	{"|offset| p99 µs (client T1 in user space)", func(s sample) float64 { return s.AbsOffset.P99 }, "%.1f"},
}

func spread(xs []sample, f func(sample) float64) (lo, hi float64) {
	for i, x := range xs {
		v := f(x)
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	return lo, hi
}

// printTable prints each metric's median for both servers, with the
// spread of the rounds in brackets, and the ratio of the medians.
func printTable(title, an, cn string, a, c []sample) {
	printTableOf(title, an, cn, a, c, metrics)
}

func printTableOf(title, an, cn string, a, c []sample, metrics []metric) {
	fmt.Printf("== %s (median [min–max] of %d rounds)\n", title, len(a))
	w := 26 // the name column fits the longest metric name
	for _, m := range metrics {
		w = max(w, utf8.RuneCountInString(m.name))
	}
	fmt.Printf("%-*s %26s %26s %8s\n", w, "", an, cn, "ratio")
	cell := func(xs []sample, m metric) string {
		lo, hi := spread(xs, m.f)
		return fmt.Sprintf(m.format+" ["+m.format+"–"+m.format+"]", median(xs, m.f), lo, hi)
	}
	for _, m := range metrics {
		x, y := median(a, m.f), median(c, m.f)
		ratio := "-"
		if y != 0 {
			ratio = fmt.Sprintf("%.2f", x/y)
		}
		fmt.Printf("%-*s %26s %26s %8s\n", w, m.name, cell(a, m), cell(c, m), ratio)
	}
	fmt.Println()
}

// scaling runs our daemon with 1 and then 2 SO_REUSEPORT sockets (one
// worker each), unpinned, with ntpload using two threads, also unpinned.
func (b *bench) scaling(bin string) error {
	var one, two []sample
	for r := 0; r < b.o.rounds; r++ {
		for _, n := range []int{1, 2} {
			s, err := b.startOurs(bin, freePort(), n, "")
			if err != nil {
				return err
			}
			m, err := b.measure(s, "", nil, 2*b.o.sockets, 2)
			s.stop()
			if err != nil {
				return err
			}
			if n == 1 {
				one = append(one, m)
			} else {
				two = append(two, m)
			}
		}
	}
	printTable("scaling: ntpkit with 2 vs 1 sockets/workers, all CPUs shared with ntpload", "2 sockets", "1 socket", two, one)
	return nil
}

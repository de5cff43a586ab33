// Command soak runs the daemon under steady load and a flood for a bounded
// time and checks that it neither leaks nor fails its well-behaved
// clients.
//
// From the module root:
//
//	go run ./internal/soak                  # 10 minutes
//	go run ./internal/soak -duration 30s    # a smoke run
//
// It builds examples/standalone and examples/ntpload, starts the daemon on
// free loopback ports with rate limiting on (interval 1 s, burst 8, leak 2,
// KoD RATE, at most 100 KoDs/s) and the management API on, then runs two
// ntpload processes side by side:
//
//   - well-behaved clients: -good-clients sockets, each bound to its own
//     address in 127.1.0.0/16, each sending -good-rate requests/s, well
//     within the per-client limit, one datagram per send. Every one of
//     their requests must get a valid reply: any loss, KoD or invalid
//     reply fails the run.
//   - a flood: -flood-rate requests/s spread over -flood-sources
//     addresses in 127.2.0.0/16, several times each address's limit, so
//     the rate limiter refuses most of it. Distinct loopback sources
//     stand in for spoofed ones (real spoofing needs raw sockets); to the
//     rate limiter they are the same: many clients, each over its limit.
//
// Every -interval it scrapes the daemon's /metrics (goroutines, heap,
// open descriptors, GC cycles, requests) and reads VmRSS from
// /proc/<pid>/status. At the end it prints first/last/min/max of each and
// whether heap, goroutines and descriptors stayed flat after the warm-up,
// and exits non-zero when the well-behaved clients lost anything or a
// resource grew beyond bounds. Linux only (loopback source addresses,
// /proc); only loopback addresses are used, and every wait is bounded.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bounds of a run.
const (
	maxDuration = 2 * time.Hour
	minDuration = 5 * time.Second
	// maxChunk is ntpload's own limit on one run; longer soaks chain runs.
	maxChunk = 10 * time.Minute
	// maxSources is ntpload's limit on sockets, each with its own address.
	maxSources = 4096
)

// options are the command's flags.
type options struct {
	duration     time.Duration
	interval     time.Duration
	warmup       time.Duration
	goodClients  int
	goodRate     float64 // per client
	floodSources int
	floodRate    float64 // in total
	growth       float64
	bin          string // directory with prebuilt standalone and ntpload; empty: build
	verbose      bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// parseFlags reads and checks the flags.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, fmt.Sprintf("length of the run (%v–%v)", minDuration, maxDuration))
	fs.DurationVar(&o.interval, "interval", 5*time.Second, "how often to scrape /metrics and VmRSS (at least 1s)")
	fs.DurationVar(&o.warmup, "warmup", 0, "samples before this are not judged (default: a fifth of -duration, at most 1m)")
	fs.IntVar(&o.goodClients, "good-clients", 1000, fmt.Sprintf("well-behaved clients, one address each in 127.1.0.0/16 (1–%d)", maxSources))
	fs.Float64Var(&o.goodRate, "good-rate", 0.5, "requests/s of each well-behaved client (at most 1, the limit's long-run rate)")
	fs.IntVar(&o.floodSources, "flood-sources", maxSources, fmt.Sprintf("flood source addresses in 127.2.0.0/16 (0–%d; 0: no flood)", maxSources))
	fs.Float64Var(&o.floodRate, "flood-rate", 20000, "flood requests/s in total")
	fs.Float64Var(&o.growth, "growth", 1.2, "allowed ratio of the end's level to the level after warm-up")
	fs.StringVar(&o.bin, "bin", "", "directory holding prebuilt `standalone` and `ntpload` binaries (default: build them)")
	fs.BoolVar(&o.verbose, "v", false, "print every sample")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.warmup == 0 {
		o.warmup = min(o.duration/5, time.Minute)
	}
	switch {
	case o.duration < minDuration || o.duration > maxDuration:
		return nil, fmt.Errorf("-duration %v: want %v to %v", o.duration, minDuration, maxDuration)
	case o.interval < time.Second || o.interval > o.duration/4:
		return nil, fmt.Errorf("-interval %v: want at least 1s and at most a quarter of -duration", o.interval)
	case o.warmup < 0 || o.warmup > o.duration/2:
		return nil, fmt.Errorf("-warmup %v: want at most half of -duration", o.warmup)
	case o.goodClients < 1 || o.goodClients > maxSources:
		return nil, fmt.Errorf("-good-clients %d: want 1–%d", o.goodClients, maxSources)
	case !(o.goodRate > 0 && o.goodRate <= 1):
		return nil, fmt.Errorf("-good-rate %v: want more than 0 and at most 1 (the rate limit)", o.goodRate)
	case o.floodSources < 0 || o.floodSources > maxSources:
		return nil, fmt.Errorf("-flood-sources %d: want 0–%d", o.floodSources, maxSources)
	case !(o.floodRate >= 0 && o.floodRate <= 1e6):
		return nil, fmt.Errorf("-flood-rate %v: want 0–1e6", o.floodRate)
	case !(o.growth >= 1):
		return nil, fmt.Errorf("-growth %v: want at least 1", o.growth)
	}
	return o, nil
}

// run is the whole soak; it returns an error when the run failed or a
// verdict is bad.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if runtime.GOOS != "linux" {
		return errors.New("needs Linux (loopback source addresses, /proc)")
	}
	dir, err := os.MkdirTemp("", "ntpkit-soak-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	daemonBin, loadBin, err := binaries(ctx, o.bin, dir)
	if err != nil {
		return err
	}
	d, err := startDaemon(ctx, daemonBin, dir)
	if err != nil {
		return err
	}
	defer d.stop()
	fmt.Fprintf(stdout, "daemon pid %d: NTP %v, API %s; %v run, %v warm-up, sample every %v\n",
		d.cmd.Process.Pid, d.ntp, d.api, o.duration, o.warmup, o.interval)
	fmt.Fprintf(stdout, "well-behaved: %d clients × %.2f/s from 127.1.0.0/16; flood: %.0f/s over %d sources in 127.2.0.0/16\n",
		o.goodClients, o.goodRate, o.floodRate, o.floodSources)

	runCtx, cancel := context.WithTimeout(ctx, o.duration+time.Minute)
	defer cancel()
	end := time.Now().Add(o.duration)
	var wg sync.WaitGroup
	var good, flood loadTotal
	var goodErr, floodErr error
	wg.Go(func() {
		args := []string{"-sockets", strconv.Itoa(o.goodClients), "-threads", "1", "-batch", "1", "-timeout", "2s",
			"-src", addrRange(netip.MustParseAddr("127.1.0.1"), o.goodClients),
			"-rate", strconv.FormatFloat(o.goodRate*float64(o.goodClients), 'f', -1, 64)}
		good, goodErr = runLoad(runCtx, loadBin, args, d.ntp, end)
	})
	if o.floodSources > 0 && o.floodRate > 0 {
		wg.Go(func() {
			args := []string{"-sockets", strconv.Itoa(o.floodSources), "-threads", "1", "-timeout", "500ms",
				"-src", addrRange(netip.MustParseAddr("127.2.0.1"), o.floodSources),
				"-rate", strconv.FormatFloat(o.floodRate, 'f', -1, 64)}
			flood, floodErr = runLoad(runCtx, loadBin, args, d.ntp, end)
		})
	}
	samples := d.sample(runCtx, o, end, stdout)
	wg.Wait()
	if err := errors.Join(goodErr, floodErr); err != nil {
		return err
	}
	if err := d.alive(); err != nil {
		return err
	}
	return report(stdout, o, samples, good, flood)
}

// binaries returns the daemon and ntpload binaries: prebuilt ones in bin,
// or fresh builds in dir.
func binaries(ctx context.Context, bin, dir string) (daemon, load string, err error) {
	if bin != "" {
		daemon, load = filepath.Join(bin, "standalone"), filepath.Join(bin, "ntpload")
		for _, f := range []string{daemon, load} {
			if _, err := os.Stat(f); err != nil {
				return "", "", fmt.Errorf("-bin: %w", err)
			}
		}
		return daemon, load, nil
	}
	daemon, load = filepath.Join(dir, "standalone"), filepath.Join(dir, "ntpload")
	for out, pkg := range map[string]string{daemon: "github.com/ntpkit/ntpkit/examples/standalone", load: "github.com/ntpkit/ntpkit/examples/ntpload"} {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		cmd := exec.CommandContext(bctx, "go", "build", "-o", out, pkg)
		b, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			return "", "", fmt.Errorf("go build %s (run inside the module): %w\n%s", pkg, err, b)
		}
	}
	return daemon, load, nil
}

// addrRange is ntpload's -src for n addresses from first on.
func addrRange(first netip.Addr, n int) string {
	last := first
	for i := 1; i < n; i++ {
		last = last.Next()
	}
	return first.String() + "-" + last.String()
}

// daemon is the running daemon under test.
type daemon struct {
	cmd  *exec.Cmd
	log  *lockedBuffer // its output
	ntp  netip.AddrPort
	api  string
	http *http.Client
	done chan struct{}
	err  error // Wait's result, set before done is closed
}

// lockedBuffer is a bytes.Buffer safe for the exec package's copier and
// readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil // keep at most 1 MiB of log
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDaemon writes the soak's configuration, starts the daemon and
// waits (at most 15 s) for its API to answer.
func startDaemon(ctx context.Context, bin, dir string) (*daemon, error) {
	ntpPort, err := freePort("udp4")
	if err != nil {
		return nil, err
	}
	apiPort, err := freePort("tcp4")
	if err != nil {
		return nil, err
	}
	d := &daemon{
		ntp:  netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ntpPort)),
		api:  fmt.Sprintf("127.0.0.1:%d", apiPort),
		http: &http.Client{Timeout: 5 * time.Second},
		done: make(chan struct{}),
	}
	cfg := fmt.Sprintf(`{
  "listen": [%q],
  "server": {"sockets": 0, "workers": 1, "read_buffer": 4194304, "write_buffer": 1048576},
  "log_level": "warn",
  "rate_limit": {"enabled": true, "interval": "1s", "burst": 8, "leak": 2, "kiss": true, "kiss_per_second": 100},
  "api": {"listen": %q}
}`, d.ntp.String(), d.api)
	path := filepath.Join(dir, "soak.json")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	log := &lockedBuffer{b: new(bytes.Buffer)}
	d.log = log
	d.cmd = exec.Command(bin, "-config", path)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := d.metrics(); err == nil {
			return d, nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			d.stop()
			return nil, fmt.Errorf("daemon API %s not up: %v; log:\n%s", d.api, err, log.String())
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("daemon exited at start: %v; log:\n%s", d.err, log.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// alive reports an error if the daemon has exited.
func (d *daemon) alive() error {
	select {
	case <-d.done:
		return fmt.Errorf("daemon exited during the run: %v; log:\n%s", d.err, d.log.String())
	default:
		return nil
	}
}

// stop interrupts the daemon and waits up to 5 s before killing it.
func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort(network string) (int, error) {
	if network == "udp4" {
		c, err := net.ListenPacket(network, "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free UDP port: %w", err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen(network, "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free TCP port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// sample is one scrape of the daemon.
type sample struct {
	at         time.Duration // since the start of the run
	goroutines float64
	heapAlloc  float64
	heapInuse  float64
	fds        float64
	gcCycles   float64
	rss        float64 // bytes
	requests   float64
	replies    float64
}

// metricNames maps the scraped series to sample fields.
var metricNames = map[string]func(*sample) *float64{
	"go_goroutines":                func(s *sample) *float64 { return &s.goroutines },
	"go_memstats_heap_alloc_bytes": func(s *sample) *float64 { return &s.heapAlloc },
	"go_memstats_heap_inuse_bytes": func(s *sample) *float64 { return &s.heapInuse },
	"process_open_fds":             func(s *sample) *float64 { return &s.fds },
	"go_gc_cycles_total":           func(s *sample) *float64 { return &s.gcCycles },
	"ntpkit_requests_total":        func(s *sample) *float64 { return &s.requests },
	"ntpkit_replies_total":         func(s *sample) *float64 { return &s.replies },
}

// metrics scrapes /metrics once and returns the unlabelled samples.
func (d *daemon) metrics() (map[string]float64, error) {
	resp, err := d.http.Get("http://" + d.api + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// rss reads VmRSS of pid from /proc, in bytes.
func rss(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", rest, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("no VmRSS in /proc/<pid>/status")
}

// sample scrapes the daemon every interval until end (or ctx is done, or
// the daemon exits) and returns the samples; a failed scrape is reported
// and skipped.
func (d *daemon) sample(ctx context.Context, o *options, end time.Time, w io.Writer) []sample {
	start := end.Add(-o.duration)
	var out []sample
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	take := func() {
		m, err := d.metrics()
		if err != nil {
			fmt.Fprintf(w, "scrape failed: %v\n", err)
			return
		}
		s := sample{at: time.Since(start).Round(time.Second)}
		for name, field := range metricNames {
			*field(&s) = m[name]
		}
		if r, err := rss(d.cmd.Process.Pid); err == nil {
			s.rss = r
		}
		if o.verbose {
			fmt.Fprintf(w, "%6v goroutines %3.0f heap %6.1f MiB inuse %6.1f MiB fds %3.0f gc %4.0f rss %6.1f MiB requests %.0f\n",
				s.at, s.goroutines, s.heapAlloc/(1<<20), s.heapInuse/(1<<20), s.fds, s.gcCycles, s.rss/(1<<20), s.requests)
		}
		out = append(out, s)
	}
	take()
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return out
		case <-d.done:
			return out
		case <-tick.C:
			take()
		}
	}
	return out
}

// loadReport is the part of ntpload's -json report the soak reads.
type loadReport struct {
	Sent       uint64            `json:"sent"`
	Replies    uint64            `json:"replies"`
	Valid      uint64            `json:"valid"`
	Invalid    map[string]uint64 `json:"invalid"`
	KoD        map[string]uint64 `json:"kod"`
	Lost       uint64            `json:"lost"`
	SendErrors uint64            `json:"send_errors"`
	RecvErrors uint64            `json:"recv_errors"`
}

// loadTotal adds up the reports of consecutive ntpload runs.
type loadTotal struct {
	runs                       int
	sent, replies, valid, lost uint64
	invalid, kod               uint64
	kodByCode                  map[string]uint64
	sendErrors, recvErrors     uint64
}

func (t *loadTotal) add(r loadReport) {
	t.runs++
	t.sent += r.Sent
	t.replies += r.Replies
	t.valid += r.Valid
	t.lost += r.Lost
	t.sendErrors += r.SendErrors
	t.recvErrors += r.RecvErrors
	for _, v := range r.Invalid {
		t.invalid += v
	}
	if t.kodByCode == nil {
		t.kodByCode = make(map[string]uint64)
	}
	for k, v := range r.KoD {
		t.kod += v
		t.kodByCode[k] += v
	}
}

// runLoad runs ntpload against target with args until end, in runs of
// at most maxChunk, and adds up their reports.
func runLoad(ctx context.Context, bin string, args []string, target netip.AddrPort, end time.Time) (loadTotal, error) {
	var t loadTotal
	for i := 0; i < int(maxDuration/maxChunk)+1; i++ {
		left := time.Until(end).Truncate(time.Millisecond)
		if left < 100*time.Millisecond {
			break
		}
		chunk := min(left, maxChunk)
		a := append(append([]string{}, args...), "-duration", chunk.String(), "-json", target.String())
		cctx, cancel := context.WithTimeout(ctx, chunk+time.Minute)
		cmd := exec.CommandContext(cctx, bin, a...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		cancel()
		if err != nil {
			return t, fmt.Errorf("ntpload %s: %w\n%s", strings.Join(a, " "), err, stderr.String())
		}
		var r loadReport
		if err := json.Unmarshal(out, &r); err != nil {
			return t, fmt.Errorf("ntpload report: %w\n%s", err, out)
		}
		t.add(r)
	}
	return t, nil
}

// series names one resource of the samples and how it is judged.
type series struct {
	name  string
	unit  float64 // divisor for printing
	get   func(sample) float64
	judge bool    // whether growth fails the run
	slack float64 // absolute growth always allowed, in the metric's unit
}

// report prints the figures and the verdicts and returns an error when
// the run failed.
func report(w io.Writer, o *options, samples []sample, good, flood loadTotal) error {
	var failures []string
	if len(samples) < 4 {
		return fmt.Errorf("only %d samples of the daemon: too few to judge", len(samples))
	}
	first, last := samples[0], samples[len(samples)-1]
	secs := (last.at - first.at).Seconds()
	fmt.Fprintf(w, "\n%d samples over %.0f s; daemon: %.0f requests (%.0f/s), %.0f replies\n",
		len(samples), secs, last.requests-first.requests, (last.requests-first.requests)/max(secs, 1), last.replies-first.replies)
	fmt.Fprintf(w, "well-behaved: %d sent, %d valid, %d lost, %d KoD, %d invalid, %d send errors (%d ntpload runs)\n",
		good.sent, good.valid, good.lost, good.kod, good.invalid, good.sendErrors, good.runs)
	fmt.Fprintf(w, "flood:        %d sent, %d replies (%d valid time, %d KoD %v), %d unanswered\n",
		flood.sent, flood.replies, flood.valid, flood.kod, flood.kodByCode, flood.lost)
	if good.sent == 0 || good.lost != 0 || good.kod != 0 || good.invalid != 0 || good.valid != good.sent {
		failures = append(failures, fmt.Sprintf("well-behaved clients: %d sent but %d valid replies (%d lost, %d KoD, %d invalid)",
			good.sent, good.valid, good.lost, good.kod, good.invalid))
	}

	// Judge growth: the level in the last third of the run against the
	// level in the first third after the warm-up. The heap is taken at its
	// lowest (after a GC) in each window, so garbage waiting for the next
	// GC does not count as growth; the others at their highest.
	var judged []sample
	for _, s := range samples {
		if s.at >= o.warmup {
			judged = append(judged, s)
		}
	}
	if len(judged) < 3 {
		return fmt.Errorf("only %d samples after the %v warm-up: too few to judge", len(judged), o.warmup)
	}
	third := max(1, len(judged)/3)
	early, late := judged[:third], judged[len(judged)-third:]
	gcs := judged[len(judged)-1].gcCycles - judged[0].gcCycles
	all := []series{
		{"heap alloc MiB", 1 << 20, func(s sample) float64 { return s.heapAlloc }, true, 4 << 20},
		{"heap in use MiB", 1 << 20, func(s sample) float64 { return s.heapInuse }, true, 4 << 20},
		{"goroutines", 1, func(s sample) float64 { return s.goroutines }, true, 2},
		{"open fds", 1, func(s sample) float64 { return s.fds }, true, 2},
		{"RSS MiB", 1 << 20, func(s sample) float64 { return s.rss }, false, 8 << 20},
	}
	fmt.Fprintf(w, "\n%-16s %10s %10s %10s %10s %12s %12s  %s\n", "", "first", "last", "min", "max", "after warmup", "end", "verdict")
	for _, sr := range all {
		lo, hi := sr.get(samples[0]), sr.get(samples[0])
		for _, s := range samples {
			lo, hi = min(lo, sr.get(s)), max(hi, sr.get(s))
		}
		pick := func(ss []sample) float64 {
			v := sr.get(ss[0])
			for _, s := range ss {
				if strings.HasPrefix(sr.name, "heap") {
					v = min(v, sr.get(s))
				} else {
					v = max(v, sr.get(s))
				}
			}
			return v
		}
		base, end := pick(early), pick(late)
		verdict := "flat"
		if end > o.growth*base+sr.slack {
			verdict = fmt.Sprintf("GREW %.2f×", end/max(base, 1))
			if strings.HasPrefix(sr.name, "heap") && gcs == 0 {
				verdict += " (no GC after warm-up: uncollected garbage, not judged)"
			} else if sr.judge {
				failures = append(failures, fmt.Sprintf("%s grew from %.1f to %.1f", sr.name, base/sr.unit, end/sr.unit))
			} else {
				verdict += " (informational)"
			}
		}
		fmt.Fprintf(w, "%-16s %10.1f %10.1f %10.1f %10.1f %12.1f %12.1f  %s\n", sr.name,
			sr.get(first)/sr.unit, sr.get(last)/sr.unit, lo/sr.unit, hi/sr.unit, base/sr.unit, end/sr.unit, verdict)
	}
	fmt.Fprintf(w, "GC cycles after warm-up: %.0f\n", gcs)
	if len(failures) > 0 {
		fmt.Fprintln(w, "\nFAIL")
		return errors.New(strings.Join(failures, "; "))
	}
	fmt.Fprintln(w, "\nPASS: no well-behaved request lost; heap, goroutines and open fds flat")
	return nil
}

package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestSoakSmoke runs the whole harness for 10 s at a low rate: build,
// daemon start, both loads, scrapes, table and verdicts.
func TestSoakSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon for 10 s")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the soak needs Linux")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, []string{"-duration", "10s", "-interval", "1s", "-warmup", "2s",
		"-good-clients", "100", "-good-rate", "0.5", "-flood-sources", "256", "-flood-rate", "2000"}, &out, &out)
	t.Logf("soak output:\n%s", out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"heap alloc MiB", "goroutines", "open fds", "RSS MiB", "PASS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestParseFlagsBounds(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "3h"},
		{"-duration", "1s"},
		{"-good-rate", "2"},
		{"-good-clients", "5000"},
		{"-flood-sources", "-1"},
		{"-interval", "100ms"},
		{"extra"},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
	o, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if o.duration != 10*time.Minute || o.warmup != time.Minute {
		t.Errorf("defaults: duration %v warmup %v", o.duration, o.warmup)
	}
}

func TestReportFailsOnLossAndGrowth(t *testing.T) {
	o := &options{warmup: time.Second, growth: 1.2}
	flat := func(fds float64) []sample {
		var ss []sample
		for i := 0; i < 9; i++ {
			f := 10.0
			if i >= 6 {
				f = fds
			}
			ss = append(ss, sample{at: time.Duration(i+1) * time.Second, goroutines: 10, heapAlloc: 20 << 20, heapInuse: 20 << 20, fds: f, gcCycles: float64(i)})
		}
		return ss
	}
	ok := loadTotal{sent: 100, valid: 100}
	if err := report(&bytes.Buffer{}, o, flat(10), ok, loadTotal{}); err != nil {
		t.Errorf("flat run failed: %v", err)
	}
	if err := report(&bytes.Buffer{}, o, flat(10), loadTotal{sent: 100, valid: 99, lost: 1}, loadTotal{}); err == nil || !strings.Contains(err.Error(), "well-behaved") {
		t.Errorf("loss: %v", err)
	}
	if err := report(&bytes.Buffer{}, o, flat(100), ok, loadTotal{}); err == nil || !strings.Contains(err.Error(), "open fds") {
		t.Errorf("fd growth: %v", err)
	}
}

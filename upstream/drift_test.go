package upstream

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

func logTo(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestDriftFileMissing(t *testing.T) {
	var log bytes.Buffer
	path := filepath.Join(t.TempDir(), "drift")
	r := newRig(t, 1, Options{DriftFile: path, Logger: logTo(&log)})
	if f := r.d.Status().Frequency; f != 0 {
		t.Fatalf("frequency %v without a drift file", f)
	}
	if strings.Contains(log.String(), "level=WARN") {
		t.Fatalf("a missing drift file is normal on first start, not a warning: %s", log.String())
	}
	// Nothing learned yet: nothing written, not even at exit.
	r.d.saveDrift(true)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("drift file written before any update: %v", err)
	}
}

func TestDriftFileCorrupt(t *testing.T) {
	for _, content := range []string{"garbage\n", "", "12 34 56\n", "9000.5\n", "NaN\n", strings.Repeat("1", 300)} {
		var log bytes.Buffer
		path := filepath.Join(t.TempDir(), "drift")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		r := newRig(t, 1, Options{DriftFile: path, Logger: logTo(&log)})
		if f := r.d.Status().Frequency; f != 0 {
			t.Errorf("%q: frequency %v, want 0", content, f)
		}
		if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "drift file unusable") {
			t.Errorf("%q: no warning: %s", content, log.String())
		}
	}
}

func TestDriftFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drift")
	if err := writeDrift(path, -12.345e-6); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "-12.345\n" {
		t.Fatalf("drift file holds %q", b)
	}
	f, err := readDrift(path)
	if err != nil || f != -12.345e-6 {
		t.Fatalf("readDrift = %v, %v", f, err)
	}
	// chrony's format: frequency and skew.
	os.WriteFile(path, []byte("3.250000 0.125000\n"), 0o644)
	if f, err := readDrift(path); err != nil || f != 3.25e-6 {
		t.Fatalf("chrony drift file: %v, %v", f, err)
	}
}

// TestDriftFileAtomic: the new content replaces the file by rename (a
// link to the old file keeps the old content), no temporary file is left
// behind, and a failed write leaves nothing.
func TestDriftFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drift")
	if err := writeDrift(path, 1e-6); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "old")
	if err := os.Link(path, old); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	if err := writeDrift(path, 2e-6); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(old); string(b) != "1.000\n" {
		t.Fatalf("old file now holds %q: written in place, not renamed", b)
	}
	if b, _ := os.ReadFile(path); string(b) != "2.000\n" {
		t.Fatalf("drift file holds %q", b)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want drift and old only", names)
	}
	if err := writeDrift(filepath.Join(dir, "missing", "drift"), 1e-6); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

// TestDriftFileSeedsAndSaves: a restart starts from the saved frequency;
// the file is written once synchronised, then hourly or on a change of
// over 1 ppm, and at exit.
func TestDriftFileSeedsAndSaves(t *testing.T) {
	var log bytes.Buffer
	path := filepath.Join(t.TempDir(), "drift")
	os.WriteFile(path, []byte("42.500\n"), 0o644)
	r := newRig(t, 2, Options{DriftFile: path, Logger: logTo(&log)})
	if f := r.d.Status().Frequency; f < 42.4999 || f > 42.5001 {
		t.Fatalf("frequency %v, want 42.5 from the drift file", f)
	}
	r.truthOffset = func(e time.Duration) time.Duration { return time.Duration(float64(e) * 42.5e-6) }
	r.reply(0, 0, 0, ntpwire.Packet{})
	r.reply(1, 0, 0, ntpwire.Packet{})
	if f := r.d.Status().Frequency; f < 40 || f > 45 {
		t.Fatalf("frequency after the first update %v, want the seed 42.5 kept", f)
	}
	read := func() string { b, _ := os.ReadFile(path); return string(b) }
	os.Remove(path)
	r.d.saveDrift(false)
	if read() == "" {
		t.Fatal("not written once synchronised")
	}
	os.Remove(path)
	r.clk.Advance(30 * time.Minute)
	r.reply(0, 0, 0, ntpwire.Packet{})
	r.d.saveDrift(false)
	if read() != "" {
		t.Fatal("rewritten after 30 minutes without a change")
	}
	r.clk.Advance(31 * time.Minute)
	r.reply(0, 0, 0, ntpwire.Packet{})
	r.d.saveDrift(false)
	if read() == "" {
		t.Fatal("not rewritten after an hour")
	}
	os.Remove(path)
	r.d.mu.Lock()
	r.d.freq += 3e-6
	r.d.mu.Unlock()
	r.clk.Advance(2 * time.Minute)
	r.d.saveDrift(false)
	if read() == "" {
		t.Fatal("not rewritten after a 3 ppm change")
	}
	os.Remove(path)
	r.d.saveDrift(true)
	if read() == "" {
		t.Fatal("not written at exit")
	}
	if f, err := readDrift(path); err != nil || f < 40e-6 || f > 50e-6 {
		t.Fatalf("saved frequency %v, %v", f, err)
	}
}

package upstream

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The drift file keeps the frequency estimate across restarts, so a
// restarted daemon starts from the base clock's known frequency error
// instead of zero. Its format is ntpd's: one line with the frequency in
// ppm; chrony's two-number lines ("freq skew") are read too.

// driftInterval is how often the drift file is rewritten while
// synchronised; driftMinInterval and driftChange let a large change of
// the estimate be written sooner.
const (
	driftInterval    = time.Hour
	driftMinInterval = time.Minute
	driftChange      = 1e-6
)

// readDrift reads a drift file and returns the frequency it holds, as a
// fraction.
func readDrift(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if len(b) > 256 {
		return 0, fmt.Errorf("upstream: drift file %s: %d bytes, want one short line", path, len(b))
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 || len(fields) > 2 {
		return 0, fmt.Errorf("upstream: drift file %s: %q is not a frequency in ppm", path, b)
	}
	ppm, err := strconv.ParseFloat(fields[0], 64)
	if err != nil || math.IsNaN(ppm) || math.Abs(ppm) > maxFreq*1e6 {
		return 0, fmt.Errorf("upstream: drift file %s: %q is not a frequency within ±%g ppm", path, fields[0], maxFreq*1e6)
	}
	return ppm * 1e-6, nil
}

// writeDrift replaces the drift file atomically: the new content goes to
// a temporary file in the same directory, which is synced and renamed
// over the old one, so a crash leaves either the old or the new file.
func writeDrift(path string, freq float64) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("upstream: write drift file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = fmt.Fprintf(f, "%.3f\n", freq*1e6); err != nil {
		return fmt.Errorf("upstream: write drift file %s: %w", f.Name(), err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("upstream: write drift file %s: %w", f.Name(), err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("upstream: write drift file %s: %w", f.Name(), err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("upstream: write drift file %s: %w", f.Name(), err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("upstream: write drift file: %w", err)
	}
	// Make the rename itself durable; not every system can sync a
	// directory, so a failure here is not reported.
	if df, derr := os.Open(dir); derr == nil {
		df.Sync()
		df.Close()
	}
	return nil
}

// loadDrift seeds the frequency from the drift file, if any.
func (d *Discipliner) loadDrift() {
	if d.o.DriftFile == "" {
		return
	}
	freq, err := readDrift(d.o.DriftFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.log.Info("upstream: no drift file yet; frequency starts at 0", "file", d.o.DriftFile)
		return
	case err != nil:
		d.log.Warn("upstream: drift file unusable; frequency starts at 0", "file", d.o.DriftFile, "err", err)
		return
	}
	d.freq = freq
	d.driftWritten = freq
	d.log.Info("upstream: frequency from drift file", "file", d.o.DriftFile, "ppm", freq*1e6)
}

// driftDueLocked reports whether the drift file should be written now, at
// raw time now, and with what frequency. final is set when Run ends.
func (d *Discipliner) driftDueLocked(now time.Duration, final bool) (float64, bool) {
	if d.o.DriftFile == "" || d.updates == 0 {
		// Nothing learned since start: keep what the file says.
		return 0, false
	}
	if final || !d.driftWriteSet {
		return d.freq, final || d.synced
	}
	since := now - d.driftWriteAt
	due := d.synced && (since >= driftInterval || since >= driftMinInterval && math.Abs(d.freq-d.driftWritten) > driftChange)
	return d.freq, due
}

// saveDrift writes the drift file if it is due. It takes the lock itself
// and does the file I/O without it.
func (d *Discipliner) saveDrift(final bool) {
	d.mu.Lock()
	now := d.rawNow()
	freq, due := d.driftDueLocked(now, final)
	if due {
		d.driftWriteAt, d.driftWriteSet, d.driftWritten = now, true, freq
	}
	d.mu.Unlock()
	if !due {
		return
	}
	if err := writeDrift(d.o.DriftFile, freq); err != nil {
		d.log.Warn("upstream: drift file not written", "file", d.o.DriftFile, "err", err)
	}
}

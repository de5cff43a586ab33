package main

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ntpkit/ntpkit/server"
)

// daemon holds the running daemon's parts, for the management API and for
// reloads. serve builds it; the optional parts are nil when not configured,
// and the upstream and policy wiring fills them in (attachUpstream,
// attachMiddleware, applyReloadable) before the API starts.
//
// Everything the API reads is either fixed before the API starts or read
// through atomics and short-lived locks that the NTP hot path never takes:
// the API cannot slow down serving.
type daemon struct {
	logger  *slog.Logger
	started time.Time
	srv     *server.Server
	src     server.Source
	addrs   []string // bound NTP addresses
	apiAddr string   // bound API address, empty when the API is off
	serving atomic.Bool
	cfg     atomic.Pointer[Config] // the configuration in force
	reloads reloadState

	// load re-reads the configuration file for a reload, with the
	// command-line overrides applied; nil when there is no -config file.
	load func() (Config, error)
	// applyReloadable swaps in the reloadable parts of cfg (the sections
	// named in reloadableSections) atomically, or returns an error and
	// changes nothing. Nil: there is nothing to swap.
	applyReloadable func(cfg Config) error
	// synced reports whether the served time is synchronized and, when
	// not, why. Nil: judged from the source's reference data.
	synced func() (bool, string)
	// upstreamStatus returns the "upstream" object of /v1/status.
	upstreamStatus func() any
	// upstreamStats returns the "upstream" object of /v1/stats.
	upstreamStats func() any
	// middlewareStats returns the "middleware" object of /v1/stats.
	middlewareStats func() any
	// kissCodes counts the kiss-o'-death replies sent, by code.
	kissCodes func() map[string]uint64
	// authStats returns the "auth" object of /v1/stats (NTS, NTS-KE and
	// symmetric-key counters). Nil: no authentication configured.
	authStats func() any
	// reloadCerts re-reads TLS certificates (NTS-KE) on a reload; on
	// failure the old ones keep serving. Nil: nothing to re-read.
	reloadCerts func() error
	// metrics write further metric families (upstream, middleware).
	metrics []func(*metricsWriter)
}

// reloadState records the outcome of configuration reloads.
type reloadState struct {
	mu         sync.Mutex
	generation uint64 // 1 for the configuration read at start
	successes  uint64
	failures   uint64
	lastTime   time.Time // last reload attempt
	lastOK     time.Time // last successful reload (or start)
	lastError  string    // last refused reload's reason, cleared on success
}

// reloadSnapshot is a copy of reloadState for reading.
type reloadSnapshot struct {
	Generation uint64     `json:"generation"`
	Successes  uint64     `json:"successes"`
	Failures   uint64     `json:"failures"`
	LastReload *time.Time `json:"last_reload,omitempty"`
	LastOK     time.Time  `json:"last_success"`
	LastError  string     `json:"last_error,omitempty"`
}

func (r *reloadState) snapshot() reloadSnapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := reloadSnapshot{
		Generation: r.generation,
		Successes:  r.successes,
		Failures:   r.failures,
		LastOK:     r.lastOK,
		LastError:  r.lastError,
	}
	if !r.lastTime.IsZero() {
		t := r.lastTime
		s.LastReload = &t
	}
	return s
}

// begin records the configuration read at start as generation 1.
func (r *reloadState) begin(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.generation = 1
	r.lastOK = now
}

func (r *reloadState) record(now time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastTime = now
	if err != nil {
		r.failures++
		r.lastError = err.Error()
		return
	}
	r.successes++
	r.generation++
	r.lastOK = now
	r.lastError = ""
}

// syncState reports whether the daemon serves synchronized time and, when
// not, why.
func (d *daemon) syncState() (bool, string) {
	if d.synced != nil {
		return d.synced()
	}
	ref := d.src.Reference()
	if ref.Synchronized() {
		return true, ""
	}
	return false, fmt.Sprintf("reference not synchronized (leap %s, stratum %d)", ref.Leap, ref.Stratum)
}

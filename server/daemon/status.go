package daemon

import (
	"slices"
	"sync"
	"time"

	"github.com/ntpkit/ntpkit/clock/kernelsync"
	"github.com/ntpkit/ntpkit/internal/buildinfo"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/auth"
	"github.com/ntpkit/ntpkit/server/nts"
	"github.com/ntpkit/ntpkit/upstream"
)

// Status is a snapshot of what the daemon serves and how it got there.
type Status struct {
	// Time is when the snapshot was taken, by the daemon's clock.
	Time time.Time
	// Version is the program's version: the module version of a release,
	// "devel-<revision>[-dirty]" for a build from a checkout, "(devel)"
	// when unknown; GoVersion is the Go version it was built with.
	Version, GoVersion string
	// Started is when the daemon was built (New).
	Started time.Time
	// Serving is true while Run serves NTP requests.
	Serving bool
	// Listen lists the bound NTP addresses; empty before Run.
	Listen []string
	// Listeners are Health's: every listening socket and whether it
	// serves.
	Listeners []Listener
	// Synchronized and SyncReason are Health's.
	Synchronized bool
	SyncReason   string
	// Reference is the reference data replies carry now, and
	// ReferenceTime its reference timestamp on the served timescale
	// (zero when the reference has none).
	Reference     ntpwire.Reference
	ReferenceTime time.Time
	// Reloads records the configuration reloads.
	Reloads ReloadStatus
	// Upstream is the Discipliner's status; nil when the daemon serves
	// the local clock.
	Upstream *upstream.Status
	// Kernel is the kernel's synchronisation state of the system clock;
	// nil when the kernel is not consulted or could not be read, and then
	// KernelError says why.
	Kernel      *kernelsync.State
	KernelError string
}

// ReloadStatus records the outcome of reloads.
type ReloadStatus struct {
	// Generation counts the configurations that have been in force: 1
	// for the one the daemon was built with, plus one per successful
	// reload.
	Generation uint64
	// Successes and Failures count reloads.
	Successes, Failures uint64
	// LastAttempt is when a reload was last tried; zero: never.
	LastAttempt time.Time
	// LastSuccess is when the configuration in force was applied (at
	// New, or the last successful reload).
	LastSuccess time.Time
	// LastError is why the last reload was refused; empty when it
	// succeeded or none was tried.
	LastError string
}

// reloadState records the outcome of reloads.
type reloadState struct {
	mu sync.Mutex
	s  ReloadStatus
}

func (r *reloadState) begin(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.s.Generation = 1
	r.s.LastSuccess = now
}

func (r *reloadState) record(now time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.s.LastAttempt = now
	if err != nil {
		r.s.Failures++
		r.s.LastError = err.Error()
		return
	}
	r.s.Successes++
	r.s.Generation++
	r.s.LastSuccess = now
	r.s.LastError = ""
}

func (r *reloadState) snapshot() ReloadStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.s
}

// Status returns a snapshot of the daemon's state.
func (d *Daemon) Status() Status {
	now := d.clk.Now()
	version, goVersion := buildVersion()
	h := d.Health()
	ref := d.src.Reference()
	var addrs []string
	if p := d.addrs.Load(); p != nil {
		addrs = slices.Clone(*p)
	}
	s := Status{
		Time:         now,
		Version:      version,
		GoVersion:    goVersion,
		Started:      d.started,
		Serving:      h.Serving,
		Listen:       addrs,
		Listeners:    h.Listeners,
		Synchronized: h.Synchronized,
		SyncReason:   h.Reason,
		Reference:    ref,
		Reloads:      d.reload.snapshot(),
	}
	if ref.RefTime != 0 {
		s.ReferenceTime = ref.RefTime.In(now)
	}
	if d.disc != nil {
		st := d.disc.Status()
		s.Upstream = &st
	}
	if k, err := d.kernelState(); err != nil {
		s.KernelError = err.Error()
	} else {
		s.Kernel = &k
	}
	return s
}

// buildVersion returns the program's version (a release's module version,
// or "devel-" and the VCS revision of a build from a checkout; see
// internal/buildinfo) and the Go version.
func buildVersion() (version, goVersion string) {
	in := buildinfo.Read()
	return in.Short(), in.GoVersion
}

// Stats is a snapshot of the daemon's counters. The pointers are nil for
// the parts that are not configured.
type Stats struct {
	// Server counts the NTP server's requests, replies, drops and bytes.
	Server server.Stats
	// Access and RateLimit count the middleware's decisions; the
	// daemon always installs both, so a reload can turn either on.
	Access    *server.AccessStats
	RateLimit *server.RateLimitStats
	// Kisses counts the kiss-o'-death replies the middleware sent, by
	// code (DENY or RSTR from access control, RATE from the rate limit).
	// Server.Kisses less their sum is the KoDs sent by other handlers.
	Kisses map[ntpwire.RefID]uint64
	// Upstream is the Discipliner's status, counters included; nil
	// without upstream servers.
	Upstream *upstream.Status
	// NTS and NTSKE count NTS-authenticated requests and NTS-KE
	// sessions; nil when NTS is off.
	NTS   *nts.Stats
	NTSKE *nts.KEStats
	// MAC counts symmetric-key authenticated requests; nil without keys.
	MAC *auth.Stats
}

// Stats returns a snapshot of the daemon's counters.
func (d *Daemon) Stats() Stats {
	ac, rl := d.guards.ac.Stats(), d.guards.rl.Stats()
	s := Stats{
		Server:    d.srv.Stats(),
		Access:    &ac,
		RateLimit: &rl,
		Kisses: map[ntpwire.RefID]uint64{
			d.guards.ac.Options().KissCode: ac.Kissed,
			ntpwire.KissRate:               rl.Kissed,
		},
	}
	if d.disc != nil {
		st := d.disc.Status()
		s.Upstream = &st
	}
	d.authn.stats(&s)
	return s
}

package upstream

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/ntpkit/ntpkit/clock"
)

// Defaults for Options fields left zero.
const (
	DefaultMinPoll       = 64 * time.Second
	DefaultMaxPoll       = 1024 * time.Second
	DefaultStepThreshold = 128 * time.Millisecond // ntpd's step threshold
	DefaultMaxSlewRate   = 500e-6                 // 500 ppm, as ntpd and the kernel PLL
	DefaultMaxDistance   = 1500 * time.Millisecond
	DefaultPort          = 123
	// DefaultMaxPerName is how many addresses of one name (a pool) are
	// used as sources, like chrony's pool maxsources.
	DefaultMaxPerName = 4
	// DefaultMaxStep is the largest step taken after the first
	// synchronisation (ntpd's panic threshold, 1000 s).
	DefaultMaxStep = 1000 * time.Second
)

// Resolver looks up the addresses of a host name. *net.Resolver
// implements it; tests pass a fake.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// DialFunc opens a UDP connection to address ("ip:port"), as
// net.Dialer.DialContext does.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Options tune a Discipliner. The zero value is a sensible configuration:
// the system clock, polls between 64 and 1024 s with an initial burst, a
// 128 ms step threshold, a 500 ppm slew rate.
type Options struct {
	// Clock is the base clock that is disciplined. Nil means the system
	// clock. The Discipliner never sets it: it serves Clock plus its own
	// correction. Readings with a monotonic component (as time.Now gives)
	// are used on the monotonic timescale, so steps of the system clock do
	// not move the served time.
	Clock clock.Clock
	// MinPoll and MaxPoll bound each source's poll interval. Zero means
	// DefaultMinPoll and DefaultMaxPoll; values under a second are
	// accepted for tests and simulations.
	MinPoll, MaxPoll time.Duration
	// NoIBurst turns off the initial burst of four quick queries per
	// source (spaced min(2s, MinPoll)). With the burst, an
	// unsynchronised clock waits for three samples from a source (or the
	// end of its burst) before synchronising on it; without, it
	// synchronises on the first samples of a majority.
	NoIBurst bool
	// DisableInterleaved turns off interleaved mode. Unless it is set,
	// each request after a usable reply asks the server for
	// interleaved mode (draft-ietf-ntp-interleaved-modes, as chrony
	// serves it, and ntpkit's server): a server that supports it sends
	// in its next reply when its previous reply really left, so the
	// time its send took is no error of the offset, and the sample is
	// of the previous exchange (one poll older). A server that does not
	// answers in basic mode, and its replies are used as they are. On
	// Linux each request's own send time is the kernel's transmit
	// timestamp either way.
	DisableInterleaved bool
	// StepThreshold is the offset beyond which the clock is stepped
	// instead of slewed. Zero means DefaultStepThreshold. The first update
	// after start or after losing synchronisation always steps.
	StepThreshold time.Duration
	// MaxSlewRate bounds how fast an offset is slewed away, as a fraction
	// (500e-6 is 500 ppm). Zero means DefaultMaxSlewRate. At most 0.5.
	MaxSlewRate float64
	// Holdover is how long the clock stays synchronised without a usable
	// update before it reports leap alarm and stratum 16. Zero means four
	// times MaxPoll but at least a minute (about 68 minutes with the
	// default polls), so one lost reply never unsynchronises a server
	// polling slowly.
	Holdover time.Duration
	// MinSources is how many sources must survive selection to update the
	// clock. Zero means 1. Independently of it, a majority of the usable
	// sources must always agree.
	MinSources int
	// MaxDistance is the largest root distance a source may have to be
	// used, checked on every reply (its root delay/2 + root dispersion)
	// and on the source's filtered distance at selection. Zero means
	// DefaultMaxDistance, 1.5 s: ntpd's default (tos maxdist; RFC 5905's
	// MAXDIST is 1 s). chrony's selection limit is 3 s, but a source
	// whose own error bound exceeds 1.5 s cannot help a server whose
	// error is measured in milliseconds: a far-off source is dropped from
	// its first reply, before it can widen the intersection, and a
	// majority of good sources is never that far (the simulation's
	// worst case serves 0.14 s of root dispersion).
	MaxDistance time.Duration
	// MaxPerName is how many addresses of a name that resolves to several
	// become sources. Zero means DefaultMaxPerName.
	MaxPerName int
	// MaxStep is the largest step the Discipliner takes once it has been
	// synchronised (like ntpd's panic threshold and chrony's maxchange):
	// an update that would move the served clock further is refused, the
	// refusal is logged as an error and counted, and the server reports
	// itself unsynchronised until its sources agree with it again. The
	// first synchronisation after start may step any amount, as the base
	// clock may be wrong at boot. Zero means DefaultMaxStep; negative
	// means no limit.
	MaxStep time.Duration
	// LeapSmear, when positive, smears a leap second linearly over a
	// window of this length centred on the leap (Google smears over 24 h,
	// noon to noon) instead of freezing the served time for a second.
	// A smearing server never announces the leap (its replies carry leap
	// indicator 0) and serves time up to half a second away from UTC
	// within the window, so clients must not mix it with unsmeared
	// servers. At least a second.
	LeapSmear time.Duration
	// DriftFile, when set, is where the frequency estimate is kept across
	// restarts (like chrony's driftfile): read at New, written atomically
	// every hour while synchronised, sooner when it moves by over 1 ppm,
	// and when Run returns. A missing or unreadable file is logged and the
	// estimate starts at zero.
	DriftFile string
	// Resolver resolves host names. Nil means net.DefaultResolver.
	Resolver Resolver
	// Dial opens the UDP connection to a source. Nil means
	// (&net.Dialer{}).DialContext.
	Dial DialFunc
	// Rand supplies the random transmit timestamps. Nil means
	// crypto/rand.
	Rand io.Reader
	// Logger receives source and synchronisation events. Nil means none.
	Logger *slog.Logger
}

package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/clock/kernelsync"
	"github.com/ntpkit/ntpkit/internal/listenaddr"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/policy"
	"github.com/ntpkit/ntpkit/ratelimit"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/symkey"
	"github.com/ntpkit/ntpkit/upstream"
)

// Options describe a daemon. The zero value of every field except Listen
// is useful: a daemon with only Listen set serves the system clock at
// stratum 10 to everyone, with no rate limit, no authentication and no
// upstream.
type Options struct {
	// Listen lists the UDP addresses ("ip:port"; port 0 picks one) to
	// serve NTP on. At least one is needed.
	Listen []string
	// Local is the local clock's reference data, served when Upstream
	// has no servers.
	Local Local
	// Tuning tunes the serving sockets.
	Tuning Tuning
	// Access says which clients are answered. Reloadable.
	Access Access
	// RateLimit limits each client and all together, and bounds the
	// kiss-o'-death replies. Reloadable.
	RateLimit RateLimit
	// Upstream lists the NTP servers to synchronize to; none: serve the
	// local clock.
	Upstream Upstream
	// NTS configures Network Time Security (an NTS-KE listener and NTS
	// authentication of NTP requests).
	NTS NTS
	// Keys are symmetric keys: requests MACed with one of them get MACed
	// replies. Nil: no symmetric-key authentication.
	Keys *symkey.Keys
	// Logger receives the daemon's log records. Nil: none.
	Logger *slog.Logger
	// Clock is the local clock served (and the base clock the upstream
	// Discipliner disciplines, unless Upstream.Options.Clock is set). Nil:
	// the system clock.
	Clock clock.Clock
}

// Local is the reference data of the local clock.
type Local struct {
	// Stratum is served in replies (1–15); 0: server.DefaultLocalStratum.
	Stratum uint8
	// RefID is served in replies; zero: server.LocalRefID (127.127.1.1).
	RefID ntpwire.RefID
	// Kernel reads what the kernel knows about the synchronisation of the
	// system clock (see package clock/kernelsync). Nil: kernelsync.System
	// when the system clock is served (Options.Clock nil or
	// clock.System), else the kernel is not consulted. The state shows in Status, drives Health
	// while the local clock is served, and decides what replies say
	// (server.LocalSource.Kernel).
	Kernel kernelsync.Reader
	// WhenUnsynchronized is what replies say while the kernel reports the
	// system clock unsynchronised: the zero value, server.ServeLocalClock,
	// serves it anyway as a local clock at Stratum (Health still reports
	// the daemon unsynchronised); server.AnnounceUnsynchronized answers
	// with leap alarm and stratum 16, which clients do not synchronise to.
	WhenUnsynchronized server.UnsyncPolicy
}

// Tuning tunes the NTP sockets; zero values keep server.Server's defaults.
type Tuning struct {
	// Sockets is the number of SO_REUSEPORT sockets per address; 0: one
	// per CPU.
	Sockets int
	// Workers is the number of reader goroutines per socket; 0: 1.
	Workers int
	// ReadBuffer and WriteBuffer are the sockets' SO_RCVBUF and
	// SO_SNDBUF in bytes; 0: the system default.
	ReadBuffer, WriteBuffer int
	// SendBatch is the most replies sent per system call
	// (server.Server.SendBatch); 0: server.DefaultSendBatch. 1 stamps
	// each reply just before its own send: the most exact transmit
	// times, for fewer replies per CPU-second.
	SendBatch int
	// DisableInterleaved turns interleaved mode off
	// (server.Server.DisableInterleaved); by default clients that ask
	// for it get it.
	DisableInterleaved bool
	// InterleavedTableSize is the number of transmit times kept for
	// interleaved clients (server.Server.InterleavedTableSize), at most
	// server.MaxInterleavedTableSize; 0:
	// server.DefaultInterleavedTableSize.
	InterleavedTableSize int
}

// Access says which clients are answered: the address rules first, then,
// for addresses no address rule matches, the reverse-DNS name rules.
type Access struct {
	// Rules are the address rules (policy.ACL: the most specific
	// matching prefix wins; deny wins for a prefix listed twice).
	Rules []policy.Rule
	// Default is the decision for clients no rule matches (and, with
	// Names, for clients whose name is not known yet).
	Default policy.Action
	// Kiss sends denied clients a kiss-o'-death instead of no reply,
	// within RateLimit.KissPerSecond.
	Kiss bool
	// KissCode is the code sent to denied clients: ntpwire.KissDeny
	// (the zero value means it) or ntpwire.KissRstr.
	KissCode ntpwire.RefID
	// Names, when not nil, holds the rules on clients' reverse-DNS
	// names, looked up in the background while the daemon runs. Its
	// Default and Logger are set by the daemon.
	Names *policy.NameACLConfig
}

// RateLimit configures the per-client and global request limits and the
// budget of kiss-o'-death replies, after chrony's ratelimit directive.
type RateLimit struct {
	// Enabled turns the per-client and global limits on.
	Enabled bool
	// Client is the per-client table (interval, burst, prefix lengths,
	// memory); it is allocated only while Enabled.
	Client ratelimit.Config
	// Leak answers 1 in 2^Leak of a client's over-limit requests anyway
	// (0–31; 0: never).
	Leak uint
	// Kiss sends over-limit clients a kiss-o'-death RATE instead of no
	// reply.
	Kiss bool
	// GlobalPerSecond caps the requests answered per second in total; 0:
	// no cap. GlobalBurst is the cap's burst; 0: one second's worth.
	GlobalPerSecond float64
	GlobalBurst     int
	// KissPerSecond is the reflection budget, per second: the
	// kiss-o'-death replies of Access and RateLimit, the replies Leak
	// lets through and NTS NAKs all draw from it, even when the limits
	// are off, so that spoofed floods cannot turn the server into a
	// reflector. It must be above 0 when either sends KoDs or Leak is on.
	KissPerSecond float64
}

// Upstream configures synchronization to upstream NTP servers.
type Upstream struct {
	// Servers are the upstream servers, with their authentication. None:
	// the daemon serves the local clock.
	Servers []upstream.Source
	// Options tune the Discipliner. A nil Logger is replaced by the
	// daemon's, a nil Clock by Options.Clock.
	Options upstream.Options
}

// NTS configures Network Time Security (RFC 8915).
type NTS struct {
	// Enabled turns NTS on: an NTS-KE listener and NTS authentication of
	// NTP requests on every NTP address.
	Enabled bool
	// Listen is the NTS-KE TCP address; empty: DefaultNTSListen.
	Listen string
	// CertFile and KeyFile are the PEM certificate chain and private key
	// of the KE server; Reload reads them again.
	CertFile, KeyFile string
	// NTPServer is the NTP server name or address given to clients;
	// empty: clients use the KE server's.
	NTPServer string
	// NTPPort is the NTP port given to clients; 0: the port of Listen[0]
	// unless it is 123.
	NTPPort int
	// Seed is the secret (at least nts.MinSeedLen bytes) the cookie
	// master keys are derived from; servers sharing it accept each
	// other's cookies. Nil: a random seed, so cookies end with the
	// process.
	Seed []byte
	// Rotation is how often the master key changes; 0:
	// nts.DefaultRotation.
	Rotation time.Duration
	// MaxSessions bounds concurrent KE sessions; 0: the KEServer's
	// default.
	MaxSessions int
}

// MaxReaders bounds the reader goroutines, Listen addresses × sockets ×
// workers; each has its own batch buffers (about 130 KiB).
const MaxReaders = 1024

// DefaultNTSListen is the NTS-KE address used when NTS.Listen is empty.
const DefaultNTSListen = "127.0.0.1:4460"

// validate checks the options that are not checked by the constructors
// they are handed to.
func (o *Options) validate() error {
	if len(o.Listen) == 0 {
		return errors.New("daemon: Listen: at least one address is needed")
	}
	for i, a := range o.Listen {
		if err := listenaddr.Check(a); err != nil {
			return fmt.Errorf("daemon: Listen[%d] %q: %w", i, a, err)
		}
	}
	if o.Local.WhenUnsynchronized > server.AnnounceUnsynchronized {
		return fmt.Errorf("daemon: Local.WhenUnsynchronized %v is not a known policy", o.Local.WhenUnsynchronized)
	}
	if o.Local.Stratum > 15 {
		return fmt.Errorf("daemon: Local.Stratum %d is outside 1–15", o.Local.Stratum)
	}
	t := o.Tuning
	if t.Sockets < 0 || t.Sockets > 1024 || t.Workers < 0 || t.Workers > 1024 || t.ReadBuffer < 0 || t.WriteBuffer < 0 || t.SendBatch < 0 || t.SendBatch > 1024 {
		return fmt.Errorf("daemon: Tuning %+v: sockets, workers and send batch must be 0–1024, buffers not negative", t)
	}
	if t.InterleavedTableSize < 0 || t.InterleavedTableSize > server.MaxInterleavedTableSize {
		return fmt.Errorf("daemon: Tuning.InterleavedTableSize %d is outside 0–%d", t.InterleavedTableSize, server.MaxInterleavedTableSize)
	}
	sockets := t.Sockets
	if sockets == 0 {
		sockets = runtime.GOMAXPROCS(0)
	}
	if n := len(o.Listen) * sockets * max(1, t.Workers); n > MaxReaders {
		return fmt.Errorf("daemon: Tuning: %d addresses × %d sockets × %d workers make %d readers, more than %d", len(o.Listen), sockets, max(1, t.Workers), n, MaxReaders)
	}
	if o.NTS.Enabled {
		n := o.NTS
		if n.CertFile == "" || n.KeyFile == "" {
			return errors.New("daemon: NTS.CertFile and NTS.KeyFile are required when NTS is enabled")
		}
		if n.Listen != "" {
			if err := listenaddr.Check(n.Listen); err != nil {
				return fmt.Errorf("daemon: NTS.Listen %q: %w", n.Listen, err)
			}
		}
		if n.NTPPort < 0 || n.NTPPort > 65535 || n.MaxSessions < 0 || n.Rotation < 0 {
			return fmt.Errorf("daemon: NTS: port %d, max sessions %d or rotation %v out of range", n.NTPPort, n.MaxSessions, n.Rotation)
		}
	}
	return nil
}

// validate checks the rate-limit settings.
func (r *RateLimit) validate(a *Access) error {
	switch {
	case r.Leak > 31:
		return fmt.Errorf("daemon: RateLimit.Leak %d is outside 0–31", r.Leak)
	case !(r.GlobalPerSecond >= 0) || math.IsInf(r.GlobalPerSecond, 0):
		return fmt.Errorf("daemon: RateLimit.GlobalPerSecond %v must be 0 (no cap) or above", r.GlobalPerSecond)
	case r.GlobalBurst < 0:
		return fmt.Errorf("daemon: RateLimit.GlobalBurst %d is negative", r.GlobalBurst)
	case !(r.KissPerSecond >= 0) || math.IsInf(r.KissPerSecond, 0):
		return fmt.Errorf("daemon: RateLimit.KissPerSecond %v must be 0 or above", r.KissPerSecond)
	case r.KissPerSecond == 0 && (a.Kiss || r.Kiss && r.Enabled):
		return errors.New("daemon: RateLimit.KissPerSecond must be above 0 when Access.Kiss or RateLimit.Kiss is on")
	case r.KissPerSecond == 0 && r.Enabled && r.Leak > 0:
		return errors.New("daemon: RateLimit.KissPerSecond must be above 0 when RateLimit.Leak is on: it bounds leaked replies")
	}
	if r.Enabled {
		if err := r.Client.Validate(); err != nil {
			return fmt.Errorf("daemon: RateLimit.Client: %w", err)
		}
	}
	return nil
}

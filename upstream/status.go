package upstream

import (
	"net/netip"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

// SourceState is what the Discipliner currently makes of a source.
type SourceState uint8

// Source states.
const (
	// StateInit: no usable sample yet.
	StateInit SourceState = iota
	// StateSelected: the system peer, whose stratum and address the
	// reference data carries.
	StateSelected
	// StateCandidate: survived selection and clustering; its samples are
	// combined into the clock estimate.
	StateCandidate
	// StateOutlier: a truechimer dropped by the cluster algorithm.
	StateOutlier
	// StateFalseticker: outside the intersection of the majority.
	StateFalseticker
	// StateUnreachable: no valid reply to the last eight queries, or a
	// root distance beyond MaxDistance.
	StateUnreachable
	// StateKoD: retired after a DENY or RSTR kiss-o'-death.
	StateKoD
)

var stateNames = [...]string{"init", "selected", "candidate", "outlier", "falseticker", "unreachable", "kod"}

// String returns the state's name.
func (s SourceState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Rejects counts replies a source sent that were not used, by reason, and
// queries that got no reply.
type Rejects struct {
	Malformed   uint64 // shorter than a header
	BadOrigin   uint64 // origin timestamp is not our transmit timestamp: late, duplicate or spoofed
	BadMode     uint64 // not a server-mode reply
	BadStratum  uint64 // stratum outside 1–15 (and not a kiss)
	LeapAlarm   uint64 // leap indicator 3: the server is unsynchronised
	BadTime     uint64 // zero receive or transmit timestamp
	BadDistance uint64 // root distance beyond MaxDistance
	KissRate    uint64 // KoD RATE: polling slowed
	KissDeny    uint64 // KoD DENY: source retired
	KissRstr    uint64 // KoD RSTR: source retired
	KissOther   uint64 // another kiss code
	Timeout     uint64 // no valid reply in time
	Auth        uint64 // NTS or MAC source: reply not authenticated (no or bad MAC, crypto-NAK, bad NTS authenticator)
	NTSNAK      uint64 // NTS NAK: cookies refused, NTS-KE run again
	KEFailed    uint64 // NTS-KE sessions that failed
	Loop        uint64 // the source's refid names this host: it is synchronised to us
	Popcorn     uint64 // a valid reply whose offset was a popcorn spike: far from the source's recent samples
}

func (r *Rejects) add(o Rejects) {
	r.Malformed += o.Malformed
	r.BadOrigin += o.BadOrigin
	r.BadMode += o.BadMode
	r.BadStratum += o.BadStratum
	r.LeapAlarm += o.LeapAlarm
	r.BadTime += o.BadTime
	r.BadDistance += o.BadDistance
	r.KissRate += o.KissRate
	r.KissDeny += o.KissDeny
	r.KissRstr += o.KissRstr
	r.KissOther += o.KissOther
	r.Timeout += o.Timeout
	r.Auth += o.Auth
	r.NTSNAK += o.NTSNAK
	r.KEFailed += o.KEFailed
	r.Popcorn += o.Popcorn
	r.Loop += o.Loop
}

// SourceStatus describes one upstream source.
type SourceStatus struct {
	Name    string // as configured: host:port
	Addr    netip.AddrPort
	State   SourceState
	Reach   uint8 // RFC 5905 reachability register: bit 0 is the last query
	Poll    time.Duration
	Stratum uint8
	RefID   ntpwire.RefID
	Leap    ntpwire.Leap
	// LastSample is when the last sample was measured (the middle of
	// its exchange, on the served timescale; an interleaved sample's
	// exchange is the one before the reply that completed it); zero if
	// none.
	LastSample time.Time
	// Offset and Delay are the last sample's; Jitter and RootDistance
	// are the clock filter's.
	Offset       time.Duration
	Delay        time.Duration
	Jitter       time.Duration
	RootDistance time.Duration
	Samples      uint64 // valid replies
	// InterleavedSamples counts the samples that came from interleaved
	// replies; Interleaved says the last sample did.
	InterleavedSamples uint64
	Interleaved        bool
	Rejects            Rejects
}

// Status describes the Discipliner and its sources.
type Status struct {
	// Synchronized is true when the served reference data is trusted
	// (leap is not alarm, stratum 1–15).
	Synchronized bool
	// Stratum, RefID and Leap are what replies carry now.
	Stratum uint8
	RefID   ntpwire.RefID
	Leap    ntpwire.Leap
	// LastUpdate is when the clock was last updated (the reference
	// time); zero before the first.
	LastUpdate time.Time
	// Offset is the estimated error of the served clock still being
	// slewed away (positive: the served clock is behind).
	Offset time.Duration
	// Correction is the served time minus the base clock.
	Correction time.Duration
	// Frequency is the base clock's estimated frequency error, in ppm,
	// which the software clock corrects.
	Frequency float64
	// RootDelay, RootDispersion and RootDistance are the served root
	// values (RootDistance = RootDelay/2 + RootDispersion).
	RootDelay      time.Duration
	RootDispersion time.Duration
	RootDistance   time.Duration
	// Steps counts clock steps, Updates clock updates.
	Steps   uint64
	Updates uint64
	// RefusedSteps counts updates refused because they would have moved
	// the clock beyond Options.MaxStep.
	RefusedSteps uint64
	// LeapSecond is ntpwire.LeapInsert or ntpwire.LeapDelete while a
	// leap second is scheduled, at LeapTime (the midnight UTC that ends
	// its day), smeared over LeapSmear when that is not zero; else
	// ntpwire.LeapNone. Leaps counts leap seconds carried out.
	LeapSecond ntpwire.Leap
	LeapTime   time.Time
	LeapSmear  time.Duration
	Leaps      uint64
	// Unresolved lists configured names that have not yet resolved to a
	// usable address.
	Unresolved []NameStatus
	// Sources lists the sources in the order they were added.
	Sources []SourceStatus
	// Rejects sums the sources' counters.
	Rejects Rejects
}

// NameStatus describes a configured name whose lookups failed.
type NameStatus struct {
	Name      string
	Failures  uint64
	LastError string
}

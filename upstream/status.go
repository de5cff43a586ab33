package upstream

import (
	"net/netip"
	"time"
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

// MarshalText encodes the state as its name (for JSON).
func (s SourceState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Rejects counts replies a source sent that were not used, by reason, and
// queries that got no reply.
type Rejects struct {
	Malformed   uint64 `json:"malformed"`    // shorter than a header
	BadOrigin   uint64 `json:"bad_origin"`   // origin timestamp is not our transmit timestamp: late, duplicate or spoofed
	BadMode     uint64 `json:"bad_mode"`     // not a server-mode reply
	BadStratum  uint64 `json:"bad_stratum"`  // stratum outside 1–15 (and not a kiss)
	LeapAlarm   uint64 `json:"leap_alarm"`   // leap indicator 3: the server is unsynchronised
	BadTime     uint64 `json:"bad_time"`     // zero receive or transmit timestamp
	BadDistance uint64 `json:"bad_distance"` // root distance beyond MaxDistance
	KissRate    uint64 `json:"kiss_rate"`    // KoD RATE: polling slowed
	KissDeny    uint64 `json:"kiss_deny"`    // KoD DENY: source retired
	KissRstr    uint64 `json:"kiss_rstr"`    // KoD RSTR: source retired
	KissOther   uint64 `json:"kiss_other"`   // another kiss code
	Timeout     uint64 `json:"timeout"`      // no valid reply in time
	Auth        uint64 `json:"auth"`         // NTS or MAC source: reply not authenticated (no or bad MAC, crypto-NAK, bad NTS authenticator)
	NTSNAK      uint64 `json:"nts_nak"`      // NTS NAK: cookies refused, NTS-KE run again
	KEFailed    uint64 `json:"ke_failed"`    // NTS-KE sessions that failed
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
}

// SourceStatus describes one upstream source.
type SourceStatus struct {
	Name    string         `json:"name"` // as configured: host:port
	Addr    netip.AddrPort `json:"addr"`
	State   SourceState    `json:"state"`
	Reach   uint8          `json:"reach"` // RFC 5905 reachability register: bit 0 is the last query
	Poll    time.Duration  `json:"poll"`
	Stratum uint8          `json:"stratum"`
	RefID   string         `json:"refid"`
	Leap    string         `json:"leap"`
	// LastSample is when the last valid reply arrived (on the served
	// timescale); zero if none.
	LastSample time.Time `json:"last_sample"`
	// Offset and Delay are the last sample's; Jitter and RootDistance
	// are the clock filter's.
	Offset       time.Duration `json:"offset"`
	Delay        time.Duration `json:"delay"`
	Jitter       time.Duration `json:"jitter"`
	RootDistance time.Duration `json:"root_distance"`
	Samples      uint64        `json:"samples"` // valid replies
	Rejects      Rejects       `json:"rejects"`
}

// Status describes the Discipliner and its sources.
type Status struct {
	// Synchronized is true when the served reference data is trusted
	// (leap is not alarm, stratum 1–15).
	Synchronized bool `json:"synchronized"`
	// Stratum, RefID and Leap are what replies carry now.
	Stratum uint8  `json:"stratum"`
	RefID   string `json:"refid"`
	Leap    string `json:"leap"`
	// LastUpdate is when the clock was last updated (the reference
	// time); zero before the first.
	LastUpdate time.Time `json:"last_update"`
	// Offset is the estimated error of the served clock still being
	// slewed away (positive: the served clock is behind).
	Offset time.Duration `json:"offset"`
	// Correction is the served time minus the base clock.
	Correction time.Duration `json:"correction"`
	// Frequency is the base clock's estimated frequency error, in ppm,
	// which the software clock corrects.
	Frequency float64 `json:"frequency_ppm"`
	// RootDelay, RootDispersion and RootDistance are the served root
	// values (RootDistance = RootDelay/2 + RootDispersion).
	RootDelay      time.Duration `json:"root_delay"`
	RootDispersion time.Duration `json:"root_dispersion"`
	RootDistance   time.Duration `json:"root_distance"`
	// Steps counts clock steps, Updates clock updates.
	Steps   uint64 `json:"steps"`
	Updates uint64 `json:"updates"`
	// RefusedSteps counts updates refused because they would have moved
	// the clock beyond Options.MaxStep.
	RefusedSteps uint64 `json:"refused_steps"`
	// LeapSecond is "insert" or "delete" while a leap second is
	// scheduled, at LeapTime (the midnight UTC that ends its day), smeared
	// over LeapSmear when that is not zero. Leaps counts leap seconds
	// carried out.
	LeapSecond string        `json:"leap_second,omitempty"`
	LeapTime   time.Time     `json:"leap_time,omitzero"`
	LeapSmear  time.Duration `json:"leap_smear,omitempty"`
	Leaps      uint64        `json:"leaps"`
	// Unresolved lists configured names that have not yet resolved to a
	// usable address.
	Unresolved []NameStatus `json:"unresolved,omitempty"`
	// Sources lists the sources in the order they were added.
	Sources []SourceStatus `json:"sources"`
	// Rejects sums the sources' counters.
	Rejects Rejects `json:"rejects"`
}

// NameStatus describes a configured name whose lookups failed.
type NameStatus struct {
	Name      string `json:"name"`
	Failures  uint64 `json:"failures"`
	LastError string `json:"last_error"`
}

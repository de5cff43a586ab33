package ops

import (
	"net/netip"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/metrics"
	"github.com/ntpkit/ntpkit/upstream"
)

// Status is the body of GET /v1/status.
type Status struct {
	Version       string     `json:"version"`               // main module version, "(devel)" when unknown
	GoVersion     string     `json:"go_version"`            // Go version the binary was built with
	Started       time.Time  `json:"started"`               // when the daemon was built
	UptimeSeconds float64    `json:"uptime_seconds"`        // seconds since Started
	Serving       bool       `json:"serving"`               // true while NTP requests are served
	Listen        []string   `json:"listen"`                // bound NTP addresses
	Listeners     []Listener `json:"listeners"`             // every listening socket and whether it serves
	APIListen     string     `json:"api_listen"`            // address of this API, when known
	Synchronized  bool       `json:"synchronized"`          // the served time is synchronized
	SyncReason    string     `json:"sync_reason,omitempty"` // why not, when not
	Reference     Reference  `json:"reference"`             // the reference data replies carry
	Config        Reloads    `json:"config"`                // configuration reloads
	Upstream      *Upstream  `json:"upstream,omitempty"`    // the Discipliner; absent when serving the local clock
	Kernel        Kernel     `json:"kernel"`                // the kernel's synchronisation state of the system clock
}

// Kernel is the "kernel" object of /v1/status: what the kernel knows about
// the synchronisation of the system clock (adjtimex on Linux). Known is
// false, with Error saying why, when the kernel is not consulted (a clock
// other than the system clock) or the platform cannot tell.
type Kernel struct {
	Known                 bool    `json:"known"`
	Error                 string  `json:"error,omitempty"`
	Synchronized          bool    `json:"synchronized"`            // STA_UNSYNC clear and not TIME_ERROR
	ClockState            string  `json:"clock_state,omitempty"`   // TIME_OK, TIME_ERROR, ...
	Status                uint32  `json:"status"`                  // STA_* bits
	MaxErrorSeconds       float64 `json:"max_error_seconds"`       // maximum error bound; 16: unknown
	EstimatedErrorSeconds float64 `json:"estimated_error_seconds"` // estimated error
	OffsetSeconds         float64 `json:"offset_seconds"`          // phase offset still being slewed
	FrequencyPPM          float64 `json:"frequency_ppm"`           // frequency correction
	TAIOffsetSeconds      int     `json:"tai_offset_seconds"`      // TAI−UTC when set
}

// Listener is one listening socket of the daemon.
type Listener struct {
	Kind    string `json:"kind"`            // "ntp" or "nts-ke"
	Addr    string `json:"addr"`            // bound address
	Serving bool   `json:"serving"`         // reading requests or accepting connections
	Error   string `json:"error,omitempty"` // why not, or the last temporary accept error
}

// Reference is the reference data the daemon serves.
type Reference struct {
	Leap                  string    `json:"leap"`                    // "none", "insert", "delete" or "alarm"
	Stratum               uint8     `json:"stratum"`                 // 1–15; 16: unsynchronized
	RefID                 string    `json:"refid"`                   // ASCII code, or the upstream's address
	ReferenceTime         time.Time `json:"reference_time"`          // when the reference was last set
	RootDelaySeconds      float64   `json:"root_delay_seconds"`      // root delay
	RootDispersionSeconds float64   `json:"root_dispersion_seconds"` // root dispersion
	Precision             int8      `json:"precision"`               // log2 seconds
	PrecisionSeconds      float64   `json:"precision_seconds"`       // the same in seconds
}

// Reloads is the "config" object of /v1/status: the configuration
// reloads.
type Reloads struct {
	Generation  uint64     `json:"generation"`            // 1 at start, +1 per successful reload
	Successes   uint64     `json:"successes"`             // successful reloads
	Failures    uint64     `json:"failures"`              // refused reloads
	LastReload  *time.Time `json:"last_reload,omitempty"` // last attempt; absent: none
	LastSuccess time.Time  `json:"last_success"`          // when the configuration in force was applied
	LastError   string     `json:"last_error,omitempty"`  // why the last reload was refused
}

// Upstream is the "upstream" object of /v1/status: the Discipliner's
// state and its sources. Its fields are upstream.Status's, durations as
// seconds (the _seconds fields) and absent times left out.
type Upstream struct {
	Synchronized          bool             `json:"synchronized"`
	Stratum               uint8            `json:"stratum"`
	RefID                 string           `json:"refid"`
	Leap                  string           `json:"leap"`
	LastUpdate            *time.Time       `json:"last_update,omitempty"`
	OffsetSeconds         float64          `json:"offset_seconds"`
	CorrectionSeconds     float64          `json:"correction_seconds"`
	FrequencyPPM          float64          `json:"frequency_ppm"`
	RootDelaySeconds      float64          `json:"root_delay_seconds"`
	RootDispersionSeconds float64          `json:"root_dispersion_seconds"`
	RootDistanceSeconds   float64          `json:"root_distance_seconds"`
	Steps                 uint64           `json:"steps"`
	Updates               uint64           `json:"updates"`
	RefusedSteps          uint64           `json:"refused_steps"`
	LeapSecond            string           `json:"leap_second,omitempty"`
	LeapTime              *time.Time       `json:"leap_time,omitempty"`
	LeapSmearSeconds      float64          `json:"leap_smear_seconds,omitempty"`
	Leaps                 uint64           `json:"leaps"`
	Unresolved            []UnresolvedName `json:"unresolved,omitempty"`
	Sources               []UpstreamSource `json:"sources"`
	Rejects               Rejects          `json:"rejects"`
}

// UnresolvedName is a configured upstream name whose lookups failed.
type UnresolvedName struct {
	Name      string `json:"name"`
	Failures  uint64 `json:"failures"`
	LastError string `json:"last_error"`
}

// UpstreamSource is one upstream source in /v1/status. Its fields are
// upstream.SourceStatus's, durations as seconds.
type UpstreamSource struct {
	Name                string     `json:"name"`
	Addr                string     `json:"addr"`
	State               string     `json:"state"`
	Reach               uint8      `json:"reach"`
	PollSeconds         float64    `json:"poll_seconds"`
	Stratum             uint8      `json:"stratum"`
	RefID               string     `json:"refid"`
	Leap                string     `json:"leap"`
	LastSample          *time.Time `json:"last_sample,omitempty"`
	OffsetSeconds       float64    `json:"offset_seconds"`
	DelaySeconds        float64    `json:"delay_seconds"`
	JitterSeconds       float64    `json:"jitter_seconds"`
	RootDistanceSeconds float64    `json:"root_distance_seconds"`
	Samples             uint64     `json:"samples"`
	InterleavedSamples  uint64     `json:"interleaved_samples"`
	Interleaved         bool       `json:"interleaved"`
	Rejects             Rejects    `json:"rejects"`
}

// Rejects counts an upstream source's replies that were not used, by
// reason, and its queries that got no reply: upstream.Rejects, field for
// field.
type Rejects struct {
	Malformed   uint64 `json:"malformed"`
	BadOrigin   uint64 `json:"bad_origin"`
	BadMode     uint64 `json:"bad_mode"`
	BadStratum  uint64 `json:"bad_stratum"`
	LeapAlarm   uint64 `json:"leap_alarm"`
	BadTime     uint64 `json:"bad_time"`
	BadDistance uint64 `json:"bad_distance"`
	KissRate    uint64 `json:"kiss_rate"`
	KissDeny    uint64 `json:"kiss_deny"`
	KissRstr    uint64 `json:"kiss_rstr"`
	KissOther   uint64 `json:"kiss_other"`
	Timeout     uint64 `json:"timeout"`
	Auth        uint64 `json:"auth"`
	NTSNAK      uint64 `json:"nts_nak"`
	KEFailed    uint64 `json:"ke_failed"`
	Loop        uint64 `json:"loop"`
	Popcorn     uint64 `json:"popcorn"`
}

// StatusOf returns the JSON form of st; apiAddr is reported as
// api_listen.
func StatusOf(st daemon.Status, apiAddr string) Status {
	s := Status{
		Version:       st.Version,
		GoVersion:     st.GoVersion,
		Started:       st.Started.UTC(),
		UptimeSeconds: st.Time.Sub(st.Started).Seconds(),
		Serving:       st.Serving,
		Listen:        st.Listen,
		APIListen:     apiAddr,
		Synchronized:  st.Synchronized,
		SyncReason:    st.SyncReason,
		Reference:     referenceOf(st.Reference, st.ReferenceTime),
		Config: Reloads{
			Generation:  st.Reloads.Generation,
			Successes:   st.Reloads.Successes,
			Failures:    st.Reloads.Failures,
			LastReload:  timePtr(st.Reloads.LastAttempt),
			LastSuccess: st.Reloads.LastSuccess.UTC(),
			LastError:   st.Reloads.LastError,
		},
	}
	if s.Listen == nil {
		s.Listen = []string{}
	}
	s.Listeners = []Listener{}
	for _, l := range st.Listeners {
		s.Listeners = append(s.Listeners, Listener{Kind: l.Kind, Addr: l.Addr, Serving: l.Serving, Error: l.Err})
	}
	if st.Upstream != nil {
		s.Upstream = upstreamOf(st.Upstream)
	}
	if k := st.Kernel; k != nil {
		s.Kernel = Kernel{
			Known: true, Synchronized: k.Synchronized, ClockState: k.ClockState.String(), Status: k.Status,
			MaxErrorSeconds: k.MaxError.Seconds(), EstimatedErrorSeconds: k.EstError.Seconds(),
			OffsetSeconds: k.Offset.Seconds(), FrequencyPPM: k.FrequencyPPM, TAIOffsetSeconds: k.TAIOffset,
		}
	} else {
		s.Kernel = Kernel{Error: st.KernelError}
	}
	return s
}

// refidString shows a reference ID as its ASCII code at stratum 0 and 1,
// and as the upstream's address (or its hash) above.
func refidString(id ntpwire.RefID, stratum uint8) string {
	if stratum > 1 && stratum < ntpwire.MaxStratum {
		return id.Addr().String()
	}
	return id.String()
}

func referenceOf(ref ntpwire.Reference, refTime time.Time) Reference {
	j := Reference{
		Leap:                  ref.Leap.String(),
		Stratum:               ref.Stratum,
		RefID:                 refidString(ref.RefID, ref.Stratum),
		RootDelaySeconds:      ref.RootDelay.Seconds(),
		RootDispersionSeconds: ref.RootDispersion.Seconds(),
		Precision:             ref.Precision,
		PrecisionSeconds:      ntpwire.LogToDuration(ref.Precision).Seconds(),
	}
	if !refTime.IsZero() {
		j.ReferenceTime = refTime.UTC()
	}
	return j
}

// timePtr returns t in UTC, or nil when t is zero.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func addrString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func upstreamOf(st *upstream.Status) *Upstream {
	u := &Upstream{
		Synchronized:          st.Synchronized,
		Stratum:               st.Stratum,
		RefID:                 refidString(st.RefID, st.Stratum),
		Leap:                  st.Leap.String(),
		LastUpdate:            timePtr(st.LastUpdate),
		OffsetSeconds:         st.Offset.Seconds(),
		CorrectionSeconds:     st.Correction.Seconds(),
		FrequencyPPM:          st.Frequency,
		RootDelaySeconds:      st.RootDelay.Seconds(),
		RootDispersionSeconds: st.RootDispersion.Seconds(),
		RootDistanceSeconds:   st.RootDistance.Seconds(),
		Steps:                 st.Steps,
		Updates:               st.Updates,
		RefusedSteps:          st.RefusedSteps,
		LeapTime:              timePtr(st.LeapTime),
		LeapSmearSeconds:      st.LeapSmear.Seconds(),
		Leaps:                 st.Leaps,
		Sources:               []UpstreamSource{},
		Rejects:               rejectsOf(st.Rejects),
	}
	if st.LeapSecond != ntpwire.LeapNone {
		u.LeapSecond = st.LeapSecond.String()
	}
	for _, n := range st.Unresolved {
		u.Unresolved = append(u.Unresolved, UnresolvedName{Name: n.Name, Failures: n.Failures, LastError: n.LastError})
	}
	for _, s := range st.Sources {
		u.Sources = append(u.Sources, UpstreamSource{
			Name:                s.Name,
			Addr:                addrString(s.Addr),
			State:               s.State.String(),
			Reach:               s.Reach,
			PollSeconds:         s.Poll.Seconds(),
			Stratum:             s.Stratum,
			RefID:               refidString(s.RefID, s.Stratum),
			Leap:                s.Leap.String(),
			LastSample:          timePtr(s.LastSample),
			OffsetSeconds:       s.Offset.Seconds(),
			DelaySeconds:        s.Delay.Seconds(),
			JitterSeconds:       s.Jitter.Seconds(),
			RootDistanceSeconds: s.RootDistance.Seconds(),
			Samples:             s.Samples,
			InterleavedSamples:  s.InterleavedSamples,
			Interleaved:         s.Interleaved,
			Rejects:             rejectsOf(s.Rejects),
		})
	}
	return u
}

func rejectsOf(r upstream.Rejects) Rejects {
	return Rejects{
		Malformed: r.Malformed, BadOrigin: r.BadOrigin, BadMode: r.BadMode, BadStratum: r.BadStratum,
		LeapAlarm: r.LeapAlarm, BadTime: r.BadTime, BadDistance: r.BadDistance,
		KissRate: r.KissRate, KissDeny: r.KissDeny, KissRstr: r.KissRstr, KissOther: r.KissOther,
		Timeout: r.Timeout, Auth: r.Auth, NTSNAK: r.NTSNAK, KEFailed: r.KEFailed,
		Loop: r.Loop, Popcorn: r.Popcorn,
	}
}

// Stats is the body of GET /v1/stats.
type Stats struct {
	Server     ServerStats    `json:"server"`
	Middleware *Middleware    `json:"middleware,omitempty"`
	Upstream   *UpstreamStats `json:"upstream,omitempty"`
	Auth       *Auth          `json:"auth,omitempty"`
}

// ServerStats is the NTP server's counters (server.Stats; Requests is its
// Received, Dropped its DropStats by reason).
type ServerStats struct {
	Requests      uint64 `json:"requests"`
	Replies       uint64 `json:"replies"`
	Kisses        uint64 `json:"kisses"`
	BytesReceived uint64 `json:"bytes_received"`
	BytesSent     uint64 `json:"bytes_sent"`
	// Interleaved and KernelTxStamps are server.Stats' Interleaved and
	// KernelTxStamps.
	Interleaved    uint64            `json:"interleaved"`
	KernelTxStamps uint64            `json:"kernel_tx_timestamps"`
	Dropped        map[string]uint64 `json:"dropped"`
	DroppedTotal   uint64            `json:"dropped_total"`
}

// Middleware is the "middleware" object of /v1/stats.
type Middleware struct {
	Access    *AccessStats    `json:"access,omitempty"`
	RateLimit *RateLimitStats `json:"rate_limit,omitempty"`
}

// AccessStats is server.AccessStats.
type AccessStats struct {
	Allowed     uint64 `json:"allowed"`
	DeniedAddr  uint64 `json:"denied_addr"`
	DeniedName  uint64 `json:"denied_name"`
	Kissed      uint64 `json:"kissed"`
	Dropped     uint64 `json:"dropped"`
	KissLimited uint64 `json:"kiss_limited"`
}

// RateLimitStats is server.RateLimitStats.
type RateLimitStats struct {
	Allowed       uint64 `json:"allowed"`
	Leaked        uint64 `json:"leaked"`
	Limited       uint64 `json:"limited"`
	LimitedGlobal uint64 `json:"limited_global"`
	Kissed        uint64 `json:"kissed"`
	Dropped       uint64 `json:"dropped"`
	KissLimited   uint64 `json:"kiss_limited"`
	LeakLimited   uint64 `json:"leak_limited"`
}

// UpstreamStats is the "upstream" object of /v1/stats: per source, valid
// replies (successes) and unusable or missing ones (failures).
type UpstreamStats struct {
	Updates  uint64                `json:"updates"`
	Steps    uint64                `json:"steps"`
	Rejects  Rejects               `json:"rejects"`
	Failures uint64                `json:"failures"`
	Sources  []UpstreamSourceStats `json:"sources"`
}

// UpstreamSourceStats is one source's counters.
type UpstreamSourceStats struct {
	Name      string  `json:"name"`
	Successes uint64  `json:"successes"`
	Failures  uint64  `json:"failures"`
	Rejects   Rejects `json:"rejects"`
}

// Auth is the "auth" object of /v1/stats.
type Auth struct {
	NTS *NTSStats   `json:"nts,omitempty"`
	KE  *NTSKEStats `json:"nts_ke,omitempty"`
	MAC *MACStats   `json:"mac,omitempty"`
}

// NTSStats is nts.Stats.
type NTSStats struct {
	Requests      uint64 `json:"requests"`
	Authenticated uint64 `json:"authenticated"`
	NAKs          uint64 `json:"naks"`
	AuthFailures  uint64 `json:"auth_failures"`
	Malformed     uint64 `json:"malformed"`
	Cookies       uint64 `json:"cookies"`
	NAKLimited    uint64 `json:"nak_limited"`
}

// NTSKEStats is nts.KEStats.
type NTSKEStats struct {
	Sessions        uint64 `json:"sessions"`
	Served          uint64 `json:"served"`
	HandshakeErrors uint64 `json:"handshake_errors"`
	RequestErrors   uint64 `json:"request_errors"`
	Unsupported     uint64 `json:"unsupported"`
	InternalErrors  uint64 `json:"internal_errors"`
	RateLimited     uint64 `json:"rate_limited"`
	SourceBusy      uint64 `json:"source_busy"`
	AcceptErrors    uint64 `json:"accept_errors"`
}

// MACStats is auth.Stats.
type MACStats struct {
	Requests      uint64 `json:"requests"`
	Authenticated uint64 `json:"authenticated"`
	UnknownKey    uint64 `json:"unknown_key"`
	BadMAC        uint64 `json:"bad_mac"`
	CryptoNAKs    uint64 `json:"crypto_naks"`
}

// StatsOf returns the JSON form of s.
func StatsOf(s daemon.Stats) Stats {
	st := s.Server
	j := Stats{Server: ServerStats{
		Requests:       st.Received,
		Replies:        st.Replies,
		Kisses:         st.Kisses,
		BytesReceived:  st.BytesReceived,
		BytesSent:      st.BytesSent,
		Interleaved:    st.Interleaved,
		KernelTxStamps: st.KernelTxStamps,
		Dropped:        make(map[string]uint64),
		DroppedTotal:   st.Dropped.Total(),
	}}
	for _, r := range metrics.DropReasons(st.Dropped) {
		j.Server.Dropped[r.Reason] = r.N
	}
	if s.Access != nil || s.RateLimit != nil {
		j.Middleware = &Middleware{}
		if a := s.Access; a != nil {
			j.Middleware.Access = &AccessStats{a.Allowed, a.DeniedAddr, a.DeniedName, a.Kissed, a.Dropped, a.KissLimited}
		}
		if r := s.RateLimit; r != nil {
			j.Middleware.RateLimit = &RateLimitStats{r.Allowed, r.Leaked, r.Limited, r.LimitedGlobal, r.Kissed, r.Dropped, r.KissLimited, r.LeakLimited}
		}
	}
	if u := s.Upstream; u != nil {
		j.Upstream = &UpstreamStats{Updates: u.Updates, Steps: u.Steps, Rejects: rejectsOf(u.Rejects), Failures: failures(u.Rejects), Sources: []UpstreamSourceStats{}}
		for _, src := range u.Sources {
			j.Upstream.Sources = append(j.Upstream.Sources, UpstreamSourceStats{
				Name: src.Name, Successes: src.Samples, Failures: failures(src.Rejects), Rejects: rejectsOf(src.Rejects),
			})
		}
	}
	if s.NTS != nil || s.NTSKE != nil || s.MAC != nil {
		j.Auth = &Auth{}
		if n := s.NTS; n != nil {
			j.Auth.NTS = &NTSStats{n.Requests, n.Authenticated, n.NAKs, n.AuthFailures, n.Malformed, n.Cookies, n.NAKLimited}
		}
		if k := s.NTSKE; k != nil {
			j.Auth.KE = &NTSKEStats{k.Sessions, k.Served, k.HandshakeErrors, k.RequestErrors, k.Unsupported, k.InternalErrors, k.RateLimited, k.SourceBusy, k.AcceptErrors}
		}
		if m := s.MAC; m != nil {
			j.Auth.MAC = &MACStats{m.Requests, m.Authenticated, m.UnknownKey, m.BadMAC, m.CryptoNAKs}
		}
	}
	return j
}

// failures sums the reasons a query gave no usable sample.
func failures(r upstream.Rejects) uint64 {
	var n uint64
	for _, c := range metrics.RejectReasons(r) {
		n += c.N
	}
	return n
}

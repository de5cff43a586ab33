package main

import (
	"net/netip"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/upstream"
)

// The JSON shapes of upstream.Status and upstream.Rejects in the
// management API. The library types carry no JSON tags; these keep the
// daemon's documented field names.

type rejectsJSON struct {
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
}

func rejectsToJSON(r upstream.Rejects) rejectsJSON { return rejectsJSON(r) }

type sourceStatusJSON struct {
	Name         string         `json:"name"`
	Addr         netip.AddrPort `json:"addr"`
	State        string         `json:"state"`
	Reach        uint8          `json:"reach"`
	Poll         time.Duration  `json:"poll"`
	Stratum      uint8          `json:"stratum"`
	RefID        string         `json:"refid"`
	Leap         string         `json:"leap"`
	LastSample   time.Time      `json:"last_sample"`
	Offset       time.Duration  `json:"offset"`
	Delay        time.Duration  `json:"delay"`
	Jitter       time.Duration  `json:"jitter"`
	RootDistance time.Duration  `json:"root_distance"`
	Samples      uint64         `json:"samples"`
	Rejects      rejectsJSON    `json:"rejects"`
}

type nameStatusJSON struct {
	Name      string `json:"name"`
	Failures  uint64 `json:"failures"`
	LastError string `json:"last_error"`
}

type upstreamStatusJSON struct {
	Synchronized   bool               `json:"synchronized"`
	Stratum        uint8              `json:"stratum"`
	RefID          string             `json:"refid"`
	Leap           string             `json:"leap"`
	LastUpdate     time.Time          `json:"last_update"`
	Offset         time.Duration      `json:"offset"`
	Correction     time.Duration      `json:"correction"`
	Frequency      float64            `json:"frequency_ppm"`
	RootDelay      time.Duration      `json:"root_delay"`
	RootDispersion time.Duration      `json:"root_dispersion"`
	RootDistance   time.Duration      `json:"root_distance"`
	Steps          uint64             `json:"steps"`
	Updates        uint64             `json:"updates"`
	RefusedSteps   uint64             `json:"refused_steps"`
	LeapSecond     string             `json:"leap_second,omitempty"`
	LeapTime       time.Time          `json:"leap_time,omitzero"`
	LeapSmear      time.Duration      `json:"leap_smear,omitempty"`
	Leaps          uint64             `json:"leaps"`
	Unresolved     []nameStatusJSON   `json:"unresolved,omitempty"`
	Sources        []sourceStatusJSON `json:"sources"`
	Rejects        rejectsJSON        `json:"rejects"`
}

func upstreamStatusToJSON(st upstream.Status) upstreamStatusJSON {
	j := upstreamStatusJSON{
		Synchronized: st.Synchronized, Stratum: st.Stratum, RefID: st.RefID.String(), Leap: st.Leap.String(),
		LastUpdate: st.LastUpdate, Offset: st.Offset, Correction: st.Correction, Frequency: st.Frequency,
		RootDelay: st.RootDelay, RootDispersion: st.RootDispersion, RootDistance: st.RootDistance,
		Steps: st.Steps, Updates: st.Updates, RefusedSteps: st.RefusedSteps,
		LeapTime: st.LeapTime, LeapSmear: st.LeapSmear, Leaps: st.Leaps,
		Sources: []sourceStatusJSON{}, Rejects: rejectsToJSON(st.Rejects),
	}
	if st.LeapSecond != ntpwire.LeapNone {
		j.LeapSecond = st.LeapSecond.String()
	}
	for _, n := range st.Unresolved {
		j.Unresolved = append(j.Unresolved, nameStatusJSON(n))
	}
	for _, s := range st.Sources {
		j.Sources = append(j.Sources, sourceStatusJSON{
			Name: s.Name, Addr: s.Addr, State: s.State.String(), Reach: s.Reach, Poll: s.Poll,
			Stratum: s.Stratum, RefID: s.RefID.String(), Leap: s.Leap.String(), LastSample: s.LastSample,
			Offset: s.Offset, Delay: s.Delay, Jitter: s.Jitter, RootDistance: s.RootDistance,
			Samples: s.Samples, Rejects: rejectsToJSON(s.Rejects),
		})
	}
	return j
}

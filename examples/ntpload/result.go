package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/ntpkit/ntpkit/ntpwire"
)

// Reasons a reply is invalid.
const (
	badShort      = iota // shorter than an NTP header
	badMode              // not mode 4
	badOrigin            // origin timestamp matches no request sent
	badT3BeforeT2        // transmit timestamp before receive timestamp
	badLate              // the reply to a request already counted lost (after -timeout)
	badDuplicate         // a second reply to an answered request
	badAuth              // NTS: no echoed Unique Identifier or a failed authenticator
	numBad
)

var badNames = [numBad]string{"short", "bad_mode", "origin_mismatch", "t3_before_t2", "late", "duplicate", "nts_auth"}

// result is one loader's tally; results are merged at the end.
type result struct {
	sent, replies, valid, lost uint64
	sendErrors, recvErrors     uint64
	invalid                    [numBad]uint64
	kod                        map[ntpwire.RefID]uint64
	rtt, proc, offset          hist
	sendNanos                  int64

	// interleaved mode
	basicReplies, xleaveReplies uint64
	fallbacks                   uint64 // basic replies to requests in interleaved form
	offBasic, offXleave         hist   // offsets of basic and of interleaved replies
	stampMissing                uint64 // valid replies whose exchange had no kernel transmit stamp
	stampStray                  uint64 // kernel transmit stamps matching no request
	stampResets                 uint64
}

func (r *result) init() { r.kod = make(map[ntpwire.RefID]uint64) }

func (r *result) merge(o *result) {
	r.sent += o.sent
	r.replies += o.replies
	r.valid += o.valid
	r.lost += o.lost
	r.sendErrors += o.sendErrors
	r.recvErrors += o.recvErrors
	for i := range r.invalid {
		r.invalid[i] += o.invalid[i]
	}
	for k, v := range o.kod {
		r.kod[k] += v
	}
	r.rtt.merge(&o.rtt)
	r.proc.merge(&o.proc)
	r.offset.merge(&o.offset)
	r.basicReplies += o.basicReplies
	r.fallbacks += o.fallbacks
	r.xleaveReplies += o.xleaveReplies
	r.offBasic.merge(&o.offBasic)
	r.offXleave.merge(&o.offXleave)
	r.stampMissing += o.stampMissing
	r.stampStray += o.stampStray
	r.stampResets += o.stampResets
	r.sendNanos = max(r.sendNanos, o.sendNanos)
}

// Report is ntpload's output; -json prints it as is.
type Report struct {
	Target      string            `json:"target"`
	Sockets     int               `json:"sockets"`
	Rate        float64           `json:"offered_rate"` // requests/s asked for; 0: as fast as possible
	Seconds     float64           `json:"seconds"`
	Sent        uint64            `json:"sent"`
	Replies     uint64            `json:"replies"`
	Valid       uint64            `json:"valid"`
	Invalid     map[string]uint64 `json:"invalid"`
	KoD         map[string]uint64 `json:"kod"`
	Lost        uint64            `json:"lost"`
	LossPercent float64           `json:"loss_percent"`
	SendErrors  uint64            `json:"send_errors"`
	RecvErrors  uint64            `json:"recv_errors"`
	SentPerSec  float64           `json:"sent_per_s"`
	RepliesPerS float64           `json:"replies_per_s"`
	RTT         Percentiles       `json:"rtt_us"`         // round trip less server time
	Proc        Percentiles       `json:"server_time_us"` // T3-T2
	Offset      Percentiles       `json:"offset_us"`      // ((T2-T1)+(T3-T4))/2
	AbsOffset   Percentiles       `json:"abs_offset_us"`  // |offset|
	// Interleaved holds the -interleaved figures; nil without it.
	Interleaved *Interleaved `json:"interleaved,omitempty"`
	// Notes explain what the figures say about the run, such as a
	// server's rate limit answering most of it.
	Notes []string `json:"notes,omitempty"`
}

// Interleaved splits the valid replies of an -interleaved run by how the
// server answered. Offsets of both classes use kernel stamps for T1 and
// T4; they differ in T3: a basic reply carries the time the server wrote
// before sending, an interleaved one the previous reply's actual
// transmit time.
type Interleaved struct {
	BasicReplies       uint64  `json:"basic_replies"`
	InterleavedReplies uint64  `json:"interleaved_replies"`
	InterleavedPercent float64 `json:"interleaved_percent"` // of valid replies
	// BasicFallbacks counts the basic replies to requests that quoted
	// an earlier reply: the server did not (or no longer) hold its
	// transmit time. The other basic replies answer requests that had
	// nothing to quote (each socket's first, and a burst's).
	BasicFallbacks     uint64      `json:"basic_fallbacks"`
	AbsOffsetBasic     Percentiles `json:"abs_offset_basic_us"`
	AbsOffsetXleave    Percentiles `json:"abs_offset_interleaved_us"`
	BasicSamples       uint64      `json:"basic_samples"`       // replies with an offset (kernel T1 known)
	InterleavedSamples uint64      `json:"interleaved_samples"` // the same for interleaved replies
	// TxStampsMissing counts valid replies left without an offset
	// because the kernel transmit stamp of their exchange's request
	// never arrived; TxStampsStray counts stamps that matched no request.
	TxStampsMissing uint64 `json:"tx_stamps_missing"`
	TxStampsStray   uint64 `json:"tx_stamps_stray"`
	StampResets     uint64 `json:"stamp_id_resets"` // after failed or partial sends
}

// Percentiles are in microseconds.
type Percentiles struct {
	P1   float64 `json:"p1"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99.9"`
}

func percentiles(h *hist, abs bool) Percentiles {
	q := h.quantile
	if abs {
		q = h.absQuantile
	}
	us := func(f float64) float64 { return float64(int64(f)) / 1e3 }
	return Percentiles{P1: us(q(0.01)), P50: us(q(0.5)), P90: us(q(0.9)), P99: us(q(0.99)), P999: us(q(0.999))}
}

func (r *result) report(cfg *config) Report {
	secs := float64(r.sendNanos) / 1e9
	rep := Report{
		Target:     cfg.target.String(),
		Sockets:    cfg.sockets,
		Rate:       cfg.rate,
		Seconds:    secs,
		Sent:       r.sent,
		Replies:    r.replies,
		Valid:      r.valid,
		Invalid:    map[string]uint64{},
		KoD:        map[string]uint64{},
		Lost:       r.lost,
		SendErrors: r.sendErrors,
		RecvErrors: r.recvErrors,
		RTT:        percentiles(&r.rtt, false),
		Proc:       percentiles(&r.proc, false),
		Offset:     percentiles(&r.offset, false),
		AbsOffset:  percentiles(&r.offset, true),
	}
	if cfg.interleaved {
		x := &Interleaved{
			BasicReplies:       r.basicReplies,
			InterleavedReplies: r.xleaveReplies,
			BasicFallbacks:     r.fallbacks,
			AbsOffsetBasic:     percentiles(&r.offBasic, true),
			AbsOffsetXleave:    percentiles(&r.offXleave, true),
			BasicSamples:       r.offBasic.n,
			InterleavedSamples: r.offXleave.n,
			TxStampsMissing:    r.stampMissing,
			TxStampsStray:      r.stampStray,
			StampResets:        r.stampResets,
		}
		if r.valid > 0 {
			x.InterleavedPercent = 100 * float64(r.xleaveReplies) / float64(r.valid)
		}
		rep.Interleaved = x
	}
	for i, n := range r.invalid {
		if n > 0 {
			rep.Invalid[badNames[i]] = n
		}
	}
	for k, v := range r.kod {
		rep.KoD[k.String()] = v
	}
	if r.sent > 0 {
		rep.LossPercent = 100 * float64(r.lost) / float64(r.sent)
	}
	if secs > 0 {
		rep.SentPerSec = float64(r.sent) / secs
		rep.RepliesPerS = float64(r.replies) / secs
	}
	rep.Notes = notes(r, cfg, rep.LossPercent)
	return rep
}

// notes explains the run's notable figures.
func notes(r *result, cfg *config, lossPercent float64) []string {
	var out []string
	if rate := r.kod[ntpwire.KissRate]; rate > 0 && (rate+r.lost)*10 >= r.sent {
		// A rate limiter answers a flood from one address with a few
		// RATE kisses and then silence: RATE plus loss dominates.
		out = append(out, fmt.Sprintf(
			"the server rate-limits this client: %d RATE kiss-o'-death replies and %.1f%% lost. "+
				"Its per-client limit is doing its job (ntpload sends from %s), so this measures "+
				"the limiter, not the server. To benchmark an ntpkit daemon, run it with "+
				`"rate_limit": {"enabled": false} in its configuration (examples/standalone/bench.json), `+
				"or spread the load over many source addresses with -src.",
			rate, lossPercent, sourcesText(cfg)))
	}
	if late := r.invalid[badLate]; late > 0 {
		out = append(out, fmt.Sprintf(
			"%d replies came after -timeout %v, when their requests had been counted lost; "+
				"raise -timeout or lower -rate if the server is merely slow", late, cfg.timeout))
	}
	return out
}

// sourcesText says where ntpload's requests come from.
func sourcesText(cfg *config) string {
	switch len(cfg.srcs) {
	case 0:
		return "one source address"
	case 1:
		return "one source address (-src)"
	}
	return fmt.Sprintf("%d source addresses", min(len(cfg.srcs), cfg.sockets))
}

func (rep *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func (rep *Report) writeText(w io.Writer) {
	rate := "as fast as possible"
	if rep.Rate > 0 {
		rate = fmt.Sprintf("%.0f/s", rep.Rate)
	}
	fmt.Fprintf(w, "target %s, %d sockets, offered %s, %.1f s\n", rep.Target, rep.Sockets, rate, rep.Seconds)
	fmt.Fprintf(w, "sent %d (%.0f/s)  replies %d (%.0f/s)  valid %d  lost %d (%.3f%%)\n",
		rep.Sent, rep.SentPerSec, rep.Replies, rep.RepliesPerS, rep.Valid, rep.Lost, rep.LossPercent)
	fmt.Fprintf(w, "invalid %s  kod %s  send errors %d  receive errors %d\n",
		fmtCounts(rep.Invalid), fmtCounts(rep.KoD), rep.SendErrors, rep.RecvErrors)
	if x := rep.Interleaved; x != nil {
		fmt.Fprintf(w, "interleaved: basic replies %d (%d to interleaved requests)  interleaved replies %d (%.1f%%)  kernel TX stamps missing %d, stray %d, ID resets %d\n",
			x.BasicReplies, x.BasicFallbacks, x.InterleavedReplies, x.InterleavedPercent, x.TxStampsMissing, x.TxStampsStray, x.StampResets)
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "%-22s %9s %9s %9s %9s %9s\n", "µs", "p1", "p50", "p90", "p99", "p99.9")
	rows := []struct {
		name string
		p    Percentiles
	}{
		{"rtt (less T3-T2)", rep.RTT},
		{"server time T3-T2", rep.Proc},
		{"offset", rep.Offset},
		{"|offset|", rep.AbsOffset},
	}
	if x := rep.Interleaved; x != nil {
		rows = append(rows, []struct {
			name string
			p    Percentiles
		}{
			{"|offset| basic", x.AbsOffsetBasic},
			{"|offset| interleaved", x.AbsOffsetXleave},
		}...)
	}
	for _, row := range rows {
		fmt.Fprintf(w, "%-22s %9.1f %9.1f %9.1f %9.1f %9.1f\n", row.name, row.p.P1, row.p.P50, row.p.P90, row.p.P99, row.p.P999)
	}
}

func fmtCounts(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%s=%d", k, m[k])
	}
	return s
}

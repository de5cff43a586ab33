// Package metrics is the daemon's metric set as data: Daemon walks a
// daemon's Status and Stats snapshots and returns metric families (name,
// help, type and labelled samples), Runtime adds the Go runtime's and the
// process's health, and WriteText writes families in the Prometheus text
// exposition format with no dependencies. Package
// server/metrics/prom (a separate module) offers the same families as a
// prometheus.Collector.
//
// Metric names are stable: ntpkit_* for the daemon, and for the runtime
// the names the Prometheus Go client uses.
package metrics

import (
	"maps"
	"os"
	"runtime"
	"slices"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/upstream"
)

// Type is a metric family's type.
type Type uint8

// Metric types; counters' names end in _total.
const (
	Untyped Type = iota
	Counter
	Gauge
)

// String returns the type's name in the text format: "counter", "gauge"
// or "untyped".
func (t Type) String() string {
	switch t {
	case Counter:
		return "counter"
	case Gauge:
		return "gauge"
	}
	return "untyped"
}

// Label is a label's name and value.
type Label struct {
	Name, Value string // a label name such as "reason", and its value
}

// Sample is one series of a family: its labels and value.
type Sample struct {
	Labels []Label // in the order written; names unique within the sample
	Value  float64 // the sample's value
}

// Family is a metric family: a name, a help text, a type and samples.
type Family struct {
	Name    string   // the metric name, e.g. "ntpkit_requests_total"
	Help    string   // one line saying what is measured
	Type    Type     // counter, gauge or untyped
	Samples []Sample // one per label combination
}

// Source is what Gather reads: *daemon.Daemon satisfies it.
type Source interface {
	Status() daemon.Status
	Stats() daemon.Stats
}

// Gather returns the daemon's families followed by the runtime's.
func Gather(src Source) []Family {
	return append(Daemon(src.Status(), src.Stats()), Runtime()...)
}

// builder accumulates families.
type builder struct {
	fams []Family
}

// family starts a family; samples are added with sample.
func (b *builder) family(name string, typ Type, help string) {
	b.fams = append(b.fams, Family{Name: name, Help: help, Type: typ})
}

// sample adds a sample to the current family; labels are name, value
// pairs.
func (b *builder) sample(v float64, labels ...string) {
	f := &b.fams[len(b.fams)-1]
	s := Sample{Value: v}
	for i := 0; i+1 < len(labels); i += 2 {
		s.Labels = append(s.Labels, Label{Name: labels[i], Value: labels[i+1]})
	}
	f.Samples = append(f.Samples, s)
}

func (b *builder) counter(name, help string, v uint64) {
	b.family(name, Counter, help)
	b.sample(float64(v))
}

func (b *builder) gauge(name, help string, v float64) {
	b.family(name, Gauge, help)
	b.sample(v)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Daemon returns the daemon's metric families (ntpkit_*) for a Status
// and a Stats snapshot.
func Daemon(st daemon.Status, s daemon.Stats) []Family {
	var b builder
	b.family("ntpkit_build_info", Gauge, "Always 1; the labels give the daemon's version and the Go version it was built with.")
	b.sample(1, "version", st.Version, "goversion", st.GoVersion)
	b.gauge("ntpkit_start_time_seconds", "When the daemon started, in seconds since the Unix epoch.", unixSeconds(st.Started))
	b.gauge("ntpkit_serving", "1 while the daemon serves NTP requests.", boolValue(st.Serving))
	if len(st.Listeners) > 0 {
		b.family("ntpkit_listener_up", Gauge, "1 while a listening socket serves (reads NTP requests or accepts NTS-KE connections), by kind and address.")
		for _, l := range st.Listeners {
			b.sample(boolValue(l.Serving), "kind", l.Kind, "addr", l.Addr)
		}
	}

	b.counter("ntpkit_requests_total", "NTP datagrams received.", s.Server.Received)
	b.counter("ntpkit_replies_total", "NTP replies sent, kiss-o'-death replies included.", s.Server.Replies)
	b.kisses(s)
	b.counter("ntpkit_bytes_received_total", "Bytes of NTP datagrams received.", s.Server.BytesReceived)
	b.counter("ntpkit_bytes_sent_total", "Bytes of NTP replies sent.", s.Server.BytesSent)
	b.counter("ntpkit_interleaved_replies_total", "NTP replies sent in interleaved mode, carrying the transmit time of the client's previous reply.", s.Server.Interleaved)
	b.counter("ntpkit_kernel_tx_timestamps_total", "Kernel transmit timestamps that replaced the server's own transmit time of a reply, for interleaved mode.", s.Server.KernelTxStamps)
	b.family("ntpkit_dropped_total", Counter, "NTP requests that got no reply, by reason.")
	for _, r := range DropReasons(s.Server.Dropped) {
		b.sample(float64(r.N), "reason", r.Reason)
	}

	ref := st.Reference
	b.gauge("ntpkit_synchronized", "1 when the served time is synchronized, 0 otherwise.", boolValue(st.Synchronized))
	b.gauge("ntpkit_stratum", "Stratum served in replies (16: unsynchronized).", float64(ref.Stratum))
	b.gauge("ntpkit_leap", "Leap indicator served in replies (0 none, 1 insert, 2 delete, 3 alarm).", float64(ref.Leap))
	b.gauge("ntpkit_precision_seconds", "Precision of the served clock.", ntpwire.LogToDuration(ref.Precision).Seconds())
	b.gauge("ntpkit_root_delay_seconds", "Root delay served in replies.", ref.RootDelay.Seconds())
	b.gauge("ntpkit_root_dispersion_seconds", "Root dispersion served in replies.", ref.RootDispersion.Seconds())
	if k := st.Kernel; k != nil {
		b.gauge("ntpkit_kernel_synchronized", "1 when the kernel reports the system clock synchronized (adjtimex: STA_UNSYNC clear, not TIME_ERROR), 0 otherwise; absent when unknown.", boolValue(k.Synchronized))
		b.gauge("ntpkit_kernel_max_error_seconds", "The kernel's maximum error bound of the system clock (16 s: unknown).", k.MaxError.Seconds())
		b.gauge("ntpkit_kernel_estimated_error_seconds", "The kernel's estimated error of the system clock.", k.EstError.Seconds())
		b.gauge("ntpkit_kernel_offset_seconds", "Phase offset the kernel is still slewing away.", k.Offset.Seconds())
		b.gauge("ntpkit_kernel_frequency_ppm", "The kernel's frequency correction of the system clock, in parts per million.", k.FrequencyPPM)
	}
	if !st.ReferenceTime.IsZero() {
		b.gauge("ntpkit_reference_time_seconds", "Reference time served in replies, in seconds since the Unix epoch.", unixSeconds(st.ReferenceTime))
	}

	rs := st.Reloads
	b.family("ntpkit_config_reloads_total", Counter, "Configuration reloads (SIGHUP), by result.")
	b.sample(float64(rs.Successes), "result", "success")
	b.sample(float64(rs.Failures), "result", "failure")
	b.gauge("ntpkit_config_last_reload_successful", "1 when the last configuration reload succeeded (or none was tried).", boolValue(rs.LastError == ""))
	b.gauge("ntpkit_config_last_reload_success_time_seconds", "When the configuration in force was loaded, in seconds since the Unix epoch.", unixSeconds(rs.LastSuccess))

	b.middleware(s.Access, s.RateLimit)
	b.auth(s)
	if st.Upstream != nil {
		b.upstream(st.Upstream)
	}
	return b.fams
}

// kisses writes ntpkit_kiss_total by kiss code: the codes the middleware
// reports, and the rest of the server's count as "other".
func (b *builder) kisses(s daemon.Stats) {
	b.family("ntpkit_kiss_total", Counter, "Kiss-o'-death replies sent, by kiss code.")
	codes := map[string]uint64{}
	for c, n := range s.Kisses {
		codes[c.String()] += n
	}
	known := uint64(0)
	for _, c := range slices.Sorted(maps.Keys(codes)) {
		b.sample(float64(codes[c]), "code", c)
		known += codes[c]
	}
	other := uint64(0)
	if s.Server.Kisses > known {
		other = s.Server.Kisses - known
	}
	b.sample(float64(other), "code", "other")
}

// middleware writes the access-control and rate-limit counters; either
// may be nil.
func (b *builder) middleware(ac *server.AccessStats, rl *server.RateLimitStats) {
	if ac != nil {
		b.family("ntpkit_access_requests_total", Counter, "Requests judged by the access rules, by result.")
		b.sample(float64(ac.Allowed), "result", "allowed")
		b.sample(float64(ac.DeniedAddr), "result", "denied_addr")
		b.sample(float64(ac.DeniedName), "result", "denied_name")
		b.family("ntpkit_access_denied_total", Counter, "Denied requests, by what they got: a kiss-o'-death or nothing.")
		b.sample(float64(ac.Kissed), "action", "kissed")
		b.sample(float64(ac.Dropped), "action", "dropped")
		b.counter("ntpkit_access_kiss_budget_exhausted_total", "Denied requests dropped because the kiss-o'-death budget was spent.", ac.KissLimited)
	}
	if rl != nil {
		b.family("ntpkit_ratelimit_requests_total", Counter, "Requests judged by the rate limiter, by result.")
		b.sample(float64(rl.Allowed), "result", "allowed")
		b.sample(float64(rl.Leaked), "result", "leaked")
		b.sample(float64(rl.Limited), "result", "limited")
		b.sample(float64(rl.LimitedGlobal), "result", "limited_global")
		b.family("ntpkit_ratelimit_refused_total", Counter, "Rate-limited requests, by what they got: a kiss-o'-death or nothing.")
		b.sample(float64(rl.Kissed), "action", "kissed")
		b.sample(float64(rl.Dropped), "action", "dropped")
		b.counter("ntpkit_ratelimit_kiss_budget_exhausted_total", "Rate-limited requests dropped because the kiss-o'-death budget was spent.", rl.KissLimited)
		b.counter("ntpkit_ratelimit_leak_budget_exhausted_total", "Over-limit requests leak would have answered, dropped because the reflection budget was spent.", rl.LeakLimited)
	}
}

// auth writes the NTS, NTS-KE and symmetric-key counters.
func (b *builder) auth(s daemon.Stats) {
	if s.NTS != nil {
		b.family("ntpkit_nts_requests_total", Counter, "NTP requests carrying NTS extension fields, by outcome.")
		b.sample(float64(s.NTS.Authenticated), "result", "authenticated")
		b.sample(float64(s.NTS.NAKs), "result", "nak")
		b.sample(float64(s.NTS.AuthFailures), "result", "auth_failure")
		b.sample(float64(s.NTS.Malformed), "result", "malformed")
		b.counter("ntpkit_nts_cookies_sent_total", "Fresh NTS cookies sent in NTP replies.", s.NTS.Cookies)
		b.counter("ntpkit_nts_nak_budget_exhausted_total", "NTS NAKs not sent because the reflection budget was spent.", s.NTS.NAKLimited)
	}
	if s.NTSKE != nil {
		b.family("ntpkit_nts_ke_sessions_total", Counter, "NTS-KE sessions, by outcome.")
		b.sample(float64(s.NTSKE.Served), "result", "served")
		b.sample(float64(s.NTSKE.HandshakeErrors), "result", "handshake_error")
		b.sample(float64(s.NTSKE.RequestErrors), "result", "request_error")
		b.sample(float64(s.NTSKE.Unsupported), "result", "unsupported")
		b.sample(float64(s.NTSKE.InternalErrors), "result", "internal_error")
		b.family("ntpkit_nts_ke_refused_total", Counter, "NTS-KE connections closed unanswered, by reason: over the source's connection rate or its concurrent sessions.")
		b.sample(float64(s.NTSKE.RateLimited), "reason", "rate_limited")
		b.sample(float64(s.NTSKE.SourceBusy), "reason", "source_busy")
		b.counter("ntpkit_nts_ke_accept_errors_total", "Temporary NTS-KE accept errors (such as too many open files), retried.", s.NTSKE.AcceptErrors)
	}
	if s.MAC != nil {
		b.family("ntpkit_mac_requests_total", Counter, "NTP requests carrying a symmetric-key MAC, by outcome.")
		b.sample(float64(s.MAC.Authenticated), "result", "authenticated")
		b.sample(float64(s.MAC.UnknownKey), "result", "unknown_key")
		b.sample(float64(s.MAC.BadMAC), "result", "bad_mac")
		b.counter("ntpkit_mac_crypto_naks_total", "Crypto-NAKs sent for unknown keys or bad MACs.", s.MAC.CryptoNAKs)
	}
}

// upstream writes the Discipliner's state and, per source, its state,
// reachability, last sample and counters. Sources are labelled by their
// configured name.
func (b *builder) upstream(st *upstream.Status) {
	b.gauge("ntpkit_upstream_synchronized", "1 when the upstream discipline has a trusted reference.", boolValue(st.Synchronized))
	b.gauge("ntpkit_upstream_offset_seconds", "Estimated error of the served clock still being slewed away (positive: behind).", st.Offset.Seconds())
	b.gauge("ntpkit_upstream_correction_seconds", "Served time minus the base clock.", st.Correction.Seconds())
	b.gauge("ntpkit_upstream_frequency_ppm", "Estimated frequency error of the base clock, in parts per million.", st.Frequency)
	b.gauge("ntpkit_upstream_root_distance_seconds", "Root distance of the served time (root delay / 2 + root dispersion).", st.RootDistance.Seconds())
	b.counter("ntpkit_upstream_updates_total", "Clock updates from the upstream sources.", st.Updates)
	b.counter("ntpkit_upstream_steps_total", "Clock steps.", st.Steps)
	b.counter("ntpkit_upstream_refused_steps_total", "Updates refused because they would have stepped the clock by more than max_step.", st.RefusedSteps)
	b.counter("ntpkit_upstream_leap_seconds_total", "Leap seconds applied (inserted or deleted).", st.Leaps)
	b.family("ntpkit_upstream_leap_scheduled", Gauge, "1 while a leap second of the labelled kind is scheduled, 0 otherwise.")
	b.sample(boolValue(st.LeapSecond == ntpwire.LeapInsert), "kind", "insert")
	b.sample(boolValue(st.LeapSecond == ntpwire.LeapDelete), "kind", "delete")
	if !st.LastUpdate.IsZero() {
		b.gauge("ntpkit_upstream_last_update_time_seconds", "When the clock was last updated, in seconds since the Unix epoch.", unixSeconds(st.LastUpdate))
	}
	if len(st.Sources) == 0 {
		return
	}

	b.family("ntpkit_upstream_source_state", Gauge, "1 for the state each upstream source is in, 0 for the others.")
	for _, s := range st.Sources {
		for state := upstream.StateInit; state <= upstream.StateKoD; state++ {
			b.sample(boolValue(s.State == state), "source", s.Name, "state", state.String())
		}
	}
	perSource := func(name string, typ Type, help string, v func(s upstream.SourceStatus) float64) {
		b.family(name, typ, help)
		for _, s := range st.Sources {
			b.sample(v(s), "source", s.Name)
		}
	}
	perSource("ntpkit_upstream_source_reach", Gauge, "Reachability register of each source (bit 0: the last query was answered).",
		func(s upstream.SourceStatus) float64 { return float64(s.Reach) })
	perSource("ntpkit_upstream_source_stratum", Gauge, "Stratum each source last reported.",
		func(s upstream.SourceStatus) float64 { return float64(s.Stratum) })
	perSource("ntpkit_upstream_source_poll_seconds", Gauge, "Poll interval of each source.",
		func(s upstream.SourceStatus) float64 { return s.Poll.Seconds() })
	perSource("ntpkit_upstream_source_offset_seconds", Gauge, "Offset of each source's last sample.",
		func(s upstream.SourceStatus) float64 { return s.Offset.Seconds() })
	perSource("ntpkit_upstream_source_delay_seconds", Gauge, "Round-trip delay of each source's last sample.",
		func(s upstream.SourceStatus) float64 { return s.Delay.Seconds() })
	perSource("ntpkit_upstream_source_jitter_seconds", Gauge, "Jitter of each source's clock filter.",
		func(s upstream.SourceStatus) float64 { return s.Jitter.Seconds() })
	perSource("ntpkit_upstream_source_root_distance_seconds", Gauge, "Root distance of each source.",
		func(s upstream.SourceStatus) float64 { return s.RootDistance.Seconds() })
	perSource("ntpkit_upstream_source_samples_total", Counter, "Valid replies from each source (successes).",
		func(s upstream.SourceStatus) float64 { return float64(s.Samples) })
	b.family("ntpkit_upstream_source_rejects_total", Counter, "Queries to each source that gave no usable sample (failures), by reason.")
	for _, s := range st.Sources {
		for _, r := range RejectReasons(s.Rejects) {
			b.sample(float64(r.N), "source", s.Name, "reason", r.Reason)
		}
	}
}

// Runtime returns the Go runtime's and the process's health (goroutines,
// heap, GC cycles, open file descriptors) under the names the Prometheus
// Go client uses, so that a soak run or a dashboard sees a leak as a
// trend. An embedder whose registry already has the client's Go
// collector leaves these out.
func Runtime() []Family {
	var b builder
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.gauge("go_goroutines", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	b.gauge("go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects.", float64(ms.HeapAlloc))
	b.gauge("go_memstats_heap_inuse_bytes", "Bytes in in-use heap spans.", float64(ms.HeapInuse))
	b.gauge("go_memstats_sys_bytes", "Bytes of memory obtained from the OS.", float64(ms.Sys))
	b.counter("go_gc_cycles_total", "Completed GC cycles.", uint64(ms.NumGC))
	if n, err := openFDs(); err == nil {
		b.gauge("process_open_fds", "Number of open file descriptors.", float64(n))
	}
	return b.fams
}

// openFDs counts the process's open file descriptors from /proc/self/fd;
// it fails where there is no /proc (the metric is then left out).
func openFDs() (int, error) {
	f, err := os.Open("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return 0, err
	}
	return len(names) - 1, nil // less the descriptor reading the directory
}

// Count is a counter under the label value (or JSON name) it is
// exported as.
type Count struct {
	Reason string // the label value, e.g. "short"
	N      uint64 // the counter's value
}

// DropReasons lists the server's drop counters under their label values
// ("short", "truncated", ...), in a fixed order.
func DropReasons(d server.DropStats) []Count {
	return []Count{
		{"short", d.Short},
		{"truncated", d.Truncated},
		{"version", d.Version},
		{"mode", d.Mode},
		{"control", d.Control},
		{"malformed", d.Malformed},
		{"zero_port", d.ZeroPort},
		{"handler", d.Handler},
		{"oversize", d.Oversize},
		{"send_error", d.SendError},
	}
}

// RejectReasons lists an upstream source's reject counters under their
// label values ("malformed", "bad_origin", ...), in a fixed order.
func RejectReasons(r upstream.Rejects) []Count {
	return []Count{
		{"malformed", r.Malformed},
		{"bad_origin", r.BadOrigin},
		{"bad_mode", r.BadMode},
		{"bad_stratum", r.BadStratum},
		{"leap_alarm", r.LeapAlarm},
		{"bad_time", r.BadTime},
		{"bad_distance", r.BadDistance},
		{"kiss_rate", r.KissRate},
		{"kiss_deny", r.KissDeny},
		{"kiss_rstr", r.KissRstr},
		{"kiss_other", r.KissOther},
		{"timeout", r.Timeout},
		{"loop", r.Loop},
		{"popcorn", r.Popcorn},
	}
}

package main

import (
	"bytes"
	"maps"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/upstream"
)

// metricsContentType is the Prometheus text exposition format, version
// 0.0.4.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// metricsWriter writes the Prometheus text exposition format: each family
// as "# HELP", "# TYPE" and its samples, label values escaped. It has no
// dependencies and allocates little; callers write each family once.
type metricsWriter struct {
	buf bytes.Buffer
}

// family starts a metric family. typ is counter, gauge or untyped;
// counters' names end in _total.
func (m *metricsWriter) family(name, typ, help string) {
	m.buf.WriteString("# HELP ")
	m.buf.WriteString(name)
	m.buf.WriteByte(' ')
	m.buf.WriteString(escapeHelp(help))
	m.buf.WriteString("\n# TYPE ")
	m.buf.WriteString(name)
	m.buf.WriteByte(' ')
	m.buf.WriteString(typ)
	m.buf.WriteByte('\n')
}

// sample writes one sample; labels are name, value pairs.
func (m *metricsWriter) sample(name string, v float64, labels ...string) {
	m.buf.WriteString(name)
	if len(labels) > 0 {
		m.buf.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				m.buf.WriteByte(',')
			}
			m.buf.WriteString(labels[i])
			m.buf.WriteString(`="`)
			m.buf.WriteString(escapeLabel(labels[i+1]))
			m.buf.WriteByte('"')
		}
		m.buf.WriteByte('}')
	}
	m.buf.WriteByte(' ')
	m.buf.WriteString(formatValue(v))
	m.buf.WriteByte('\n')
}

// counter writes a family with one unlabelled counter sample.
func (m *metricsWriter) counter(name, help string, v uint64) {
	m.family(name, "counter", help)
	m.sample(name, float64(v))
}

// gauge writes a family with one unlabelled gauge sample.
func (m *metricsWriter) gauge(name, help string, v float64) {
	m.family(name, "gauge", help)
	m.sample(name, v)
}

func formatValue(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// writeMetrics writes every metric the daemon exports.
func (d *daemon) writeMetrics(m *metricsWriter, now time.Time) {
	version, goVersion := buildVersion()
	m.family("ntpkit_build_info", "gauge", "Always 1; the labels give the daemon's version and the Go version it was built with.")
	m.sample("ntpkit_build_info", 1, "version", version, "goversion", goVersion)
	m.gauge("ntpkit_start_time_seconds", "When the daemon started, in seconds since the Unix epoch.", float64(d.started.UnixNano())/1e9)
	m.gauge("ntpkit_serving", "1 while the daemon serves NTP requests.", boolValue(d.serving.Load()))

	st := d.srv.Stats()
	m.counter("ntpkit_requests_total", "NTP datagrams received.", st.Received)
	m.counter("ntpkit_replies_total", "NTP replies sent, kiss-o'-death replies included.", st.Replies)
	d.writeKisses(m, st.Kisses)
	m.counter("ntpkit_bytes_received_total", "Bytes of NTP datagrams received.", st.BytesReceived)
	m.counter("ntpkit_bytes_sent_total", "Bytes of NTP replies sent.", st.BytesSent)
	m.family("ntpkit_dropped_total", "counter", "NTP requests that got no reply, by reason.")
	for _, r := range dropReasons(st.Dropped) {
		m.sample("ntpkit_dropped_total", float64(r.n), "reason", r.reason)
	}

	ref := d.src.Reference()
	synced, _ := d.syncState()
	m.gauge("ntpkit_synchronized", "1 when the served time is synchronized, 0 otherwise.", boolValue(synced))
	m.gauge("ntpkit_stratum", "Stratum served in replies (16: unsynchronized).", float64(ref.Stratum))
	m.gauge("ntpkit_leap", "Leap indicator served in replies (0 none, 1 insert, 2 delete, 3 alarm).", float64(ref.Leap))
	m.gauge("ntpkit_precision_seconds", "Precision of the served clock.", ntpwire.LogToDuration(ref.Precision).Seconds())
	m.gauge("ntpkit_root_delay_seconds", "Root delay served in replies.", ref.RootDelay.Seconds())
	m.gauge("ntpkit_root_dispersion_seconds", "Root dispersion served in replies.", ref.RootDispersion.Seconds())
	if ref.RefTime != 0 {
		m.gauge("ntpkit_reference_time_seconds", "Reference time served in replies, in seconds since the Unix epoch.", float64(ref.RefTime.In(now).UnixNano())/1e9)
	}

	rs := d.reloads.snapshot()
	m.family("ntpkit_config_reloads_total", "counter", "Configuration reloads (SIGHUP), by result.")
	m.sample("ntpkit_config_reloads_total", float64(rs.Successes), "result", "success")
	m.sample("ntpkit_config_reloads_total", float64(rs.Failures), "result", "failure")
	m.gauge("ntpkit_config_last_reload_successful", "1 when the last configuration reload succeeded (or none was tried).", boolValue(rs.LastError == ""))
	m.gauge("ntpkit_config_last_reload_success_time_seconds", "When the configuration in force was loaded, in seconds since the Unix epoch.", float64(rs.LastOK.UnixNano())/1e9)

	for _, f := range d.metrics {
		f(m)
	}
	writeRuntimeMetrics(m)
}

// writeRuntimeMetrics writes the Go runtime's and the process's health
// (goroutines, heap, GC cycles, open file descriptors) under the names
// the Prometheus Go client uses, so that a soak run or a dashboard sees a
// leak as a trend.
func writeRuntimeMetrics(m *metricsWriter) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.gauge("go_goroutines", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine()))
	m.gauge("go_memstats_heap_alloc_bytes", "Bytes of allocated heap objects.", float64(ms.HeapAlloc))
	m.gauge("go_memstats_heap_inuse_bytes", "Bytes in in-use heap spans.", float64(ms.HeapInuse))
	m.gauge("go_memstats_sys_bytes", "Bytes of memory obtained from the OS.", float64(ms.Sys))
	m.counter("go_gc_cycles_total", "Completed GC cycles.", uint64(ms.NumGC))
	if n, err := openFDs(); err == nil {
		m.gauge("process_open_fds", "Number of open file descriptors.", float64(n))
	}
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

type dropReason struct {
	reason string
	n      uint64
}

// dropReasons lists the server's drop counters under their metric and
// JSON names.
func dropReasons(d server.DropStats) []dropReason {
	return []dropReason{
		{"short", d.Short},
		{"truncated", d.Truncated},
		{"version", d.Version},
		{"mode", d.Mode},
		{"control", d.Control},
		{"malformed", d.Malformed},
		{"handler", d.Handler},
		{"oversize", d.Oversize},
		{"send_error", d.SendError},
	}
}

// buildVersion returns the main module's version and the Go version.
func buildVersion() (version, goVersion string) {
	version = "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	return version, runtime.Version()
}

// upstreamRejects lists an upstream's reject counters under their metric
// label values.
func upstreamRejects(r upstream.Rejects) []dropReason {
	return []dropReason{
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
	}
}

// writeUpstreamMetrics writes the Discipliner's state and, per source,
// its state, reachability, last sample and counters. Sources are labelled
// by their configured name.
func writeUpstreamMetrics(m *metricsWriter, st upstream.Status) {
	m.gauge("ntpkit_upstream_synchronized", "1 when the upstream discipline has a trusted reference.", boolValue(st.Synchronized))
	m.gauge("ntpkit_upstream_offset_seconds", "Estimated error of the served clock still being slewed away (positive: behind).", st.Offset.Seconds())
	m.gauge("ntpkit_upstream_correction_seconds", "Served time minus the base clock.", st.Correction.Seconds())
	m.gauge("ntpkit_upstream_frequency_ppm", "Estimated frequency error of the base clock, in parts per million.", st.Frequency)
	m.gauge("ntpkit_upstream_root_distance_seconds", "Root distance of the served time (root delay / 2 + root dispersion).", st.RootDistance.Seconds())
	m.counter("ntpkit_upstream_updates_total", "Clock updates from the upstream sources.", st.Updates)
	m.counter("ntpkit_upstream_steps_total", "Clock steps.", st.Steps)
	m.counter("ntpkit_upstream_refused_steps_total", "Updates refused because they would have stepped the clock by more than max_step.", st.RefusedSteps)
	m.counter("ntpkit_upstream_leap_seconds_total", "Leap seconds applied (inserted or deleted).", st.Leaps)
	m.family("ntpkit_upstream_leap_scheduled", "gauge", "1 while a leap second of the labelled kind is scheduled, 0 otherwise.")
	m.sample("ntpkit_upstream_leap_scheduled", boolValue(st.LeapSecond == ntpwire.LeapInsert), "kind", "insert")
	m.sample("ntpkit_upstream_leap_scheduled", boolValue(st.LeapSecond == ntpwire.LeapDelete), "kind", "delete")
	if !st.LastUpdate.IsZero() {
		m.gauge("ntpkit_upstream_last_update_time_seconds", "When the clock was last updated, in seconds since the Unix epoch.", float64(st.LastUpdate.UnixNano())/1e9)
	}
	if len(st.Sources) == 0 {
		return
	}

	m.family("ntpkit_upstream_source_state", "gauge", "1 for the state each upstream source is in, 0 for the others.")
	for _, s := range st.Sources {
		for state := upstream.StateInit; state <= upstream.StateKoD; state++ {
			m.sample("ntpkit_upstream_source_state", boolValue(s.State == state), "source", s.Name, "state", state.String())
		}
	}
	perSource := func(name, typ, help string, v func(s upstream.SourceStatus) float64) {
		m.family(name, typ, help)
		for _, s := range st.Sources {
			m.sample(name, v(s), "source", s.Name)
		}
	}
	perSource("ntpkit_upstream_source_reach", "gauge", "Reachability register of each source (bit 0: the last query was answered).",
		func(s upstream.SourceStatus) float64 { return float64(s.Reach) })
	perSource("ntpkit_upstream_source_stratum", "gauge", "Stratum each source last reported.",
		func(s upstream.SourceStatus) float64 { return float64(s.Stratum) })
	perSource("ntpkit_upstream_source_poll_seconds", "gauge", "Poll interval of each source.",
		func(s upstream.SourceStatus) float64 { return s.Poll.Seconds() })
	perSource("ntpkit_upstream_source_offset_seconds", "gauge", "Offset of each source's last sample.",
		func(s upstream.SourceStatus) float64 { return s.Offset.Seconds() })
	perSource("ntpkit_upstream_source_delay_seconds", "gauge", "Round-trip delay of each source's last sample.",
		func(s upstream.SourceStatus) float64 { return s.Delay.Seconds() })
	perSource("ntpkit_upstream_source_jitter_seconds", "gauge", "Jitter of each source's clock filter.",
		func(s upstream.SourceStatus) float64 { return s.Jitter.Seconds() })
	perSource("ntpkit_upstream_source_root_distance_seconds", "gauge", "Root distance of each source.",
		func(s upstream.SourceStatus) float64 { return s.RootDistance.Seconds() })
	perSource("ntpkit_upstream_source_samples_total", "counter", "Valid replies from each source (successes).",
		func(s upstream.SourceStatus) float64 { return float64(s.Samples) })
	m.family("ntpkit_upstream_source_rejects_total", "counter", "Queries to each source that gave no usable sample (failures), by reason.")
	for _, s := range st.Sources {
		for _, r := range upstreamRejects(s.Rejects) {
			m.sample("ntpkit_upstream_source_rejects_total", float64(r.n), "source", s.Name, "reason", r.reason)
		}
	}
}

// writeMiddlewareMetrics writes the access-control and rate-limit
// counters; either middleware may be nil.
func writeMiddlewareMetrics(m *metricsWriter, ac *server.AccessControl, rl *server.RateLimiter) {
	if ac != nil {
		s := ac.Stats()
		m.family("ntpkit_access_requests_total", "counter", "Requests judged by the access rules, by result.")
		m.sample("ntpkit_access_requests_total", float64(s.Allowed), "result", "allowed")
		m.sample("ntpkit_access_requests_total", float64(s.DeniedAddr), "result", "denied_addr")
		m.sample("ntpkit_access_requests_total", float64(s.DeniedName), "result", "denied_name")
		m.family("ntpkit_access_denied_total", "counter", "Denied requests, by what they got: a kiss-o'-death or nothing.")
		m.sample("ntpkit_access_denied_total", float64(s.Kissed), "action", "kissed")
		m.sample("ntpkit_access_denied_total", float64(s.Dropped), "action", "dropped")
		m.counter("ntpkit_access_kiss_budget_exhausted_total", "Denied requests dropped because the kiss-o'-death budget was spent.", s.KissLimited)
	}
	if rl != nil {
		s := rl.Stats()
		m.family("ntpkit_ratelimit_requests_total", "counter", "Requests judged by the rate limiter, by result.")
		m.sample("ntpkit_ratelimit_requests_total", float64(s.Allowed), "result", "allowed")
		m.sample("ntpkit_ratelimit_requests_total", float64(s.Leaked), "result", "leaked")
		m.sample("ntpkit_ratelimit_requests_total", float64(s.Limited), "result", "limited")
		m.sample("ntpkit_ratelimit_requests_total", float64(s.LimitedGlobal), "result", "limited_global")
		m.family("ntpkit_ratelimit_refused_total", "counter", "Rate-limited requests, by what they got: a kiss-o'-death or nothing.")
		m.sample("ntpkit_ratelimit_refused_total", float64(s.Kissed), "action", "kissed")
		m.sample("ntpkit_ratelimit_refused_total", float64(s.Dropped), "action", "dropped")
		m.counter("ntpkit_ratelimit_kiss_budget_exhausted_total", "Rate-limited requests dropped because the kiss-o'-death budget was spent.", s.KissLimited)
	}
}

// writeKisses writes ntpkit_kiss_total by kiss code: the codes the
// middleware reports, and the rest of the server's count as "other".
func (d *daemon) writeKisses(m *metricsWriter, total uint64) {
	m.family("ntpkit_kiss_total", "counter", "Kiss-o'-death replies sent, by kiss code.")
	var codes map[string]uint64
	if d.kissCodes != nil {
		codes = d.kissCodes()
	}
	known := uint64(0)
	for _, c := range slices.Sorted(maps.Keys(codes)) {
		m.sample("ntpkit_kiss_total", float64(codes[c]), "code", c)
		known += codes[c]
	}
	other := uint64(0)
	if total > known {
		other = total - known
	}
	m.sample("ntpkit_kiss_total", float64(other), "code", "other")
}

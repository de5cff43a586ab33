package metrics

import (
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/auth"
	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/nts"
	"github.com/ntpkit/ntpkit/upstream"
)

// exposition is a parsed Prometheus text exposition: family types and
// sample values keyed by series ("name{labels}" as written).
type exposition struct {
	types   map[string]string
	samples map[string]float64
}

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseExposition parses the text format strictly, for the subset the
// daemon writes (counters, gauges, untyped): every family has one HELP and
// one TYPE line before its samples, families are not interleaved or
// repeated, names and labels are well formed, label values are properly
// escaped, series are unique, counters end in _total and are not negative.
func parseExposition(text string) (*exposition, error) {
	e := &exposition{types: map[string]string{}, samples: map[string]float64{}}
	if !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("does not end in a newline")
	}
	helped := map[string]bool{}
	var cur string // family of the samples being read
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(format string, args ...any) error {
			return fmt.Errorf("line %d %q: %s", i+1, line, fmt.Sprintf(format, args...))
		}
		switch {
		case line == "":
			return nil, fail("empty line")
		case strings.HasPrefix(line, "# HELP "):
			name, help, ok := strings.Cut(strings.TrimPrefix(line, "# HELP "), " ")
			if !ok || !metricNameRE.MatchString(name) || help == "" {
				return nil, fail("bad HELP line")
			}
			if helped[name] {
				return nil, fail("second HELP for %s", name)
			}
			if _, seen := e.types[name]; seen {
				return nil, fail("HELP after TYPE or samples for %s", name)
			}
			if err := checkEscapes(help, false); err != nil {
				return nil, fail("%v", err)
			}
			helped[name] = true
			cur = name
		case strings.HasPrefix(line, "# TYPE "):
			name, typ, ok := strings.Cut(strings.TrimPrefix(line, "# TYPE "), " ")
			if !ok || name != cur || !helped[name] {
				return nil, fail("TYPE line not right after its HELP line")
			}
			if _, seen := e.types[name]; seen {
				return nil, fail("second TYPE for %s", name)
			}
			switch typ {
			case "counter":
				if !strings.HasSuffix(name, "_total") {
					return nil, fail("counter name does not end in _total")
				}
			case "gauge", "untyped":
			default:
				return nil, fail("type %q", typ)
			}
			e.types[name] = typ
		case strings.HasPrefix(line, "#"):
			return nil, fail("unexpected comment")
		default:
			// No timestamps: the value follows the last space.
			sp := strings.LastIndexByte(line, ' ')
			if sp < 0 {
				return nil, fail("no value")
			}
			series, value := line[:sp], line[sp+1:]
			name, labels, hasLabels := strings.Cut(series, "{")
			if name != cur || e.types[name] == "" {
				return nil, fail("sample outside its family (current %q)", cur)
			}
			if hasLabels {
				if err := checkLabels(strings.TrimSuffix(labels, "}")); err != nil || !strings.HasSuffix(labels, "}") {
					return nil, fail("bad labels: %v", err)
				}
			}
			v, err := parseValue(value)
			if err != nil {
				return nil, fail("%v", err)
			}
			if e.types[name] == "counter" && (v < 0 || math.IsNaN(v)) {
				return nil, fail("counter value %v", v)
			}
			if _, dup := e.samples[series]; dup {
				return nil, fail("duplicate series")
			}
			e.samples[series] = v
		}
	}
	for name := range helped {
		if e.types[name] == "" {
			return nil, fmt.Errorf("family %s has no TYPE", name)
		}
	}
	return e, nil
}

func parseValue(s string) (float64, error) {
	switch s {
	case "NaN":
		return math.NaN(), nil
	case "+Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	}
	return strconv.ParseFloat(s, 64)
}

// checkLabels checks `a="x",b="y\"z"`.
func checkLabels(s string) error {
	seen := map[string]bool{}
	for s != "" {
		name, rest, ok := strings.Cut(s, `="`)
		if !ok || !labelNameRE.MatchString(name) || seen[name] {
			return fmt.Errorf("bad or repeated label name %q", name)
		}
		seen[name] = true
		end := -1
		for i := 0; i < len(rest); i++ {
			if rest[i] == '\\' {
				i++
				continue
			}
			if rest[i] == '"' {
				end = i
				break
			}
		}
		if end < 0 {
			return fmt.Errorf("unterminated value for %s", name)
		}
		if err := checkEscapes(rest[:end], true); err != nil {
			return err
		}
		s = rest[end+1:]
		if s != "" {
			if s[0] != ',' || len(s) == 1 {
				return fmt.Errorf("junk after label %s: %q", name, s)
			}
			s = s[1:]
		}
	}
	return nil
}

// checkEscapes allows only \\, \n (and \" in label values) after a
// backslash, and no raw newline.
func checkEscapes(s string, label bool) error {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\n':
			return fmt.Errorf("raw newline")
		case '"':
			if label {
				return fmt.Errorf("unescaped quote")
			}
		case '\\':
			if i+1 == len(s) {
				return fmt.Errorf("trailing backslash")
			}
			i++
			if c := s[i]; c != '\\' && c != 'n' && !(label && c == '"') {
				return fmt.Errorf(`bad escape \%c`, c)
			}
		}
	}
	return nil
}

func TestWriteTextEscapes(t *testing.T) {
	fams := []Family{
		{Name: "x_total", Type: Counter, Help: "help with \\ and\nnewline", Samples: []Sample{
			{Labels: []Label{{"a", "quote \" back \\ nl \n"}, {"b", ""}}, Value: 3},
		}},
		{Name: "y", Type: Gauge, Help: "a gauge", Samples: []Sample{{Value: math.Inf(1)}}},
	}
	var buf strings.Builder
	if err := WriteText(&buf, fams); err != nil {
		t.Fatal(err)
	}
	want := "# HELP x_total help with \\\\ and\\nnewline\n# TYPE x_total counter\n" +
		"x_total{a=\"quote \\\" back \\\\ nl \\n\",b=\"\"} 3\n" +
		"# HELP y a gauge\n# TYPE y gauge\ny +Inf\n"
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if _, err := parseExposition(buf.String()); err != nil {
		t.Error(err)
	}
}

// TestParseExpositionRejects makes sure the strict parser would catch the
// mistakes it is there to catch.
func TestParseExpositionRejects(t *testing.T) {
	for _, bad := range []string{
		"a 1\n",                               // no HELP/TYPE
		"# HELP a x\n# TYPE a counter\na 1\n", // counter without _total
		"# HELP a x\n# TYPE a gauge\na{b=\"c} 1\n", // unterminated label
		"# HELP a x\n# TYPE a gauge\na{b=\"\\q\"} 1\n",
		"# HELP a x\n# TYPE a gauge\na 1\na 2\n",
		"# HELP a x\n# TYPE a gauge\na one\n",
		"# HELP a x\n# TYPE a gauge\na 1",
		"# HELP a x\n# TYPE a gauge\n# HELP b y\n# TYPE b gauge\nb 1\na 1\n",
	} {
		if _, err := parseExposition(bad); err == nil {
			t.Errorf("parsed without error:\n%s", bad)
		}
	}
}

// snapshots returns a Status and Stats as a daemon serving a local
// clock at stratum 3 with access control and a rate limit might report
// them, and the upstream status used by TestUpstreamMetrics.
func snapshots() (daemon.Status, daemon.Stats) {
	ref := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := daemon.Status{
		Time:          ref.Add(time.Hour),
		Version:       "v1.2.3",
		GoVersion:     "go1.99",
		Started:       ref,
		Serving:       true,
		Listen:        []string{"127.0.0.1:123"},
		Synchronized:  true,
		Reference:     ntpwire.Reference{Stratum: 3, RefID: ntpwire.RefID{192, 0, 2, 1}, Precision: -20, RootDelay: ntpwire.ShortOf(time.Millisecond)},
		ReferenceTime: ref,
		Reloads:       daemon.ReloadStatus{Generation: 2, Successes: 1, Failures: 2, LastSuccess: ref, LastError: "bad"},
	}
	s := daemon.Stats{
		Server: server.Stats{
			Received: 10, Replies: 7, Kisses: 4, BytesReceived: 480, BytesSent: 336, Interleaved: 3, KernelTxStamps: 2,
			Dropped: server.DropStats{Short: 2, Mode: 1},
		},
		Access:    &server.AccessStats{Allowed: 8, DeniedAddr: 2, Kissed: 2},
		RateLimit: &server.RateLimitStats{Allowed: 7, Limited: 1, Kissed: 1},
		Kisses:    map[ntpwire.RefID]uint64{ntpwire.KissDeny: 2, ntpwire.KissRate: 1},
		NTS:       &nts.Stats{Requests: 5, Authenticated: 4, Cookies: 4},
		NTSKE:     &nts.KEStats{Sessions: 2, Served: 1, HandshakeErrors: 1},
		MAC:       &auth.Stats{Requests: 3, Authenticated: 2, BadMAC: 1, CryptoNAKs: 1},
	}
	return st, s
}

func TestDaemonMetrics(t *testing.T) {
	st, s := snapshots()
	var buf strings.Builder
	if err := WriteText(&buf, Daemon(st, s)); err != nil {
		t.Fatal(err)
	}
	e, err := parseExposition(buf.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	for series, want := range map[string]float64{
		`ntpkit_build_info{version="v1.2.3",goversion="go1.99"}`: 1,
		"ntpkit_start_time_seconds":                              float64(st.Started.Unix()),
		"ntpkit_serving":                                         1,
		"ntpkit_requests_total":                                  10,
		"ntpkit_replies_total":                                   7,
		"ntpkit_bytes_received_total":                            480,
		"ntpkit_bytes_sent_total":                                336,
		"ntpkit_interleaved_replies_total":                       3,
		"ntpkit_kernel_tx_timestamps_total":                      2,
		`ntpkit_kiss_total{code="DENY"}`:                         2,
		`ntpkit_kiss_total{code="RATE"}`:                         1,
		`ntpkit_kiss_total{code="other"}`:                        1,
		`ntpkit_dropped_total{reason="short"}`:                   2,
		`ntpkit_dropped_total{reason="mode"}`:                    1,
		`ntpkit_dropped_total{reason="send_error"}`:              0,
		"ntpkit_synchronized":                                    1,
		"ntpkit_stratum":                                         3,
		"ntpkit_leap":                                            0,
		"ntpkit_precision_seconds":                               ntpwire.LogToDuration(-20).Seconds(),
		"ntpkit_root_delay_seconds":                              ntpwire.ShortOf(time.Millisecond).Seconds(),
		"ntpkit_root_dispersion_seconds":                         0,
		"ntpkit_reference_time_seconds":                          float64(st.ReferenceTime.Unix()),
		`ntpkit_config_reloads_total{result="success"}`:          1,
		`ntpkit_config_reloads_total{result="failure"}`:          2,
		"ntpkit_config_last_reload_successful":                   0,
		"ntpkit_config_last_reload_success_time_seconds":         float64(st.Started.Unix()),
		`ntpkit_access_requests_total{result="denied_addr"}`:     2,
		`ntpkit_access_denied_total{action="kissed"}`:            2,
		`ntpkit_ratelimit_requests_total{result="limited"}`:      1,
		`ntpkit_ratelimit_refused_total{action="kissed"}`:        1,
		`ntpkit_nts_requests_total{result="authenticated"}`:      4,
		"ntpkit_nts_cookies_sent_total":                          4,
		`ntpkit_nts_ke_sessions_total{result="handshake_error"}`: 1,
		`ntpkit_mac_requests_total{result="bad_mac"}`:            1,
		"ntpkit_mac_crypto_naks_total":                           1,
	} {
		if got, ok := e.samples[series]; !ok || math.Abs(got-want) > 1e-12*math.Abs(want) {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if _, ok := e.types["ntpkit_upstream_synchronized"]; ok {
		t.Error("upstream metrics without an upstream")
	}
	if _, ok := e.types["go_goroutines"]; ok {
		t.Error("Daemon returned runtime metrics")
	}
	promtoolCheck(t, buf.String())

	// Without authentication the auth families are left out, and with
	// no reference time so is its gauge.
	s.NTS, s.NTSKE, s.MAC = nil, nil, nil
	st.ReferenceTime = time.Time{}
	for _, f := range Daemon(st, s) {
		switch f.Name {
		case "ntpkit_nts_requests_total", "ntpkit_nts_ke_sessions_total", "ntpkit_mac_requests_total", "ntpkit_reference_time_seconds":
			t.Errorf("%s present", f.Name)
		}
	}
}

func TestRuntimeMetrics(t *testing.T) {
	var buf strings.Builder
	if err := WriteText(&buf, Runtime()); err != nil {
		t.Fatal(err)
	}
	e, err := parseExposition(buf.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	runtimeSeries := []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_sys_bytes"}
	if runtime.GOOS == "linux" {
		runtimeSeries = append(runtimeSeries, "process_open_fds")
	}
	for _, series := range runtimeSeries {
		if got, ok := e.samples[series]; !ok || got <= 0 {
			t.Errorf("%s = %v (present %v), want > 0", series, got, ok)
		}
	}
	if _, ok := e.samples["go_gc_cycles_total"]; !ok {
		t.Error("no go_gc_cycles_total")
	}
	promtoolCheck(t, buf.String())
}

// promtoolCheck runs promtool, the reference parser, on text when it is
// installed; the end-to-end test in internal/interop requires it in CI.
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestUpstreamMetrics(t *testing.T) {
	st := upstream.Status{
		Synchronized: true, Offset: 1500 * time.Microsecond, Frequency: -12.5, Updates: 9, Steps: 1,
		RefusedSteps: 2, LeapSecond: ntpwire.LeapInsert, Leaps: 3,
		LastUpdate: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Sources: []upstream.SourceStatus{
			{Name: "192.0.2.1:123", State: upstream.StateSelected, Reach: 0xff, Stratum: 1, Samples: 8, Delay: 20 * time.Millisecond},
			{Name: `odd"name\`, State: upstream.StateUnreachable, Rejects: upstream.Rejects{Timeout: 8, KissRate: 1}},
		},
	}
	ds, s := snapshots()
	ds.Upstream = &st
	var buf strings.Builder
	if err := WriteText(&buf, Daemon(ds, s)); err != nil {
		t.Fatal(err)
	}
	e, err := parseExposition(buf.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	for series, want := range map[string]float64{
		"ntpkit_upstream_synchronized":                                                     1,
		"ntpkit_upstream_offset_seconds":                                                   0.0015,
		"ntpkit_upstream_frequency_ppm":                                                    -12.5,
		"ntpkit_upstream_updates_total":                                                    9,
		"ntpkit_upstream_refused_steps_total":                                              2,
		"ntpkit_upstream_leap_seconds_total":                                               3,
		`ntpkit_upstream_leap_scheduled{kind="insert"}`:                                    1,
		`ntpkit_upstream_leap_scheduled{kind="delete"}`:                                    0,
		`ntpkit_upstream_source_state{source="192.0.2.1:123",state="selected"}`:            1,
		`ntpkit_upstream_source_state{source="192.0.2.1:123",state="init"}`:                0,
		`ntpkit_upstream_source_state{source="odd\"name\\",state="unreachable"}`:           1,
		`ntpkit_upstream_source_reach{source="192.0.2.1:123"}`:                             255,
		`ntpkit_upstream_source_delay_seconds{source="192.0.2.1:123"}`:                     0.02,
		`ntpkit_upstream_source_samples_total{source="192.0.2.1:123"}`:                     8,
		`ntpkit_upstream_source_rejects_total{source="odd\"name\\",reason="timeout"}`:      8,
		`ntpkit_upstream_source_rejects_total{source="odd\"name\\",reason="kiss_rate"}`:    1,
		`ntpkit_upstream_source_rejects_total{source="192.0.2.1:123",reason="bad_origin"}`: 0,
		"ntpkit_upstream_last_update_time_seconds":                                         float64(st.LastUpdate.Unix()),
	} {
		if got, ok := e.samples[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	promtoolCheck(t, buf.String())
}

// fakeSource serves fixed snapshots.
type fakeSource struct {
	st daemon.Status
	s  daemon.Stats
}

func (f fakeSource) Status() daemon.Status { return f.st }
func (f fakeSource) Stats() daemon.Stats   { return f.s }

func TestGather(t *testing.T) {
	st, s := snapshots()
	fams := Gather(fakeSource{st, s})
	names := map[string]bool{}
	for _, f := range fams {
		if names[f.Name] {
			t.Errorf("family %s twice", f.Name)
		}
		names[f.Name] = true
	}
	if !names["ntpkit_requests_total"] || !names["go_goroutines"] {
		t.Errorf("Gather lacks the daemon's or the runtime's families: %v", names)
	}
	if n := len(Daemon(st, s)) + len(Runtime()); len(fams) != n {
		t.Errorf("Gather returned %d families, want %d", len(fams), n)
	}
}

package prom_test

import (
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/auth"
	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/metrics"
	"github.com/ntpkit/ntpkit/server/metrics/prom"
	"github.com/ntpkit/ntpkit/server/nts"
	"github.com/ntpkit/ntpkit/upstream"
)

// fake serves fixed snapshots with every part of the daemon present.
type fake struct{}

func (fake) Status() daemon.Status {
	ref := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return daemon.Status{
		Time: ref.Add(time.Hour), Version: "v1", GoVersion: "go1", Started: ref, Serving: true,
		Listen: []string{"127.0.0.1:123"}, Synchronized: true,
		Reference:     ntpwire.Reference{Stratum: 2, Precision: -20, RootDelay: ntpwire.ShortOf(3 * time.Millisecond)},
		ReferenceTime: ref,
		Reloads:       daemon.ReloadStatus{Generation: 2, Successes: 1, Failures: 1, LastSuccess: ref},
		Upstream: &upstream.Status{
			Synchronized: true, Offset: -250 * time.Microsecond, Frequency: 7.25, Updates: 4, LastUpdate: ref,
			Sources: []upstream.SourceStatus{
				{Name: "192.0.2.1:123", State: upstream.StateSelected, Reach: 0x7f, Poll: 64 * time.Second, Samples: 7},
				{Name: `odd"name\`, State: upstream.StateKoD, Rejects: upstream.Rejects{KissDeny: 1, Timeout: 3}},
			},
		},
	}
}

func (fake) Stats() daemon.Stats {
	return daemon.Stats{
		Server:    server.Stats{Received: 100, Replies: 90, Kisses: 6, BytesReceived: 4800, BytesSent: 4320, Dropped: server.DropStats{Short: 4, Mode: 6}},
		Access:    &server.AccessStats{Allowed: 95, DeniedAddr: 5, Kissed: 3, Dropped: 2},
		RateLimit: &server.RateLimitStats{Allowed: 92, Limited: 3, Kissed: 2, Dropped: 1},
		Kisses:    map[ntpwire.RefID]uint64{ntpwire.KissDeny: 3, ntpwire.KissRate: 2},
		NTS:       &nts.Stats{Requests: 10, Authenticated: 9, NAKs: 1, Cookies: 9},
		NTSKE:     &nts.KEStats{Sessions: 3, Served: 2, HandshakeErrors: 1},
		MAC:       &auth.Stats{Requests: 4, Authenticated: 3, UnknownKey: 1, CryptoNAKs: 1},
	}
}

// series is one sample of a family, for comparison: family name and type,
// labels in a canonical order, and value.
type series struct {
	Name, Type, Labels string
	Value              float64
}

func flatten(fams []*dto.MetricFamily) []series {
	var out []series
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			var v float64
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			default:
				v = m.GetUntyped().GetValue()
			}
			out = append(out, series{f.GetName(), strings.ToLower(f.GetType().String()), strings.Join(labels, ","), v})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Labels < out[j].Labels
	})
	return out
}

// TestCollectorMatchesTextWriter gathers the collector through a
// registry and compares every family's name, type, labels and values with
// what the core module's text writer writes for the same snapshots.
func TestCollectorMatchesTextWriter(t *testing.T) {
	src := fake{}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(prom.NewCollector(src))
	gathered, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}

	var text strings.Builder
	if err := metrics.WriteText(&text, metrics.Daemon(src.Status(), src.Stats())); err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	parsed, err := parser.TextToMetricFamilies(strings.NewReader(text.String()))
	if err != nil {
		t.Fatalf("parse the text writer's output: %v", err)
	}
	var written []*dto.MetricFamily
	for _, f := range parsed {
		written = append(written, f)
	}

	want, got := flatten(written), flatten(gathered)
	if len(want) < 100 {
		t.Fatalf("only %d series written; the snapshots should fill every family", len(want))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("collector differs from the text writer (-text +collector):\n%s", diff)
	}
	// The help texts agree too.
	for _, f := range gathered {
		if w := parsed[f.GetName()]; w == nil || w.GetHelp() != f.GetHelp() {
			t.Errorf("%s: help %q, text writer %q", f.GetName(), f.GetHelp(), w.GetHelp())
		}
	}
	for _, s := range got {
		if math.IsNaN(s.Value) {
			t.Errorf("%s{%s} is NaN", s.Name, s.Labels)
		}
	}
}

// Package prom offers ntpkit's daemon metrics as a prometheus.Collector,
// so that an embedder registers them on its own registry beside its own
// metrics. It is a separate module, so that the Prometheus client library
// never enters the dependencies of github.com/ntpkit/ntpkit itself, whose
// /metrics (package server/ops) writes the same families with the
// dependency-free metrics.WriteText.
//
// The collector gives the families of metrics.Daemon (ntpkit_*), not
// those of metrics.Runtime: a registry normally has the client's own Go
// and process collectors, whose names they share.
package prom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ntpkit/ntpkit/server/metrics"
)

// Collector is a prometheus.Collector over a daemon's metrics. It is
// unchecked: the metric set depends on what the daemon runs (upstream
// sources, NTS), so it describes no metrics in advance. Each Collect
// takes one Status and one Stats snapshot.
type Collector struct {
	src metrics.Source
}

// NewCollector returns a Collector over src, normally a *daemon.Daemon.
func NewCollector(src metrics.Source) *Collector { return &Collector{src: src} }

// Describe sends nothing: the Collector is unchecked.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect sends the current value of every sample of metrics.Daemon.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range metrics.Daemon(c.src.Status(), c.src.Stats()) {
		typ := valueType(f.Type)
		for _, s := range f.Samples {
			names := make([]string, len(s.Labels))
			values := make([]string, len(s.Labels))
			for i, l := range s.Labels {
				names[i], values[i] = l.Name, l.Value
			}
			desc := prometheus.NewDesc(f.Name, f.Help, names, nil)
			m, err := prometheus.NewConstMetric(desc, typ, s.Value, values...)
			if err != nil {
				m = prometheus.NewInvalidMetric(desc, err)
			}
			ch <- m
		}
	}
}

func valueType(t metrics.Type) prometheus.ValueType {
	switch t {
	case metrics.Counter:
		return prometheus.CounterValue
	case metrics.Gauge:
		return prometheus.GaugeValue
	}
	return prometheus.UntypedValue
}

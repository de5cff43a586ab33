package metrics_test

import (
	"fmt"
	"log"
	"os"

	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/metrics"
)

// WriteText writes families in the Prometheus text format.
func ExampleWriteText() {
	fams := []metrics.Family{{
		Name: "ntpkit_kiss_total",
		Help: "Kiss-o'-death replies sent, by kiss code.",
		Type: metrics.Counter,
		Samples: []metrics.Sample{
			{Labels: []metrics.Label{{Name: "code", Value: "DENY"}}, Value: 3},
			{Labels: []metrics.Label{{Name: "code", Value: "RATE"}}, Value: 12},
		},
	}}
	if err := metrics.WriteText(os.Stdout, fams); err != nil {
		log.Fatal(err)
	}
	// Output:
	// # HELP ntpkit_kiss_total Kiss-o'-death replies sent, by kiss code.
	// # TYPE ntpkit_kiss_total counter
	// ntpkit_kiss_total{code="DENY"} 3
	// ntpkit_kiss_total{code="RATE"} 12
}

// Daemon walks a daemon's snapshots; the families are plain data.
func ExampleDaemon() {
	d, err := daemon.New(daemon.Options{Listen: []string{"127.0.0.1:0"}})
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range metrics.Daemon(d.Status(), d.Stats()) {
		if f.Name == "ntpkit_stratum" || f.Name == "ntpkit_serving" {
			fmt.Println(f.Name, f.Type, f.Samples[0].Value)
		}
	}
	// Output:
	// ntpkit_serving gauge 0
	// ntpkit_stratum gauge 10
}

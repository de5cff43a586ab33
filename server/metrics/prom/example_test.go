package prom_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ntpkit/ntpkit/clock/kernelsync"
	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/metrics/prom"
	"github.com/ntpkit/ntpkit/server/ops"
)

// An embedder serves NTP with the daemon and puts its health check and
// metrics on its own mux and registry, beside its own.
func Example() {
	// The host's clock is kept by chronyd or systemd-timesyncd; here the
	// kernel's answer is pinned, so the output is the same on any machine
	// (leave Kernel nil to read the real one).
	kernel := kernelsync.ReaderFunc(func() (kernelsync.State, error) {
		return kernelsync.State{Synchronized: true, MaxError: time.Millisecond}, nil
	})
	d, err := daemon.New(daemon.Options{Listen: []string{"127.0.0.1:0"}, Local: daemon.Local{Kernel: kernel}})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { stop(); <-done }()

	reg := prometheus.NewRegistry()
	reg.MustRegister(prom.NewCollector(d))
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", ops.Handler(d, ops.Options{}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	// What a scraper and a load balancer see:
	<-d.Ready()
	web := httptest.NewServer(mux)
	defer web.Close()
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get(web.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); line == "ok" || strings.HasPrefix(line, "ntpkit_s") && !strings.Contains(line, "time") {
				fmt.Println(path, resp.StatusCode, line)
			}
		}
		resp.Body.Close()
	}
	// Output:
	// /healthz 200 ok
	// /metrics 200 ntpkit_serving 1
	// /metrics 200 ntpkit_stratum 10
	// /metrics 200 ntpkit_synchronized 1
}

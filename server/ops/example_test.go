package ops_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/ntpkit/ntpkit/clock/kernelsync"

	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/ops"
)

// An embedder mounts the daemon's endpoints on its own mux, beside its
// own handlers. (The kernel is simulated as synchronised so that /healthz
// does not depend on the machine's clock.)
func Example() {
	synced := kernelsync.ReaderFunc(func() (kernelsync.State, error) { return kernelsync.State{Synchronized: true}, nil })
	d, err := daemon.New(daemon.Options{Listen: []string{"127.0.0.1:0"}, Local: daemon.Local{Kernel: synced}})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { stop(); <-done }()
	<-d.Ready()

	mux := http.NewServeMux()
	mux.Handle("GET /healthz", ops.Handler(d, ops.Options{}))
	mux.Handle("GET /ntp/", http.StripPrefix("/ntp", ops.Handler(d, ops.Options{})))
	web := httptest.NewServer(mux)
	defer web.Close()

	for _, path := range []string{"/healthz", "/ntp/healthz"} {
		resp, err := http.Get(web.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s: %d %s", path, resp.StatusCode, body)
	}
	// Output:
	// /healthz: 200 ok
	// /ntp/healthz: 200 ok
}

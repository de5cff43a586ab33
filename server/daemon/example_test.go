package daemon_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/ntpkit/ntpkit/clock/kernelsync"

	"github.com/ntpkit/ntpkit/policy"
	"github.com/ntpkit/ntpkit/server/daemon"
)

// A daemon serving the system clock on a loopback port to clients in
// 127.0.0.0/8 only, with the default rate limit. Its health follows what
// the kernel says about the system clock; here a kernel kept in sync by a
// time daemon is simulated, so that the output does not depend on the
// machine (Local.Kernel nil reads the real kernel).
func Example() {
	allow, _ := policy.ParseRule("allow 127.0.0.0/8")
	synced := kernelsync.ReaderFunc(func() (kernelsync.State, error) {
		return kernelsync.State{Synchronized: true, MaxError: time.Millisecond}, nil
	})
	d, err := daemon.New(daemon.Options{
		Listen:    []string{"127.0.0.1:0"},
		Local:     daemon.Local{Kernel: synced},
		Access:    daemon.Access{Rules: []policy.Rule{allow}, Default: policy.Deny},
		RateLimit: daemon.RateLimit{Enabled: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-d.Ready()

	h := d.Health()
	fmt.Println("serving:", h.Serving, "synchronized:", h.Synchronized, "stratum:", d.Status().Reference.Stratum)
	stop()
	fmt.Println("stopped:", <-done, d.Health().Serving)
	// Output:
	// serving: true synchronized: true stratum: 10
	// stopped: <nil> false
}

// Reload swaps in new access rules while the daemon runs, all or nothing,
// and records the outcome.
func ExampleDaemon_Reload() {
	d, err := daemon.New(daemon.Options{Listen: []string{"127.0.0.1:0"}})
	if err != nil {
		log.Fatal(err)
	}
	deny, _ := policy.ParseRule("deny 192.0.2.0/24")
	fmt.Println(d.Reload(daemon.Options{Access: daemon.Access{Rules: []policy.Rule{deny}}}))
	// Kiss-o'-death replies need a budget: refused, nothing changes.
	fmt.Println(d.Reload(daemon.Options{Access: daemon.Access{Kiss: true}}))
	r := d.Status().Reloads
	fmt.Println("generation", r.Generation, "successes", r.Successes, "failures", r.Failures)
	// Output:
	// <nil>
	// daemon: RateLimit.KissPerSecond must be above 0 when Access.Kiss or RateLimit.Kiss is on
	// generation 2 successes 1 failures 1
}

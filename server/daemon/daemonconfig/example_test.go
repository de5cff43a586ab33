package daemonconfig_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/daemon/daemonconfig"
)

// Parse reads a configuration file on top of the defaults; Options turns
// it into the daemon's options.
func Example() {
	cfg, err := daemonconfig.Parse([]byte(`{
		"listen": ["127.0.0.1:0"],
		"local": {"stratum": 5, "refid": "GPS"},
		"access": {"deny": ["192.0.2.0/24"]}
	}`))
	if err != nil {
		log.Fatal(err)
	}
	opts, err := cfg.Options(nil)
	if err != nil {
		log.Fatal(err)
	}
	d, err := daemon.New(opts)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(opts.Local.Stratum, opts.Local.RefID, opts.Access.Rules, opts.RateLimit.Client.Burst)
	fmt.Println(d.Health().Serving)
	// Output:
	// 5 GPS [deny 192.0.2.0/24] 8
	// false
}

// A refused value is a *FieldError naming the field by its JSON path.
func ExampleFieldError() {
	_, err := daemonconfig.Parse([]byte(`{"upstream": {"servers": ["a.example", "b.example:0"]}}`))
	var fe *daemonconfig.FieldError
	if errors.As(err, &fe) {
		fmt.Println(fe.Field)
	}
	fmt.Println(err)
	// Output:
	// upstream.servers[1]
	// config: upstream.servers[1]: "b.example:0": port "0" is not a number in 1–65535
}

// Merge takes the reloadable sections of a new file and says which other
// sections changed and need a restart.
func ExampleMerge() {
	cur := daemonconfig.Default()
	next, _ := daemonconfig.Parse([]byte(`{"local": {"stratum": 3}, "rate_limit": {"burst": 16}}`))
	merged, restart, err := daemonconfig.Merge(cur, next)
	fmt.Println(merged.RateLimit.Burst, merged.Local.Stratum, restart, err)
	// Output:
	// 16 10 [local] <nil>
}

package servertest_test

import (
	"fmt"
	"log"
	"time"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/servertest"
)

// A server on loopback for a test, serving a fake clock: every timestamp
// of the reply, and its reference data, come from the Server's Source.
func ExampleNewServer() {
	clk := clocktest.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	ts := servertest.NewServer(&server.Server{Source: server.NewLocalSource(clk, 2)})
	defer ts.Close()

	rep, err := ts.Query(5 * time.Second)
	if err != nil {
		log.Fatal(err)
	}
	pivot := clk.Now()
	fmt.Println("stratum", rep.Stratum, "refid", rep.RefID)
	fmt.Println("reference", rep.RefTime.In(pivot).Format(time.RFC3339))
	fmt.Println("receive  ", rep.RecvTime.In(pivot).Format(time.RFC3339))
	fmt.Println("transmit ", rep.XmitTime.In(pivot).Format(time.RFC3339))
	// Output:
	// stratum 2 refid 127.127.1.1
	// reference 2030-01-02T03:04:05Z
	// receive   2030-01-02T03:04:05Z
	// transmit  2030-01-02T03:04:05Z
}

package ntpwire_test

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

func ExamplePacket_Decode() {
	// A reply from chronyd running with "local stratum 10", followed by an
	// extension field (testdata/chrony_server_ef.hex).
	b, _ := hex.DecodeString("240a06e700000000000000007f7f0101" +
		"eeaf01847cf66f5d743e26aef9f3de41eeaf01865660e943eeaf018656702b3c" +
		"f323001cf5bedd9a0000000000000000eeaf01865660e929f76dffa5")

	var p ntpwire.Packet
	if err := p.Decode(b); err != nil {
		fmt.Println("drop:", err)
		return
	}
	tr, err := ntpwire.ParseTrailer(p.Version, b[ntpwire.HeaderLen:])
	if err != nil {
		fmt.Println("drop:", err)
		return
	}
	now := time.Date(2026, 11, 23, 18, 17, 0, 0, time.UTC) // a clock reading
	fmt.Printf("NTPv%d %v, stratum %d, refid %v, leap %v\n", p.Version, p.Mode, p.Stratum, p.RefID, p.Leap)
	fmt.Println("precision:", ntpwire.LogToDuration(p.Precision))
	fmt.Println("received:", p.RecvTime.In(now).Format(time.RFC3339Nano))
	fmt.Println("server time:", p.XmitTime.Sub(p.RecvTime))
	fmt.Println("extension fields:", tr.Extensions)
	// Output:
	// NTPv4 server, stratum 10, refid 127.127.1.1, leap none
	// precision: 29ns
	// received: 2026-11-23T18:16:38.337416247Z
	// server time: 232.814µs
	// extension fields: 1
}

func ExampleTime_In() {
	// One second apart, on either side of the 2036 NTP era rollover.
	before := ntpwire.TimeOf(time.Date(2036, 2, 7, 6, 28, 15, 500_000_000, time.UTC))
	after := before.Add(time.Second)
	fmt.Printf("%#016x\n%#016x\n", uint64(before), uint64(after))

	// The era is not on the wire; a nearby pivot (such as the current
	// time) recovers it.
	pivot := time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
	fmt.Println(before.In(pivot))
	fmt.Println(after.In(pivot))
	fmt.Println(after.Sub(before))
	// Output:
	// 0xffffffff80000000
	// 0x0000000080000000
	// 2036-02-07 06:28:15.5 +0000 UTC
	// 2036-02-07 06:28:16.5 +0000 UTC
	// 1s
}

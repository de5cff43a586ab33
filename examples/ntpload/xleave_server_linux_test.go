package main

import (
	"net/netip"
	"testing"

	"github.com/ntpkit/ntpkit/server/servertest"
)

// TestLoadInterleavedAgainstOurServer runs ntpload -interleaved against
// the library's server (interleaved mode on by default, kernel transmit
// stamps on Linux): nearly every reply after each chain's first two is
// interleaved, none is invalid, and the interleaved offsets are no worse
// than the basic ones.
func TestLoadInterleavedAgainstOurServer(t *testing.T) {
	ts := servertest.NewServer(nil)
	t.Cleanup(func() { ts.Close() })
	addr := netip.AddrPortFrom(ts.Addr.Addr(), ts.Addr.Port())
	cfg := loadCfg(t, addr, "-interleaved", "-rate", "2000", "-sockets", "2", "-duration", "500ms")
	res, err := load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep := res.report(cfg)
	x := rep.Interleaved
	st := ts.Server.Stats()
	t.Logf("ntpload: %d valid, %d basic (%d fallbacks), %d interleaved, |offset| p50 basic %.2f µs, interleaved %.2f µs; server: %d interleaved, %d kernel stamps",
		rep.Valid, x.BasicReplies, x.BasicFallbacks, x.InterleavedReplies, x.AbsOffsetBasic.P50, x.AbsOffsetXleave.P50, st.Interleaved, st.KernelTxStamps)
	if rep.Valid == 0 || len(rep.Invalid) != 0 || rep.LossPercent > 1 {
		t.Fatalf("sent %d valid %d invalid %v loss %.2f%%", rep.Sent, rep.Valid, rep.Invalid, rep.LossPercent)
	}
	if x.InterleavedPercent < 80 || x.TxStampsMissing != 0 {
		t.Errorf("%d basic, %d interleaved replies, %d without kernel T1: want mostly interleaved, all stamped", x.BasicReplies, x.InterleavedReplies, x.TxStampsMissing)
	}
	if st.KernelTxStamps == 0 {
		t.Errorf("server stats %+v: no kernel transmit stamp used", st)
	}
	if x.AbsOffsetXleave.P50 > 20 {
		t.Errorf("interleaved |offset| p50 %.1f µs, want a few µs at most", x.AbsOffsetXleave.P50)
	}
}

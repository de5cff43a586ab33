package nts

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/ratelimit"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/servertest"
)

// TestReflectionBudget floods the full chain (rate limit with leak 2 and
// KoDs, NTS) with 20,000 requests spoofing one victim's address over 10 s:
// half plain, half NTS requests with a foreign cookie (which draw NAKs).
// Beyond what the victim's own rate limit allows (burst 8, 1/s), every
// reply the flood draws (leaked replies, KoDs, NAKs) comes from one
// budget of 10/s with a burst of 10, so the victim receives at most
// 8 + 10 + 10 + 100 = 128 replies.
func TestReflectionBudget(t *testing.T) {
	f := newFixture(t)
	table, err := ratelimit.New(ratelimit.Config{Interval: time.Second, Burst: 8, MemoryBytes: ratelimit.MinMemoryBytes})
	if err != nil {
		t.Fatal(err)
	}
	const perSecond, burst = 10, 10
	budget := ratelimit.NewGlobal(perSecond, burst)
	limiter := server.NewRateLimiter(server.RateLimitOptions{
		Table: table, Leak: 2, Kiss: true, KissLimit: budget, LeakLimit: budget,
	})
	f.mw.SetNAKLimit(budget)
	h := server.Chain(server.Responder(), limiter.Wrap, f.mw.Wrap)

	other, _ := NewKeyStore(nil, time.Hour, f.clk)
	k1, k2 := testKeys()
	foreign, _ := other.SealCookie(nil, k1, k2)
	victim := netip.MustParseAddrPort("198.51.100.7:123")

	const total, span = 20000, 10 * time.Second
	start := f.clk.Now()
	var replies, kisses, naks int
	rec := &servertest.Recorder{Clock: f.clk}
	for i := range total {
		p := servertest.ClientPacket(f.clk.Now())
		var raw []byte
		if i%2 == 0 {
			raw = p.AppendTo(nil)
		} else {
			raw = ntske.ClientRequest(nil, &p, uid, foreign, 0, f.c2s)
		}
		req := &server.Request{Packet: p, Raw: raw, Received: f.clk.Now(), Src: victim}
		rec.Reset(req)
		h.ServeNTP(rec, req)
		if rec.Replied {
			replies++
			switch {
			case rec.IsKiss:
				kisses++
			case rec.Packet.RefID == ntpwire.KissNTSN:
				naks++
			}
		}
		f.clk.Advance(span / total)
	}
	elapsed := f.clk.Now().Sub(start).Seconds()
	allowance := 8 + elapsed                            // the victim's own limit
	limit := int(allowance + burst + perSecond*elapsed) // plus the budget
	st := limiter.Stats()
	t.Logf("victim got %d replies (%d KoDs, %d NAKs) for %d spoofed requests in %.0f s; limiter %+v; nts %+v",
		replies, kisses, naks, total, elapsed, st, f.mw.Stats())
	if replies > limit {
		t.Errorf("victim got %d replies, budget allows at most %d", replies, limit)
	}
	if st.LeakLimited == 0 {
		t.Error("no leaked reply was refused by the budget")
	}
}

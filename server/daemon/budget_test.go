package daemon

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/internal/aessiv"
	"github.com/ntpkit/ntpkit/internal/ntske"
	"github.com/ntpkit/ntpkit/internal/ntske/ntsketest"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/nts"
	"github.com/ntpkit/ntpkit/server/servertest"
)

// TestNAKsUnderReflectionBudget floods the daemon's handler with NTS
// requests carrying a cookie it cannot open, from 1000 spoofed sources in
// one second: the NAKs must stay within RateLimit.KissPerSecond, and
// follow it when a reload changes it.
func TestNAKsUnderReflectionBudget(t *testing.T) {
	pki := ntsketest.New(t)
	o := Options{
		Listen:    []string{"127.0.0.1:0"},
		NTS:       NTS{Enabled: true, CertFile: pki.CertFile, KeyFile: pki.KeyFile},
		RateLimit: RateLimit{KissPerSecond: 5},
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := nts.NewKeyStore(nil, time.Hour, nil)
	key := bytes.Repeat([]byte{3}, ntske.KeyLen)
	foreign, _ := other.SealCookie(nil, key, key)
	c2s, _ := aessiv.New(key)
	uid := bytes.Repeat([]byte{0xab}, ntske.MinUniqueIDLen)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	flood := func(start time.Time) (naks int) {
		rec := &servertest.Recorder{}
		for i := range 1000 {
			rx := start.Add(time.Duration(i) * time.Millisecond)
			p := servertest.ClientPacket(rx)
			req := &server.Request{
				Packet: p, Raw: ntske.ClientRequest(nil, &p, uid, foreign, 0, c2s), Received: rx,
				Src: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 123),
			}
			rec.Reset(req)
			d.srv.Handler.ServeNTP(rec, req)
			if rec.Replied && rec.Packet.RefID == ntpwire.KissNTSN {
				naks++
			}
		}
		return naks
	}
	if n := flood(t0); n == 0 || n > 5+5 {
		t.Errorf("%d NAKs in 1 s with a budget of 5/s (burst 5), want 1 to 10", n)
	}
	o.RateLimit.KissPerSecond = 200
	if err := d.Reload(o); err != nil {
		t.Fatal(err)
	}
	if n := flood(t0.Add(time.Minute)); n <= 10 || n > 200+200 {
		t.Errorf("%d NAKs in 1 s after raising the budget to 200/s, want 11 to 400", n)
	}
}

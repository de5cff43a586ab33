package auth

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/clocktest"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/servertest"
	"github.com/ntpkit/ntpkit/server/symkey"
)

func TestMACMiddleware(t *testing.T) {
	keys, err := symkey.Parse(strings.NewReader("1 SHA1 secret\n2 AES128 HEX:000102030405060708090A0B0C0D0E0F\n"))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := symkey.NewKey(3, symkey.SHA1, []byte("unknown"))
	wrong, _ := symkey.NewKey(1, symkey.SHA1, []byte("wrong"))
	k1, _ := keys.Lookup(1)
	k2, _ := keys.Lookup(2)
	clk := clocktest.New(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	req0 := server.Request{Src: netip.MustParseAddrPort("192.0.2.7:123")}
	for _, nak := range []bool{false, true} {
		m := &MAC{Keys: keys, CryptoNAK: nak}
		h := server.Chain(server.Responder(), m.Wrap)
		p := servertest.ClientPacket(clk.Now())
		for _, tc := range []struct {
			name    string
			key     *symkey.Key
			wantKey *symkey.Key // nil: no MACed reply
		}{
			{"sha1", k1, k1},
			{"aes128", k2, k2},
			{"unknown key", other, nil},
			{"bad mac", wrong, nil},
		} {
			req := servertest.NewRequest(p, req0.Src, clk.Now(), nil)
			req.Raw = tc.key.AppendMAC(p.AppendTo(nil))
			rec := &servertest.Recorder{Clock: clk}
			rec.Reset(req)
			h.ServeNTP(rec, req)
			switch {
			case tc.wantKey != nil:
				signed, id, digest, ok := symkey.Split(rec.Sealed)
				if !ok || id != tc.wantKey.ID || !tc.wantKey.Verify(signed, digest) {
					t.Fatalf("%s: reply not MACed with key %d: % x", tc.name, tc.wantKey.ID, rec.Sealed)
				}
				var reply ntpwire.Packet
				reply.Decode(rec.Sealed)
				if reply.OrigTime != p.XmitTime || reply.XmitTime != ntpwire.TimeOf(clk.Now()) {
					t.Fatalf("%s: reply header %+v", tc.name, reply)
				}
			case nak:
				if !symkey.IsCryptoNAK(rec.Sealed) {
					t.Fatalf("%s: want crypto-NAK, got % x", tc.name, rec.Sealed)
				}
			default:
				if rec.Replied {
					t.Fatalf("%s: answered, want drop", tc.name)
				}
			}
		}
		// No MAC: plain reply.
		req := servertest.NewRequest(p, req0.Src, clk.Now(), nil)
		rec := &servertest.Recorder{Clock: clk}
		rec.Reset(req)
		h.ServeNTP(rec, req)
		if !rec.Replied || rec.Sealed != nil {
			t.Fatal("plain request not answered plainly")
		}
		st := m.Stats()
		if st.Authenticated != 2 || st.UnknownKey != 1 || st.BadMAC != 1 || (nak && st.CryptoNAKs != 2) {
			t.Fatalf("stats %+v", st)
		}
	}
}

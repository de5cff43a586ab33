package upstream

import (
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

// TestJudgeInterleaved walks one source through the exchanges of
// interleaved mode with hand-made replies from a server whose clock is
// 1 ms ahead and whose sends take 40 µs after it reads its transmit
// timestamp: basic samples carry the 20 µs error, interleaved ones do
// not; an interleaved reply completing an exchange already sampled gives
// no sample; timestamps that are not of one exchange are refused, and
// the next request is basic again.
func TestJudgeInterleaved(t *testing.T) {
	r := newRig(t, 1, Options{})
	d, s := r.d, r.srcs[0]
	const (
		theta = time.Millisecond       // server ahead
		leg   = 100 * time.Microsecond // each way
		send  = 40 * time.Microsecond  // server's send after it reads T3
	)
	srv := func(raw time.Duration) ntpwire.Time { return d.ntpTime(raw + theta) }
	var (
		t1      time.Duration
		prevTx  ntpwire.Time // true departure of the server's previous reply
		prevKey ntpwire.Time
	)
	// exchange sends at t1 and returns the reply: interleaved when the
	// request asked with the last reply's receive timestamp.
	exchange := func(lie time.Duration) (ntpwire.Packet, time.Duration, bool) {
		asked := s.xl.usable(false)
		rx := t1 + leg
		dep := rx + 10*time.Microsecond + send
		p := ntpwire.Packet{Mode: ntpwire.ModeServer, Stratum: 1, Precision: -20,
			RecvTime: srv(rx) | 1, XmitTime: srv(dep-send) &^ 1}
		xl := asked && prevKey == s.xl.recv
		if xl {
			p.XmitTime = prevTx + ntpwire.TimeOf(time.Unix(0, 0).Add(lie)) - ntpwire.TimeOf(time.Unix(0, 0))
		}
		if asked {
			prevKey, prevTx = p.RecvTime, srv(dep)&^1
		}
		return p, dep + leg, xl
	}
	type step struct {
		lie         time.Duration // added to an interleaved reply's transmit timestamp
		want        outcome
		interleaved bool
		err         time.Duration // expected offset error (0: under 1 µs)
	}
	for i, st := range []step{
		{want: outSample, err: -send / 2},                            // basic: no state yet
		{want: outSample, err: -send / 2},                            // asks; the server saves, answers basic
		{want: outNoSample, interleaved: true},                       // completes exchange 2, sampled already
		{want: outSample, interleaved: true},                         // completes exchange 3
		{want: outSample, interleaved: true},                         // and so on
		{lie: 5 * time.Second, want: outRejected, interleaved: true}, // T3 of no exchange of ours
		{want: outSample, err: -send / 2},                            // basic again
		{want: outSample, err: -send / 2},                            // asks; basic
		{want: outNoSample, interleaved: true},
		{lie: time.Millisecond, want: outRejected, interleaved: true}, // negative delay: a later reply's T3
		{want: outSample, err: -send / 2},
	} {
		t1 += 16 * time.Second
		p, t4, xl := exchange(st.lie)
		if xl != st.interleaved {
			t.Fatalf("exchange %d: interleaved %v, want %v", i, xl, st.interleaved)
		}
		out, _, smp := d.judge(s, &p, t1, t4, nil, xl)
		s.xl.done(out, &p, t1, t4, xl)
		if out != st.want {
			t.Fatalf("exchange %d: outcome %d, want %d", i, out, st.want)
		}
		if out != outSample {
			continue
		}
		if e := smp.offset - theta - st.err; e.Abs() > time.Microsecond || smp.interleaved != xl {
			t.Fatalf("exchange %d: offset %v (interleaved %v), want %v", i, smp.offset, smp.interleaved, theta+st.err)
		}
		if xl && smp.at >= t1 {
			t.Fatalf("exchange %d: interleaved sample at %v, not of the previous exchange (sent %v)", i, smp.at, t1)
		}
	}
}

// TestXleaveMisses: the chain survives up to maxXleaveMisses unanswered
// requests, then the next request is basic; interleaved mode off never
// asks.
func TestXleaveMisses(t *testing.T) {
	var x xleave
	x.done(outSample, &ntpwire.Packet{RecvTime: 3}, 1, 2, false)
	if !x.usable(false) || x.usable(true) {
		t.Fatal("after a sample: want usable, and not when turned off")
	}
	for range maxXleaveMisses {
		x.misses++
	}
	if !x.usable(false) {
		t.Fatalf("after %d misses: want usable", maxXleaveMisses)
	}
	x.misses++
	if x.usable(false) {
		t.Fatalf("after %d misses: want basic", maxXleaveMisses+1)
	}
	x.done(outRate, &ntpwire.Packet{}, 1, 2, false)
	if x.usable(false) {
		t.Fatal("after a kiss: want basic")
	}
}

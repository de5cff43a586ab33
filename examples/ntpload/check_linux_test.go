//go:build linux

package main

import (
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
)

// check tells a reply to an outstanding request from a late one, a
// duplicate, and one to a request never sent, also after the slot was
// reused by a newer request.
func TestCheckClassifiesReplies(t *testing.T) {
	l := &loader{cfg: &config{timeout: time.Second}}
	l.res.init()
	s := &sock{}
	reply := func(origin uint64) {
		b := (&ntpwire.Packet{Version: 4, Mode: ntpwire.ModeServer, Stratum: 1, OrigTime: ntpwire.Time(origin)}).AppendTo(nil)
		l.check(s, b, 0)
	}
	const a, b = 0xabc0000000000005, 0x1230000000000005 // same slot, 5
	s.ring[5] = slot{cookie: a, used: true}
	s.inflight = 1
	reply(a) // answered
	reply(a) // again: duplicate
	reply(0x7770000000000005)
	s.ring[5] = slot{cookie: b, expired: true, prev: a}
	reply(b) // its request was counted lost: late
	reply(a) // the slot's previous request, answered before: duplicate
	s.ring[5].prevExpired = true
	reply(a) // the slot's previous request, counted lost: late
	want := [numBad]uint64{badLate: 2, badDuplicate: 2, badOrigin: 1}
	if l.res.valid != 1 || l.res.invalid != want {
		t.Errorf("valid %d invalid %v, want 1 and %v", l.res.valid, l.res.invalid, want)
	}
}

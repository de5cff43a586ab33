package nts

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock/clocktest"
)

func testKeys() (c2s, s2c []byte) {
	return bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
}

func TestCookieRoundTripAndRotation(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	ks, err := NewKeyStore(nil, time.Hour, clk)
	if err != nil {
		t.Fatal(err)
	}
	c2s, s2c := testKeys()
	cookie, err := ks.SealCookie(nil, c2s, s2c)
	if err != nil {
		t.Fatal(err)
	}
	if len(cookie) != CookieLen || CookieLen%4 != 0 {
		t.Fatalf("cookie is %d bytes, want %d (a multiple of 4)", len(cookie), CookieLen)
	}
	for _, step := range []struct {
		advance time.Duration
		ok      bool
	}{{0, true}, {time.Hour, true}, {time.Hour, true}, {time.Hour, false}} {
		clk.Advance(step.advance)
		gc, gs, err := ks.OpenCookie(cookie)
		if step.ok && (err != nil || !bytes.Equal(gc, c2s) || !bytes.Equal(gs, s2c)) {
			t.Fatalf("at %v: open = %v", clk.Now(), err)
		}
		if !step.ok && !errors.Is(err, ErrCookie) {
			t.Fatalf("at %v: expired cookie opened (err %v)", clk.Now(), err)
		}
	}
	// Another store with its own random seed cannot open the cookie.
	other, _ := NewKeyStore(nil, time.Hour, clk)
	fresh, _ := ks.SealCookie(nil, c2s, s2c)
	if _, _, err := other.OpenCookie(fresh); !errors.Is(err, ErrCookie) {
		t.Fatalf("foreign store opened cookie: %v", err)
	}
	// Tampering is detected.
	fresh[30] ^= 1
	if _, _, err := ks.OpenCookie(fresh); !errors.Is(err, ErrCookie) {
		t.Fatalf("tampered cookie opened: %v", err)
	}
}

func TestSharedSeedFleet(t *testing.T) {
	seed := bytes.Repeat([]byte("fleet seed "), 4)
	clkA := clocktest.New(time.Date(2026, 1, 1, 23, 59, 59, 0, time.UTC))
	clkB := clocktest.New(clkA.Now().Add(2 * time.Second)) // B is already in the next epoch
	a, err := NewKeyStore(seed, 24*time.Hour, clkA)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewKeyStore(seed, 24*time.Hour, clkB)
	c2s, s2c := testKeys()
	ca, _ := a.SealCookie(nil, c2s, s2c)
	cb, _ := b.SealCookie(nil, c2s, s2c)
	if _, _, err := b.OpenCookie(ca); err != nil {
		t.Fatalf("B cannot open A's cookie: %v", err)
	}
	if _, _, err := a.OpenCookie(cb); err != nil {
		t.Fatalf("A cannot open B's cookie from the next epoch: %v", err)
	}
	if _, err := NewKeyStore([]byte("short"), 0, nil); err == nil {
		t.Fatal("short seed accepted")
	}
}

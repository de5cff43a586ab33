package clocktest

import (
	"sync"
	"testing"
	"time"
)

func TestFakeSetAdvance(t *testing.T) {
	start := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	f := New(start)
	if !f.Now().Equal(start) {
		t.Fatalf("Now = %v, want %v", f.Now(), start)
	}
	f.Advance(1500 * time.Millisecond)
	if want := start.Add(1500 * time.Millisecond); !f.Now().Equal(want) {
		t.Fatalf("after Advance Now = %v, want %v", f.Now(), want)
	}
	earlier := start.Add(-time.Hour)
	f.Set(earlier)
	if !f.Now().Equal(earlier) {
		t.Fatalf("after Set Now = %v, want %v", f.Now(), earlier)
	}
}

func TestFakeAfterFunc(t *testing.T) {
	f := New(time.Unix(1000, 0))
	var order []int
	f.AfterFunc(3*time.Second, func() { order = append(order, 3) })
	f.AfterFunc(1*time.Second, func() { order = append(order, 1) })
	tm := f.AfterFunc(2*time.Second, func() { order = append(order, 2) })
	if !tm.Stop() {
		t.Fatal("cancel of a pending timer returned false")
	}
	f.Advance(500 * time.Millisecond)
	if len(order) != 0 {
		t.Fatalf("timers fired early: %v", order)
	}
	f.Advance(5 * time.Second)
	if len(order) != 2 || order[0] != 1 || order[1] != 3 {
		t.Fatalf("fired %v, want [1 3]", order)
	}
	if tm.Stop() {
		t.Fatal("cancel of a removed timer returned true")
	}
	fired := false
	f.AfterFunc(0, func() { fired = true })
	if !fired {
		t.Fatal("a zero-delay timer did not fire at once")
	}
}

func TestFakeAdvanceShowsEachDeadline(t *testing.T) {
	start := time.Unix(1000, 0)
	f := New(start)
	var seen []time.Duration
	var tick func()
	tick = func() {
		seen = append(seen, f.Now().Sub(start))
		if len(seen) < 3 {
			f.AfterFunc(time.Second, tick) // rescheduled within the window
		}
	}
	f.AfterFunc(time.Second, tick)
	f.Advance(10 * time.Second)
	want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	if len(seen) != len(want) || seen[0] != want[0] || seen[1] != want[1] || seen[2] != want[2] {
		t.Fatalf("timers saw %v, want %v", seen, want)
	}
	if got := f.Now().Sub(start); got != 10*time.Second {
		t.Fatalf("after Advance the clock is at +%v, want +10s", got)
	}
	if f.Pending() != 0 {
		t.Fatalf("%d timers pending, want 0", f.Pending())
	}
	if _, ok := f.Next(); ok {
		t.Fatal("Next reports a timer when none is pending")
	}
	f.AfterFunc(5*time.Second, func() {})
	f.AfterFunc(2*time.Second, func() {})
	if next, ok := f.Next(); !ok || !next.Equal(f.Now().Add(2*time.Second)) {
		t.Fatalf("Next = %v, %v; want now+2s", next, ok)
	}
}

func TestFakeConcurrent(t *testing.T) {
	f := New(time.Unix(0, 0))
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				f.Advance(time.Millisecond)
				_ = f.Now()
			}
		}()
	}
	wg.Wait()
	if want := time.Unix(8, 0); !f.Now().Equal(want) {
		t.Fatalf("Now = %v, want %v", f.Now(), want)
	}
}

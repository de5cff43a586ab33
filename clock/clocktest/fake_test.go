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
	cancel := f.AfterFunc(2*time.Second, func() { order = append(order, 2) })
	if !cancel() {
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
	if cancel() {
		t.Fatal("cancel of a removed timer returned true")
	}
	fired := false
	f.AfterFunc(0, func() { fired = true })
	if !fired {
		t.Fatal("a zero-delay timer did not fire at once")
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

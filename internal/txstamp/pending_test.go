package txstamp

import "testing"

func TestPendingAddTake(t *testing.T) {
	p := NewPending[string](3) // rounded up to 4
	for i, v := range []string{"a", "b", "c"} {
		if id := p.Add(v); id != uint32(i) {
			t.Fatalf("Add(%q) = %d, want %d", v, id, i)
		}
	}
	if got := p.Len(); got != 3 {
		t.Fatalf("Len = %d, want 3", got)
	}
	if v, ok := p.Take(1); !ok || v != "b" {
		t.Fatalf("Take(1) = %q, %v; want b, true", v, ok)
	}
	if _, ok := p.Take(1); ok {
		t.Fatal("Take(1) twice succeeded")
	}
	if _, ok := p.Take(7); ok {
		t.Fatal("Take of an ID never added succeeded")
	}
	if got := p.Len(); got != 2 {
		t.Fatalf("Len = %d, want 2", got)
	}
}

func TestPendingOverwrite(t *testing.T) {
	p := NewPending[int](4)
	for i := 0; i < 10; i++ {
		p.Add(i * 10)
	}
	// IDs 6..9 remain; 0..5 were overwritten.
	for id := uint32(0); id < 6; id++ {
		if v, ok := p.Take(id); ok {
			t.Errorf("Take(%d) = %d, want overwritten", id, v)
		}
	}
	for id := uint32(6); id < 10; id++ {
		if v, ok := p.Take(id); !ok || v != int(id)*10 {
			t.Errorf("Take(%d) = %d, %v; want %d, true", id, v, ok, id*10)
		}
	}
	if got := p.Len(); got != 0 {
		t.Fatalf("Len = %d, want 0", got)
	}
}

func TestPendingReset(t *testing.T) {
	p := NewPending[int](8)
	p.Add(1)
	p.Add(2)
	p.Reset()
	if _, ok := p.Take(0); ok {
		t.Fatal("value survived Reset")
	}
	if id := p.Add(3); id != 0 {
		t.Fatalf("Add after Reset = %d, want 0", id)
	}
	if p.Len() != 1 {
		t.Fatalf("Len = %d, want 1", p.Len())
	}
}

func TestPendingWraps(t *testing.T) {
	p := NewPending[int](2)
	p.next = ^uint32(0) // the next ID is the last before wrapping
	if id := p.Add(1); id != ^uint32(0) {
		t.Fatalf("Add = %d", id)
	}
	if id := p.Add(2); id != 0 {
		t.Fatalf("Add after wrap = %d, want 0", id)
	}
	if v, ok := p.Take(^uint32(0)); !ok || v != 1 {
		t.Fatalf("Take(max) = %d, %v", v, ok)
	}
	if v, ok := p.Take(0); !ok || v != 2 {
		t.Fatalf("Take(0) = %d, %v", v, ok)
	}
}

package txstamp

// Pending maps the sequence numbers of stamped datagrams to what the
// caller needs when their stamps arrive. It is a fixed-size ring: the
// value of a datagram whose stamp never comes is overwritten once size
// more datagrams have been added, so memory stays bounded whatever the
// kernel does. A Pending is not safe for concurrent use.
type Pending[T any] struct {
	ring []pendingSlot[T]
	mask uint32
	next uint32
	n    int // valid slots
}

type pendingSlot[T any] struct {
	id    uint32
	valid bool
	v     T
}

// NewPending returns a Pending holding up to size values (rounded up to
// a power of two, at least 1).
func NewPending[T any](size int) *Pending[T] {
	n := 1
	for n < size && n < 1<<30 {
		n <<= 1
	}
	return &Pending[T]{ring: make([]pendingSlot[T], n), mask: uint32(n - 1)}
}

// Add records v under the next sequence number and returns that number.
// Call it once per datagram sent with a PutRequest control message, in
// the order the datagrams were sent.
func (p *Pending[T]) Add(v T) uint32 {
	id := p.next
	p.next++
	s := &p.ring[id&p.mask]
	if !s.valid {
		p.n++
	}
	*s = pendingSlot[T]{id: id, valid: true, v: v}
	return id
}

// Take returns the value recorded under id and forgets it. It reports
// false when id was never added, was already taken, or has been
// overwritten by later datagrams.
func (p *Pending[T]) Take(id uint32) (T, bool) {
	s := &p.ring[id&p.mask]
	if !s.valid || s.id != id {
		var zero T
		return zero, false
	}
	s.valid = false
	p.n--
	return s.v, true
}

// Len reports how many values are held.
func (p *Pending[T]) Len() int { return p.n }

// Reset forgets every value; the next Add returns 0. Pair it with the
// socket's Reset.
func (p *Pending[T]) Reset() {
	clear(p.ring)
	p.next = 0
	p.n = 0
}

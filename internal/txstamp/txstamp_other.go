//go:build !linux

package txstamp

// RequestSpace is how many bytes of control buffer PutRequest writes.
var RequestSpace = 0

// ReceiveSpace is how many extra bytes receive control buffers need
// after Enable.
var ReceiveSpace = 0

// Enable reports ErrUnsupported: only Linux stamps transmitted datagrams.
func Enable(fd uintptr) error { return ErrUnsupported }

// Reset reports ErrUnsupported.
func Reset(fd uintptr) error { return ErrUnsupported }

// PutRequest writes nothing and returns 0.
func PutRequest(oob []byte) int { return 0 }

// Queue reads stamps from a socket's error queue; here there are none.
type Queue struct{}

// NewQueue returns a Queue.
func NewQueue(batch int) *Queue { return &Queue{} }

// Read returns no stamps.
func (q *Queue) Read(fd uintptr) ([]Stamp, error) { return nil, nil }

package kernelsync_test

import (
	"fmt"
	"time"

	"github.com/ntpkit/ntpkit/clock/kernelsync"
)

// A health check that follows the kernel, tested against a simulated
// kernel; in production it would be given kernelsync.System{}.
func Example() {
	healthy := func(r kernelsync.Reader) string {
		s, err := r.Read()
		switch {
		case err != nil:
			return "unknown: " + err.Error()
		case !s.Synchronized:
			return fmt.Sprintf("unhealthy: kernel clock unsynchronised (%v, max error %v)", s.ClockState, s.MaxError)
		}
		return fmt.Sprintf("healthy: max error %v", s.MaxError)
	}
	unsynced := kernelsync.ReaderFunc(func() (kernelsync.State, error) {
		return kernelsync.State{ClockState: kernelsync.StateError, Status: kernelsync.StatusUnsync, MaxError: 16 * time.Second}, nil
	})
	synced := kernelsync.ReaderFunc(func() (kernelsync.State, error) {
		return kernelsync.State{Synchronized: true, MaxError: 1500 * time.Microsecond}, nil
	})
	fmt.Println(healthy(unsynced))
	fmt.Println(healthy(synced))
	// Output:
	// unhealthy: kernel clock unsynchronised (TIME_ERROR, max error 16s)
	// healthy: max error 1.5ms
}

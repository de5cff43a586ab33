//go:build !linux

package kernelsync

import (
	"errors"
	"fmt"
	"runtime"
)

// read reports that the state is unknown. BSDs and macOS have
// ntp_adjtime(2), but golang.org/x/sys/unix offers no wrapper or struct
// timex for them, and macOS allows system calls only through libc.
func read() (State, error) {
	return State{}, fmt.Errorf("kernelsync: reading the kernel clock state on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

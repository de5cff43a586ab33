//go:build linux

package kernelsync

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// read calls adjtimex(2) with modes 0, which only reads.
func read() (State, error) {
	var tx unix.Timex
	st, err := unix.Adjtimex(&tx)
	if err != nil {
		return State{}, fmt.Errorf("kernelsync: adjtimex: %w", err)
	}
	return fromTimex(st, &tx), nil
}

// fromTimex converts adjtimex's return value and struct to a State.
func fromTimex(st int, tx *unix.Timex) State {
	status := uint32(tx.Status)
	offsetUnit := time.Microsecond
	if status&StatusNano != 0 {
		offsetUnit = time.Nanosecond
	}
	return State{
		Synchronized: status&StatusUnsync == 0 && ClockState(st) != StateError,
		ClockState:   ClockState(st),
		Status:       status,
		MaxError:     time.Duration(tx.Maxerror) * time.Microsecond,
		EstError:     time.Duration(tx.Esterror) * time.Microsecond,
		Offset:       time.Duration(tx.Offset) * offsetUnit,
		// freq is in ppm with a 16-bit binary fraction.
		FrequencyPPM: float64(tx.Freq) / 65536,
		TAIOffset:    int(tx.Tai),
	}
}

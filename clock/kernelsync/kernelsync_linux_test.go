//go:build linux

package kernelsync

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestFromTimex(t *testing.T) {
	tests := []struct {
		name  string
		state int
		tx    unix.Timex
		want  State
	}{
		{
			// What a container on an unsynchronised host reports.
			name:  "unsynchronised",
			state: unix.TIME_ERROR,
			tx:    unix.Timex{Maxerror: 16000000, Esterror: 16000000, Status: unix.STA_UNSYNC},
			want: State{ClockState: StateError, Status: StatusUnsync,
				MaxError: 16 * time.Second, EstError: 16 * time.Second},
		},
		{
			// chronyd keeps the clock in nanosecond mode with PLL off.
			name:  "chronyd",
			state: unix.TIME_OK,
			tx:    unix.Timex{Maxerror: 1500, Esterror: 20, Status: unix.STA_NANO, Offset: -2500, Freq: -65536 * 12, Tai: 37},
			want: State{Synchronized: true, ClockState: StateOK, Status: StatusNano,
				MaxError: 1500 * time.Microsecond, EstError: 20 * time.Microsecond,
				Offset: -2500 * time.Nanosecond, FrequencyPPM: -12, TAIOffset: 37},
		},
		{
			name:  "ntpd microsecond PLL, leap pending",
			state: unix.TIME_INS,
			tx:    unix.Timex{Maxerror: 2000, Esterror: 100, Status: unix.STA_PLL | unix.STA_INS, Offset: 15, Freq: 32768},
			want: State{Synchronized: true, ClockState: StateInsert, Status: StatusPLL | StatusInsert,
				MaxError: 2 * time.Millisecond, EstError: 100 * time.Microsecond,
				Offset: 15 * time.Microsecond, FrequencyPPM: 0.5},
		},
		{
			// TIME_ERROR without STA_UNSYNC: e.g. a PPS signal lost
			// while the kernel follows it.
			name:  "clock error",
			state: unix.TIME_ERROR,
			tx:    unix.Timex{Maxerror: 100, Status: unix.STA_PLL},
			want:  State{ClockState: StateError, Status: StatusPLL, MaxError: 100 * time.Microsecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromTimex(tt.state, &tt.tx)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("fromTimex (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSystemRead(t *testing.T) {
	s, err := System{}.Read()
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if s.Synchronized && s.Status&StatusUnsync != 0 {
		t.Errorf("Synchronized with STA_UNSYNC set: %v", s)
	}
	if s.MaxError < 0 || s.MaxError > 16*time.Second {
		t.Errorf("MaxError %v outside 0–16 s", s.MaxError)
	}
	t.Logf("kernel: %v", s)
}

func TestStatusBitsMatchKernelHeaders(t *testing.T) {
	for _, c := range []struct {
		ours uint32
		unix int
	}{{StatusPLL, unix.STA_PLL}, {StatusInsert, unix.STA_INS}, {StatusDelete, unix.STA_DEL}, {StatusUnsync, unix.STA_UNSYNC}, {StatusNano, unix.STA_NANO}} {
		if c.ours != uint32(c.unix) {
			t.Errorf("status bit %#x, kernel header says %#x", c.ours, c.unix)
		}
	}
	for _, c := range []struct {
		ours ClockState
		unix int
	}{{StateOK, unix.TIME_OK}, {StateInsert, unix.TIME_INS}, {StateDelete, unix.TIME_DEL}, {StateInLeap, unix.TIME_OOP}, {StateLeapDone, unix.TIME_WAIT}, {StateError, unix.TIME_ERROR}} {
		if int(c.ours) != c.unix {
			t.Errorf("clock state %v is %d, kernel header says %d", c.ours, c.ours, c.unix)
		}
	}
}

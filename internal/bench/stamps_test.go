package main

import "testing"

func TestBasicOnly(t *testing.T) {
	run := func(pct float64) sample {
		return sample{report: report{Interleaved: &xleaveReport{InterleavedPercent: pct}}}
	}
	for _, tc := range []struct {
		name string
		xs   []sample
		ok   bool
	}{
		{"all basic", []sample{run(0), run(0)}, true},
		{"a trace interleaved", []sample{run(0), run(maxStampsXleavePct)}, true},
		{"server answers interleaved", []sample{run(0), run(94.4)}, false},
		{"just over the limit", []sample{run(2 * maxStampsXleavePct)}, false},
		{"no interleaved figures", []sample{run(0), {}}, false},
		{"no runs", nil, true},
	} {
		err := basicOnly("srv", tc.xs)
		if (err == nil) != tc.ok {
			t.Errorf("%s: basicOnly = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

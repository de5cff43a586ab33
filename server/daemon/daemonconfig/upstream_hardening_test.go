package daemonconfig

import (
	"errors"
	"testing"
	"time"
)

// TestUpstreamHardeningConfig: drift_file, leap_smear and max_step reach
// the Discipliner's options, and bad values are refused with the field's
// name.
func TestUpstreamHardeningConfig(t *testing.T) {
	for _, tc := range []struct{ json, field string }{
		{`{"upstream": {"servers": ["a"], "leap_smear": "tomorrow"}}`, "upstream.leap_smear"},
		{`{"upstream": {"servers": ["a"], "leap_smear": "500ms"}}`, "upstream.leap_smear"},
		{`{"upstream": {"servers": ["a"], "leap_smear": "72h"}}`, "upstream.leap_smear"},
		{`{"upstream": {"servers": ["a"], "max_step": "0s"}}`, "upstream.max_step"},
		{`{"upstream": {"servers": ["a"], "max_step": "10ms"}}`, "upstream.max_step"},
		{`{"upstream": {"servers": ["a"], "drift_file": "drift"}}`, "upstream.drift_file"},
	} {
		_, err := Parse([]byte(tc.json))
		var fe *FieldError
		if err == nil || !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: error %v, want a FieldError for %s", tc.json, err, tc.field)
		}
	}
	cfg, err := Parse([]byte(`{"upstream": {"servers": ["a"], "drift_file": "/var/lib/ntpkit/drift", "leap_smear": "24h", "max_step": "1000s"}}`))
	if err != nil {
		t.Fatal(err)
	}
	o, err := cfg.Upstream.options()
	if err != nil || o.DriftFile != "/var/lib/ntpkit/drift" || o.LeapSmear != 24*time.Hour || o.MaxStep != 1000*time.Second {
		t.Fatalf("options %+v, %v", o, err)
	}
	cfg, err = Parse([]byte(`{"upstream": {"servers": ["a"], "max_step": "none"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := cfg.Upstream.options(); o.MaxStep >= 0 {
		t.Fatalf(`max_step "none" gives %v, want no limit (negative)`, o.MaxStep)
	}
}

// TestUpstreamDisableInterleaved: disable_interleaved reaches upstream.Options;
// interleaved mode is on by default.
func TestUpstreamDisableInterleaved(t *testing.T) {
	for _, c := range []struct {
		json string
		off  bool
	}{
		{`{"upstream": {"servers": ["a"]}}`, false},
		{`{"upstream": {"servers": ["a"], "disable_interleaved": true}}`, true},
	} {
		cfg, err := Parse([]byte(c.json))
		if err != nil {
			t.Fatal(err)
		}
		if o, err := cfg.Upstream.options(); err != nil || o.DisableInterleaved != c.off {
			t.Fatalf("%s: DisableInterleaved %v, %v; want %v", c.json, o.DisableInterleaved, err, c.off)
		}
	}
}

package daemonconfig

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigHasNoUpstream(t *testing.T) {
	cfg := Default()
	o, err := cfg.Options(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Upstream.Servers) != 0 {
		t.Fatalf("the embedded default config has upstream servers %+v: running the daemon with no arguments must contact nothing outside the machine", o.Upstream.Servers)
	}
}

func TestUpstreamConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct{ json, field string }{
		{`{"upstream": {"servers": ["a:123", "b:123", "c:0"]}}`, "upstream.servers[2]"},
		{`{"upstream": {"servers": [":123"]}}`, "upstream.servers[0]"},
		{`{"upstream": {"servers": ["a"], "min_poll": "soon"}}`, "upstream.min_poll"},
		{`{"upstream": {"servers": ["a"], "min_poll": "10s", "max_poll": "1s"}}`, "upstream.max_poll"},
		{`{"upstream": {"servers": ["a"], "step_threshold": "-1s"}}`, "upstream.step_threshold"},
		{`{"upstream": {"servers": ["a"], "holdover": "0s"}}`, "upstream.holdover"},
		{`{"upstream": {"servers": ["a"], "min_sources": -1}}`, "upstream.min_sources"},
		{`{"upstream": {"servers": ["a"], "bogus": 1}}`, "bogus"},
	} {
		_, err := Parse([]byte(tc.json))
		var fe *FieldError
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %v, want one naming %s", tc.json, err, tc.field)
		} else if tc.field != "bogus" && (!errors.As(err, &fe) || fe.Field != tc.field) {
			t.Errorf("%s: error %#v, want a FieldError for %s", tc.json, err, tc.field)
		}
	}
	cfg, err := Parse([]byte(`{"upstream": {"servers": ["127.0.0.1:123", "[::1]:1234", "localhost"], "min_poll": "250ms", "max_poll": "4s", "holdover": "1m"}}`))
	if err != nil {
		t.Fatal(err)
	}
	o, _ := cfg.Upstream.options()
	if o.MinPoll != 250*time.Millisecond || o.MaxPoll != 4*time.Second || o.Holdover != time.Minute {
		t.Fatalf("options %+v", o)
	}
}

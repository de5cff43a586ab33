package daemonconfig

import (
	"strings"
	"testing"

	"github.com/ntpkit/ntpkit/server"
)

func TestWhenUnsynchronized(t *testing.T) {
	for in, want := range map[string]server.UnsyncPolicy{
		`{}`: server.ServeLocalClock,
		`{"local": {"when_unsynchronized": "serve"}}`:          server.ServeLocalClock,
		`{"local": {"when_unsynchronized": "unsynchronized"}}`: server.AnnounceUnsynchronized,
	} {
		c, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		o, err := c.Options(nil)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if o.Local.WhenUnsynchronized != want {
			t.Errorf("%s: policy %v, want %v", in, o.Local.WhenUnsynchronized, want)
		}
	}
	_, err := Parse([]byte(`{"local": {"when_unsynchronized": "alarm"}}`))
	if err == nil || !strings.Contains(err.Error(), "local.when_unsynchronized") {
		t.Errorf("bad value: %v, want an error naming local.when_unsynchronized", err)
	}
}

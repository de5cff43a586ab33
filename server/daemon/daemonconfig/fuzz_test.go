package daemonconfig

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzConfig feeds arbitrary bytes to the configuration decoder. It must
// never panic; an error must be a *FieldError or name JSON as the cause;
// and a configuration it accepts must validate and survive a round trip:
// json.Marshal then ParseConfig gives an equal Config (every field is a
// plain JSON type, durations included, which are strings).
//
// The seed corpus in testdata/fuzz/FuzzConfig holds a few broken
// configurations; the embedded default is added too, so the fuzzer starts
// from what the daemon actually ships.
func FuzzConfig(f *testing.F) {
	f.Add(DefaultJSON())
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"rate_limit": {"interval": "-1s"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("empty error for %q", data)
			}
			var fe *FieldError
			if errors.As(err, &fe) && fe.Field == "" && fe.Reason == "" {
				t.Fatalf("FieldError with neither field nor reason for %q", data)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v\n%q", err, data)
		}
		enc, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("re-encode accepted config: %v", err)
		}
		again, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-encoded config refused: %v\nfirst: %q\nre-encoded: %s", err, data, enc)
		}
		if diff := cmp.Diff(cfg, again); diff != "" {
			t.Fatalf("config changed in a round trip (-first +again):\n%s\ninput: %q", diff, data)
		}
	})
}

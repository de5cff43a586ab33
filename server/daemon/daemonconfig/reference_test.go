package daemonconfig

import (
	"encoding/json"
	"strings"
	"testing"
)

// Every key is documented and typed, and the default configuration
// (-print-default-config) lists every key outside list elements.
func TestReferenceComplete(t *testing.T) {
	keys, err := Reference()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 60 {
		t.Fatalf("%d keys", len(keys))
	}
	var def map[string]any
	if err := json.Unmarshal(DefaultJSON(), &def); err != nil {
		t.Fatal(err)
	}
	lookup := func(path string) bool {
		var v any = def
		for _, part := range strings.Split(path, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				return false
			}
			if v, ok = m[part]; !ok {
				return false
			}
		}
		return true
	}
	for _, k := range keys {
		if k.Doc == "" {
			t.Errorf("%s has no doc comment", k.Path)
		}
		switch k.Type {
		case "string", "duration", "integer", "number", "boolean", "list of strings", "object", "list of objects":
		default:
			t.Errorf("%s has type %q", k.Path, k.Type)
		}
		if !strings.Contains(k.Path, "[]") && !lookup(k.Path) {
			t.Errorf("the default configuration lacks %s", k.Path)
		}
		if (k.Reload == "yes") != (strings.HasPrefix(k.Path, "access") || strings.HasPrefix(k.Path, "rate_limit")) {
			t.Errorf("%s: reload %q", k.Path, k.Reload)
		}
	}
	for _, want := range []string{"upstream.drift_file", "upstream.leap_smear", "upstream.max_step", "upstream.sources[].address", "upstream.nts_trusted_certs", "local.when_unsynchronized"} {
		found := false
		for _, k := range keys {
			found = found || k.Path == want
		}
		if !found {
			t.Errorf("reference lacks %s", want)
		}
	}
	for path, typ := range map[string]string{"upstream.holdover": "duration", "upstream.max_step": "duration", "rate_limit.burst": "integer", "access.allow": "list of strings"} {
		for _, k := range keys {
			if k.Path == path && k.Type != typ {
				t.Errorf("%s: type %s, want %s", path, k.Type, typ)
			}
		}
	}
}

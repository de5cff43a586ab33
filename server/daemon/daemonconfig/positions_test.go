package daemonconfig

import (
	"errors"
	"testing"
)

// TestErrorPositions checks whole messages: errors found while reading
// the file name the key by its full path, list indexes included, and say
// where it is.
func TestErrorPositions(t *testing.T) {
	for _, tc := range []struct {
		name, json, want string
	}{
		{"unknown key in a section", "{\n  \"rate_limit\": {\n    \"brust\": 4\n  }\n}",
			"config: rate_limit.brust: unknown field at line 3, column 5; the keys here are enabled, interval, burst, ipv4_prefix, ipv6_prefix, memory, leak, kiss, global_per_second, global_burst, kiss_per_second"},
		{"unknown key in a list element", "{\"upstream\": {\"sources\": [{\"address\": \"a\"},\n  {\"adress\": \"b\"}]}}",
			"config: upstream.sources[1].adress: unknown field at line 2, column 4; the keys here are address, nts, key"},
		{"unknown key beside a key also in another section", "{\"api\": {\"listen\": \"127.0.0.1:0\"},\n \"nts\": {\"listen\": \"127.0.0.1:0\", \"lisen\": 1}}",
			"config: nts.lisen: unknown field at line 2, column 35; the keys here are enabled, listen, cert_file, key_file, ntp_server, ntp_port, key_seed_file, rotation, max_sessions"},
		{"duplicate key", "{\n  \"rate_limit\": {\n    \"burst\": 4,\n    \"burst\": 8\n  }\n}",
			"config: rate_limit.burst: given twice (again at line 4, column 5); the second would silently replace the first"},
		{"duplicate section", "{\"local\": {\"stratum\": 2},\n\"local\": {\"refid\": \"GPS\"}}",
			"config: local: given twice (again at line 2, column 1); the second would silently replace the first"},
		{"wrong type in a list", "{\"listen\": [\"127.0.0.1:1\",\n  2]}",
			"config: listen[1]: wrong type at line 2, column 3: got JSON number, want string"},
		{"wrong type in a list element's key", "{\"upstream\": {\"sources\": [{\"address\": \"a\"},\n {\"address\": \"b\", \"key\": \"5\"}]}}",
			"config: upstream.sources[1].key: wrong type at line 2, column 26: got JSON string, want uint32"},
		{"wrong type", "{\n  \"local\": {\"stratum\": \"2\"}\n}",
			"config: local.stratum: wrong type at line 2, column 24: got JSON string, want int"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.json))
			if err == nil || err.Error() != tc.want {
				t.Errorf("Parse error:\n got %v\nwant %s", err, tc.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Errorf("%T is not a FieldError", err)
			}
		})
	}
}

func TestStripIndexes(t *testing.T) {
	for in, want := range map[string]string{"a": "a", "a[2].b": "a.b", "a[1][2]": "a", "upstream.sources[10].key": "upstream.sources.key"} {
		if got := stripIndexes(in); got != want {
			t.Errorf("stripIndexes(%q) = %q, want %q", in, got, want)
		}
	}
}

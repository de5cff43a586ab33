package daemonconfig

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestHostileConfigRefused feeds values that would exhaust memory, hammer
// public servers or be silently half ignored: each must be refused with
// the field that is wrong, before anything is allocated.
func TestHostileConfigRefused(t *testing.T) {
	for _, tc := range []struct{ name, json, field string }{
		{"name cache of 2e9 entries", `{"access": {"names": {"deny": [".x.example"], "max_entries": 2000000000}}}`, "access.names.max_entries"},
		{"16 GiB rate-limit table", `{"rate_limit": {"memory": 17179869184}}`, "rate_limit.memory"},
		{"1024 sockets × 1024 workers", `{"server": {"sockets": 1024, "workers": 1024}}`, "server.workers"},
		{"1024 workers per CPU socket", `{"server": {"sockets": 0, "workers": 1024}}`, "server.workers"},
		{"1 ms polls of a public server", `{"upstream": {"servers": ["pool.ntp.org"], "min_poll": "1ms"}}`, "upstream.min_poll"},
		{"1 s polls of an NTS source", `{"upstream": {"sources": [{"address": "time.example", "nts": true}], "min_poll": "1s"}}`, "upstream.min_poll"},
		{"fast polls, one remote among loopback", `{"upstream": {"servers": ["127.0.0.1", "192.0.2.1"], "min_poll": "2s"}}`, "upstream.min_poll"},
		{"two access sections", `{"access": {"default": "deny"}, "access": {"allow": ["10.0.0.0/8"]}}`, "access"},
		{"a key given twice", `{"local": {"stratum": 2, "stratum": 3}}`, "local.stratum"},
		{"keys differing in case", `{"log_level": "info", "LOG_LEVEL": "debug"}`, "LOG_LEVEL"},
		{"twice inside a list", `{"upstream": {"sources": [{"address": "a", "address": "b"}]}}`, "upstream.sources[0].address"},
		{"API on every interface without a token", `{"api": {"listen": "0.0.0.0:8080"}}`, "api.listen"},
		{"API on an empty host without a token", `{"api": {"listen": ":8080"}}`, "api.listen"},
		{"API on a public address without a token", `{"api": {"listen": "192.0.2.1:8080"}}`, "api.listen"},
		{"API host with a space", `{"api": {"hosts": ["a b"]}}`, "api.hosts[0]"},
	} {
		_, err := Parse([]byte(tc.json))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: error %v, want one naming %s", tc.name, err, tc.field)
		}
	}
	for _, tc := range []struct{ name, json string }{
		{"fast polls of loopback servers", `{"upstream": {"servers": ["127.0.0.1:1234", "[::1]", "localhost:123"], "min_poll": "250ms", "max_poll": "1s"}}`},
		{"16 s polls of a public server", `{"upstream": {"servers": ["pool.ntp.org"], "min_poll": "16s"}}`},
		{"1 GiB table", `{"rate_limit": {"memory": 1073741824}}`},
		{"a million names", `{"access": {"names": {"deny": [".x.example"], "max_entries": 1048576}}}`},
		{"API off loopback, explicitly without a token", `{"api": {"listen": "0.0.0.0:8080", "allow_no_token": true}}`},
		{"API on IPv6 loopback", `{"api": {"listen": "[::1]:8080", "hosts": ["ntp1.example.net"]}}`},
		{"same key in two objects", `{"access": {"default": "allow"}, "rate_limit": {"enabled": true}, "api": {"listen": "127.0.0.1:0"}}`},
	} {
		if _, err := Parse([]byte(tc.json)); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if n := runtime.GOMAXPROCS(0); n <= 512 {
		w := strconv.Itoa(1024 / n / 2) // the default listens on two addresses
		if _, err := Parse([]byte(`{"server": {"sockets": 0, "workers": ` + w + `}}`)); err != nil {
			t.Errorf("%s workers on %d sockets refused: %v", w, n, err)
		}
	}
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)
	if _, err := Parse([]byte(deep)); err == nil {
		t.Error("100 levels of nesting accepted")
	}
}

package daemonconfig

import "testing"

func TestFindDuplicateKey(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"listen": ["127.0.0.1:123"], "local": {"stratum": 2}}`, ""},
		{`{"access": {"allow": ["10.0.0.0/8"]}, "access": {"deny": ["10.0.0.0/8"]}}`, "access"},
		{`{"local": {"stratum": 2, "refid": "X", "stratum": 3}}`, "local.stratum"},
		{`{"listen": [], "Listen": []}`, "Listen"},
		{`{"upstream": {"sources": [{"address": "a"}, {"address": "b", "nts": true, "nts": false}]}}`, "upstream.sources[1].nts"},
		{`{"a": [{"x": 1}, {"x": 2}], "b": {"x": 1}}`, ""},
		{`[1, 2, {"k": 1, "k": 2}]`, "[2].k"},
	} {
		got, err := findDuplicateKey([]byte(tc.json))
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.json, got, err, tc.want)
		}
	}
	deep := ""
	for range 100 {
		deep += `{"a":`
	}
	if _, err := findDuplicateKey([]byte(deep + "1" + deep)); err == nil {
		t.Error("100 levels of nesting accepted")
	}
	if _, err := findDuplicateKey([]byte(`{"a": `)); err == nil {
		t.Error("truncated JSON accepted")
	}
}

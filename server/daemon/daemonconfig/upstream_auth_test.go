package daemonconfig

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ntpkit/ntpkit/internal/ntske/ntsketest"
	"github.com/ntpkit/ntpkit/server/symkey"
)

func TestUpstreamSourcesConfig(t *testing.T) {
	for _, tc := range []struct{ json, field string }{
		{`{"upstream": {"sources": [{"address": "a", "nts": true}, {"address": "b:0"}]}}`, "upstream.sources[1].address"},
		{`{"upstream": {"sources": [{"address": "a", "nts": true, "key": 3}]}}`, "upstream.sources[0]"},
		{`{"upstream": {"sources": [{"address": "a", "tls": 1}]}}`, "tls"},
		{`{"upstream": {"sources": [{"address": "a", "nts": true}], "min_sources": 5}}`, "upstream.min_sources"},
	} {
		_, err := Parse([]byte(tc.json))
		var fe *FieldError
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %v, want one naming %s", tc.json, err, tc.field)
		} else if tc.field != "tls" && (!errors.As(err, &fe) || fe.Field != tc.field) {
			t.Errorf("%s: error %#v, want a FieldError for %s", tc.json, err, tc.field)
		}
	}

	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys")
	if err := os.WriteFile(keysFile, []byte("5 AES128 HEX:6FEA9A2D4C3F7E1A0B9C8D7E6F5A4B3C\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pki := ntsketest.New(t)
	cfg, err := Parse([]byte(`{"upstream": {"servers": ["192.0.2.9"],
		"sources": [{"address": "192.0.2.1", "nts": true}, {"address": "192.0.2.2:123", "key": 5}],
		"nts_trusted_certs": "` + pki.CAFile + `"}}`))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := symkey.LoadFile(keysFile)
	if err != nil {
		t.Fatal(err)
	}
	servers, err := cfg.Upstream.servers(keys, keysFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 3 || servers[0].Address != "192.0.2.9" || servers[0].NTS || servers[0].Key != nil {
		t.Fatalf("servers %+v", servers)
	}
	if s := servers[1]; !s.NTS || s.TLSConfig == nil || s.TLSConfig.RootCAs == nil || s.Key != nil {
		t.Fatalf("NTS source %+v", s)
	}
	if s := servers[2]; s.NTS || s.Key == nil || s.Key.ID != 5 || s.TLSConfig != nil {
		t.Fatalf("keyed source %+v", s)
	}

	for _, tc := range []struct {
		keys         *symkey.Keys
		certs, field string
	}{
		{nil, "", "upstream.sources[1].key"},
		{keys, filepath.Join(dir, "missing.pem"), "upstream.nts_trusted_certs"},
		{keys, keysFile, "upstream.nts_trusted_certs"}, // not PEM
	} {
		c := cfg.Upstream
		c.NTSTrustedCerts = tc.certs
		_, err := c.servers(tc.keys, keysFile)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("keys %v, certs %q: error %v, want a FieldError for %s", tc.keys != nil, tc.certs, err, tc.field)
		}
	}
	c := cfg.Upstream
	c.Sources[1].Key = 6
	if _, err := c.servers(keys, keysFile); err == nil || !strings.Contains(err.Error(), "upstream.sources[1].key") {
		t.Errorf("unknown key: %v", err)
	}
	missing := cfg
	missing.KeysFile = filepath.Join(dir, "missing")
	var fe *FieldError
	if _, err := missing.Options(nil); !errors.As(err, &fe) || fe.Field != "keys_file" {
		t.Errorf("missing keys file: %v, want a FieldError for keys_file", err)
	}
}

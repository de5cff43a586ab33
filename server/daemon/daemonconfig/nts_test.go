package daemonconfig

import (
	"errors"
	"testing"

	"github.com/ntpkit/ntpkit/server/daemon"
)

func TestNTSConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		json, field string
	}{
		{`{"nts": {"enabled": true, "key_file": "k"}}`, "nts.cert_file"},
		{`{"nts": {"enabled": true, "cert_file": "c"}}`, "nts.key_file"},
		{`{"nts": {"rotation": "daily"}}`, "nts.rotation"},
		{`{"nts": {"rotation": "1s"}}`, "nts.rotation"},
		{`{"nts": {"listen": "localhost:4460"}}`, "nts.listen"},
		{`{"nts": {"ntp_port": 70000}}`, "nts.ntp_port"},
		{`{"nts": {"max_sessions": -1}}`, "nts.max_sessions"},
		{`{"nts": {"enabled": "yes"}}`, "nts.enabled"},
	} {
		_, err := Parse([]byte(tc.json))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: error %v, want one naming %s", tc.json, err, tc.field)
		}
	}
	cfg, err := Parse([]byte(`{"nts": {"enabled": true, "cert_file": "c", "key_file": "k"}, "keys_file": "/etc/keys"}`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NTS.Rotation != "24h" || cfg.NTS.Listen != daemon.DefaultNTSListen || cfg.KeysFile != "/etc/keys" {
		t.Fatalf("config %+v", cfg.NTS)
	}
}

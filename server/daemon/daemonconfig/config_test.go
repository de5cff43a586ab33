package daemonconfig

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultConfigValid(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	if cfg.API.Listen != "127.0.0.1:8080" {
		t.Errorf("default api.listen = %q, want 127.0.0.1:8080", cfg.API.Listen)
	}
	for _, a := range cfg.Listen {
		if strings.HasSuffix(a, ":123") {
			t.Errorf("default listen %q needs privileges; want an unprivileged port", a)
		}
	}
}

func TestParseConfigOverridesDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`{"local": {"stratum": 3}, "api": {"listen": ""}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Local.Stratum = 3
	want.API.Listen = ""
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

// TestConfigRefusesBadValues gives every field a bad value and checks that
// the error names the field.
func TestConfigRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		json  string
		field string // FieldError.Field; empty: not a FieldError
		want  string // in the message
	}{
		{"listen empty", `{"listen": []}`, "listen", "at least one"},
		{"listen not host:port", `{"listen": ["127.0.0.1"]}`, "listen[0]", "missing port"},
		{"listen port range", `{"listen": ["127.0.0.1:123", "[::1]:65536"]}`, "listen[1]", "0–65535"},
		{"listen port negative", `{"listen": ["127.0.0.1:-1"]}`, "listen[0]", "0–65535"},
		{"listen host name", `{"listen": ["localhost:123"]}`, "listen[0]", "IP address"},
		{"listen wrong type", `{"listen": "127.0.0.1:123"}`, "listen", "wrong type"},
		{"stratum zero", `{"local": {"stratum": 0}}`, "local.stratum", "1–15"},
		{"stratum 16", `{"local": {"stratum": 16}}`, "local.stratum", "1–15"},
		{"stratum wrong type", `{"local": {"stratum": "2"}}`, "local.stratum", "wrong type"},
		{"stratum fraction", `{"local": {"stratum": 2.5}}`, "local.stratum", "wrong type"},
		{"refid too long", `{"local": {"refid": "ABCDE"}}`, "local.refid", "4 ASCII"},
		{"refid control char", `{"local": {"refid": "A\u0001"}}`, "local.refid", "non-printable"},
		{"refid wrong type", `{"local": {"refid": 1}}`, "local.refid", "wrong type"},
		{"sockets negative", `{"server": {"sockets": -1}}`, "server.sockets", "negative"},
		{"sockets too many", `{"server": {"sockets": 5000}}`, "server.sockets", "1024"},
		{"workers negative", `{"server": {"workers": -2}}`, "server.workers", "negative"},
		{"workers too many", `{"server": {"workers": 2000}}`, "server.workers", "1024"},
		{"read buffer negative", `{"server": {"read_buffer": -1}}`, "server.read_buffer", "negative"},
		{"write buffer negative", `{"server": {"write_buffer": -1}}`, "server.write_buffer", "negative"},
		{"write buffer wrong type", `{"server": {"write_buffer": "big"}}`, "server.write_buffer", "wrong type"},
		{"send batch negative", `{"server": {"send_batch": -1}}`, "server.send_batch", "negative"},
		{"send batch too big", `{"server": {"send_batch": 1025}}`, "server.send_batch", "more than 1024"},
		{"interleaved table negative", `{"server": {"interleaved_table_size": -1}}`, "server.interleaved_table_size", "negative"},
		{"interleaved table too big", `{"server": {"interleaved_table_size": 16777217}}`, "server.interleaved_table_size", "16777216"},
		{"disable interleaved wrong type", `{"server": {"disable_interleaved": "yes"}}`, "server.disable_interleaved", "wrong type"},
		{"log level", `{"log_level": "loud"}`, "log_level", "debug, info"},
		{"api listen no port", `{"api": {"listen": "127.0.0.1"}}`, "api.listen", "missing port"},
		{"api listen port range", `{"api": {"listen": "127.0.0.1:80800"}}`, "api.listen", "0–65535"},
		{"api listen host name", `{"api": {"listen": "localhost:8080"}}`, "api.listen", "IP address"},
		{"api listen wrong type", `{"api": {"listen": 8080}}`, "api.listen", "wrong type"},
		{"api token without api", `{"api": {"listen": "", "token_file": "/etc/ntpkit/token"}}`, "api.token_file", "API is off"},
		{"unknown top-level field", `{"listne": []}`, "listne", `listne: unknown field at line 1, column 2; the keys here are listen, local,`},
		{"unknown nested field", `{"api": {"token": "x"}}`, "api.token", `api.token: unknown field at line 1, column 10; the keys here are listen, token_file`},
		{"unknown field in a section", `{"rate_limit": {"brust": 3}}`, "rate_limit.brust", `rate_limit.brust: unknown field`},
		{"section misnamed", `{"upstream": {"server": ["192.0.2.1"]}}`, "upstream.server", `upstream.server: unknown field at line 1, column 15; the keys here are servers,`},
		{"unknown field in a list", `{"upstream": {"sources": [{"address": "192.0.2.1", "kye": 1}]}}`, "upstream.sources[0].kye", `unknown field`},
		{"syntax error", "{\n  \"listen\": [\n    \"127.0.0.1:123\",,\n  ]\n}", "", `JSON syntax error at line 3, column 21`},
		{"wrong type", "{\n  \"rate_limit\": {\"burst\": \"8\"}\n}", "rate_limit.burst", `wrong type at line 2, column`},
		{"negative duration", `{"rate_limit": {"interval": "-1s"}}`, "rate_limit.interval", `"-1s" is negative`},
		{"not a duration", `{"rate_limit": {"interval": "1 second"}}`, "rate_limit.interval", `"1 second" is not a duration; write a number and a unit`},
		{"zero poll", `{"upstream": {"min_poll": "0s"}}`, "upstream.min_poll", `"0s" is zero`},
		{"trailing data", `{} {}`, "", "trailing data"},
		{"syntax error", `{"listen": [}`, "", "syntax error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.json))
			if err == nil {
				t.Fatalf("Parse(%s) succeeded", tc.json)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			var fe *FieldError
			switch {
			case tc.field == "" && errors.As(err, &fe):
				t.Errorf("error %q is a FieldError for %q, want another kind", err, fe.Field)
			case tc.field != "" && !errors.As(err, &fe):
				t.Errorf("error %q is not a FieldError", err)
			case tc.field != "" && fe.Field != tc.field:
				t.Errorf("error names field %q, want %q (%v)", fe.Field, tc.field, err)
			}
		})
	}
}

func TestToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "s3cret\n")
	token := func(file string) (string, error) {
		c := Config{API: API{Listen: "127.0.0.1:0", TokenFile: file}}
		return c.Token()
	}
	if tok, err := token(good); err != nil || tok != "s3cret" {
		t.Errorf("Token(good) = %q, %v; want s3cret", tok, err)
	}
	if tok, err := token(""); err != nil || tok != "" {
		t.Errorf("Token(no file) = %q, %v; want no token", tok, err)
	}
	for _, path := range []string{
		filepath.Join(dir, "missing"),
		write("empty", " \n"),
		write("spaces", "two words\n"),
	} {
		_, err := token(path)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "api.token_file" {
			t.Errorf("Token(%s) = %v, want a FieldError for api.token_file", path, err)
		}
	}
}

func TestMerge(t *testing.T) {
	cur := Default()
	next := Default()
	next.Local.Stratum = 2
	next.API.Listen = ""
	merged, restart, err := Merge(cur, next)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"api", "local"}, restart); diff != "" {
		t.Errorf("sections needing a restart (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(cur, merged); diff != "" {
		t.Errorf("non-reloadable sections changed (-want +got):\n%s", diff)
	}
}

// TestInterleavedOptions checks that the interleaved-mode keys reach the
// daemon's options.
func TestInterleavedOptions(t *testing.T) {
	cfg, err := Parse([]byte(`{"server": {"disable_interleaved": true, "interleaved_table_size": 4096, "send_batch": 1}, "api": {"listen": ""}}`))
	if err != nil {
		t.Fatal(err)
	}
	o, err := cfg.Options(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Tuning.DisableInterleaved || o.Tuning.InterleavedTableSize != 4096 || o.Tuning.SendBatch != 1 {
		t.Fatalf("Tuning %+v: want interleaved mode off, table 4096, send batch 1", o.Tuning)
	}
	def := Default()
	def.API.Listen = ""
	if o, err = def.Options(nil); err != nil || o.Tuning.DisableInterleaved || o.Tuning.InterleavedTableSize != 0 {
		t.Fatalf("default Tuning %+v (%v): want interleaved mode on, default table", o.Tuning, err)
	}
}

package daemonconfig

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A missing NTS certificate or key is named by its field when the
// configuration is turned into options, before the daemon binds anything.
func TestMissingNTSFilesNamed(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(key, []byte("not used"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ json, field string }{
		{`{"nts": {"enabled": true, "cert_file": "` + filepath.Join(dir, "cert.pem") + `", "key_file": "` + key + `"}}`, "nts.cert_file"},
		{`{"nts": {"enabled": true, "cert_file": "` + key + `", "key_file": "` + filepath.Join(dir, "missing.pem") + `"}}`, "nts.key_file"},
		{`{"nts": {"enabled": true}}`, "nts.cert_file"},
	} {
		c, err := Parse([]byte(tc.json))
		if err == nil {
			_, err = c.Options(nil)
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: %v, want a FieldError for %s", tc.json, err, tc.field)
		}
	}
}

func TestPosition(t *testing.T) {
	data := []byte("{\n  \"a\": 1,\n  \"b\": x\n}")
	for _, c := range []struct {
		off       int64
		line, col int
	}{{0, 1, 1}, {2, 2, 1}, {4, 2, 3}, {19, 3, 8}, {100, 4, 2}} {
		if l, col := position(data, c.off); l != c.line || col != c.col {
			t.Errorf("position(%d) = %d:%d, want %d:%d", c.off, l, col, c.line, c.col)
		}
	}
}

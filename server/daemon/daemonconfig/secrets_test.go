package daemonconfig

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestCheckSecretFile(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		mode       os.FileMode
		warn, fail bool
	}{
		{0o600, false, false},
		{0o400, false, false},
		{0o640, true, false},
		{0o644, true, false},
		{0o660, false, true},
		{0o602, false, true},
	} {
		name := filepath.Join(dir, tc.mode.String())
		if err := os.WriteFile(name, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(name, tc.mode); err != nil {
			t.Fatal(err)
		}
		warn, err := checkSecretFile("keys_file", name)
		var fe *FieldError
		if tc.fail != (err != nil) || (err != nil && (!errors.As(err, &fe) || fe.Field != "keys_file")) {
			t.Errorf("mode %v: err %v, want failure %v naming keys_file", tc.mode, err, tc.fail)
		}
		if tc.warn != (warn != "") {
			t.Errorf("mode %v: warning %q, want one: %v", tc.mode, warn, tc.warn)
		}
	}
	if _, err := checkSecretFile("keys_file", filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}

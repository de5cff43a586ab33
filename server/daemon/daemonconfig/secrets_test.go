package daemonconfig

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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

// TestOptionsChecksSecrets checks that Options refuses a key file other
// users may write, naming the field, and warns about one they may read;
// Token refuses a writable token file.
func TestOptionsChecksSecrets(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte("1 SHA1 HEX:0102030405060708090a0b0c0d0e0f1011121314\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte(`{"keys_file": "` + keys + `", "api": {"listen": "127.0.0.1:0", "token_file": "` + token + `"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := cfg.Options(logger); err != nil || logs.Len() != 0 {
		t.Fatalf("0600 files: %v, log %q", err, logs.String())
	}
	os.Chmod(keys, 0o644)
	if _, err := cfg.Options(logger); err != nil || !strings.Contains(logs.String(), "field=keys_file") {
		t.Errorf("0644 key file: %v, log %q; want a warning naming keys_file", err, logs.String())
	}
	os.Chmod(keys, 0o666)
	var fe *FieldError
	if _, err := cfg.Options(logger); !errors.As(err, &fe) || fe.Field != "keys_file" {
		t.Errorf("0666 key file: %v, want an error naming keys_file", err)
	}
	os.Chmod(keys, 0o600)
	os.Chmod(token, 0o620)
	if _, err := cfg.Token(); !errors.As(err, &fe) || fe.Field != "api.token_file" {
		t.Errorf("0620 token file: %v, want an error naming api.token_file", err)
	}
}

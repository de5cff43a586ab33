package daemonconfig

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
)

// checkSecrets checks the permissions of every secret file c names,
// logging a warning for each that other users may read.
func (c *Config) checkSecrets(logger *slog.Logger) error {
	files := []struct{ field, name string }{
		{"keys_file", c.KeysFile},
		{"api.token_file", c.API.TokenFile},
	}
	if c.NTS.Enabled {
		files = append(files, struct{ field, name string }{"nts.key_file", c.NTS.KeyFile},
			struct{ field, name string }{"nts.key_seed_file", c.NTS.KeySeedFile})
	}
	for _, f := range files {
		if f.name == "" {
			continue
		}
		warn, err := checkSecretFile(f.field, f.name)
		if err != nil {
			return err
		}
		if warn != "" {
			logger.Warn("secret file readable by other users", "field", f.field, "file", f.name, "advice", warn)
		}
	}
	return nil
}

// checkSecretFile judges the permissions of a file holding a secret (a
// key file, a TLS private key, a token, a seed). It refuses a file that
// users other than its owner may write, who could replace the secret, and
// returns a warning for one they may read. Windows has no such mode bits;
// nothing is checked there.
func checkSecretFile(field, name string) (warning string, err error) {
	if runtime.GOOS == "windows" {
		return "", nil
	}
	st, err := os.Stat(name)
	if err != nil {
		return "", fieldErr(field, "%v", err)
	}
	return judgeSecretMode(field, name, st.Mode())
}

func judgeSecretMode(field, name string, mode fs.FileMode) (warning string, err error) {
	perm := mode.Perm()
	switch {
	case perm&0o022 != 0:
		return "", fieldErr(field, "%s is writable by other users (mode %v); make it 0600 or 0400", name, perm)
	case perm&0o044 != 0:
		return fmt.Sprintf("%s is readable by other users (mode %v); make it 0600 or 0400", name, perm), nil
	}
	return "", nil
}

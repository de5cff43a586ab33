package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/ntpkit/ntpkit/server/daemon"
)

func TestFlags(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		err    error  // wanted with errors.Is; nil: no error
		errHas string // wanted in the error text
		stdout string
		stderr string
	}{
		{args: []string{"-h"}, stderr: "-print-default-config"},
		{args: []string{"-version"}, stdout: "standalone "},
		{args: []string{"-bogus"}, err: errUsageShown, stderr: "flag provided but not defined: -bogus"},
		{args: []string{"extra"}, err: errUsageShown, stderr: "takes no arguments"},
		{args: []string{"-stratum", "20"}, errHas: "flag -stratum: 20 is outside 1–15"},
		{args: []string{"-refid", "TOOLONG"}, errHas: "flag -refid: "},
		{args: []string{"-listen", "127.0.0.1:99999"}, errHas: "flag -listen: "},
	} {
		var out, errb bytes.Buffer
		err := run(tt.args, &out, &errb)
		switch {
		case tt.err != nil && !errors.Is(err, tt.err),
			tt.errHas != "" && (err == nil || !strings.Contains(err.Error(), tt.errHas)),
			tt.err == nil && tt.errHas == "" && err != nil:
			t.Errorf("%q: error %v, want %v / %q", tt.args, err, tt.err, tt.errHas)
		}
		if !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errb.String(), tt.stderr) {
			t.Errorf("%q: stdout %q stderr %q, want %q and %q", tt.args, out.String(), errb.String(), tt.stdout, tt.stderr)
		}
	}
}

// A SIGHUP to a daemon started without -config is a logged no-op: not a
// refused reload (which would set ntpkit_config_last_reload_successful 0).
func TestReloadWithoutConfigIsNoOp(t *testing.T) {
	d, err := daemon.New(daemon.Options{Listen: []string{"127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r := &reloader{d: d, logger: slog.New(slog.NewTextHandler(&logs, nil))}
	r.reload()
	if rs := d.Status().Reloads; rs.Failures != 0 || rs.LastError != "" || rs.Generation != 1 {
		t.Errorf("reloads %+v after SIGHUP without -config, want none", rs)
	}
	if !strings.Contains(logs.String(), "level=INFO") || !strings.Contains(logs.String(), "without -config") {
		t.Errorf("log %q, want one INFO line saying there is no file", logs.String())
	}
}

// CONFIG.md is what -config-reference prints: the reference cannot drift
// from the code. After changing the configuration types, regenerate it:
// go run ./examples/standalone -config-reference > examples/standalone/CONFIG.md
func TestConfigReferenceInSync(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"-config-reference"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, out.Bytes()) {
		t.Errorf("CONFIG.md differs from -config-reference; regenerate it with\n  go run ./examples/standalone -config-reference > examples/standalone/CONFIG.md")
	}
}

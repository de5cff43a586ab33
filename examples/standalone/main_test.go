package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/daemon/daemonconfig"
)

// TestPrintDefaultConfig checks that -print-default-config prints a file
// that parses back into the defaults.
func TestPrintDefaultConfig(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run([]string{"-print-default-config"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	cfg, err := daemonconfig.Parse(out.Bytes())
	if err != nil {
		t.Fatalf("printed default config does not parse: %v\n%s", err, out.String())
	}
	if diff := cmp.Diff(daemonconfig.Default(), cfg); diff != "" {
		t.Errorf("printed default config differs (-default +printed):\n%s", diff)
	}
}

// TestRunRefusesBadConfig checks that the daemon refuses a bad file before
// it binds anything, naming the field.
func TestRunRefusesBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(path, []byte(`{"server": {"workers": -1}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	err := run([]string{"-config", path}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "server.workers") {
		t.Fatalf("run with a bad config = %v, want an error naming server.workers", err)
	}
	if errb.Len() != 0 {
		t.Errorf("run logged before refusing the config:\n%s", errb.String())
	}
}

// TestExamplePoolConfigParses checks the example configuration shipped
// beside the command. Parsing does not contact the servers: nothing here
// resolves or sends (no test may use this configuration).
func TestExamplePoolConfigParses(t *testing.T) {
	data, err := os.ReadFile("example-pool.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := daemonconfig.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Upstream.Servers) < 4 {
		t.Fatalf("example config has %d upstream servers", len(cfg.Upstream.Servers))
	}
	o, err := cfg.Options(nil)
	if err != nil {
		t.Fatal(err)
	}
	if u := o.Upstream.Options; u.MinPoll != 64*time.Second || u.MaxPoll != 1024*time.Second || len(o.Upstream.Servers) != len(cfg.Upstream.Servers) {
		t.Fatalf("upstream options %+v, %d servers", u, len(o.Upstream.Servers))
	}
}

// TestReloader checks the SIGHUP path: a bad file is refused and
// recorded, a good one applies its access section and warns about the
// sections that need a restart, and without -config a reload is refused.
func TestReloader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"listen": ["127.0.0.1:0"]}`)
	load := func() (daemonconfig.Config, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return daemonconfig.Config{}, err
		}
		return daemonconfig.Parse(data)
	}
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	opts, err := cfg.Options(logger)
	if err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &reloader{d: d, cur: cfg, load: load, logger: logger}

	write(`{"listen": ["127.0.0.1:0"], "bogus": 1}`)
	r.reload()
	if rs := d.Status().Reloads; rs.Failures != 1 || !strings.Contains(rs.LastError, "bogus") {
		t.Errorf("after a bad file: %+v", rs)
	}
	write(`{"listen": ["127.0.0.1:0"], "local": {"stratum": 3}, "access": {"deny": ["192.0.2.0/24"]}}`)
	r.reload()
	if rs := d.Status().Reloads; rs.Generation != 2 || rs.Successes != 1 || rs.LastError != "" {
		t.Errorf("after a good file: %+v", rs)
	}
	if r.cur.Local.Stratum != 10 || len(r.cur.Access.Deny) != 1 {
		t.Errorf("configuration in force: local %+v, access %+v; want the old local section and the new access", r.cur.Local, r.cur.Access)
	}
	if !strings.Contains(logs.String(), "need a restart") || !strings.Contains(logs.String(), "sections=[local]") {
		t.Errorf("no restart warning naming local:\n%s", logs.String())
	}

	// Without -config a SIGHUP is a logged no-op, not a refused reload.
	r.load = nil
	r.reload()
	if rs := d.Status().Reloads; rs.Failures != 1 || rs.Generation != 2 || rs.LastError != "" {
		t.Errorf("without -config: %+v", rs)
	}
	if !strings.Contains(logs.String(), "SIGHUP ignored") {
		t.Errorf("no log line for the ignored SIGHUP:\n%s", logs.String())
	}
}

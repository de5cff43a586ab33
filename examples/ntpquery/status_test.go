package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const sampleStatus = `{
  "version": "v0.1.0", "go_version": "go1.26.8",
  "started": "2026-03-01T12:00:00Z", "uptime_seconds": 3725.5,
  "serving": true, "listen": ["127.0.0.1:123", "[::1]:123"],
  "synchronized": false, "sync_reason": "no upstream reachable",
  "reference": {"leap": "alarm", "stratum": 16, "refid": "INIT",
    "reference_time": "2026-03-01T12:00:00Z", "root_delay_seconds": 0.0125,
    "root_dispersion_seconds": 0.5, "precision": -24, "precision_seconds": 5.9e-8},
  "config": {"generation": 3, "successes": 2, "failures": 1, "last_error": "config: access.allow[0]: bad CIDR"},
  "upstream": {"sources": [{"addr": "192.0.2.1:123", "reachable": false}]}
}`

func TestStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/status" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(sampleStatus))
	}))
	defer srv.Close()

	t.Setenv("NTPKIT_API_TOKEN", "tok")
	var out, errb bytes.Buffer
	if err := run([]string{"-status", srv.URL}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"synchronized    no (no upstream reachable)",
		"stratum         16",
		"reference id    INIT",
		"up 1h2m5s",
		"root delay      12.5ms",
		"serving         yes on 127.0.0.1:123, [::1]:123",
		"generation 3, 2 reloads, 1 refused",
		"last refusal    config: access.allow[0]: bad CIDR",
		`"addr": "192.0.2.1:123"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	t.Setenv("NTPKIT_API_TOKEN", "")
	err := run([]string{"-status", srv.URL + "/"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("without the token: %v, want a 401 error", err)
	}
	if err := run([]string{"-status", "ftp://x"}, &out, &errb); err == nil {
		t.Error("accepted an ftp URL")
	}
	if err := run([]string{"-status", srv.URL, "pool.ntp.org"}, &out, &errb); err == nil {
		t.Error("accepted -status with an NTP server too")
	}
}

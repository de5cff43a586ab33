package main

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unitDirectives reads a systemd unit file into its Key=Value lines.
func unitDirectives(t *testing.T, path string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: bad line %q", path, line)
		}
		d[k] = append(d[k], v)
	}
	return d
}

// TestSystemdUnit checks the unit's sandboxing and, when systemd-analyze
// is installed, that systemd accepts it.
func TestSystemdUnit(t *testing.T) {
	d := unitDirectives(t, "ntpkit.service")
	for k, want := range map[string]string{
		"ExecStart":               "/usr/local/bin/ntpkit-standalone -config /etc/ntpkit/config.json",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"DynamicUser":             "yes",
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectControlGroups":    "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":      "yes",
		"MemoryDenyWriteExecute":  "yes",
		"LockPersonality":         "yes",
		"Restart":                 "on-failure",
		"StateDirectory":          "ntpkit",
		"SystemCallArchitectures": "native",
	} {
		if got := d[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if got := d["SystemCallFilter"]; len(got) == 0 || got[0] != "@system-service" {
		t.Errorf("SystemCallFilter = %q, want @system-service first", got)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	// verify wants ExecStart's binary to exist: check a copy that runs
	// /bin/true instead.
	data, err := os.ReadFile("ntpkit.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "ntpkit.service")
	data = bytes.ReplaceAll(data, []byte("/usr/local/bin/ntpkit-standalone"), []byte("/bin/true"))
	if err := os.WriteFile(unit, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", unit).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestLaunchdPlist checks that the plist is well-formed XML with the keys
// launchd needs, and lints it with plutil when installed (macOS).
func TestLaunchdPlist(t *testing.T) {
	data, err := os.ReadFile("org.ntpkit.standalone.plist")
	if err != nil {
		t.Fatal(err)
	}
	var plist struct {
		XMLName xml.Name `xml:"plist"`
		Dict    struct {
			Inner []byte `xml:",innerxml"`
		} `xml:"dict"`
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	if err := dec.Decode(&plist); err != nil {
		t.Fatalf("plist is not well-formed XML: %v", err)
	}
	// Read the top-level dict's keys and the values that follow them.
	keys := map[string]string{}
	var args []string
	inner := xml.NewDecoder(bytes.NewReader(plist.Dict.Inner))
	var key string
	depth := 0
	var text strings.Builder
	for {
		tok, err := inner.Token()
		if err != nil {
			break
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			text.Reset()
			if depth == 1 && tok.Name.Local != "key" && key != "" && tok.Name.Local != "string" && tok.Name.Local != "integer" {
				keys[key] = tok.Name.Local // true, false, array, dict
			}
		case xml.CharData:
			text.Write(tok)
		case xml.EndElement:
			switch {
			case depth == 1 && tok.Name.Local == "key":
				key = text.String()
			case depth == 1 && (tok.Name.Local == "string" || tok.Name.Local == "integer"):
				keys[key] = text.String()
			case depth == 2 && key == "ProgramArguments" && tok.Name.Local == "string":
				args = append(args, text.String())
			}
			depth--
		}
	}
	if keys["Label"] != "org.ntpkit.standalone" || keys["RunAtLoad"] != "true" || keys["UserName"] == "" || keys["KeepAlive"] == "" {
		t.Errorf("plist keys %v", keys)
	}
	if want := "/usr/local/bin/ntpkit-standalone -config /usr/local/etc/ntpkit/config.json"; strings.Join(args, " ") != want {
		t.Errorf("ProgramArguments %q, want %q", args, want)
	}
	if plutil, err := exec.LookPath("plutil"); err == nil {
		if out, err := exec.Command(plutil, "-lint", "org.ntpkit.standalone.plist").CombinedOutput(); err != nil {
			t.Errorf("plutil -lint: %v\n%s", err, out)
		}
	}
}

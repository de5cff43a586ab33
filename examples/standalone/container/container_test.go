// Package container holds the daemon's container image definition; its
// tests check that the image is a static binary on an empty base run by
// an unprivileged user and, where podman works, build and run it.
package container

import (
	"bufio"
	"debug/elf"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/server/servertest"
)

var (
	contextOnce sync.Once
	contextDir  string
	contextErr  error
)

// buildContext builds the daemon as the Dockerfile says, once per test
// binary, and returns a build context directory holding it, the
// Dockerfile and container.json.
func buildContext(t *testing.T) string {
	t.Helper()
	contextOnce.Do(func() {
		contextDir, contextErr = os.MkdirTemp("", "ntpkit-container-")
		if contextErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(contextDir, "standalone"), "../../standalone")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			contextErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		for _, f := range []string{"Dockerfile", "container.json"} {
			data, err := os.ReadFile(f)
			if err == nil {
				err = os.WriteFile(filepath.Join(contextDir, f), data, 0o644)
			}
			if err != nil {
				contextErr = err
				return
			}
		}
	})
	if contextErr != nil {
		t.Fatal(contextErr)
	}
	return contextDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if contextDir != "" {
		os.RemoveAll(contextDir)
	}
	os.Exit(code)
}

// An image FROM scratch has no C library: the binary must be static.
func TestBinaryIsStatic(t *testing.T) {
	dir := buildContext(t)
	f, err := elf.Open(filepath.Join(dir, "standalone"))
	if err != nil {
		t.Skipf("not an ELF platform: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the CGO_ENABLED=0 build has a %v segment: not static", p.Type)
		}
	}
}

// dockerfile returns the Dockerfile's instructions, keyword upper-cased.
func dockerfile(t *testing.T) [][2]string {
	t.Helper()
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][2]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kw, rest, _ := strings.Cut(line, " ")
		out = append(out, [2]string{strings.ToUpper(kw), strings.TrimSpace(rest)})
	}
	return out
}

func TestDockerfileShape(t *testing.T) {
	ins := dockerfile(t)
	var from, user []string
	for _, in := range ins {
		switch in[0] {
		case "FROM":
			from = append(from, in[1])
		case "USER":
			user = append(user, in[1])
		case "RUN":
			t.Errorf("RUN %s: a scratch image has no shell", in[1])
		}
	}
	if len(from) != 1 || from[0] != "scratch" {
		t.Errorf("FROM %v, want only scratch", from)
	}
	if len(user) != 1 {
		t.Fatalf("USER %v, want one", user)
	}
	uid, _, _ := strings.Cut(user[0], ":")
	if uid == "0" || uid == "root" || uid == "" {
		t.Errorf("USER %s runs as root", user[0])
	}
	data, err := os.ReadFile("container.json")
	if err != nil {
		t.Fatal(err)
	}
	// Port 12300 needs no CAP_NET_BIND_SERVICE; the runtime publishes it
	// as 123.
	if !strings.Contains(string(data), `":12300"`) {
		t.Errorf("container.json does not listen on the unprivileged port 12300:\n%s", data)
	}
}

// TestImageRuns builds the image with podman, checks its configuration
// and queries the daemon in it. podman is not part of the test script's
// tools, so the test is skipped where it is missing; where podman builds
// images but its OCI runtime cannot start containers (as in a sandbox
// with hybrid cgroups), only the run is skipped.
func TestImageRuns(t *testing.T) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman is not installed")
	}
	if out, err := exec.Command(podman, "info").CombinedOutput(); err != nil {
		t.Skipf("podman does not work here: %v\n%s", err, out)
	}
	dir := buildContext(t)
	tag := fmt.Sprintf("localhost/ntpkit-test:%d", time.Now().UnixNano())
	if out, err := exec.Command(podman, "build", "-t", tag, dir).CombinedOutput(); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(podman, "rmi", "-f", tag).Run() })
	cfg, err := exec.Command(podman, "image", "inspect", "-f", "{{.Config.User}} {{.Config.Entrypoint}}", tag).Output()
	if want := "65534:65534 [/usr/bin/ntpkit -config /etc/ntpkit/config.json]"; err != nil || strings.TrimSpace(string(cfg)) != want {
		t.Errorf("image config %q (%v), want %q", cfg, err, want)
	}

	// A free loopback UDP port to publish the daemon's 12300 on.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	out, err := exec.Command(podman, "run", "-d", "--rm", "--cap-drop=ALL", "--read-only",
		"-p", fmt.Sprintf("127.0.0.1:%d:12300/udp", port), tag).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "OCI") {
			t.Skipf("podman built the image but cannot run containers here: %v\n%s", err, out)
		}
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	id := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(podman, "rm", "-f", id).Run() })

	if user, err := exec.Command(podman, "inspect", "-f", "{{.Config.User}}", id).Output(); err != nil || strings.TrimSpace(string(user)) != "65534:65534" {
		t.Errorf("container user %q (%v), want 65534:65534", user, err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var lastErr error
	for range 20 { // the daemon needs a moment to start; bounded
		p, err := servertest.Query(addr, 500*time.Millisecond)
		if err == nil {
			if p.Stratum != 10 {
				t.Errorf("stratum %d from the container, want 10", p.Stratum)
			}
			return
		}
		lastErr = err
	}
	logs, _ := exec.Command(podman, "logs", id).CombinedOutput()
	t.Fatalf("no reply from the container at %s: %v\nlogs:\n%s", addr, lastErr, logs)
}

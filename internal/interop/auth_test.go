package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/auth"
	"github.com/ntpkit/ntpkit/server/servertest"
	"github.com/ntpkit/ntpkit/server/symkey"
)

// TestChronydAuthenticatesOurMACs has chronyd -Q query our server with a
// shared key and accept only MACed replies, NTPv3 requests with whole
// SHA-2 digests (MACs of 36, 52 and 68 bytes) among them.
func TestChronydAuthenticatesOurMACs(t *testing.T) {
	chronyd := RequireTool(t, "chronyd")
	const keyFile = `1 SHA1 HEX:933F62BE1D604E68A81B557F18CFA200483F5B70
2 AES128 HEX:6FEA9A2D4C3F7E1A0B9C8D7E6F5A4B3C
3 MD5 legacy-md5-key
4 SHA256 HEX:00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF
5 SHA384 sha384-key
6 SHA512 sha512-key
`
	keys, err := symkey.Parse(strings.NewReader(keyFile))
	if err != nil {
		t.Fatal(err)
	}
	mac := &auth.MAC{Keys: keys}
	src := server.NewLocalSource(clock.System{}, 10)
	ts := servertest.NewServer(&server.Server{Source: src, Handler: server.Chain(server.Responder(), mac.Wrap)})
	t.Cleanup(func() {
		if err := ts.Close(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	port := int(ts.Addr.Port())
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	if err := os.WriteFile(path, []byte(keyFile), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key     int
		version int // 0: chronyd's default, 4
		sync    bool
	}{{1, 0, true}, {2, 0, true}, {3, 0, true}, {4, 0, true}, {4, 3, true}, {5, 3, true}, {6, 3, true}, {3, 3, true}, {9, 0, false}} {
		t.Run(fmt.Sprintf("key%d/v%d", tc.key, tc.version), func(t *testing.T) {
			before := mac.Stats()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			keyLine := fmt.Sprintf("%d SHA1 HEX:00112233445566778899AABBCCDDEEFF00112233\n", tc.key)
			kf := path
			if tc.key == 9 { // a key chronyd has and we do not
				kf = filepath.Join(dir, "keys9")
				os.WriteFile(kf, []byte(keyFile+keyLine), 0o600)
			}
			timeout := "10"
			if !tc.sync {
				timeout = "4"
			}
			version := ""
			if tc.version != 0 {
				version = fmt.Sprintf(" version %d", tc.version)
			}
			out, err := exec.CommandContext(ctx, chronyd, chronyArgs("-Q", "-t", timeout,
				fmt.Sprintf("server 127.0.0.1 port %d iburst key %d maxsamples 4%s", port, tc.key, version),
				"keyfile "+kf,
				"pidfile "+filepath.Join(dir, "chronyd.pid"),
			)...).CombinedOutput()
			m := chronyOffsetRE.FindSubmatch(out)
			after := mac.Stats()
			t.Logf("key %d: %s; stats %+v", tc.key, m, after)
			if tc.sync {
				if m == nil {
					t.Fatalf("chronyd accepted no time (err %v):\n%s", err, out)
				}
				if after.Authenticated <= before.Authenticated {
					t.Fatalf("no authenticated requests counted: %+v", after)
				}
			} else {
				if m != nil {
					t.Fatalf("chronyd accepted time with a key we do not have:\n%s", out)
				}
				if after.UnknownKey <= before.UnknownKey {
					t.Fatalf("unknown key not counted: %+v", after)
				}
			}
		})
	}
}

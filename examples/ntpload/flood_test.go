package main

import (
	"os"
	"testing"

	"github.com/ntpkit/ntpkit/server"
)

func TestSpoofFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-spoof", "127.64.0.0/10", "127.0.0.1:123"}, true},
		{[]string{"-spoof", "10.0.0.0/8", "127.0.0.1:123"}, false},    // not loopback
		{[]string{"-spoof", "127.64.0.0/10", "192.0.2.1:123"}, false}, // target not loopback
		{[]string{"-spoof", "::1/128", "[::1]:123"}, false},           // IPv6
		{[]string{"-spoof", "127.64.0.0/10", "-nts", "127.0.0.1:4460", "127.0.0.1:123"}, false},
	} {
		_, err := parseFlags(tc.args, nopWriter{})
		if (err == nil) != tc.ok {
			t.Errorf("%v: err %v, want ok=%v", tc.args, err, tc.ok)
		}
	}
}

// TestSpoofFloodReachesServer floods an in-process server from spoofed
// loopback sources; it needs root for the raw socket.
func TestSpoofFloodReachesServer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("raw sockets need root")
	}
	srv := &server.Server{}
	addr := serve(t, srv)
	cfg := loadCfg(t, addr, "-rate", "2000", "-spoof", "127.64.0.0/10")
	res, err := load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.sent < 300 {
		t.Fatalf("sent %d at 2000/s for 0.3 s", res.sent)
	}
	if st := srv.Stats(); st.Received < res.sent/2 || st.Replies == 0 {
		t.Fatalf("server stats %+v after %d spoofed requests", st, res.sent)
	}
}

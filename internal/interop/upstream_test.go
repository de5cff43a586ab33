package interop

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/servertest"
	"github.com/ntpkit/ntpkit/upstream"
)

// TestDisciplinerSyncsToChronyd uses a real chronyd (-x, loopback only)
// as the upstream: the Discipliner must synchronise to it, at stratum 11
// with chronyd's address as refid, and a server fed by it must say so.
func TestDisciplinerSyncsToChronyd(t *testing.T) {
	port := FreeUDPPort(t)
	StartChronydServer(t, port)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := upstream.New(upstream.Addresses(fmt.Sprintf("127.0.0.1:%d", port)), upstream.Options{
		MinPoll: 500 * time.Millisecond, MaxPoll: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.Run(ctx) }()
	defer wg.Wait()
	defer cancel()

	waitSynced(t, d)
	st := d.Status()
	if s := st.Sources[0]; s.State != upstream.StateSelected || s.Stratum != 10 || s.Rejects.BadOrigin != 0 {
		t.Fatalf("source status %+v", s)
	}

	ts := servertest.NewServer(&server.Server{Source: d})
	defer ts.Close()
	r, err := ts.Query(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.Stratum != 11 || r.RefID != d.Reference().RefID || r.Leap != ntpwire.LeapNone {
		t.Fatalf("served reply stratum %d refid %v leap %v", r.Stratum, r.RefID, r.Leap)
	}
}

// TestDaemonSyncsFromUpstream runs the daemon with an upstream in its
// config (our own stratum-1 server on loopback); until it synchronises
// it answers leap alarm and stratum 16, then stratum 2 with the
// upstream's address as refid, and chronyd accepts its time.
func TestDaemonSyncsFromUpstream(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	upc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := &server.Server{Source: server.NewLocalSource(nil, 1)}
	go up.Serve(ctx, upc)
	defer up.Shutdown(context.Background())

	bin := BuildDaemon(t)
	port := FreeUDPPort(t)
	cfgPath := filepath.Join(t.TempDir(), "upstream.json")
	cfg := fmt.Sprintf(`{
  "listen": ["127.0.0.1:%d"],
  "api": {"listen": ""},
  "upstream": {"servers": [%q], "min_poll": "250ms", "max_poll": "250ms"}
}`, port, upc.LocalAddr().String())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	dm := StartDaemon(t, bin, "-config", cfgPath)
	dm.WaitLog(t, "msg=serving", 10*time.Second)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var r ntpwire.Packet
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err = servertest.Query(addr, time.Second)
		if err == nil && r.Stratum != ntpwire.MaxStratum && r.Stratum != 0 {
			break
		}
		// The daemon waits for several samples of its start-up burst
		// (about 0.5 s at these polls); queries while it waits may run
		// into its rate limit, which answers a kiss-o'-death (stratum 0,
		// leap alarm).
		if err == nil && r.Leap != ntpwire.LeapAlarm {
			t.Fatalf("unsynchronised reply with leap %v, want alarm", r.Leap)
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not synchronised after 20 s (last reply %+v, err %v); log:\n%s", r, err, dm.Stderr.String())
		}
		if err == nil && r.Stratum == 0 {
			time.Sleep(time.Second)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r.Stratum != 2 || r.Leap != ntpwire.LeapNone || r.RefID != ntpwire.RefIDFromAddr(netip.MustParseAddr("127.0.0.1")) {
		t.Fatalf("reply stratum %d leap %v refid %v, want 2, none, 127.0.0.1", r.Stratum, r.Leap, r.RefID)
	}
	if !strings.Contains(dm.Stderr.String(), "upstream: synchronised") {
		t.Fatalf("no synchronisation in the log:\n%s", dm.Stderr.String())
	}
	qctx, qcancel := context.WithTimeout(ctx, 30*time.Second)
	defer qcancel()
	off, out, err := ChronyQuery(qctx, t, "127.0.0.1", port)
	if err != nil {
		t.Fatal(err)
	}
	if off.Abs() > maxOffset {
		t.Fatalf("chronyd measured %v, want under %v:\n%s", off, maxOffset, out)
	}
	dm.Stop(t)
}

package upstream_test

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/upstream"
	"github.com/ntpkit/ntpkit/upstream/internal/simnet"
)

// simPoll is the poll interval of the simulations: fast, so a test takes
// seconds, not hours.
const simPoll = 250 * time.Millisecond

func startPeers(t *testing.T, ctx context.Context, truth simnet.Truth, peers ...simnet.Peer) ([]*simnet.Server, []string) {
	t.Helper()
	srvs, err := simnet.Start(ctx, truth, peers, 1)
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, s := range srvs {
		addrs = append(addrs, s.Addr)
	}
	return srvs, addrs
}

func runDiscipliner(t *testing.T, ctx context.Context, addrs []string, o upstream.Options) *upstream.Discipliner {
	t.Helper()
	if o.MinPoll == 0 {
		o.MinPoll, o.MaxPoll = simPoll, simPoll
	}
	d, err := upstream.New(upstream.Addresses(addrs...), o)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.Run(ctx)
	}()
	t.Cleanup(wg.Wait)
	return d
}

// waitFor polls cond every 10 ms until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// query sends one client request to addr and returns the decoded reply.
func query(t *testing.T, addr string) ntpwire.Packet {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := ntpwire.Packet{Version: 4, Mode: ntpwire.ModeClient, XmitTime: 0x1234}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var p ntpwire.Packet
	if err := p.Decode(buf[:n]); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSimFalsetickerRejectedFromStart: four good sources jittering by
// 1 ms, a fifth 500 ms off. The Discipliner must never call itself
// synchronised on the falseticker's time, not even for the first
// moments, and then serve the truth; a server fed by it must carry its
// reference data.
func TestSimFalsetickerRejectedFromStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The local clock is 30 ms behind the truth, so the Discipliner has
	// to correct it.
	truth := simnet.Truth{Epoch: time.Now(), Offset: 30 * time.Millisecond}
	good := simnet.Peer{Jitter: time.Millisecond}
	// The falseticker answers at once; the others a little later, so its
	// reply is always first.
	slow := good
	slow.Delay = 5 * time.Millisecond
	_, addrs := startPeers(t, ctx, truth, simnet.Peer{Jitter: time.Millisecond, Offset: 500 * time.Millisecond}, slow, slow, slow, slow)
	d := runDiscipliner(t, ctx, addrs, upstream.Options{})

	pctx, pcancel := context.WithTimeout(ctx, 6*time.Second)
	defer pcancel()
	var p simnet.Probe
	p.Run(pctx, d, truth, 2*time.Millisecond)
	st, err := p.Summarise(3*time.Second, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if st.Synced == 0 && !p.Synced[0] {
		t.Fatal("never synchronised")
	}
	// A loaded machine can delay a reading between its bracketing clock
	// reads; 10 ms is far from the falseticker's 470 ms either way.
	if st.MaxSynced > 10*time.Millisecond {
		t.Fatalf("served time was %v off the truth while claiming synchronisation", st.MaxSynced)
	}
	if st.Max > 5*time.Millisecond {
		t.Fatalf("after 3 s, error up to %v (rms %v)", st.Max, st.RMS)
	}
	ds := d.Status()
	if ds.Sources[0].State != upstream.StateFalseticker {
		t.Errorf("falseticker in state %v", ds.Sources[0].State)
	}
	t.Logf("synchronised after %v; error after 3 s: rms %v max %v; %d steps", st.Synced, st.RMS, st.Max, ds.Steps)

	// Serve it and check the reply's reference fields.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &server.Server{Source: d}
	go srv.Serve(ctx, pc)
	defer srv.Shutdown(context.Background())
	r := query(t, pc.LocalAddr().String())
	if r.Stratum != 2 || r.Leap != ntpwire.LeapNone || r.RefID != ntpwire.RefIDFromAddr(netip.MustParseAddr("127.0.0.1")) {
		t.Fatalf("reply stratum %d leap %v refid %v, want 2, none, 127.0.0.1", r.Stratum, r.Leap, r.RefID)
	}
	if rd := r.RootDispersion.Duration(); rd <= 0 || rd > 50*time.Millisecond {
		t.Fatalf("root dispersion %v", rd)
	}
}

// TestSimSpoofedRepliesIgnored: replies whose origin timestamp is not our
// transmit timestamp carry time 1 s off; they are counted and ignored.
func TestSimSpoofedRepliesIgnored(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	truth := simnet.Truth{Epoch: time.Now()}
	spoof := simnet.Peer{Offset: time.Second, Handler: func(w server.ResponseWriter, r *server.Request, src server.Source) {
		ref := src.Reference()
		w.Reply(ntpwire.Packet{
			Version: 4, Mode: ntpwire.ModeServer, Stratum: 1, RefID: ref.RefID, Precision: -20,
			OrigTime: r.Packet.XmitTime + 1, // not what was sent
			RecvTime: ntpwire.TimeOf(r.Received),
		})
	}}
	_, addrs := startPeers(t, ctx, truth, spoof, spoof, simnet.Peer{})
	d := runDiscipliner(t, ctx, addrs, upstream.Options{})
	waitFor(t, 10*time.Second, "spoofed replies to be counted", func() bool {
		st := d.Status()
		return st.Sources[0].Rejects.BadOrigin >= 3 && st.Sources[1].Rejects.BadOrigin >= 3
	})
	st := d.Status()
	for _, s := range st.Sources[:2] {
		if s.Reach != 0 || s.Samples != 0 {
			t.Fatalf("spoofing source was used: %+v", s)
		}
	}
	// One honest source of three reachable... the spoofers count as
	// unreachable after eight polls, then the honest one is a majority.
	waitFor(t, 15*time.Second, "synchronisation on the honest source", d.Synchronized)
	if e := d.Now().Sub(truth.At(time.Now())); e.Abs() > 10*time.Millisecond {
		t.Fatalf("served time %v off", e)
	}
}

// fakeResolver answers from a map that tests may change.
type fakeResolver struct {
	mu      sync.Mutex
	names   map[string][]netip.Addr
	lookups atomic.Int64
}

func (r *fakeResolver) set(name string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	r.names[name] = as
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.lookups.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	as, ok := r.names[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return append([]netip.Addr(nil), as...), nil
}

// listenSamePort opens UDP sockets on each loopback address with one
// common port.
func listenSamePort(t *testing.T, addrs ...string) []net.PacketConn {
	t.Helper()
	for try := 0; try < 20; try++ {
		first, err := net.ListenPacket("udp4", addrs[0]+":0")
		if err != nil {
			t.Skipf("cannot listen on %s: %v", addrs[0], err)
		}
		port := first.LocalAddr().(*net.UDPAddr).Port
		pcs := []net.PacketConn{first}
		for _, a := range addrs[1:] {
			pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(netip.MustParseAddr(a), uint16(port)).String())
			if err != nil {
				break
			}
			pcs = append(pcs, pc)
		}
		if len(pcs) == len(addrs) {
			return pcs
		}
		for _, pc := range pcs {
			pc.Close()
		}
	}
	t.Skip("no common free port on the loopback addresses")
	return nil
}

// TestSimPoolAndReresolve: a name with three addresses yields three
// sources; a name whose only address stays unreachable is looked up again
// and moved to its new address.
func TestSimPoolAndReresolve(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	truth := simnet.Truth{Epoch: time.Now()}
	pcs := listenSamePort(t, "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
	port := pcs[0].LocalAddr().(*net.UDPAddr).Port
	for i, pc := range pcs[:3] {
		if _, err := simnet.Serve(ctx, pc, truth, simnet.Peer{}, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	mover, err := simnet.Serve(ctx, pcs[3], truth, simnet.Peer{}, 9)
	if err != nil {
		t.Fatal(err)
	}
	res := &fakeResolver{names: map[string][]netip.Addr{}}
	res.set("pool.test", "127.0.0.1", "127.0.0.2", "127.0.0.3")
	res.set("moving.test", "127.0.0.5") // nobody listens there
	d := runDiscipliner(t, ctx, []string{
		"pool.test:" + strconv.Itoa(port),
		"moving.test:" + strconv.Itoa(port),
	}, upstream.Options{Resolver: res, MinPoll: 50 * time.Millisecond, MaxPoll: 50 * time.Millisecond})
	waitFor(t, 10*time.Second, "synchronisation on the pool", d.Synchronized)
	if n := len(d.Status().Sources); n != 4 {
		t.Fatalf("%d sources, want 3 from the pool and 1 from moving.test", n)
	}
	res.set("moving.test", "127.0.0.4")
	waitFor(t, 20*time.Second, "the unreachable source to move to its new address", func() bool {
		for _, s := range d.Status().Sources {
			if s.Name == "moving.test:"+strconv.Itoa(port) && s.Addr.Addr() == netip.MustParseAddr("127.0.0.4") && s.Reach != 0 {
				return true
			}
		}
		return false
	})
	if mover.Queries.Load() == 0 {
		t.Fatal("the new address got no queries")
	}
}

package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntpclient"
	"github.com/ntpkit/ntpkit/ntpwire"
)

// chronyd is a chronyd -x run as a client of the simulated servers, with a
// configuration of its own (never the system's), serving its time on a
// loopback port the probe queries.
type chronyd struct {
	cmd  *exec.Cmd
	dir  string
	conn *net.UDPConn

	mu   sync.Mutex
	ref  ntpwire.Reference
	buf  [1500]byte
	fail int
}

// startChronyd starts chronyd polling servers every poll (minpoll = maxpoll)
// and serving on a free loopback port.
func startChronyd(servers []string, poll time.Duration) (*chronyd, error) {
	path, err := exec.LookPath("chronyd")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "ntpkit-sim-chronyd")
	if err != nil {
		return nil, err
	}
	// A free port: bind, note it, release it for chronyd.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	p := int(math.Round(math.Log2(poll.Seconds())))
	lines := []string{
		fmt.Sprintf("port %d", port),
		"bindaddress 127.0.0.1",
		"allow 127.0.0.1",
		"cmdport 0",
		"pidfile " + filepath.Join(dir, "chronyd.pid"),
		"makestep 0.1 3",
	}
	for _, s := range servers {
		host, sport, err := net.SplitHostPort(s)
		if err != nil {
			return nil, err
		}
		lines = append(lines, fmt.Sprintf("server %s port %s iburst minpoll %d maxpoll %d", host, sport, p, p))
	}
	conf := filepath.Join(dir, "chrony.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	args := []string{"-x", "-d", "-f", conf}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "root"}, args...)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		cmd.Process.Kill()
		return nil, err
	}
	return &chronyd{cmd: cmd, dir: dir, conn: conn, ref: ntpwire.Reference{Leap: ntpwire.LeapAlarm}}, nil
}

// Now queries chronyd and returns its time at the moment of the call: the
// system time plus the offset of chronyd's served time from it. A failed
// query takes at least its 20 ms timeout, so the probe drops it.
func (c *chronyd) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	req, err := ntpclient.Request(nil, 4)
	if err != nil {
		return c.failed()
	}
	raw := req.AppendTo(nil)
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	t1 := time.Now()
	if _, err := c.conn.Write(raw); err != nil {
		return c.failed()
	}
	p, _, _, err := ntpclient.ReadReply(ntpclient.Reader(c.conn), c.buf[:], req.XmitTime, nil)
	t4 := time.Now()
	if err != nil {
		return c.failed()
	}
	c.ref = ntpwire.Reference{Leap: p.Leap, Stratum: p.Stratum}
	off := (p.RecvTime.Sub(ntpwire.TimeOf(t1)) + p.XmitTime.Sub(ntpwire.TimeOf(t4))) / 2
	return t1.Add(t4.Sub(t1) / 2).Add(off)
}

func (c *chronyd) failed() time.Time {
	c.fail++
	time.Sleep(time.Millisecond)
	return time.Now()
}

// Reference returns the leap and stratum of chronyd's last reply.
func (c *chronyd) Reference() ntpwire.Reference {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ref
}

// stop ends chronyd and removes its directory.
func (c *chronyd) stop() error {
	c.conn.Close()
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		err = errors.Join(errors.New("chronyd did not stop; killed"), <-done)
	}
	os.RemoveAll(c.dir)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
		err = nil
	}
	return err
}

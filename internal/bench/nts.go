package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/ntpkit/ntpkit/internal/ntske/ntsketest"
)

// ntsScenario measures NTS-authenticated requests at full load against
// our daemon and chronyd, both serving NTS with a test certificate.
func (b *bench) ntsScenario(ours, chronyd string) error {
	pki, err := ntsketest.Make(b.dir, 24*time.Hour)
	if err != nil {
		return err
	}
	// chronyd started as root drops to its own user before it reads the
	// key; a throwaway test key may be world-readable.
	for _, f := range []string{pki.CAFile, pki.CertFile, pki.KeyFile} {
		if err := os.Chmod(f, 0o644); err != nil {
			return err
		}
	}
	ourPort, ourKE := freePort(), freeTCPPort()
	ourSrv, err := b.startOursWith(ours, ourPort, 1, b.o.serverCPU, false, "",
		fmt.Sprintf(`,"nts":{"enabled":true,"listen":"127.0.0.1:%d","cert_file":%q,"key_file":%q}`, ourKE, pki.CertFile, pki.KeyFile))
	if err != nil {
		return err
	}
	defer ourSrv.stop()
	chronyPort, chronyKE := freePort(), freeTCPPort()
	dump := filepath.Join(b.dir, "ntsdump")
	chronySrv, err := b.startChrony(chronyd, chronyPort,
		fmt.Sprintf("ntsport %d", chronyKE),
		"ntsserverkey "+pki.KeyFile,
		"ntsservercert "+pki.CertFile,
		"ntsdumpdir "+dump)
	if err != nil {
		return err
	}
	defer chronySrv.stop()
	for _, ke := range []int{ourKE, chronyKE} {
		if err := waitTCP(ke, 10*time.Second); err != nil {
			return fmt.Errorf("NTS-KE port: %w (ntpkit: %s; chronyd: %s)", err, ourSrv.out.String(), chronySrv.out.String())
		}
	}
	args := func(ke int) []string {
		// One source address per socket: a KE server may limit
		// sessions per address (ours allows bursts of 16 connections).
		return []string{"-nts", fmt.Sprintf("127.0.0.1:%d", ke), "-nts-ca", pki.CAFile, "-nts-name", "localhost",
			"-src", fmt.Sprintf("127.0.0.2-127.0.0.%d", 1+b.o.sockets)}
	}
	a, c, err := b.alternate(ourSrv, chronySrv, args(ourKE), args(chronyKE))
	if err != nil {
		return err
	}
	printTable("NTS, full load (NTS-KE once per client socket, every reply authenticated)", "ntpkit", "chronyd", a, c)
	return nil
}

// freeTCPPort returns a TCP port free on 127.0.0.1 a moment ago.
func freeTCPPort() int {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 14460
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitTCP waits until 127.0.0.1:port accepts connections.
func waitTCP(port int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("127.0.0.1:%d not accepting after %v: %w", port, limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Package listenaddr checks the "ip:port" addresses ntpkit's daemon
// listens on, so that package server/daemon and its configuration file
// (server/daemon/daemonconfig) accept and refuse the same addresses.
package listenaddr

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Check reports whether a is an "ip:port" address: the IP may be empty
// (every interface) but not a host name, and the port is a number in
// 0–65535. Its errors do not repeat a; callers name the field and value.
func Check(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("host must be an IP address: %w", err)
		}
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q is not a number in 0–65535", port)
	}
	return nil
}

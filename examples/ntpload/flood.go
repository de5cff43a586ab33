package main

import (
	"flag"
	"fmt"
	"net/netip"
)

// floodFlags configure the spoofed-source flood: requests from random
// source addresses in a prefix, sent through a raw socket, whose replies
// nobody reads. On loopback every 127/8 address is local, so this stands
// in for a flood from millions of spoofed addresses without leaving the
// machine.
type floodFlags struct {
	prefix netip.Prefix
}

func (f *floodFlags) register(fs *flag.FlagSet) {
	fs.Func("spoof", "flood from random source addresses in `prefix` (e.g. 127.64.0.0/10) through a raw socket (needs root; loopback targets only); replies are not read", func(s string) error {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("-spoof %q: %w", s, err)
		}
		if !p.Addr().Is4() || !p.Addr().IsLoopback() {
			return fmt.Errorf("-spoof %v: want an IPv4 loopback prefix", p)
		}
		f.prefix = p.Masked()
		return nil
	})
}

func (f *floodFlags) validate(cfg *config) error {
	if !f.prefix.IsValid() {
		return nil
	}
	if !cfg.target.Addr().IsLoopback() || !cfg.target.Addr().Is4() {
		return fmt.Errorf("-spoof needs an IPv4 loopback target, not %v", cfg.target)
	}
	if cfg.nts.ke != "" {
		return fmt.Errorf("-spoof and -nts cannot be combined")
	}
	return nil
}

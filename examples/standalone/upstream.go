package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/ntpkit/ntpkit/clock"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/upstream"
)

// UpstreamConfig lists the NTP servers the daemon synchronises to. With
// no servers (the default) it serves the local clock described by
// "local"; with servers it serves the upstream.Discipliner's clock and
// reference data, at the selected server's stratum plus one.
type UpstreamConfig struct {
	// Servers are "host:port" or "host" (port 123); a name resolving to
	// several addresses (a pool) gives several sources.
	Servers []string `json:"servers"`
	// MinPoll and MaxPoll bound the poll interval (Go durations; empty:
	// 64s and 1024s).
	MinPoll string `json:"min_poll"`
	MaxPoll string `json:"max_poll"`
	// StepThreshold is the offset beyond which the served clock is
	// stepped rather than slewed (empty: 128ms).
	StepThreshold string `json:"step_threshold"`
	// Holdover is how long the clock stays synchronised without usable
	// sources (empty: 4 × max_poll, at least 1m).
	Holdover string `json:"holdover"`
	// MinSources is how many sources must agree to update the clock
	// (0: 1; a majority of the usable sources is always required).
	MinSources int `json:"min_sources"`
}

// options validates c and converts it to upstream.Options. Errors name
// the field ("upstream.servers[2]").
func (c UpstreamConfig) options() (upstream.Options, error) {
	var o upstream.Options
	for i, s := range c.Servers {
		if err := validateUpstreamServer(s); err != nil {
			return o, fieldErr(fmt.Sprintf("upstream.servers[%d]", i), "%q: %v", s, err)
		}
	}
	for _, f := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{
		{"upstream.min_poll", c.MinPoll, &o.MinPoll},
		{"upstream.max_poll", c.MaxPoll, &o.MaxPoll},
		{"upstream.step_threshold", c.StepThreshold, &o.StepThreshold},
		{"upstream.holdover", c.Holdover, &o.Holdover},
	} {
		if f.s == "" {
			continue
		}
		d, err := time.ParseDuration(f.s)
		if err != nil || d <= 0 {
			return o, fieldErr(f.name, "%q is not a positive duration such as \"64s\" or \"17m\"", f.s)
		}
		*f.dst = d
	}
	minPoll, maxPoll := o.MinPoll, o.MaxPoll
	if minPoll == 0 {
		minPoll = upstream.DefaultMinPoll
	}
	if maxPoll == 0 {
		maxPoll = max(upstream.DefaultMaxPoll, minPoll)
	}
	if maxPoll < minPoll {
		return o, fieldErr("upstream.max_poll", "%v is below min_poll %v", maxPoll, minPoll)
	}
	if maxPoll > 36*time.Hour {
		return o, fieldErr("upstream.max_poll", "%v is over 36h", maxPoll)
	}
	if c.MinSources < 0 || c.MinSources > len(c.Servers)*upstream.DefaultMaxPerName {
		return o, fieldErr("upstream.min_sources", "%d is outside 0–%d", c.MinSources, len(c.Servers)*upstream.DefaultMaxPerName)
	}
	o.MinSources = c.MinSources
	return o, nil
}

// validate checks the upstream section.
func (c UpstreamConfig) validate() error {
	_, err := c.options()
	return err
}

func validateUpstreamServer(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, "123"
	}
	if host == "" {
		return fmt.Errorf("empty host")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q is not a number in 1–65535", port)
	}
	return nil
}

// newSource returns what the daemon serves: with upstream servers, a
// Discipliner running until ctx ends; without, the local clock.
func newSource(ctx context.Context, cfg Config, logger *slog.Logger) (server.Source, *upstream.Discipliner, error) {
	if len(cfg.Upstream.Servers) == 0 {
		src := server.NewLocalSource(clock.System{}, uint8(cfg.Local.Stratum))
		src.RefID, _ = parseRefID(cfg.Local.RefID)
		return src, nil, nil
	}
	o, err := cfg.Upstream.options()
	if err != nil {
		return nil, nil, err
	}
	o.Logger = logger
	d, err := upstream.New(cfg.Upstream.Servers, o)
	if err != nil {
		return nil, nil, fmt.Errorf("upstream: %w", err)
	}
	go d.Run(ctx)
	logger.Info("upstream", "servers", cfg.Upstream.Servers)
	return d, d, nil
}

// sourceAttrs describes the served source for the "serving" log line.
func sourceAttrs(src server.Source) []any {
	if ls, ok := src.(*server.LocalSource); ok {
		return []any{"stratum", ls.Stratum, "refid", ls.RefID.String(), "precision", ls.Precision}
	}
	ref := src.Reference()
	return []any{"source", "upstream", "synchronized", ref.Synchronized(), "precision", ref.Precision}
}

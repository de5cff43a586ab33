package daemonconfig

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/symkey"
	"github.com/ntpkit/ntpkit/upstream"
)

// Upstream lists the NTP servers the daemon synchronises to. With no
// servers (the default) it serves the local clock described by "local";
// with servers it serves the upstream.Discipliner's clock and reference
// data, at the selected server's stratum plus one.
type Upstream struct {
	// Servers are "host:port" or "host" (port 123); a name resolving to
	// several addresses (a pool) gives several sources.
	Servers []string `json:"servers"`
	// Sources are servers with authentication (NTS or a symmetric key);
	// see Source. They are used together with Servers.
	Sources []Source `json:"sources"`
	// NTSTrustedCerts names a PEM file of CA certificates trusted for
	// NTS-KE besides the system roots (empty: the system roots only).
	NTSTrustedCerts string `json:"nts_trusted_certs"`
	// MinPoll and MaxPoll bound the poll interval (Go durations; empty:
	// 64s and 1024s).
	MinPoll string `json:"min_poll"`
	MaxPoll string `json:"max_poll"`
	// StepThreshold is the offset beyond which the served clock is
	// stepped rather than slewed (empty: 128ms).
	StepThreshold string `json:"step_threshold"`
	// Holdover is the duration the clock stays synchronised without
	// usable sources (empty: 4 × max_poll, at least 1m).
	Holdover string `json:"holdover"`
	// MinSources is how many sources must agree to update the clock
	// (0: 1; a majority of the usable sources is always required).
	MinSources int `json:"min_sources"`
	// DriftFile keeps the frequency estimate across restarts (empty:
	// none; with the systemd unit, /var/lib/ntpkit/drift).
	DriftFile string `json:"drift_file"`
	// LeapSmear smears leap seconds over a window of this duration
	// centred on the leap (empty: no smear, the leap second is a frozen
	// second).
	LeapSmear string `json:"leap_smear"`
	// MaxStep is the largest step (a duration) taken once synchronised;
	// beyond it the daemon serves unsynchronised (empty: 1000s; "none":
	// no limit).
	MaxStep string `json:"max_step"`
	// DisableInterleaved turns off interleaved mode toward the servers
	// (false: a server that serves it, chrony or ntpkit, is polled in
	// interleaved mode, and its transmit timestamps are taken after its
	// replies left; others answer in basic mode as ever).
	DisableInterleaved bool `json:"disable_interleaved"`
}

// Source is an authenticated upstream server:
//
//	{"address": "time.cloudflare.com", "nts": true}
//	{"address": "10.0.0.1:123", "key": 5}
type Source struct {
	// Address is the NTP server, "host:port" or "host" (port 123); with
	// NTS, the NTS-KE server (port 4460), which names the NTP server. An
	// NTS name is one source, never a pool.
	Address string `json:"address"`
	// NTS authenticates the server with Network Time Security.
	NTS bool `json:"nts"`
	// Key is the ID of a symmetric key in the daemon's keys_file
	// authenticating requests and replies (0: none). Not with nts.
	Key uint32 `json:"key"`
}

// options validates c and converts it to upstream.Options. Errors name
// the field ("upstream.servers[2]").
func (c Upstream) options() (upstream.Options, error) {
	var o upstream.Options
	for i, s := range c.Servers {
		if err := validateUpstreamServer(s); err != nil {
			return o, fieldErr(fmt.Sprintf("upstream.servers[%d]", i), "%q: %v", s, err)
		}
	}
	for i, s := range c.Sources {
		field := fmt.Sprintf("upstream.sources[%d]", i)
		if err := validateUpstreamServer(s.Address); err != nil {
			return o, fieldErr(field+".address", "%q: %v", s.Address, err)
		}
		if s.NTS && s.Key != 0 {
			return o, fieldErr(field, "nts and key cannot be combined")
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
		{"upstream.leap_smear", c.LeapSmear, &o.LeapSmear},
		{"upstream.max_step", c.MaxStep, &o.MaxStep},
	} {
		if f.name == "upstream.max_step" && f.s == "none" {
			o.MaxStep = -1
			continue
		}
		if f.s == "" {
			continue
		}
		d, err := parseDurationField(f.name, f.s, true)
		if err != nil {
			return o, err
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
	if minPoll < MinRemotePoll {
		if s, ok := c.remoteSource(); ok {
			return o, fieldErr("upstream.min_poll", "%v is below %v, the floor for servers off this machine (%s)", minPoll, MinRemotePoll, s)
		}
	}
	if maxPoll > 36*time.Hour {
		return o, fieldErr("upstream.max_poll", "%v is over 36h", maxPoll)
	}
	if n := (len(c.Servers) + len(c.Sources)) * upstream.DefaultMaxPerName; c.MinSources < 0 || c.MinSources > n {
		return o, fieldErr("upstream.min_sources", "%d is outside 0–%d", c.MinSources, n)
	}
	o.MinSources = c.MinSources
	o.DisableInterleaved = c.DisableInterleaved
	if o.LeapSmear != 0 && (o.LeapSmear < time.Second || o.LeapSmear > 48*time.Hour) {
		return o, fieldErr("upstream.leap_smear", "%v is outside 1s–48h", o.LeapSmear)
	}
	if step := cmp.Or(o.StepThreshold, upstream.DefaultStepThreshold); o.MaxStep > 0 && o.MaxStep < step {
		return o, fieldErr("upstream.max_step", "%v is below the step threshold %v", o.MaxStep, step)
	}
	if c.DriftFile != "" {
		if dir := filepath.Dir(c.DriftFile); !filepath.IsAbs(c.DriftFile) || dir == "/" {
			return o, fieldErr("upstream.drift_file", "%q is not an absolute path to a file in a directory", c.DriftFile)
		}
		o.DriftFile = c.DriftFile
	}
	return o, nil
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

// MinRemotePoll is the shortest upstream.min_poll allowed when any
// upstream server is not on this machine: ntpd's minimum poll interval,
// 2^4 s. Polling public servers faster is abuse; loopback servers (a
// local chronyd, tests) may be polled as fast as wanted.
const MinRemotePoll = 16 * time.Second

// remoteSource returns the first server that is not a loopback address
// or "localhost".
func (c Upstream) remoteSource() (string, bool) {
	addrs := slices.Clone(c.Servers)
	for _, s := range c.Sources {
		addrs = append(addrs, s.Address)
	}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			host = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]")
		}
		if strings.EqualFold(host, "localhost") {
			continue
		}
		if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
			continue
		}
		return a, true
	}
	return "", false
}

// daemonOptions converts the section, with the servers' authentication:
// keys from keys (the daemon's keys_file, named keysFile; nil when none)
// and NTS-KE trusting the system roots plus nts_trusted_certs. Errors name
// the field.
func (c Upstream) daemonOptions(keys *symkey.Keys, keysFile string) (daemon.Upstream, error) {
	o, err := c.options()
	if err != nil {
		return daemon.Upstream{}, err
	}
	servers, err := c.servers(keys, keysFile)
	if err != nil {
		return daemon.Upstream{}, err
	}
	return daemon.Upstream{Servers: servers, Options: o}, nil
}

// servers returns the configured servers with their authentication.
func (c Upstream) servers(keys *symkey.Keys, keysFile string) ([]upstream.Source, error) {
	var out []upstream.Source
	for _, s := range c.Servers {
		out = append(out, upstream.Source{Address: s})
	}
	var roots *x509.CertPool
	for i, s := range c.Sources {
		field := fmt.Sprintf("upstream.sources[%d]", i)
		srv := upstream.Source{Address: s.Address, NTS: s.NTS}
		if s.Key != 0 {
			if keys == nil {
				return nil, fieldErr(field+".key", "key %d needs a keys_file", s.Key)
			}
			k, ok := keys.Lookup(s.Key)
			if !ok {
				return nil, fieldErr(field+".key", "key %d is not in %s", s.Key, keysFile)
			}
			srv.Key = k
		}
		if s.NTS && c.NTSTrustedCerts != "" {
			if roots == nil {
				var err error
				if roots, err = loadRoots(c.NTSTrustedCerts); err != nil {
					return nil, fieldErr("upstream.nts_trusted_certs", "%v", err)
				}
			}
			srv.TLSConfig = &tls.Config{RootCAs: roots}
		}
		out = append(out, srv)
	}
	return out, nil
}

// loadRoots returns the system roots plus the certificates in a PEM file.
func loadRoots(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", file)
	}
	return pool, nil
}

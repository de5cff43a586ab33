// Package daemonconfig is the JSON configuration file of ntpkit's daemon
// (examples/standalone): its types, its defaults (DefaultJSON, embedded),
// strict parsing with errors that name the offending field (FieldError),
// and the conversion to daemon.Options.
//
// A file is decoded on top of the defaults, so it needs only the fields
// it changes. Durations are Go duration strings ("1s", "24h"). Parse
// refuses unknown fields, wrong types and out-of-range values, naming the
// field by its JSON path ("rate_limit.burst", "upstream.servers[2]").
// Config.Options reads the files the configuration names (keys, NTS seed,
// trusted certificates) and returns the daemon.Options it describes.
package daemonconfig

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"github.com/ntpkit/ntpkit/internal/listenaddr"
	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/symkey"
)

//go:embed default.json
var defaultJSON []byte

// DefaultJSON returns the default configuration file: the values every
// field has unless a file sets it. It serves the system clock as a
// stratum-10 local clock on 127.0.0.1:12300 and [::1]:12300 and contacts
// nothing outside the machine.
func DefaultJSON() []byte { return bytes.Clone(defaultJSON) }

// Config is the daemon's configuration file, JSON with these fields.
type Config struct {
	// Listen lists the UDP addresses to serve NTP on.
	Listen []string `json:"listen"`
	// Local describes the local reference served when no upstream is
	// configured.
	Local Local `json:"local"`
	// Server tunes the serving sockets.
	Server Server `json:"server"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
	// API is the HTTP management API (health, status, stats, metrics).
	API API `json:"api"`
	// Access says which clients are answered. Reloadable.
	Access Access `json:"access"`
	// RateLimit limits each client and all together, and bounds the
	// kiss-o'-death replies. Reloadable.
	RateLimit RateLimit `json:"rate_limit"`
	// NTS configures Network Time Security.
	NTS NTS `json:"nts"`
	// KeysFile names a symmetric key file in chrony's format (ID TYPE
	// KEY per line); requests MACed with one of its keys get MACed
	// replies. Empty: no symmetric keys.
	KeysFile string `json:"keys_file"`
	// Upstream lists the NTP servers to synchronise to; none: serve the
	// local clock.
	Upstream Upstream `json:"upstream"`
}

// API configures the HTTP management API.
type API struct {
	// Listen is the TCP address of the API, an IP and a port; empty
	// turns the API off.
	Listen string `json:"listen"`
	// TokenFile names a file holding a bearer token that every request
	// must present ("Authorization: Bearer <token>"); empty: no auth.
	// It is required when Listen is not a loopback address, unless
	// AllowNoToken is set.
	TokenFile string `json:"token_file"`
	// AllowNoToken serves the API off loopback without a token: anyone
	// who reaches the port reads the status. Off by default.
	AllowNoToken bool `json:"allow_no_token"`
	// Hosts are the names, besides IP addresses and "localhost", that
	// requests may carry in their Host header when the API has no token
	// (a web page cannot use DNS rebinding to read it: its requests
	// carry its own name). With a token, Host is not checked.
	Hosts []string `json:"hosts"`
}

// Local is the local clock's reference data.
type Local struct {
	// Stratum is 1–15.
	Stratum int `json:"stratum"`
	// RefID is up to 4 ASCII characters (a reference code such as "GPS"
	// for a stratum-1 clock) or an IPv4 address; the default 127.127.1.1
	// (also used when empty) is the address chrony and ntpd give the
	// local clock, which clients show as LOCAL or 127.127.1.1.
	RefID string `json:"refid"`
	// WhenUnsynchronized is what replies say while the kernel reports
	// the system clock unsynchronised: "serve" (the default) serves it
	// anyway as a local clock at Stratum, as chrony's "local" does, while
	// /healthz, /v1/status and the metrics report the kernel's state;
	// "unsynchronized" answers with leap alarm and stratum 16, so that
	// clients do not use the time.
	WhenUnsynchronized string `json:"when_unsynchronized"`
}

// unsyncPolicies maps local.when_unsynchronized's values to policies.
var unsyncPolicies = map[string]server.UnsyncPolicy{
	"":               server.ServeLocalClock,
	"serve":          server.ServeLocalClock,
	"unsynchronized": server.AnnounceUnsynchronized,
}

// Server tunes the NTP sockets.
type Server struct {
	// Sockets is the number of SO_REUSEPORT sockets per address; 0: one
	// per CPU.
	Sockets int `json:"sockets"`
	// Workers is the number of reader goroutines per socket; 0: 1.
	Workers int `json:"workers"`
	// ReadBuffer and WriteBuffer are SO_RCVBUF and SO_SNDBUF in bytes;
	// 0: the system default.
	ReadBuffer  int `json:"read_buffer"`
	WriteBuffer int `json:"write_buffer"`
	// SendBatch is the most replies sent per system call (sendmmsg);
	// 0: 4. Each reply carries the time it is predicted to leave,
	// calibrated against kernel transmit stamps; 1 stamps each reply
	// just before its own send, for the most exact transmit times
	// under full load at about two thirds of the replies per CPU-second
	// (README, Performance).
	SendBatch int `json:"send_batch"`
	// DisableInterleaved turns interleaved mode off. By default, as in
	// chrony, a client that asks for it (chrony's "xleave") gets replies
	// carrying the time its previous reply really left, from the
	// kernel's transmit timestamp on Linux; other clients are served as
	// before.
	DisableInterleaved bool `json:"disable_interleaved"`
	// InterleavedTableSize is how many transmit times are kept for
	// interleaved clients (16 bytes each, rounded up to a power of two,
	// at most 16777216); 0: 65536 (1 MiB). A client whose entry was
	// overwritten gets one basic reply.
	InterleavedTableSize int `json:"interleaved_table_size"`
}

// Bounds on values that would otherwise let a configuration file exhaust
// the machine's memory.
const (
	// MaxReaders bounds listen addresses × sockets × workers: each reader
	// is a goroutine with its own batch buffers (about 130 KiB).
	MaxReaders = daemon.MaxReaders
	// MaxNameEntries bounds access.names.max_entries.
	MaxNameEntries = 1 << 20
	// MaxRateLimitMemory bounds rate_limit.memory: 1 GiB holds 67
	// million clients.
	MaxRateLimitMemory = 1 << 30
)

// FieldError is a configuration value that was refused.
type FieldError struct {
	// Field is the JSON path of the field, e.g. "local.stratum" or
	// "upstream.servers[2]".
	Field string
	// Reason says what is wrong with the value.
	Reason string
}

// Error returns "config: FIELD: REASON".
func (e *FieldError) Error() string { return fmt.Sprintf("config: %s: %s", e.Field, e.Reason) }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Default returns the default configuration, DefaultJSON decoded.
func Default() Config {
	var cfg Config
	if err := decodeStrict(defaultJSON, &cfg); err != nil {
		panic("daemonconfig: embedded default config is invalid: " + err.Error())
	}
	return cfg
}

// Parse decodes a JSON configuration strictly (unknown fields and wrong
// types are errors naming the field), on top of the defaults, and
// validates it.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	if err := decodeStrict(data, &cfg); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// decodeStrict decodes one JSON object onto cfg, refusing unknown fields,
// wrong types and trailing data.
func decodeStrict(data []byte, cfg *Config) error {
	scan, err := scanJSON(data)
	if scan.dup != "" {
		line, col := position(data, scan.dupOff)
		return fieldErr(scan.dup, "given twice (again at line %d, column %d); the second would silently replace the first", line, col)
	} else if errors.Is(err, errJSONTooDeep) {
		return fmt.Errorf("config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return describeJSONError(data, scan, err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return errors.New("config: trailing data after the JSON object")
	}
	return nil
}

// Validate checks every field and returns the first problem as a
// *FieldError. It reads no file.
func (c *Config) Validate() error {
	if len(c.Listen) == 0 {
		return fieldErr("listen", "at least one address is needed")
	}
	for i, a := range c.Listen {
		if err := listenaddr.Check(a); err != nil {
			return fieldErr(fmt.Sprintf("listen[%d]", i), "%q: %v", a, err)
		}
	}
	if c.Local.Stratum < 1 || c.Local.Stratum > 15 {
		return fieldErr("local.stratum", "%d is outside 1–15", c.Local.Stratum)
	}
	if _, err := ParseRefID(c.Local.RefID); err != nil {
		return fieldErr("local.refid", "%v", err)
	}
	if _, ok := unsyncPolicies[c.Local.WhenUnsynchronized]; !ok {
		return fieldErr("local.when_unsynchronized", "%q is neither \"serve\" nor \"unsynchronized\"", c.Local.WhenUnsynchronized)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"server.sockets", c.Server.Sockets},
		{"server.workers", c.Server.Workers},
		{"server.read_buffer", c.Server.ReadBuffer},
		{"server.write_buffer", c.Server.WriteBuffer},
		{"server.send_batch", c.Server.SendBatch},
		{"server.interleaved_table_size", c.Server.InterleavedTableSize},
	} {
		if f.v < 0 {
			return fieldErr(f.name, "%d is negative", f.v)
		}
	}
	if c.Server.Sockets > 1024 {
		return fieldErr("server.sockets", "%d is more than 1024", c.Server.Sockets)
	}
	if c.Server.SendBatch > 1024 {
		return fieldErr("server.send_batch", "%d is more than 1024", c.Server.SendBatch)
	}
	if c.Server.Workers > 1024 {
		return fieldErr("server.workers", "%d is more than 1024", c.Server.Workers)
	}
	if c.Server.InterleavedTableSize > server.MaxInterleavedTableSize {
		return fieldErr("server.interleaved_table_size", "%d is more than %d", c.Server.InterleavedTableSize, server.MaxInterleavedTableSize)
	}
	sockets := c.Server.Sockets
	if sockets == 0 {
		sockets = runtime.GOMAXPROCS(0)
	}
	if n := len(c.Listen) * sockets * max(1, c.Server.Workers); n > MaxReaders {
		return fieldErr("server.workers", "%d listen addresses × %d sockets × %d workers make %d readers, more than %d",
			len(c.Listen), sockets, max(1, c.Server.Workers), n, MaxReaders)
	}
	if _, err := c.Upstream.options(); err != nil {
		return err
	}
	if _, err := c.Level(); err != nil {
		return err
	}
	if _, _, err := c.Policy(); err != nil {
		return err
	}
	if c.API.Listen != "" {
		if err := listenaddr.Check(c.API.Listen); err != nil {
			return fieldErr("api.listen", "%q: %v", c.API.Listen, err)
		}
	}
	if c.API.TokenFile != "" && c.API.Listen == "" {
		return fieldErr("api.token_file", "set but the API is off (api.listen is empty)")
	}
	if c.API.Listen != "" && c.API.TokenFile == "" && !c.API.AllowNoToken && !loopbackAddr(c.API.Listen) {
		return fieldErr("api.listen", "%q is reachable from other hosts and api.token_file is not set: set a token, or api.allow_no_token to serve the API unauthenticated", c.API.Listen)
	}
	for i, h := range c.API.Hosts {
		if h == "" || strings.ContainsAny(h, " /:@") {
			return fieldErr(fmt.Sprintf("api.hosts[%d]", i), "%q is not a host name", h)
		}
	}
	if err := c.NTS.validate(); err != nil {
		return err
	}
	return nil
}

// loopbackAddr reports whether the "ip:port" address a is on a loopback
// address; an empty IP (every interface) is not.
func loopbackAddr(a string) bool {
	host, _, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// Level returns the log level LogLevel names (info when empty).
func (c *Config) Level() (slog.Level, error) {
	var l slog.Level
	if c.LogLevel == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fieldErr("log_level", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	return l, nil
}

// ParseRefID reads a reference ID given as an IPv4 address or up to four
// printable ASCII characters; empty means server.LocalRefID.
func ParseRefID(s string) (ntpwire.RefID, error) {
	if s == "" {
		return server.LocalRefID, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		return a.As4(), nil
	}
	if len(s) > 4 {
		return ntpwire.RefID{}, fmt.Errorf("%q is neither an IPv4 address nor up to 4 ASCII characters", s)
	}
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e {
			return ntpwire.RefID{}, fmt.Errorf("%q has a non-printable character", s)
		}
	}
	return ntpwire.RefIDString(s), nil
}

// Token reads the API bearer token named by API.TokenFile; empty when
// none is configured.
func (c *Config) Token() (string, error) {
	if c.API.TokenFile == "" {
		return "", nil
	}
	if _, err := checkSecretFile("api.token_file", c.API.TokenFile); err != nil {
		return "", err
	}
	data, err := os.ReadFile(c.API.TokenFile)
	if err != nil {
		return "", fieldErr("api.token_file", "%v", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fieldErr("api.token_file", "%s is empty", c.API.TokenFile)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fieldErr("api.token_file", "the token in %s contains white space", c.API.TokenFile)
	}
	return tok, nil
}

// Options validates c, reads the files it names (keys_file,
// nts.key_seed_file, upstream.nts_trusted_certs) and returns the
// daemon.Options it describes, with logger as the daemon's logger.
// Errors name the field. Secret files (keys_file, nts.key_file,
// nts.key_seed_file, api.token_file) that other users may write are
// refused; those they may read are accepted with a warning.
func (c *Config) Options(logger *slog.Logger) (daemon.Options, error) {
	if err := c.Validate(); err != nil {
		return daemon.Options{}, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := c.checkSecrets(logger); err != nil {
		return daemon.Options{}, err
	}
	refid, _ := ParseRefID(c.Local.RefID)
	o := daemon.Options{
		Listen: c.Listen,
		Local:  daemon.Local{Stratum: uint8(c.Local.Stratum), RefID: refid, WhenUnsynchronized: unsyncPolicies[c.Local.WhenUnsynchronized]},
		Tuning: daemon.Tuning{
			Sockets:     c.Server.Sockets,
			Workers:     c.Server.Workers,
			ReadBuffer:  c.Server.ReadBuffer,
			WriteBuffer: c.Server.WriteBuffer,
			SendBatch:   c.Server.SendBatch,

			DisableInterleaved:   c.Server.DisableInterleaved,
			InterleavedTableSize: c.Server.InterleavedTableSize,
		},
		Logger: logger,
	}
	var err error
	if o.Access, o.RateLimit, err = c.Policy(); err != nil {
		return daemon.Options{}, err
	}
	var keys *symkey.Keys
	if c.KeysFile != "" {
		if keys, err = symkey.LoadFile(c.KeysFile); err != nil {
			return daemon.Options{}, fieldErr("keys_file", "%v", err)
		}
		o.Keys = keys
	}
	if o.Upstream, err = c.Upstream.daemonOptions(keys, c.KeysFile); err != nil {
		return daemon.Options{}, err
	}
	if o.NTS, err = c.NTS.options(logger); err != nil {
		return daemon.Options{}, err
	}
	return o, nil
}

package main

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
	"strconv"
)

//go:embed default.json
var defaultConfigJSON []byte

// Config is the daemon's configuration file, JSON with these fields.
type Config struct {
	// Listen lists the UDP addresses to serve NTP on.
	Listen []string `json:"listen"`
	// Local describes the local reference served when no upstream is
	// configured.
	Local LocalConfig `json:"local"`
	// Server tunes the serving sockets.
	Server ServerConfig `json:"server"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `json:"log_level"`
	// API is the HTTP management API (health, status, stats, metrics).
	API APIConfig `json:"api"`
	// Access says which clients are answered (see policy.go).
	Access AccessConfig `json:"access"`
	// RateLimit limits each client and all together, and bounds the
	// kiss-o'-death replies (see policy.go).
	RateLimit RateLimitConfig `json:"rate_limit"`
	// NTS configures Network Time Security (see nts.go).
	NTS NTSConfig `json:"nts"`
	// KeysFile names a symmetric key file in chrony's format (ID TYPE
	// KEY per line); requests MACed with one of its keys get MACed
	// replies. Empty: no symmetric keys. Read at start only.
	KeysFile string `json:"keys_file"`
	// Upstream lists the NTP servers to synchronise to (see upstream.go);
	// none: serve the local clock.
	Upstream UpstreamConfig `json:"upstream"`
}

// APIConfig configures the HTTP management API.
type APIConfig struct {
	// Listen is the TCP address of the API, an IP and a port; empty
	// turns the API off.
	Listen string `json:"listen"`
	// TokenFile names a file holding a bearer token that every request
	// must present ("Authorization: Bearer <token>"); empty: no auth.
	TokenFile string `json:"token_file"`
}

// LocalConfig is the local clock's reference data.
type LocalConfig struct {
	Stratum int    `json:"stratum"` // 1–15
	RefID   string `json:"refid"`   // up to 4 ASCII characters or an IPv4 address; empty: 127.127.1.1
}

// ServerConfig tunes the NTP sockets.
type ServerConfig struct {
	Sockets     int `json:"sockets"`      // SO_REUSEPORT sockets per address; 0: one per CPU
	Workers     int `json:"workers"`      // reader goroutines per socket; 0: 1
	ReadBuffer  int `json:"read_buffer"`  // SO_RCVBUF bytes; 0: system default
	WriteBuffer int `json:"write_buffer"` // SO_SNDBUF bytes; 0: system default
}

// FieldError is a configuration value that was refused.
type FieldError struct {
	Field  string // JSON path of the field, e.g. "local.stratum"
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("config: %s: %s", e.Field, e.Reason) }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// DefaultConfig returns the embedded default configuration.
func DefaultConfig() Config {
	var cfg Config
	if err := decodeStrict(defaultConfigJSON, &cfg); err != nil {
		panic("embedded default config is invalid: " + err.Error())
	}
	return cfg
}

// ParseConfig decodes a JSON configuration strictly (unknown fields and
// wrong types are errors naming the field), on top of the defaults, and
// validates it.
func ParseConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
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
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return describeJSONError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return errors.New("config: trailing data after the JSON object")
	}
	return nil
}

func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fieldErr(te.Field, "wrong type: got JSON %s, want %s", te.Value, te.Type)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("config: JSON syntax error at byte %d: %w", se.Offset, err)
	}
	// encoding/json reports unknown fields as `json: unknown field "x"`.
	return fmt.Errorf("config: %w", err)
}

// Validate checks every field and returns the first problem as a
// *FieldError.
func (c *Config) Validate() error {
	if len(c.Listen) == 0 {
		return fieldErr("listen", "at least one address is needed")
	}
	for i, a := range c.Listen {
		if err := validateUDPAddr(a); err != nil {
			return fieldErr(fmt.Sprintf("listen[%d]", i), "%q: %v", a, err)
		}
	}
	if c.Local.Stratum < 1 || c.Local.Stratum > 15 {
		return fieldErr("local.stratum", "%d is outside 1–15", c.Local.Stratum)
	}
	if _, err := parseRefID(c.Local.RefID); err != nil {
		return fieldErr("local.refid", "%v", err)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"server.sockets", c.Server.Sockets},
		{"server.workers", c.Server.Workers},
		{"server.read_buffer", c.Server.ReadBuffer},
		{"server.write_buffer", c.Server.WriteBuffer},
	} {
		if f.v < 0 {
			return fieldErr(f.name, "%d is negative", f.v)
		}
	}
	if c.Server.Sockets > 1024 {
		return fieldErr("server.sockets", "%d is more than 1024", c.Server.Sockets)
	}
	if c.Server.Workers > 1024 {
		return fieldErr("server.workers", "%d is more than 1024", c.Server.Workers)
	}
	if err := c.Upstream.validate(); err != nil {
		return err
	}
	if _, err := parseLogLevel(c.LogLevel); err != nil {
		return fieldErr("log_level", "%v", err)
	}
	if err := c.validatePolicy(); err != nil {
		return err
	}
	if c.API.Listen != "" {
		if err := validateUDPAddr(c.API.Listen); err != nil {
			return fieldErr("api.listen", "%q: %v", c.API.Listen, err)
		}
	}
	if c.API.TokenFile != "" && c.API.Listen == "" {
		return fieldErr("api.token_file", "set but the API is off (api.listen is empty)")
	}
	if err := c.NTS.validate(); err != nil {
		return err
	}
	return nil
}

func validateUDPAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("host must be an IP address: %w", err)
		}
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q is not a number in 0–65535", port)
	}
	return nil
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q is not one of debug, info, warn, error", s)
	}
	return l, nil
}

package daemonconfig

import (
	"log/slog"
	"os"
	"time"

	"github.com/ntpkit/ntpkit/internal/listenaddr"
	"github.com/ntpkit/ntpkit/server/daemon"
)

// NTS configures Network Time Security (RFC 8915): an NTS-KE listener
// handing out cookies, and NTS authentication of NTP requests on every
// NTP address.
type NTS struct {
	// Enabled turns NTS on.
	Enabled bool `json:"enabled"`
	// Listen is the NTS-KE TCP address; empty: 127.0.0.1:4460.
	Listen string `json:"listen"`
	// CertFile and KeyFile are the PEM certificate chain and private
	// key of the KE server. They are read again on reload.
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	// NTPServer is the NTP server name or address given to clients;
	// empty: clients use the KE server's.
	NTPServer string `json:"ntp_server"`
	// NTPPort is the NTP port given to clients; 0: the port of the
	// first listen address, unless it is 123.
	NTPPort int `json:"ntp_port"`
	// KeySeedFile names a file holding at least 32 bytes of secret from
	// which the cookie master keys are derived; servers sharing it (and
	// the rotation) accept each other's cookies. Empty: a random seed
	// made at start, so cookies do not survive a restart.
	KeySeedFile string `json:"key_seed_file"`
	// Rotation is how often the master key changes, e.g. "24h"; empty:
	// 24h. Cookies stay valid for two more periods.
	Rotation string `json:"rotation"`
	// MaxSessions bounds concurrent KE sessions; 0: 128.
	MaxSessions int `json:"max_sessions"`
}

// validate checks c; field names are prefixed with "nts.".
func (c *NTS) validate() error {
	if c.Listen != "" {
		if err := listenaddr.Check(c.Listen); err != nil {
			return fieldErr("nts.listen", "%q: %v", c.Listen, err)
		}
	}
	if c.Rotation != "" {
		d, err := parseDurationField("nts.rotation", c.Rotation, true)
		if err != nil {
			return err
		}
		if d < time.Minute {
			return fieldErr("nts.rotation", "%v is shorter than a minute", d)
		}
	}
	if c.NTPPort < 0 || c.NTPPort > 65535 {
		return fieldErr("nts.ntp_port", "%d is outside 0–65535", c.NTPPort)
	}
	if c.MaxSessions < 0 {
		return fieldErr("nts.max_sessions", "%d is negative", c.MaxSessions)
	}
	if c.Enabled {
		if c.CertFile == "" {
			return fieldErr("nts.cert_file", "required when NTS is enabled")
		}
		if c.KeyFile == "" {
			return fieldErr("nts.key_file", "required when NTS is enabled")
		}
	}
	return nil
}

// options converts c, reading the seed file (and warning on logger when
// others may read it).
func (c *NTS) options(logger *slog.Logger) (daemon.NTS, error) {
	if !c.Enabled {
		return daemon.NTS{}, nil
	}
	o := daemon.NTS{
		Enabled:     true,
		Listen:      c.Listen,
		CertFile:    c.CertFile,
		KeyFile:     c.KeyFile,
		NTPServer:   c.NTPServer,
		NTPPort:     c.NTPPort,
		MaxSessions: c.MaxSessions,
	}
	if c.Rotation != "" {
		o.Rotation, _ = time.ParseDuration(c.Rotation) // checked by validate
	}
	// The daemon loads the pair; a missing or unreadable file is named
	// here by its field, before anything binds.
	for _, f := range []struct{ field, path string }{{"nts.cert_file", c.CertFile}, {"nts.key_file", c.KeyFile}} {
		if _, err := os.ReadFile(f.path); err != nil {
			return o, fieldErr(f.field, "%v", err)
		}
	}
	if c.KeySeedFile != "" {
		// Permissions are checked by Config.checkSecrets.
		var err error
		if o.Seed, err = os.ReadFile(c.KeySeedFile); err != nil {
			return o, fieldErr("nts.key_seed_file", "%v", err)
		}
	}
	return o, nil
}

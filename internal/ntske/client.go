package ntske

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Session is the outcome of a KE exchange: the keys and cookies an NTP
// client uses, and where to send its NTP requests.
type Session struct {
	// C2S and S2C are the AEAD_AES_SIV_CMAC_256 keys.
	C2S, S2C []byte
	// Cookies are the cookies the server handed out.
	Cookies [][]byte
	// Server and Port are where NTP requests go: the KE server's
	// Server/Port records, else the KE host and port 123.
	Server string
	Port   int
}

// Address returns Server and Port joined as host:port.
func (s *Session) Address() string {
	return net.JoinHostPort(s.Server, strconv.Itoa(s.Port))
}

// Exchange runs an NTS-KE session with the server at addr (host:port,
// port 4460 when missing). cfg may be nil; Exchange sets TLS 1.3 and the
// ntske/1 ALPN on a copy, and ServerName from addr when cfg has none. The
// whole exchange is bounded by ctx and by timeout when positive.
func Exchange(ctx context.Context, addr string, cfg *tls.Config, timeout time.Duration) (*Session, error) {
	return ExchangeVia(ctx, nil, addr, cfg, timeout)
}

// ExchangeVia is Exchange connecting with nd (for a local address, say);
// nil means a zero net.Dialer.
func ExchangeVia(ctx context.Context, nd *net.Dialer, addr string, cfg *tls.Config, timeout time.Duration) (*Session, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = addr, strconv.Itoa(DefaultPort)
	}
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg = cfg.Clone()
	cfg.MinVersion = tls.VersionTLS13
	cfg.NextProtos = []string{ALPN}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	d := tls.Dialer{NetDialer: nd, Config: cfg}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("ntske: dial %s: %w", addr, err)
	}
	conn := c.(*tls.Conn)
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	st := conn.ConnectionState()
	if st.NegotiatedProtocol != ALPN {
		return nil, fmt.Errorf("ntske: %s did not negotiate ALPN %s", addr, ALPN)
	}
	var req []byte
	req = AppendUint16s(req, true, RecNextProtocol, ProtocolNTPv4)
	req = AppendUint16s(req, true, RecAEAD, AEADAESSIVCMAC256)
	req = AppendEnd(req)
	if _, err := conn.Write(req); err != nil {
		return nil, fmt.Errorf("ntske: send request to %s: %w", addr, err)
	}
	msg, err := ReadMessage(conn, nil, MaxMessage)
	if err != nil {
		return nil, fmt.Errorf("ntske: read response from %s: %w", addr, err)
	}
	resp, err := ParseResponse(msg)
	if err != nil {
		return nil, fmt.Errorf("ntske: response from %s: %w", addr, err)
	}
	c2s, s2c, err := ExportKeys(&st, resp.AEAD)
	if err != nil {
		return nil, err
	}
	s := &Session{C2S: c2s, S2C: s2c, Cookies: resp.Cookies, Server: resp.Server, Port: resp.Port}
	if s.Server == "" {
		s.Server = host
	}
	if s.Port == 0 {
		s.Port = 123
	}
	return s, nil
}

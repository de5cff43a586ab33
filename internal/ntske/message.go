package ntske

import (
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
)

// ReadMessage reads records from r until an End of Message record and
// returns the whole message, at most max bytes (MaxMessage when max is 0).
// It returns ErrTooLong for a longer message and ErrTruncated, wrapped with
// the I/O error, when r ends first.
func ReadMessage(r io.Reader, buf []byte, max int) ([]byte, error) {
	if max <= 0 {
		max = MaxMessage
	}
	msg := buf[:0]
	for {
		if len(msg)+4 > max {
			return nil, ErrTooLong
		}
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTruncated, err)
		}
		n := int(binary.BigEndian.Uint16(hdr[2:]))
		if len(msg)+4+n > max {
			return nil, ErrTooLong
		}
		start := len(msg)
		msg = append(msg, hdr[:]...)
		msg = slices.Grow(msg, n)[:start+4+n]
		if _, err := io.ReadFull(r, msg[start+4:]); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTruncated, err)
		}
		if binary.BigEndian.Uint16(hdr[:])&^CriticalBit == RecEndOfMessage {
			return msg, nil
		}
	}
}

// Request is what a client asked for in an NTS-KE request.
type Request struct {
	// Protocols and AEADs are the offered Next Protocol and AEAD
	// algorithm IDs, in the client's order of preference.
	Protocols []uint16
	AEADs     []uint16
	// Server and Port are the client's NTPv4 Server and Port
	// Negotiation records, if any (advisory: a server may ignore them).
	Server string
	Port   int
}

// Has reports whether list holds v.
func has(list []uint16, v uint16) bool { return slices.Contains(list, v) }

// OffersNTPv4 reports whether the client offered NTPv4 as next protocol.
func (r *Request) OffersNTPv4() bool { return has(r.Protocols, ProtocolNTPv4) }

// OffersAESSIV reports whether the client offered AEAD_AES_SIV_CMAC_256.
func (r *Request) OffersAESSIV() bool { return has(r.AEADs, AEADAESSIVCMAC256) }

// ProtocolError is a request the server must answer with an Error record.
type ProtocolError struct {
	Code   uint16 // ErrCodeUnrecognizedCritical, ErrCodeBadRequest, ...
	Reason string // what was wrong with the request, for logs
}

// Error returns the code and the reason, prefixed "ntske: ".
func (e *ProtocolError) Error() string {
	return fmt.Sprintf("ntske: error %d: %s", e.Code, e.Reason)
}

func badRequest(format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: ErrCodeBadRequest, Reason: fmt.Sprintf(format, args...)}
}

// ParseRequest parses a client's KE message as RFC 8915 §4.1 requires:
// exactly one critical Next Protocol record, at most one AEAD record,
// a final End of Message, no Error, Warning or New Cookie records, and no
// unknown critical record. It returns a *ProtocolError telling which
// Error record to answer with.
func ParseRequest(msg []byte) (Request, error) {
	var req Request
	var sawProto, sawAEAD, sawEnd bool
	it := Records(msg)
	for it.Next() {
		rec := it.Record()
		if sawEnd {
			return Request{}, badRequest("record after End of Message")
		}
		switch rec.Type {
		case RecEndOfMessage:
			if len(rec.Body) != 0 {
				return Request{}, badRequest("End of Message with a body")
			}
			sawEnd = true
		case RecNextProtocol:
			if sawProto {
				return Request{}, badRequest("two Next Protocol records")
			}
			ids, err := uint16s(rec.Body)
			if err != nil {
				return Request{}, err
			}
			sawProto, req.Protocols = true, ids
		case RecAEAD:
			if sawAEAD {
				return Request{}, badRequest("two AEAD records")
			}
			ids, err := uint16s(rec.Body)
			if err != nil {
				return Request{}, err
			}
			sawAEAD, req.AEADs = true, ids
		case RecServer:
			req.Server = string(rec.Body)
		case RecPort:
			if len(rec.Body) != 2 {
				return Request{}, badRequest("port record of %d bytes", len(rec.Body))
			}
			req.Port = int(binary.BigEndian.Uint16(rec.Body))
		case RecError, RecWarning, RecNewCookie:
			return Request{}, badRequest("client sent record type %d", rec.Type)
		default:
			if rec.Critical {
				return Request{}, &ProtocolError{Code: ErrCodeUnrecognizedCritical, Reason: fmt.Sprintf("unknown critical record type %d", rec.Type)}
			}
		}
	}
	if it.Err() != nil {
		return Request{}, badRequest("%v", it.Err())
	}
	if !sawEnd {
		return Request{}, badRequest("no End of Message")
	}
	if !sawProto {
		return Request{}, badRequest("no Next Protocol record")
	}
	return req, nil
}

func uint16s(b []byte) ([]uint16, error) {
	if len(b)%2 != 0 {
		return nil, badRequest("odd list length %d", len(b))
	}
	ids := make([]uint16, len(b)/2)
	for i := range ids {
		ids[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return ids, nil
}

// Response is a server's answer to a successful KE request.
type Response struct {
	// AEAD is the negotiated algorithm; Protocol NTPv4 is implied.
	AEAD uint16
	// Cookies are the opaque cookies for the client.
	Cookies [][]byte
	// Server and Port, when set, tell the client where the NTP server is.
	Server string
	Port   int
}

// AppendResponse appends the records of resp: Next Protocol (NTPv4), AEAD,
// Server and Port when set, the cookies and End of Message.
func AppendResponse(b []byte, resp *Response) []byte {
	b = AppendUint16s(b, true, RecNextProtocol, ProtocolNTPv4)
	b = AppendUint16s(b, true, RecAEAD, resp.AEAD)
	if resp.Server != "" {
		b = AppendRecord(b, true, RecServer, []byte(resp.Server))
	}
	if resp.Port != 0 {
		b = AppendUint16s(b, true, RecPort, uint16(resp.Port))
	}
	for _, c := range resp.Cookies {
		b = AppendRecord(b, false, RecNewCookie, c)
	}
	return AppendEnd(b)
}

// AppendError appends an Error record with code and End of Message.
func AppendError(b []byte, code uint16) []byte {
	b = AppendUint16s(b, true, RecError, code)
	return AppendEnd(b)
}

// ParseResponse parses a server's KE response. It fails on an Error
// record, on an unknown critical record, or if the server did not accept
// NTPv4 and AEAD_AES_SIV_CMAC_256 and send at least one cookie.
func ParseResponse(msg []byte) (Response, error) {
	var resp Response
	var proto, aead []uint16
	var sawProto, sawAEAD, sawEnd bool
	it := Records(msg)
	for it.Next() {
		rec := it.Record()
		if sawEnd {
			return Response{}, fmt.Errorf("ntske: record after End of Message")
		}
		switch rec.Type {
		case RecEndOfMessage:
			sawEnd = true
		case RecNextProtocol, RecAEAD:
			ids, err := uint16s(rec.Body)
			if err != nil {
				return Response{}, err
			}
			if rec.Type == RecNextProtocol {
				sawProto, proto = true, ids
			} else {
				sawAEAD, aead = true, ids
			}
		case RecError:
			if len(rec.Body) == 2 {
				return Response{}, &ProtocolError{Code: binary.BigEndian.Uint16(rec.Body), Reason: "server sent an Error record"}
			}
			return Response{}, fmt.Errorf("ntske: malformed Error record")
		case RecWarning:
			// Warnings are advisory.
		case RecNewCookie:
			if len(rec.Body) == 0 || len(rec.Body) > MaxCookieLen {
				return Response{}, fmt.Errorf("ntske: cookie of %d bytes (want 1 to %d)", len(rec.Body), MaxCookieLen)
			}
			if len(resp.Cookies) < MaxCookies {
				// A copy, so the cookies do not keep the message alive.
				resp.Cookies = append(resp.Cookies, append([]byte(nil), rec.Body...))
			}
		case RecServer:
			if err := checkServerName(rec.Body); err != nil {
				return Response{}, err
			}
			resp.Server = string(rec.Body)
		case RecPort:
			if len(rec.Body) != 2 {
				return Response{}, fmt.Errorf("ntske: port record of %d bytes", len(rec.Body))
			}
			resp.Port = int(binary.BigEndian.Uint16(rec.Body))
			if resp.Port == 0 {
				return Response{}, fmt.Errorf("ntske: server named NTP port 0")
			}
		default:
			if rec.Critical {
				return Response{}, fmt.Errorf("ntske: unknown critical record type %d", rec.Type)
			}
		}
	}
	switch {
	case it.Err() != nil:
		return Response{}, it.Err()
	case !sawEnd:
		return Response{}, fmt.Errorf("ntske: response without End of Message")
	case !sawProto || len(proto) != 1 || proto[0] != ProtocolNTPv4:
		return Response{}, fmt.Errorf("ntske: server did not accept NTPv4 (next protocol %v)", proto)
	case !sawAEAD || len(aead) != 1 || aead[0] != AEADAESSIVCMAC256:
		return Response{}, fmt.Errorf("ntske: server did not accept AES-SIV-CMAC-256 (AEAD %v)", aead)
	case len(resp.Cookies) == 0:
		return Response{}, fmt.Errorf("ntske: server sent no cookies")
	}
	resp.AEAD = AEADAESSIVCMAC256
	return resp, nil
}

// checkServerName accepts an NTPv4 Server Negotiation name that is an IP
// address literal or a DNS host name: 1 to MaxServerNameLen bytes, labels
// of 1 to 63 letters, digits, hyphens or underscores, not starting or
// ending with a hyphen, an optional final dot.
func checkServerName(b []byte) error {
	name := string(b)
	if len(name) == 0 || len(name) > MaxServerNameLen {
		return fmt.Errorf("ntske: server name of %d bytes (want 1 to %d)", len(name), MaxServerNameLen)
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return nil
	}
	bad := fmt.Errorf("ntske: server name %q is not a host name or address", name)
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return bad
			}
		}
	}
	return nil
}

// ExporterContext returns the TLS exporter context for the C2S (s2c
// false) or S2C key: protocol ID, AEAD ID and direction (RFC 8915 §5.1).
func ExporterContext(aead uint16, s2c bool) []byte {
	c := []byte{0, ProtocolNTPv4, byte(aead >> 8), byte(aead), 0}
	if s2c {
		c[4] = 1
	}
	return c
}

// Exporter is what ExportKeys needs of a TLS connection state.
type Exporter interface {
	ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error)
}

// ExportKeys derives the C2S and S2C keys for aead from a finished TLS
// 1.3 session (a tls.ConnectionState).
func ExportKeys(e Exporter, aead uint16) (c2s, s2c []byte, err error) {
	c2s, err = e.ExportKeyingMaterial(ExporterLabel, ExporterContext(aead, false), KeyLen)
	if err != nil {
		return nil, nil, fmt.Errorf("ntske: export C2S key: %w", err)
	}
	s2c, err = e.ExportKeyingMaterial(ExporterLabel, ExporterContext(aead, true), KeyLen)
	if err != nil {
		return nil, nil, fmt.Errorf("ntske: export S2C key: %w", err)
	}
	return c2s, s2c, nil
}

package ntpwire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderLen is the length in bytes of the NTP header that every packet
// starts with (RFC 5905 §7.3).
const HeaderLen = 48

// Sentinel errors returned by the decoders. Compare with errors.Is.
var (
	// ErrShort means a packet is shorter than HeaderLen.
	ErrShort = errors.New("ntpwire: packet shorter than 48 bytes")
	// ErrExtension means the bytes after the header are neither a
	// well-formed run of RFC 7822 extension fields nor a legacy MAC.
	ErrExtension = errors.New("ntpwire: malformed extension field or MAC")
)

// Leap is the 2-bit leap indicator.
type Leap uint8

// Leap indicator values (RFC 5905 §7.3).
const (
	LeapNone   Leap = 0 // no warning
	LeapInsert Leap = 1 // last minute of the day has 61 seconds
	LeapDelete Leap = 2 // last minute of the day has 59 seconds
	LeapAlarm  Leap = 3 // clock unsynchronized
)

// String returns a short name for l.
func (l Leap) String() string {
	switch l {
	case LeapNone:
		return "none"
	case LeapInsert:
		return "insert"
	case LeapDelete:
		return "delete"
	case LeapAlarm:
		return "alarm"
	}
	return fmt.Sprintf("Leap(%d)", uint8(l))
}

// Mode is the 3-bit association mode.
type Mode uint8

// Association modes (RFC 5905 §7.3).
const (
	ModeReserved         Mode = 0
	ModeSymmetricActive  Mode = 1
	ModeSymmetricPassive Mode = 2
	ModeClient           Mode = 3
	ModeServer           Mode = 4
	ModeBroadcast        Mode = 5
	ModeControl          Mode = 6 // NTP control messages (ntpq)
	ModePrivate          Mode = 7 // reserved for private use (ntpdc, monlist)
)

// String returns a short name for m.
func (m Mode) String() string {
	names := [...]string{"reserved", "symmetric-active", "symmetric-passive", "client", "server", "broadcast", "control", "private"}
	if int(m) < len(names) {
		return names[m]
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// MaxStratum is the stratum an unsynchronized server reports (RFC 5905:
// 16 means unsynchronized; 0 means unspecified or a kiss-o'-death).
const MaxStratum = 16

// Packet is the NTP header (RFC 5905 §7.3, RFC 4330 §4). It holds what is
// on the wire and nothing else; Decode fills it and AppendTo writes it.
type Packet struct {
	Leap           Leap
	Version        uint8 // 1–4 for real packets; 3 bits on the wire
	Mode           Mode
	Stratum        uint8
	Poll           int8 // log2 seconds
	Precision      int8 // log2 seconds
	RootDelay      Short
	RootDispersion Short
	RefID          RefID
	RefTime        Time // reference timestamp: when the clock was last set
	OrigTime       Time // origin timestamp (T1 echoed back)
	RecvTime       Time // receive timestamp (T2)
	XmitTime       Time // transmit timestamp (T3)
}

// Decode fills p from the first HeaderLen bytes of b. It fails only with
// ErrShort; judging whether the values make sense is the caller's job.
// Bytes after the header are left for Extensions. Decode does not allocate.
func (p *Packet) Decode(b []byte) error {
	if len(b) < HeaderLen {
		return ErrShort
	}
	b = b[:HeaderLen]
	p.Leap = Leap(b[0] >> 6)
	p.Version = (b[0] >> 3) & 7
	p.Mode = Mode(b[0] & 7)
	p.Stratum = b[1]
	p.Poll = int8(b[2])
	p.Precision = int8(b[3])
	p.RootDelay = Short(binary.BigEndian.Uint32(b[4:]))
	p.RootDispersion = Short(binary.BigEndian.Uint32(b[8:]))
	copy(p.RefID[:], b[12:16])
	p.RefTime = Time(binary.BigEndian.Uint64(b[16:]))
	p.OrigTime = Time(binary.BigEndian.Uint64(b[24:]))
	p.RecvTime = Time(binary.BigEndian.Uint64(b[32:]))
	p.XmitTime = Time(binary.BigEndian.Uint64(b[40:]))
	return nil
}

// AppendTo appends the HeaderLen-byte encoding of p to b and returns the
// extended slice. It does not allocate when cap(b)-len(b) >= HeaderLen.
// Fields wider than their wire width are truncated to it.
func (p *Packet) AppendTo(b []byte) []byte {
	b = append(b, byte(p.Leap&3)<<6|(p.Version&7)<<3|byte(p.Mode&7), p.Stratum, byte(p.Poll), byte(p.Precision))
	b = binary.BigEndian.AppendUint32(b, uint32(p.RootDelay))
	b = binary.BigEndian.AppendUint32(b, uint32(p.RootDispersion))
	b = append(b, p.RefID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(p.RefTime))
	b = binary.BigEndian.AppendUint64(b, uint64(p.OrigTime))
	b = binary.BigEndian.AppendUint64(b, uint64(p.RecvTime))
	b = binary.BigEndian.AppendUint64(b, uint64(p.XmitTime))
	return b
}

// PutXmitTime overwrites the transmit timestamp of an encoded packet in
// place. Servers use it to stamp T3 as late as possible, after encoding.
// b must hold at least HeaderLen bytes.
func PutXmitTime(b []byte, t Time) {
	binary.BigEndian.PutUint64(b[40:48], uint64(t))
}

// IsKiss reports whether p is a kiss-o'-death packet: a server reply with
// stratum 0, whose RefID carries the kiss code (RFC 5905 §7.4).
func (p *Packet) IsKiss() bool {
	return p.Mode == ModeServer && p.Stratum == 0
}

// NewKiss returns the kiss-o'-death reply to req with the given code, as
// RFC 5905 §7.4 describes: stratum 0, the code in the reference ID, leap
// alarm. The client's transmit timestamp is echoed as origin, and the
// receive and transmit timestamps repeat it too, so a KoD carries no time a
// client could use (ntpd does the same). A KoD is a bare header: never
// larger than the request it answers.
func NewKiss(req *Packet, code RefID) Packet {
	return Packet{
		Leap:     LeapAlarm,
		Version:  req.Version,
		Mode:     ModeServer,
		Stratum:  0,
		Poll:     req.Poll,
		RefID:    code,
		OrigTime: req.XmitTime,
		RecvTime: req.XmitTime,
		XmitTime: req.XmitTime,
	}
}

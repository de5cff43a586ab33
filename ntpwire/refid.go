package ntpwire

import (
	"crypto/md5"
	"net/netip"
)

// RefID is the 4-byte reference identifier. Its meaning depends on the
// stratum: an ASCII code for stratum 0 (kiss code) and 1 (reference clock
// type), and an upstream server's address (or address hash) above that.
type RefID [4]byte

// Kiss-o'-death codes (RFC 5905 §7.4, RFC 8915 §5.7).
var (
	KissACST = RefIDString("ACST") // association belongs to an anycast server
	KissAuth = RefIDString("AUTH") // server authentication failed
	KissAuto = RefIDString("AUTO") // autokey sequence failed
	KissBcst = RefIDString("BCST") // association belongs to a broadcast server
	KissCryp = RefIDString("CRYP") // cryptographic authentication failed
	KissDeny = RefIDString("DENY") // access denied by remote server
	KissDrop = RefIDString("DROP") // lost peer in symmetric mode
	KissRstr = RefIDString("RSTR") // access denied due to local policy
	KissInit = RefIDString("INIT") // association not yet synchronized
	KissMcst = RefIDString("MCST") // association belongs to a manycast server
	KissNKey = RefIDString("NKEY") // no key found
	KissNTSN = RefIDString("NTSN") // NTS negative acknowledgement
	KissRate = RefIDString("RATE") // rate exceeded
	KissRmot = RefIDString("RMOT") // somebody is tinkering with the association
	KissStep = RefIDString("STEP") // step change in system time
)

// RefIDString returns the RefID holding up to four ASCII characters of s,
// padded with zero bytes, as used for kiss codes and stratum-1 sources
// ("GPS", "PPS").
func RefIDString(s string) RefID {
	var r RefID
	copy(r[:], s)
	return r
}

// RefIDFromAddr returns the reference ID that names an upstream server
// with address a: the IPv4 address itself, or for IPv6 the first four
// bytes of the MD5 hash of the address (RFC 5905 §7.3). IPv4-mapped IPv6
// addresses are treated as IPv4.
func RefIDFromAddr(a netip.Addr) RefID {
	a = a.Unmap()
	if a.Is4() {
		return RefID(a.As4())
	}
	b := a.As16()
	sum := md5.Sum(b[:])
	return RefID(sum[:4])
}

// Addr returns r read as an IPv4 address.
func (r RefID) Addr() netip.Addr { return netip.AddrFrom4(r) }

// String returns r as printable ASCII when all its bytes are (trailing
// zero bytes dropped), and as a dotted quad otherwise.
func (r RefID) String() string {
	n := 4
	for n > 0 && r[n-1] == 0 {
		n--
	}
	if n > 0 {
		ascii := true
		for _, c := range r[:n] {
			if c < 0x20 || c > 0x7e {
				ascii = false
				break
			}
		}
		if ascii {
			return string(r[:n])
		}
	}
	return r.Addr().String()
}

package ntpwire

import (
	"crypto/md5"
	"net/netip"
	"testing"
)

func TestRefIDFromAddr(t *testing.T) {
	for _, tt := range []struct {
		addr string
		want RefID
	}{
		{"192.0.2.1", RefID{192, 0, 2, 1}},
		{"127.127.1.1", RefID{127, 127, 1, 1}},
		{"0.0.0.0", RefID{}},
		// IPv4-mapped IPv6 is the IPv4 address.
		{"::ffff:192.0.2.1", RefID{192, 0, 2, 1}},
		// IPv6: first four bytes of MD5 over the 16 address bytes, checked
		// with `openssl md5` and Python's hashlib.md5(ip_address(a).packed).
		{"2001:db8::1", RefID{0x39, 0xab, 0x9b, 0x37}},
		{"::1", RefID{0xcf, 0x40, 0x4d, 0xc8}},
		// The zone is not part of the address bytes.
		{"2001:db8::1%eth0", RefID{0x39, 0xab, 0x9b, 0x37}},
	} {
		a := netip.MustParseAddr(tt.addr)
		if got := RefIDFromAddr(a); got != tt.want {
			t.Errorf("RefIDFromAddr(%s) = % x, want % x", tt.addr, got[:], tt.want[:])
		}
	}
}

// The IPv6 hash computed here with crypto/md5 agrees with RefIDFromAddr
// for many addresses.
func TestRefIDFromAddrIPv6MD5(t *testing.T) {
	for _, s := range []string{"2001:db8::1", "::1", "fe80::1", "2a01:4f8::dead:beef", "ff02::101", "::"} {
		a := netip.MustParseAddr(s)
		b := a.As16()
		sum := md5.Sum(b[:])
		want := RefID{sum[0], sum[1], sum[2], sum[3]}
		if got := RefIDFromAddr(a); got != want {
			t.Errorf("RefIDFromAddr(%s) = % x, want md5 prefix % x", s, got[:], want[:])
		}
	}
}

func TestRefIDAddr(t *testing.T) {
	for _, s := range []string{"192.0.2.1", "10.0.0.1", "127.127.1.1", "255.255.255.255"} {
		a := netip.MustParseAddr(s)
		r := RefIDFromAddr(a)
		if got := r.Addr(); got != a {
			t.Errorf("RefIDFromAddr(%s).Addr() = %v", s, got)
		}
		if got := r.String(); got != s {
			t.Errorf("RefIDFromAddr(%s).String() = %q", s, got)
		}
	}
}

func TestRefIDString(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want RefID
	}{
		{"", RefID{}},
		{"GPS", RefID{'G', 'P', 'S', 0}},
		{"PPS", RefID{'P', 'P', 'S', 0}},
		{"LOCL", RefID{'L', 'O', 'C', 'L'}},
		{"RATE", RefID{'R', 'A', 'T', 'E'}},
		{"X", RefID{'X', 0, 0, 0}},
		{"TOOLONG", RefID{'T', 'O', 'O', 'L'}},
	} {
		if got := RefIDString(tt.in); got != tt.want {
			t.Errorf("RefIDString(%q) = %q, want %q", tt.in, got[:], tt.want[:])
		}
	}
}

func TestRefIDStringMethod(t *testing.T) {
	// ASCII codes round trip through RefIDString and String.
	for _, s := range []string{"GPS", "PPS", "LOCL", "RATE", "DCF", "X", "A B"} {
		if got := RefIDString(s).String(); got != s {
			t.Errorf("RefIDString(%q).String() = %q", s, got)
		}
	}
	for _, tt := range []struct {
		r    RefID
		want string
	}{
		{RefID{}, "0.0.0.0"},
		{RefID{127, 127, 1, 1}, "127.127.1.1"},
		{RefID{192, 168, 1, 1}, "192.168.1.1"},
		{RefID{10, 0, 0, 1}, "10.0.0.1"},
		{RefID{0x39, 0xab, 0x9b, 0x37}, "57.171.155.55"},
		// A zero byte before the end is not padding.
		{RefID{'A', 0, 'B', 0}, "65.0.66.0"},
		{RefID{0, 'A', 'B', 'C'}, "0.65.66.67"},
		// Control and high bytes are not printable.
		{RefID{'G', 'P', 'S', 0x7f}, "71.80.83.127"},
		{RefID{'G', 'P', 'S', 0x1f}, "71.80.83.31"},
		// Printable bytes read as text, even if meant as an address.
		{RefID{65, 66, 67, 68}, "ABCD"},
	} {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("RefID(% x).String() = %q, want %q", tt.r[:], got, tt.want)
		}
	}
}

func TestKissCodes(t *testing.T) {
	codes := []struct {
		r    RefID
		want string
	}{
		{KissACST, "ACST"},
		{KissAuth, "AUTH"},
		{KissAuto, "AUTO"},
		{KissBcst, "BCST"},
		{KissCryp, "CRYP"},
		{KissDeny, "DENY"},
		{KissDrop, "DROP"},
		{KissRstr, "RSTR"},
		{KissInit, "INIT"},
		{KissMcst, "MCST"},
		{KissNKey, "NKEY"},
		{KissNTSN, "NTSN"},
		{KissRate, "RATE"},
		{KissRmot, "RMOT"},
		{KissStep, "STEP"},
	}
	seen := make(map[RefID]string)
	for _, c := range codes {
		if got := string(c.r[:]); got != c.want {
			t.Errorf("kiss code bytes %q, want %q", got, c.want)
		}
		if got := c.r.String(); got != c.want {
			t.Errorf("kiss code %q String() = %q", c.want, got)
		}
		if prev, ok := seen[c.r]; ok {
			t.Errorf("kiss codes %s and %s are equal", prev, c.want)
		}
		seen[c.r] = c.want
	}
	if KissRate != (RefID{0x52, 0x41, 0x54, 0x45}) {
		t.Errorf("KissRate = % x, want 52 41 54 45", KissRate[:])
	}
}

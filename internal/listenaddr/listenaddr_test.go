package listenaddr

import "testing"

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:123", true},
		{"[::1]:123", true},
		{":123", true},
		{"[::ffff:192.0.2.1]:0", true},
		{"0.0.0.0:65535", true},
		{"localhost:123", false},
		{"127.0.0.1", false},
		{"127.0.0.1:ntp", false},
		{"127.0.0.1:65536", false},
		{"127.0.0.1:-1", false},
		{"", false},
	} {
		if err := Check(tc.addr); (err == nil) != tc.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}

package ops

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestCheckHost sends requests as a browser would after DNS rebinding
// (Host: the attacker's name) and as legitimate clients do.
func TestCheckHost(t *testing.T) {
	h := checkHost([]string{"ntp1.example.net"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	for _, tc := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:8080", http.StatusOK},
		{"[::1]:8080", http.StatusOK},
		{"localhost:8080", http.StatusOK},
		{"LOCALHOST", http.StatusOK},
		{"ntp1.example.net:8080", http.StatusOK},
		{"NTP1.example.net.", http.StatusOK},
		{"192.0.2.1", http.StatusOK},
		{"evil.example:8080", http.StatusMisdirectedRequest},
		{"localhost.evil.example", http.StatusMisdirectedRequest},
		{"", http.StatusMisdirectedRequest},
	} {
		req := httptest.NewRequest("GET", "/v1/status", nil)
		req.Host = tc.host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("Host %q: %d, want %d", tc.host, rec.Code, tc.want)
		}
	}
}

// TestHandlerChecksHostWithoutToken checks that the API without a token
// refuses a request a DNS-rebinding page would send, and that with a
// token it does not look at Host (the token is the defence).
func TestHandlerChecksHostWithoutToken(t *testing.T) {
	do := func(h http.Handler, host, auth string) int {
		req := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
		req.Host = host
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	open := Handler(&fake{}, Options{Hosts: []string{"ntp1.example.net"}})
	if got := do(open, "rebind.attacker.example:8080", ""); got != http.StatusMisdirectedRequest {
		t.Errorf("no token, Host rebind.attacker.example: %d, want 421", got)
	}
	for _, host := range []string{"127.0.0.1:8080", "localhost:8080", "ntp1.example.net:8080"} {
		if got := do(open, host, ""); got != http.StatusOK {
			t.Errorf("no token, Host %s: %d, want 200", host, got)
		}
	}
	locked := Handler(&fake{}, Options{Token: "t0k"})
	if got := do(locked, "ntp.example.org", "Bearer t0k"); got != http.StatusOK {
		t.Errorf("token, any Host: %d, want 200", got)
	}
	if got := do(locked, "rebind.attacker.example", ""); got != http.StatusUnauthorized {
		t.Errorf("token missing: %d, want 401", got)
	}
}

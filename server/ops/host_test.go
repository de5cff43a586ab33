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

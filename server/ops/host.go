package ops

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// checkHost wraps next so that only requests whose Host header is an IP
// address, "localhost" or one of hosts (compared without case) reach it;
// others get 421 Misdirected Request. A web page from another name that
// rebinds its DNS to the API's address is thus refused: its requests
// carry its own name. A bearer token defeats rebinding too (a page cannot
// know it), so Handler checks Host only when there is no token.
func checkHost(hosts []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, hosts) {
			http.Error(w, "unknown host", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func hostAllowed(host string, hosts []string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	for _, h := range hosts {
		if strings.EqualFold(host, strings.TrimSuffix(h, ".")) {
			return true
		}
	}
	return false
}

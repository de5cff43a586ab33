// Package ops serves a daemon's operational endpoints over HTTP, for an
// embedder to mount on its own mux:
//
//	GET /healthz    200 "ok" when serving synchronized time, else 503 and the reason
//	GET /v1/status  reference data, sync state, upstream sources, reloads (JSON)
//	GET /v1/stats   counters: requests, replies, drops and KoDs, bytes (JSON)
//	GET /metrics    the metrics of package server/metrics, in the Prometheus text format
//
// With a token, every request needs "Authorization: Bearer <token>";
// anything else gets a bare 401. The JSON shapes are defined here: the
// library's own types carry no JSON tags. Durations are numbers of
// seconds in fields whose names end in _seconds; times are RFC 3339.
package ops

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/ntpkit/ntpkit/server/daemon"
	"github.com/ntpkit/ntpkit/server/metrics"
)

// Source is what the handler reports on; *daemon.Daemon satisfies it.
type Source interface {
	Health() daemon.Health
	Status() daemon.Status
	Stats() daemon.Stats
}

// Options configure the handler; the zero value serves without
// authentication.
type Options struct {
	// Token, when not empty, is required as a bearer token on every
	// request. It is compared in constant time.
	Token string
	// Addr is the address the handler is served on, reported as
	// api_listen in /v1/status; empty when not known.
	Addr string
	// Hosts are the names, besides IP addresses and "localhost", that a
	// request's Host header may carry when there is no Token; other
	// requests get 421 Misdirected Request. Without a token this is what
	// stops DNS rebinding: a web page whose name is made to resolve to
	// the API's address cannot read it from a browser, as its requests
	// carry its own name. With a Token, Host is not checked.
	Hosts []string
}

// Handler returns the handler serving src's endpoints.
func Handler(src Source, o Options) http.Handler {
	h := &handler{src: src, addr: o.Addr}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", h.health)
	mux.HandleFunc("GET /v1/status", h.status)
	mux.HandleFunc("GET /v1/stats", h.stats)
	mux.HandleFunc("GET /metrics", h.metrics)
	if o.Token == "" {
		return checkHost(o.Hosts, mux)
	}
	return requireToken(o.Token, mux)
}

type handler struct {
	src  Source
	addr string
}

// requireToken wraps next so that only requests carrying the bearer token
// reach it. Both sides are hashed before the constant-time comparison, so
// neither the token's content nor its length leaks through timing.
func requireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte("Bearer " + token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ntpkit"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	hs := h.src.Health()
	switch {
	case !hs.Serving:
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not serving")
	case !hs.ListenersOK():
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, l := range hs.Listeners {
			if !l.Serving {
				fmt.Fprintf(w, "%s listener %s not serving: %s\n", l.Kind, l.Addr, l.Err)
			}
		}
	case !hs.Synchronized:
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not synchronized:", hs.Reason)
	default:
		fmt.Fprintln(w, "ok")
	}
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, StatusOf(h.src.Status(), h.addr))
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, StatsOf(h.src.Stats()))
}

func (h *handler) metrics(w http.ResponseWriter, r *http.Request) {
	var buf bytes.Buffer
	if err := metrics.WriteText(&buf, metrics.Gather(h.src)); err != nil {
		http.Error(w, "metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", metrics.ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(body, '\n'))
}

package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ntpkit/ntpkit/ntpwire"
	"github.com/ntpkit/ntpkit/server"
	"github.com/ntpkit/ntpkit/upstream"
)

// The management API serves, on its own TCP listener:
//
//	GET /healthz    200 "ok" when serving synchronized time, else 503 and the reason
//	GET /v1/status  reference data, sync state, upstream sources, reloads (JSON)
//	GET /v1/stats   counters: requests, replies, drops and KoDs, bytes (JSON)
//	GET /metrics    the same in the Prometheus text exposition format
//
// With a token configured, every request needs "Authorization: Bearer
// <token>"; anything else gets a bare 401.

// loadToken reads the API bearer token named by cfg.TokenFile; empty when
// none is configured.
func loadToken(cfg APIConfig) (string, error) {
	if cfg.TokenFile == "" {
		return "", nil
	}
	data, err := os.ReadFile(cfg.TokenFile)
	if err != nil {
		return "", fieldErr("api.token_file", "%v", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fieldErr("api.token_file", "%s is empty", cfg.TokenFile)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fieldErr("api.token_file", "the token in %s contains white space", cfg.TokenFile)
	}
	return tok, nil
}

// apiHandler returns the management API's handler. token, when not empty,
// is required as a bearer token on every request.
func (d *daemon) apiHandler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", d.handleHealth)
	mux.HandleFunc("GET /v1/status", d.handleStatus)
	mux.HandleFunc("GET /v1/stats", d.handleStats)
	mux.HandleFunc("GET /metrics", d.handleMetrics)
	if token == "" {
		return mux
	}
	return requireToken(token, mux)
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

func (d *daemon) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !d.serving.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not serving")
		return
	}
	if ok, why := d.syncState(); !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not synchronized:", why)
		return
	}
	fmt.Fprintln(w, "ok")
}

// statusJSON is the body of GET /v1/status.
type statusJSON struct {
	Version       string         `json:"version"`
	GoVersion     string         `json:"go_version"`
	Started       time.Time      `json:"started"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	Serving       bool           `json:"serving"`
	Listen        []string       `json:"listen"`
	APIListen     string         `json:"api_listen"`
	Synchronized  bool           `json:"synchronized"`
	SyncReason    string         `json:"sync_reason,omitempty"`
	Reference     referenceJSON  `json:"reference"`
	Config        reloadSnapshot `json:"config"`
	Upstream      any            `json:"upstream,omitempty"`
}

// referenceJSON is the reference data the daemon serves.
type referenceJSON struct {
	Leap                  string    `json:"leap"`
	Stratum               uint8     `json:"stratum"`
	RefID                 string    `json:"refid"`
	ReferenceTime         time.Time `json:"reference_time"`
	RootDelaySeconds      float64   `json:"root_delay_seconds"`
	RootDispersionSeconds float64   `json:"root_dispersion_seconds"`
	Precision             int8      `json:"precision"`
	PrecisionSeconds      float64   `json:"precision_seconds"`
}

func referenceOf(ref ntpwire.Reference, now time.Time) referenceJSON {
	refid := ref.RefID.String()
	if ref.Stratum > 1 && ref.Stratum < ntpwire.MaxStratum {
		refid = ref.RefID.Addr().String() // an upstream's address (or its hash)
	}
	j := referenceJSON{
		Leap:                  ref.Leap.String(),
		Stratum:               ref.Stratum,
		RefID:                 refid,
		RootDelaySeconds:      ref.RootDelay.Seconds(),
		RootDispersionSeconds: ref.RootDispersion.Seconds(),
		Precision:             ref.Precision,
		PrecisionSeconds:      ntpwire.LogToDuration(ref.Precision).Seconds(),
	}
	if ref.RefTime != 0 {
		j.ReferenceTime = ref.RefTime.In(now).UTC()
	}
	return j
}

func (d *daemon) status(now time.Time) statusJSON {
	version, goVersion := buildVersion()
	synced, why := d.syncState()
	s := statusJSON{
		Version:       version,
		GoVersion:     goVersion,
		Started:       d.started.UTC(),
		UptimeSeconds: now.Sub(d.started).Seconds(),
		Serving:       d.serving.Load(),
		Listen:        d.addrs,
		APIListen:     d.apiAddr,
		Synchronized:  synced,
		SyncReason:    why,
		Reference:     referenceOf(d.src.Reference(), now),
		Config:        d.reloads.snapshot(),
	}
	if d.upstreamStatus != nil {
		s.Upstream = d.upstreamStatus()
	}
	return s
}

func (d *daemon) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, d.status(time.Now()))
}

// statsJSON is the body of GET /v1/stats.
type statsJSON struct {
	Server     serverStatsJSON `json:"server"`
	Middleware any             `json:"middleware,omitempty"`
	Upstream   any             `json:"upstream,omitempty"`
	Auth       any             `json:"auth,omitempty"`
}

// serverStatsJSON is server.Stats with JSON names.
type serverStatsJSON struct {
	Requests      uint64            `json:"requests"`
	Replies       uint64            `json:"replies"`
	Kisses        uint64            `json:"kisses"`
	BytesReceived uint64            `json:"bytes_received"`
	BytesSent     uint64            `json:"bytes_sent"`
	Dropped       map[string]uint64 `json:"dropped"`
	DroppedTotal  uint64            `json:"dropped_total"`
}

func serverStatsOf(st server.Stats) serverStatsJSON {
	j := serverStatsJSON{
		Requests:      st.Received,
		Replies:       st.Replies,
		Kisses:        st.Kisses,
		BytesReceived: st.BytesReceived,
		BytesSent:     st.BytesSent,
		Dropped:       make(map[string]uint64),
		DroppedTotal:  st.Dropped.Total(),
	}
	for _, r := range dropReasons(st.Dropped) {
		j.Dropped[r.reason] = r.n
	}
	return j
}

func (d *daemon) stats() statsJSON {
	s := statsJSON{Server: serverStatsOf(d.srv.Stats())}
	if d.middlewareStats != nil {
		s.Middleware = d.middlewareStats()
	}
	if d.upstreamStats != nil {
		s.Upstream = d.upstreamStats()
	}
	if d.authStats != nil {
		s.Auth = d.authStats()
	}
	return s
}

func (d *daemon) handleStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, d.stats())
}

func (d *daemon) handleMetrics(w http.ResponseWriter, r *http.Request) {
	var m metricsWriter
	d.writeMetrics(&m, time.Now())
	w.Header().Set("Content-Type", metricsContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(m.buf.Bytes())
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

// apiServer is the running management API.
type apiServer struct {
	http *http.Server
	ln   net.Listener
	errc chan error
}

// listenAPI binds the management API on addr; serving starts with start.
func (d *daemon) listenAPI(ctx context.Context, addr, token string) (*apiServer, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	d.apiAddr = ln.Addr().String()
	return &apiServer{
		ln: ln,
		http: &http.Server{
			Handler:           d.apiHandler(token),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    8 << 10,
			ErrorLog:          slog.NewLogLogger(d.logger.Handler(), slog.LevelWarn),
		},
		errc: make(chan error, 1),
	}, nil
}

// start serves the API in its own goroutine.
func (a *apiServer) start() {
	go func() { a.errc <- a.http.Serve(a.ln) }()
}

// shutdown stops the API, letting requests in flight finish until ctx
// ends.
func (a *apiServer) shutdown(ctx context.Context) error {
	err := a.http.Shutdown(ctx)
	if serr := <-a.errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// upstreamStatsJSON is the "upstream" object of /v1/stats: per source,
// valid replies (successes) and unusable or missing ones (failures).
type upstreamStatsJSON struct {
	Updates  uint64                    `json:"updates"`
	Steps    uint64                    `json:"steps"`
	Rejects  rejectsJSON               `json:"rejects"`
	Failures uint64                    `json:"failures"`
	Sources  []upstreamSourceStatsJSON `json:"sources"`
}

type upstreamSourceStatsJSON struct {
	Name      string      `json:"name"`
	Successes uint64      `json:"successes"`
	Failures  uint64      `json:"failures"`
	Rejects   rejectsJSON `json:"rejects"`
}

func rejectsTotal(r upstream.Rejects) uint64 {
	var n uint64
	for _, x := range upstreamRejects(r) {
		n += x.n
	}
	return n
}

// attachUpstream plugs a Discipliner serving as the source into the
// management API: it decides /healthz, fills the "upstream" objects of
// /v1/status and /v1/stats, and adds the ntpkit_upstream_* metrics.
func (d *daemon) attachUpstream(disc *upstream.Discipliner) {
	d.synced = func() (bool, string) {
		if disc.Synchronized() {
			return true, ""
		}
		st := disc.Status()
		reachable := 0
		for _, s := range st.Sources {
			if s.Reach != 0 {
				reachable++
			}
		}
		return false, fmt.Sprintf("upstream not synchronized (%d of %d sources reachable)", reachable, len(st.Sources))
	}
	d.upstreamStatus = func() any { return upstreamStatusToJSON(disc.Status()) }
	d.upstreamStats = func() any {
		st := disc.Status()
		j := upstreamStatsJSON{Updates: st.Updates, Steps: st.Steps, Rejects: rejectsToJSON(st.Rejects), Failures: rejectsTotal(st.Rejects)}
		for _, s := range st.Sources {
			j.Sources = append(j.Sources, upstreamSourceStatsJSON{
				Name: s.Name, Successes: s.Samples, Failures: rejectsTotal(s.Rejects), Rejects: rejectsToJSON(s.Rejects),
			})
		}
		return j
	}
	d.metrics = append(d.metrics, func(m *metricsWriter) { writeUpstreamMetrics(m, disc.Status()) })
}

// middlewareStatsJSON is the "middleware" object of /v1/stats.
type middlewareStatsJSON struct {
	Access    *accessStatsJSON    `json:"access,omitempty"`
	RateLimit *rateLimitStatsJSON `json:"rate_limit,omitempty"`
}

// accessStatsJSON is server.AccessStats with JSON names.
type accessStatsJSON struct {
	Allowed     uint64 `json:"allowed"`
	DeniedAddr  uint64 `json:"denied_addr"`
	DeniedName  uint64 `json:"denied_name"`
	Kissed      uint64 `json:"kissed"`
	Dropped     uint64 `json:"dropped"`
	KissLimited uint64 `json:"kiss_limited"`
}

// rateLimitStatsJSON is server.RateLimitStats with JSON names.
type rateLimitStatsJSON struct {
	Allowed       uint64 `json:"allowed"`
	Leaked        uint64 `json:"leaked"`
	Limited       uint64 `json:"limited"`
	LimitedGlobal uint64 `json:"limited_global"`
	Kissed        uint64 `json:"kissed"`
	Dropped       uint64 `json:"dropped"`
	KissLimited   uint64 `json:"kiss_limited"`
}

// attachMiddleware plugs the access-control and rate-limit middleware
// (either may be nil) into the management API: their counters go into the
// "middleware" object of /v1/stats, the ntpkit_access_* and
// ntpkit_ratelimit_* metrics, and ntpkit_kiss_total by code. Their options
// may be replaced by reloads (Update); the counters are kept.
func (d *daemon) attachMiddleware(ac *server.AccessControl, rl *server.RateLimiter) {
	if ac == nil && rl == nil {
		return
	}
	d.middlewareStats = func() any {
		var j middlewareStatsJSON
		if ac != nil {
			j.Access = (*accessStatsJSON)(ptr(ac.Stats()))
		}
		if rl != nil {
			j.RateLimit = (*rateLimitStatsJSON)(ptr(rl.Stats()))
		}
		return j
	}
	d.kissCodes = func() map[string]uint64 {
		codes := map[string]uint64{}
		if ac != nil {
			codes[ac.Options().KissCode.String()] += ac.Stats().Kissed
		}
		if rl != nil {
			codes[ntpwire.KissRate.String()] += rl.Stats().Kissed
		}
		return codes
	}
	d.metrics = append(d.metrics, func(m *metricsWriter) { writeMiddlewareMetrics(m, ac, rl) })
}

func ptr[T any](v T) *T { return &v }

package ratelimit

import (
	"math"
	"time"

	"golang.org/x/time/rate"
)

// Global limits the total rate of requests a server answers, whatever
// their source. It is safe for concurrent use.
type Global struct {
	lim *rate.Limiter // nil: unlimited
}

// NewGlobal returns a Global allowing perSecond requests per second on
// average with bursts of burst requests. perSecond <= 0 (or NaN) means
// unlimited; a burst below 1 is treated as 1.
func NewGlobal(perSecond float64, burst int) *Global {
	if !(perSecond > 0) {
		return &Global{}
	}
	lim := rate.Inf
	if !math.IsInf(perSecond, 1) {
		lim = rate.Limit(perSecond)
	}
	return &Global{lim: rate.NewLimiter(lim, max(burst, 1))}
}

// Allow reports whether one more request at now is within the limit,
// consuming it if so. A nil *Global allows everything. It does not allocate.
func (g *Global) Allow(now time.Time) bool {
	if g == nil || g.lim == nil {
		return true
	}
	return g.lim.AllowN(now, 1)
}

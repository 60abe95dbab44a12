package intake

import (
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Default per-key rate limit: a token bucket refilled at DefaultRate
// requests a second that holds DefaultBurst, enough for a billing system's
// nightly batch without letting one key starve the others.
const (
	DefaultRate  = 50
	DefaultBurst = 100
)

// WithRateLimit limits each API key to perSecond requests a second on
// average with bursts of burst (DUNNING_API_RATE, DUNNING_API_BURST). A
// perSecond of 0 or less turns the limit off. Defaults: DefaultRate,
// DefaultBurst.
func WithRateLimit(perSecond float64, burst int) Option {
	return func(h *handler) {
		if perSecond <= 0 {
			h.limiter = nil
			return
		}
		h.limiter = newLimiter(rate.Limit(perSecond), max(burst, 1))
	}
}

// limiter holds one token bucket per API key. A nil limiter allows all.
type limiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiter(r rate.Limit, burst int) *limiter {
	return &limiter{rate: r, burst: burst, now: time.Now, buckets: map[string]*bucket{}}
}

// allow takes a token from key's bucket, or says how long until one is
// there.
func (l *limiter) allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	l.sweep(now)
	l.mu.Unlock()

	res := b.lim.ReserveN(now, 1)
	if wait := res.DelayFrom(now); wait > 0 {
		// Refused: give the token back, so waiting clients are not
		// pushed further out by their own refused attempts.
		res.CancelAt(now)
		return false, wait
	}
	return true, 0
}

// sweep forgets buckets idle long enough to have refilled: a fresh bucket
// is the same, so memory stays bounded by the keys in recent use. Called
// with mu held.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	idle := max(time.Minute, time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)))
	for k, b := range l.buckets {
		if now.Sub(b.seen) > idle {
			delete(l.buckets, k)
		}
	}
}

func (l *limiter) rateText() string {
	return strconv.FormatFloat(float64(l.rate), 'f', -1, 64)
}

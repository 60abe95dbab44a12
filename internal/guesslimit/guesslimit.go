// Package guesslimit limits how often one client may fail to present a
// secret (an API key at the dashboard's sign-in, the codec endpoint's
// token): a budget of failures per client address that refills slowly, so
// a guesser gets a handful of tries a minute while a person who mistypes
// is hardly hindered. One limiter per door keeps their budgets apart.
package guesslimit

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults: a client may fail DefaultFailures times in a row, and earns one
// more try every DefaultWindow / DefaultFailures (30 s), so the budget is
// whole again after DefaultWindow.
const (
	DefaultFailures = 10
	DefaultWindow   = 5 * time.Minute
)

// maxClients bounds the addresses a limiter remembers.
const maxClients = 10_000

// Limiter counts failures per client address in a token bucket
// (golang.org/x/time/rate): a failure takes a token, and with none left a
// try is refused before its secret is checked, the right secret included,
// so a guesser learns nothing from a refused try. Successes and answers
// that are not a wrong secret take nothing.
//
// A try takes its token only once its outcome is known, so the tries in
// flight are counted as pending: many concurrent guesses from one address
// cannot all pass the check before the first failure is recorded.
type Limiter struct {
	limit rate.Limit
	burst int
	// idle is how long a client's bucket takes to fill again; a client
	// idle that long is forgotten, as a fresh bucket is the same.
	idle time.Duration
	max  int
	now  func() time.Time

	mu        sync.Mutex
	clients   map[string]*client
	lastSweep time.Time
}

type client struct {
	lim     *rate.Limiter
	pending int
	seen    time.Time
}

// New allows failures failed tries per client, one more every window /
// failures; now is the clock (time.Now when nil).
func New(failures int, window time.Duration, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{
		limit: rate.Limit(float64(failures) / window.Seconds()), burst: failures, idle: window,
		max: maxClients, now: now, clients: map[string]*client{},
	}
}

// Begin admits a try from addr (see ClientAddress), or says how long until
// one would be. Every admitted try must be ended with End.
func (l *Limiter) Begin(addr string) (ok bool, wait time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c, found := l.clients[addr]
	if !found {
		l.makeRoom(now)
		c = &client{lim: rate.NewLimiter(l.limit, l.burst)}
		l.clients[addr] = c
	}
	c.seen = now
	if left := c.lim.TokensAt(now) - float64(c.pending); left < 1 {
		return false, time.Duration((1 - left) / float64(l.limit) * float64(time.Second))
	}
	c.pending++
	return true, 0
}

// End records how an admitted try from addr went: a failure takes a token
// (Begin left one for it, so the take cannot be refused). It reports
// whether that failure spent the client's budget, for the log to say once
// per lock-out rather than on every refused try.
func (l *Limiter) End(addr string, failed bool) (spent bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.clients[addr]
	if !ok {
		return false // cannot happen: clients with tries in flight are kept
	}
	c.pending--
	c.seen = now
	if !failed {
		return false
	}
	c.lim.AllowN(now, 1)
	return c.lim.TokensAt(now) < 1
}

// makeRoom forgets clients idle long enough to have their whole budget
// back (at most once a minute), and when the map is still full the one
// seen longest ago, so memory stays bounded however many addresses try.
// Clients with a try in flight are kept: the map may pass max by at most
// those. Called with mu held.
func (l *Limiter) makeRoom(now time.Time) {
	if now.Sub(l.lastSweep) >= time.Minute || len(l.clients) >= l.max {
		l.lastSweep = now
		for k, c := range l.clients {
			if c.pending == 0 && now.Sub(c.seen) >= l.idle {
				delete(l.clients, k)
			}
		}
	}
	if len(l.clients) < l.max {
		return
	}
	// Still full: every entry is recent, as in a flood from many
	// addresses. The oldest has the most of its budget back.
	var oldest string
	var at time.Time
	for k, c := range l.clients {
		if c.pending == 0 && (oldest == "" || c.seen.Before(at)) {
			oldest, at = k, c.seen
		}
	}
	if oldest != "" {
		delete(l.clients, oldest)
	}
}

// RetryAfter is wait in whole seconds, at least 1, for a Retry-After
// header: rounding down would invite a try that is refused again.
func RetryAfter(wait time.Duration) int {
	return max(1, int((wait+time.Second-1)/time.Second))
}

// ClientAddress is whom a try is counted against: the connection's peer
// address. Both doors are reached directly or through a load balancer of
// the operator's; a forwarded header is not trusted, as anyone could set
// it to spread guesses over made-up addresses. An IPv6 client is counted
// by its /64, which is what one subscriber is usually given and can pick
// addresses from at will.
func ClientAddress(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		if p, err := a.WithZone("").Prefix(64); err == nil {
			return p.String()
		}
	}
	return a.String()
}

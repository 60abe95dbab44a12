package dashboard

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Sign-in limit defaults: each client address may fail DefaultSignInFailures
// sign-ins in a row, and earns one more every DefaultSignInWindow /
// DefaultSignInFailures (30 s), so the budget is whole again after
// DefaultSignInWindow. An API key's secret is far too long to guess, but
// an unlimited form still lets anyone hammer the key store and fill the
// logs; a person who mistypes a key ten times is not hindered.
const (
	DefaultSignInFailures = 10
	DefaultSignInWindow   = 5 * time.Minute
)

// maxSignInClients bounds the addresses the limiter remembers.
const maxSignInClients = 10_000

// signInLimiter counts failed sign-ins per client address in a token
// bucket (golang.org/x/time/rate): a failure takes a token, and with none
// left a sign-in is refused before its key is checked, the right key
// included, so a guesser learns nothing from a refused try. Successes and
// answers that are not a wrong key (an empty form, a key without the
// scope, the key store down) take nothing.
//
// A sign-in takes its token only once its outcome is known, so the tries
// in flight are counted as pending: many concurrent guesses from one
// address cannot all pass the check before the first failure is recorded.
type signInLimiter struct {
	limit rate.Limit
	burst int
	// idle is how long a client's bucket takes to fill again; a client
	// idle that long is forgotten, as a fresh bucket is the same.
	idle time.Duration
	max  int
	now  func() time.Time

	mu        sync.Mutex
	clients   map[string]*signInClient
	lastSweep time.Time
}

type signInClient struct {
	lim     *rate.Limiter
	pending int
	seen    time.Time
}

func newSignInLimiter(failures int, window time.Duration, now func() time.Time) *signInLimiter {
	return &signInLimiter{
		limit: rate.Limit(float64(failures) / window.Seconds()), burst: failures, idle: window,
		max: maxSignInClients, now: now, clients: map[string]*signInClient{},
	}
}

// begin admits a sign-in from client, or says how long until one would be.
// Every admitted sign-in must be ended with end.
func (l *signInLimiter) begin(client string) (ok bool, wait time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c, found := l.clients[client]
	if !found {
		l.makeRoom(now)
		c = &signInClient{lim: rate.NewLimiter(l.limit, l.burst)}
		l.clients[client] = c
	}
	c.seen = now
	if left := c.lim.TokensAt(now) - float64(c.pending); left < 1 {
		return false, time.Duration((1 - left) / float64(l.limit) * float64(time.Second))
	}
	c.pending++
	return true, 0
}

// end records how an admitted sign-in from client went: a failure takes a
// token (begin left one for it, so the take cannot be refused). It reports
// whether that failure spent the client's budget, for the log to say once
// per lock-out rather than on every refused try.
func (l *signInLimiter) end(client string, failed bool) (spent bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.clients[client]
	if !ok {
		return false // cannot happen: clients with sign-ins in flight are kept
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
// Clients with a sign-in in flight are kept: the map may pass max by at
// most those. Called with mu held.
func (l *signInLimiter) makeRoom(now time.Time) {
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

// clientAddress is whom a sign-in is counted against: the connection's
// peer address. The dashboard is served on the private listener, reached
// directly or through a load balancer of the operator's; a forwarded
// header is not trusted, as anyone could set it to spread guesses over
// made-up addresses. An IPv6 client is counted by its /64, which is what
// one subscriber is usually given and can pick addresses from at will.
func clientAddress(r *http.Request) string {
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

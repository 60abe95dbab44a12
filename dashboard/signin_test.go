package dashboard

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/apikeys"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// testClock is a clock a test moves by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// signIn posts the sign-in form from addr (host:port) straight to h.
func signIn(h http.Handler, addr, key string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/dashboard/login", strings.NewReader(url.Values{"api_key": {key}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = addr
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestSignInLimit: ten wrong keys from one address are answered 401, the
// next sign-in from it 429 with Retry-After even with the right key, until
// its budget refills; other addresses are not held up, and sign-ins that
// are not a wrong key never count.
func TestSignInLimit(t *testing.T) {
	store := ledgertest.NewStore(t)
	clock := &testClock{t: testNow}
	h, err := New(Config{
		Auth: keys, Analytics: analytics.New(store.Pool()), Ledger: store,
		SessionSecret: []byte("0123456789abcdef0123456789abcdef"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: clock.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	const (
		guesser = "192.0.2.1:40000"
		other   = "198.51.100.7:40000"
	)
	wrong := apikeys.StaticKey("zzzz0000", "guess")
	type step struct {
		name    string
		advance time.Duration
		addr    string
		key     string
		times   int
		want    int
		// retry is the Retry-After a 429 must carry, in seconds.
		retry string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a guesser is held up, others are not", []step{
			{name: "ten wrong keys", addr: guesser, key: wrong, times: 10, want: http.StatusUnauthorized},
			{name: "the right key after ten failures", addr: guesser, key: acmeKey, want: http.StatusTooManyRequests, retry: "30"},
			{name: "a wrong key after ten failures", addr: guesser, key: wrong, want: http.StatusTooManyRequests, retry: "30"},
			{name: "another port of the same host", addr: "192.0.2.1:40001", key: acmeKey, want: http.StatusTooManyRequests, retry: "30"},
			{name: "another address", addr: other, key: acmeKey, want: http.StatusSeeOther},
			{name: "not yet one token back", advance: 29 * time.Second, addr: guesser, key: acmeKey, want: http.StatusTooManyRequests, retry: "1"},
			{name: "one try back after 30 s", advance: time.Second, addr: guesser, key: wrong, want: http.StatusUnauthorized},
			{name: "and spent", addr: guesser, key: acmeKey, want: http.StatusTooManyRequests, retry: "30"},
			{name: "the window passed", advance: DefaultSignInWindow, addr: guesser, key: acmeKey, want: http.StatusSeeOther},
			{name: "a whole budget again", addr: guesser, key: wrong, times: 10, want: http.StatusUnauthorized},
			{name: "spent again", addr: guesser, key: acmeKey, want: http.StatusTooManyRequests, retry: "30"},
		}},
		{"only wrong keys count", []step{
			{name: "nine wrong keys", addr: "203.0.113.5:1", key: wrong, times: 9, want: http.StatusUnauthorized},
			{name: "successes", addr: "203.0.113.5:1", key: acmeKey, times: 5, want: http.StatusSeeOther},
			{name: "empty forms", addr: "203.0.113.5:1", key: "", times: 5, want: http.StatusBadRequest},
			{name: "a key without runs:read", addr: "203.0.113.5:1", key: writeOnly, times: 5, want: http.StatusForbidden},
			{name: "not a key at all counts", addr: "203.0.113.5:1", key: "hunter2", want: http.StatusUnauthorized},
			{name: "the eleventh sign-in after ten failures", addr: "203.0.113.5:1", key: acmeKey, want: http.StatusTooManyRequests, retry: "30"},
		}},
		{"an IPv6 client counts by its /64", []step{
			{name: "ten addresses of one /64", addr: "[2001:db8:1:2::1]:1", key: wrong, times: 10, want: http.StatusUnauthorized},
			{name: "another address of that /64", addr: "[2001:db8:1:2::ffff]:1", key: acmeKey, want: http.StatusTooManyRequests, retry: "30"},
			{name: "another /64", addr: "[2001:db8:1:3::1]:1", key: acmeKey, want: http.StatusSeeOther},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range tt.steps {
				clock.advance(s.advance)
				for i := range max(s.times, 1) {
					rec := signIn(h, s.addr, s.key)
					if rec.Code != s.want {
						t.Fatalf("%s (%d): %d, want %d: %s", s.name, i+1, rec.Code, s.want, rec.Body)
					}
					if got := rec.Header().Get("Retry-After"); got != s.retry {
						t.Fatalf("%s: Retry-After %q, want %q", s.name, got, s.retry)
					}
					if s.want != http.StatusTooManyRequests {
						continue
					}
					body := rec.Body.String()
					secs, err := strconv.Atoi(s.retry)
					if err != nil {
						t.Fatal(err)
					}
					at := clock.now().Add(time.Duration(secs) * time.Second).UTC().Format("15:04:05 MST")
					if !strings.Contains(body, "Too many failed sign-ins") || !strings.Contains(body, "try again in "+s.retry+" second") ||
						!strings.Contains(body, at) || !strings.Contains(body, `name="api_key"`) {
						t.Fatalf("%s: the 429 page does not say when to retry (in %s s, at %s): %s", s.name, s.retry, at, body)
					}
					if rec.Header().Get("Set-Cookie") != "" {
						t.Fatalf("%s: a refused sign-in set a cookie", s.name)
					}
				}
			}
		})
	}
}

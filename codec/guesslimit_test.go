package codec

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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

// TestTokenGuessLimit: ten failed token checks from one address (a wrong
// bearer token, a forged session, a wrong token at the sign-in form) are
// answered 401, the next request from it 429 with Retry-After even with
// the right token, until its budget refills; other addresses are not held
// up, and successes, requests without any credential and an expired
// session of ours never count.
func TestTokenGuessLimit(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	body := toWire(encodeOne(t, c, plainPayload(t, ada)))
	clock := &testClock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	h := newTestHandler(t, c).(*handler)
	h.now = clock.now

	// A session of ours made long ago, expired now.
	expired := (&handler{token: []byte(testToken), now: func() time.Time { return clock.now().Add(-2 * sessionTTL) }}).newSession()

	const (
		bearerToken = "bearer"
		bearerWrong = "wrong bearer"
		forged      = "forged session"
		stale       = "expired session"
		none        = "nothing"
		loginRight  = "sign-in"
		loginWrong  = "wrong sign-in"
		loginEmpty  = "empty sign-in"
	)
	send := func(addr, how string) *httptest.ResponseRecorder {
		var r *http.Request
		switch how {
		case loginRight, loginWrong, loginEmpty:
			tok := map[string]string{loginRight: testToken, loginWrong: "wrong-token-wrong-token", loginEmpty: ""}[how]
			r = httptest.NewRequest(http.MethodPost, "/codec/login", strings.NewReader(url.Values{"token": {tok}}.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		default:
			r = uiRequest("/codec/decode", body)
			switch how {
			case bearerToken:
				r.Header.Set("Authorization", "Bearer "+testToken)
			case bearerWrong:
				r.Header.Set("Authorization", "Bearer not-the-token-at-all-000000")
			case forged:
				r.AddCookie(&http.Cookie{Name: sessionCookie, Value: strconv.FormatInt(clock.now().Add(time.Hour).Unix(), 10) + ".AAAA"})
			case stale:
				r.AddCookie(&http.Cookie{Name: sessionCookie, Value: expired})
			}
		}
		r.RemoteAddr = addr
		return serve(h, r)
	}

	const (
		guesser = "192.0.2.1:40000"
		other   = "198.51.100.7:40000"
	)
	type step struct {
		name    string
		advance time.Duration
		addr    string
		how     string
		times   int
		want    int
		retry   string // the Retry-After a 429 must carry, in seconds
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a guesser is held up, others are not", []step{
			{name: "ten wrong bearer tokens", addr: guesser, how: bearerWrong, times: 10, want: http.StatusUnauthorized},
			{name: "the right token after ten failures", addr: guesser, how: bearerToken, want: http.StatusTooManyRequests, retry: "30"},
			{name: "the right token at the sign-in form", addr: guesser, how: loginRight, want: http.StatusTooManyRequests, retry: "30"},
			{name: "a wrong token", addr: guesser, how: bearerWrong, want: http.StatusTooManyRequests, retry: "30"},
			{name: "another port of the same host", addr: "192.0.2.1:40001", how: bearerToken, want: http.StatusTooManyRequests, retry: "30"},
			{name: "another address", addr: other, how: bearerToken, want: http.StatusOK},
			{name: "not yet one token back", advance: 29 * time.Second, addr: guesser, how: bearerToken, want: http.StatusTooManyRequests, retry: "1"},
			{name: "one try back after 30 s", advance: time.Second, addr: guesser, how: forged, want: http.StatusUnauthorized},
			{name: "and spent", addr: guesser, how: bearerToken, want: http.StatusTooManyRequests, retry: "30"},
			{name: "the window passed", advance: 5 * time.Minute, addr: guesser, how: bearerToken, want: http.StatusOK},
		}},
		{"every kind of wrong token counts", []step{
			{name: "wrong bearer tokens", addr: "203.0.113.5:1", how: bearerWrong, times: 4, want: http.StatusUnauthorized},
			{name: "forged sessions", addr: "203.0.113.5:1", how: forged, times: 3, want: http.StatusUnauthorized},
			{name: "wrong tokens at the sign-in form", addr: "203.0.113.5:1", how: loginWrong, times: 3, want: http.StatusUnauthorized},
			{name: "the eleventh", addr: "203.0.113.5:1", how: loginRight, want: http.StatusTooManyRequests, retry: "30"},
		}},
		{"only wrong tokens count", []step{
			{name: "nine wrong tokens", addr: "203.0.113.6:1", how: bearerWrong, times: 9, want: http.StatusUnauthorized},
			{name: "successes", addr: "203.0.113.6:1", how: bearerToken, times: 5, want: http.StatusOK},
			{name: "sign-ins", addr: "203.0.113.6:1", how: loginRight, times: 2, want: http.StatusOK},
			{name: "no credential at all", addr: "203.0.113.6:1", how: none, times: 5, want: http.StatusUnauthorized},
			{name: "an expired session of ours", addr: "203.0.113.6:1", how: stale, times: 5, want: http.StatusUnauthorized},
			{name: "an empty sign-in form", addr: "203.0.113.6:1", how: loginEmpty, times: 2, want: http.StatusUnauthorized},
			{name: "the tenth wrong token", addr: "203.0.113.6:1", how: bearerWrong, want: http.StatusUnauthorized},
			{name: "then refused", addr: "203.0.113.6:1", how: bearerToken, want: http.StatusTooManyRequests, retry: "30"},
		}},
		{"an IPv6 client counts by its /64", []step{
			{name: "ten addresses of one /64", addr: "[2001:db8:1:2::1]:1", how: bearerWrong, times: 10, want: http.StatusUnauthorized},
			{name: "another address of that /64", addr: "[2001:db8:1:2::ffff]:1", how: bearerToken, want: http.StatusTooManyRequests, retry: "30"},
			{name: "another /64", addr: "[2001:db8:1:3::1]:1", how: bearerToken, want: http.StatusOK},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range tt.steps {
				clock.advance(s.advance)
				for i := range max(s.times, 1) {
					w := send(s.addr, s.how)
					if w.Code != s.want {
						t.Fatalf("%s (%d): %d, want %d: %s", s.name, i+1, w.Code, s.want, w.Body)
					}
					if got := w.Header().Get("Retry-After"); got != s.retry {
						t.Fatalf("%s: Retry-After %q, want %q", s.name, got, s.retry)
					}
					if s.want != http.StatusTooManyRequests {
						continue
					}
					if strings.Contains(w.Body.String(), ada.Email) || len(w.Result().Cookies()) != 0 {
						t.Fatalf("%s: a refused request got data or a session", s.name)
					}
					if !strings.Contains(w.Body.String(), "too many failed") {
						t.Fatalf("%s: the 429 does not say why: %s", s.name, w.Body)
					}
				}
			}
		})
	}
}

// TestTokenGuessLimitSparesLoopback: dev mode's loopback clients need no
// token and are never limited, whatever they send; clients from the
// network are.
func TestTokenGuessLimitSparesLoopback(t *testing.T) {
	c := mustCodec(t, mustKey(t, "dev-1"))
	h, err := NewDevHandler(c, envOf(map[string]string{EnvToken: testToken}), "http://127.0.0.1:8233", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	body := toWire(encodeOne(t, c, plainPayload(t, ada)))
	req := func(remote string) int {
		r := uiRequest("/codec/decode", body)
		r.RemoteAddr = remote
		r.Header.Set("Origin", "http://127.0.0.1:8233")
		r.Header.Set("Authorization", "Bearer not-the-token-at-all-000000")
		return serve(h, r).Code
	}
	for i := range 30 {
		if code := req("127.0.0.1:50000"); code != http.StatusOK {
			t.Fatalf("loopback request %d with a wrong token: %d, want 200", i+1, code)
		}
	}
	for i := range 10 {
		if code := req("192.0.2.7:50000"); code != http.StatusUnauthorized {
			t.Fatalf("network request %d with a wrong token: %d, want 401", i+1, code)
		}
	}
	if code := req("192.0.2.7:50000"); code != http.StatusTooManyRequests {
		t.Errorf("network request past the limit: %d, want 429", code)
	}
	if code := req("127.0.0.1:50000"); code != http.StatusOK {
		t.Errorf("loopback after a network client was limited: %d, want 200", code)
	}
}

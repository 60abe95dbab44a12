package guesslimit

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

var testNow = time.Date(2026, time.March, 25, 12, 0, 0, 0, time.UTC)

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

// TestLimiter: ten failures spend a client's budget, the next try is
// refused with the wait until one more, which comes every 30 s; the whole
// budget is back after the window; successes take nothing.
func TestLimiter(t *testing.T) {
	type step struct {
		name    string
		advance time.Duration
		addr    string
		failed  bool
		times   int
		// retry is the wait a refused try must be told, in whole seconds
		// as Retry-After says it; 0 for an admitted try.
		retry int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"failures spend the budget, time refills it", []step{
			{name: "ten failures", addr: "a", failed: true, times: 10},
			{name: "refused", addr: "a", retry: 30},
			{name: "another client", addr: "b", failed: true},
			{name: "still refused 29 s later", advance: 29 * time.Second, addr: "a", retry: 1},
			{name: "one try after 30 s", advance: time.Second, addr: "a", failed: true},
			{name: "and spent", addr: "a", retry: 30},
			{name: "the window passed", advance: DefaultWindow, addr: "a", failed: true, times: 10},
			{name: "spent again", addr: "a", retry: 30},
		}},
		{"successes take nothing", []step{
			{name: "nine failures", addr: "c", failed: true, times: 9},
			{name: "successes", addr: "c", times: 20},
			{name: "the tenth failure", addr: "c", failed: true},
			{name: "refused", addr: "c", retry: 30},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &testClock{t: testNow}
			l := New(DefaultFailures, DefaultWindow, clock.now)
			for _, s := range tt.steps {
				clock.advance(s.advance)
				for i := range max(s.times, 1) {
					ok, wait := l.Begin(s.addr)
					if want := s.retry == 0; ok != want || (!ok && RetryAfter(wait) != s.retry) {
						t.Fatalf("%s (%d): ok %v wait %v, want ok %v retry after %d s", s.name, i+1, ok, wait, want, s.retry)
					}
					if ok {
						l.End(s.addr, s.failed)
					}
				}
			}
		})
	}
}

// TestLimiterSpent: End says when a failure spent the budget, once.
func TestLimiterSpent(t *testing.T) {
	l := New(3, time.Minute, func() time.Time { return testNow })
	for i, want := range []bool{false, false, true} {
		if ok, _ := l.Begin("a"); !ok {
			t.Fatalf("try %d refused", i+1)
		}
		if got := l.End("a", true); got != want {
			t.Errorf("failure %d: spent %v, want %v", i+1, got, want)
		}
	}
}

// TestLimiterMemory: the limiter forgets addresses whose budget is whole
// again, and never holds more than its cap however many try.
func TestLimiterMemory(t *testing.T) {
	clock := &testClock{t: testNow}
	l := New(DefaultFailures, DefaultWindow, clock.now)
	l.max = 100
	fail := func(addr string) {
		t.Helper()
		if ok, _ := l.Begin(addr); !ok {
			t.Fatalf("%s refused", addr)
		}
		l.End(addr, true)
	}
	for i := range 1000 {
		fail(fmt.Sprintf("10.0.%d.%d", i/256, i%256))
		if n := len(l.clients); n > l.max {
			t.Fatalf("after %d addresses the limiter holds %d, over its cap of %d", i+1, n, l.max)
		}
	}
	// The most recent address survived the evictions with its failure.
	if c := l.clients["10.0.3.231"]; c == nil || c.lim.TokensAt(clock.now()) > DefaultFailures-1 {
		t.Fatalf("the latest address lost its count: %+v", c)
	}
	// Once the window has passed, the next try forgets them all.
	clock.advance(DefaultWindow)
	fail("192.0.2.1")
	if n := len(l.clients); n != 1 {
		t.Errorf("after the window the limiter holds %d addresses, want 1", n)
	}
}

// TestLimiterInFlight: tries in flight count against the budget, so
// concurrent guesses cannot all slip past the check before the first
// failure is recorded; ending them without failure hands the budget back.
func TestLimiterInFlight(t *testing.T) {
	l := New(DefaultFailures, DefaultWindow, func() time.Time { return testNow })
	const addr = "192.0.2.1"
	for i := range DefaultFailures {
		if ok, _ := l.Begin(addr); !ok {
			t.Fatalf("try %d in flight refused", i+1)
		}
	}
	if ok, wait := l.Begin(addr); ok || wait <= 0 {
		t.Fatalf("the eleventh concurrent try: ok %v wait %v, want refused with a wait", ok, wait)
	}
	for range DefaultFailures {
		l.End(addr, false)
	}
	if ok, _ := l.Begin(addr); !ok {
		t.Fatal("after ten successes a try is refused")
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		wait time.Duration
		want int
	}{
		{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {time.Second + time.Nanosecond, 2}, {30 * time.Second, 30},
	} {
		if got := RetryAfter(tt.wait); got != tt.want {
			t.Errorf("RetryAfter(%v) = %d, want %d", tt.wait, got, tt.want)
		}
	}
}

func TestClientAddress(t *testing.T) {
	for _, tt := range []struct{ remote, forwarded, want string }{
		{"192.0.2.1:1234", "", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:1234", "", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:1234", "", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:1234", "", "fe80::/64"},
		{"192.0.2.1:1234", "198.51.100.9", "192.0.2.1"},
		{"not an address", "", "not an address"},
	} {
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		req.RemoteAddr = tt.remote
		if tt.forwarded != "" {
			req.Header.Set("X-Forwarded-For", tt.forwarded)
		}
		if got := ClientAddress(req); got != tt.want {
			t.Errorf("ClientAddress(%q, X-Forwarded-For %q) = %q, want %q", tt.remote, tt.forwarded, got, tt.want)
		}
	}
}

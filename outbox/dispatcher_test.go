package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/outbox"
)

const secret = "whsec_outbox"

var quiet = slog.New(slog.DiscardHandler)

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// received is one POST as the billing system saw it.
type received struct {
	key, signature string
	body           []byte
}

// billingSystem is a fake billing system: it answers each request with the
// next status of its script (the last one repeats) and counts what it got.
type billingSystem struct {
	mu     sync.Mutex
	script []int
	reqs   []received
}

func (b *billingSystem) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.reqs = append(b.reqs, received{key: r.Header.Get("Idempotency-Key"), signature: r.Header.Get(billing.SignatureHeader), body: body})
	status := b.script[0]
	if len(b.script) > 1 {
		b.script = b.script[1:]
	}
	b.mu.Unlock()
	w.WriteHeader(status)
	_, _ = io.WriteString(w, http.StatusText(status))
}

func (b *billingSystem) requests() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.reqs...)
}

func newBillingSystem(t *testing.T, script ...int) (*billingSystem, string) {
	t.Helper()
	b := &billingSystem{script: script}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return b, srv.URL
}

// enqueue records an event for run workflowID, as the activities do.
func enqueue(t *testing.T, s *ledger.Store, url, workflowID, key string) ledger.OutboxEvent {
	t.Helper()
	body, err := json.Marshal(map[string]any{"type": "run.closed", "workflow_id": workflowID, "idempotency_key": key, "reason": "paid <in full> & on time"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Enqueue(ctxFor(t), ledger.OutboxEvent{IdempotencyKey: key, WorkflowID: workflowID, Kind: "run.closed", URL: url, Body: body})
	if err != nil {
		t.Fatalf("Enqueue %s: %v", key, err)
	}
	return e
}

func event(t *testing.T, s *ledger.Store, key string) ledger.OutboxEvent {
	t.Helper()
	e, err := s.OutboxEvent(ctxFor(t), key)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// clock is a settable time for the dispatcher's retry schedule.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func dispatchOnce(t *testing.T, d *outbox.Dispatcher) int {
	t.Helper()
	n, err := d.DispatchOnce(ctxFor(t))
	if err != nil {
		t.Fatalf("DispatchOnce: %v", err)
	}
	return n
}

func TestDispatchConcurrentlyDeliversEachEventOnce(t *testing.T) {
	s := ledgertest.NewStore(t)
	bs, url := newBillingSystem(t, http.StatusNoContent)
	// 10 runs with 5 events each: a run's events go out one at a time, in
	// order, so the dispatchers need several passes and meet mid-way.
	const runs, perRun = 10, 5
	want := map[string]ledger.OutboxEvent{}
	for i := range perRun {
		for r := range runs {
			wf := fmt.Sprintf("dunning/acme/inv-%d", r)
			e := enqueue(t, s, url, wf, fmt.Sprintf("%s/event-%d", wf, i))
			want[e.IdempotencyKey] = e
		}
	}
	d := &outbox.Dispatcher{Ledger: s, Callback: billingCallback(), Logger: quiet, Batch: 4}

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n, err := d.DispatchOnce(context.Background())
				if err != nil {
					errs <- err
					return
				}
				if n == 0 {
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("DispatchOnce: %v", err)
	}

	reqs := bs.requests()
	seen := map[string]int{}
	lastOfRun := map[string]int{}
	for _, r := range reqs {
		seen[r.key]++
		e, ok := want[r.key]
		if !ok {
			t.Errorf("billing system got unknown key %q", r.key)
			continue
		}
		if string(r.body) != string(e.Body) {
			t.Errorf("%s body = %s, want the stored bytes %s", r.key, r.body, e.Body)
		}
		verify(t, r)
		var n int
		fmt.Sscanf(r.key[strings.LastIndex(r.key, "-")+1:], "%d", &n)
		if prev, ok := lastOfRun[e.WorkflowID]; ok && n != prev+1 {
			t.Errorf("%s: event %d arrived after event %d", e.WorkflowID, n, prev)
		}
		lastOfRun[e.WorkflowID] = n
	}
	if len(seen) != runs*perRun || len(reqs) != runs*perRun {
		t.Errorf("billing system got %d requests with %d distinct keys, want %d of each", len(reqs), len(seen), runs*perRun)
	}
	for key, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", key, n)
		}
	}
	for key := range want {
		if e := event(t, s, key); e.Status != ledger.OutboxDelivered || e.Attempts != 1 {
			t.Errorf("%s = %s after %d attempts, want delivered after 1", key, e.Status, e.Attempts)
		}
	}
}

func billingCallback() billing.Callback {
	return billing.Callback{Secret: secret}
}

// verify checks the request's signature over the bytes received.
func verify(t *testing.T, r received) {
	t.Helper()
	ts, _, _ := strings.Cut(strings.TrimPrefix(r.signature, "t="), ",")
	var unix int64
	if _, err := fmt.Sscanf(ts, "%d", &unix); err != nil {
		t.Fatalf("%s: signature %q", r.key, r.signature)
	}
	if want := billing.Sign(secret, time.Unix(unix, 0), r.body); r.signature != want {
		t.Errorf("%s: signature %q does not verify", r.key, r.signature)
	}
}

func TestDispatchRetriesUntilDelivered(t *testing.T) {
	s := ledgertest.NewStore(t)
	bs, url := newBillingSystem(t, http.StatusInternalServerError, http.StatusOK)
	stored := enqueue(t, s, url, "wf-1", "wf-1/closed")
	clk := &clock{now: time.Now()}
	d := &outbox.Dispatcher{Ledger: s, Callback: billingCallback(), Logger: quiet, Now: clk.Now}

	if n := dispatchOnce(t, d); n != 1 {
		t.Fatalf("first pass sent %d events, want 1", n)
	}
	e := event(t, s, "wf-1/closed")
	if e.Status != ledger.OutboxPending || e.Attempts != 1 || !strings.Contains(e.LastError, "HTTP 500") {
		t.Errorf("after a 500: %+v, want pending after 1 attempt with the error", e)
	}
	if wait := e.NextAttemptAt.Sub(clk.Now()); wait < outbox.DefaultBackoffMin-time.Millisecond || wait > outbox.DefaultBackoffMin {
		t.Errorf("retry scheduled in %s, want %s", wait, outbox.DefaultBackoffMin)
	}
	if n := dispatchOnce(t, d); n != 0 {
		t.Errorf("a pass before the backoff sent %d events", n)
	}

	clk.advance(outbox.DefaultBackoffMin)
	if n := dispatchOnce(t, d); n != 1 {
		t.Fatalf("second pass sent %d events, want 1", n)
	}
	e = event(t, s, "wf-1/closed")
	if e.Status != ledger.OutboxDelivered || e.Attempts != 2 || e.LastError != "" || e.DeliveredAt.IsZero() {
		t.Errorf("after a 200: %+v, want delivered after 2 attempts", e)
	}
	reqs := bs.requests()
	if len(reqs) != 2 {
		t.Fatalf("billing system got %d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		if r.key != "wf-1/closed" || string(r.body) != string(stored.Body) {
			t.Errorf("request %q %s, want the same key and stored body on every attempt", r.key, r.body)
		}
	}
	clk.advance(time.Hour)
	if n := dispatchOnce(t, d); n != 0 || len(bs.requests()) != 2 {
		t.Errorf("a delivered event was sent again")
	}
}

func TestDispatchAnswers(t *testing.T) {
	tests := []struct {
		status     int
		wantStatus string
	}{
		{http.StatusOK, ledger.OutboxDelivered},
		{http.StatusAccepted, ledger.OutboxDelivered},
		{http.StatusBadRequest, ledger.OutboxFailed},
		{http.StatusUnauthorized, ledger.OutboxFailed},
		{http.StatusNotFound, ledger.OutboxFailed},
		{http.StatusConflict, ledger.OutboxFailed},
		{http.StatusUnprocessableEntity, ledger.OutboxFailed},
		{http.StatusRequestTimeout, ledger.OutboxPending},
		{http.StatusTooManyRequests, ledger.OutboxPending},
		{http.StatusInternalServerError, ledger.OutboxPending},
		{http.StatusBadGateway, ledger.OutboxPending},
		{http.StatusServiceUnavailable, ledger.OutboxPending},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			s := ledgertest.NewStore(t)
			bs, url := newBillingSystem(t, tt.status)
			enqueue(t, s, url, "wf-1", "wf-1/closed")
			clk := &clock{now: time.Now()}
			d := &outbox.Dispatcher{Ledger: s, Callback: billingCallback(), Logger: quiet, Now: clk.Now}

			dispatchOnce(t, d)
			e := event(t, s, "wf-1/closed")
			if e.Status != tt.wantStatus || e.Attempts != 1 {
				t.Fatalf("after HTTP %d: %s after %d attempts, want %s after 1", tt.status, e.Status, e.Attempts, tt.wantStatus)
			}
			// A day later: only a transient failure is tried again.
			clk.advance(24 * time.Hour)
			dispatchOnce(t, d)
			wantRequests := 1
			if tt.wantStatus == ledger.OutboxPending {
				wantRequests = 2
			}
			if got := len(bs.requests()); got != wantRequests {
				t.Errorf("billing system got %d requests, want %d", got, wantRequests)
			}

			undelivered, err := s.UndeliveredEvents(ctxFor(t), clk.Now())
			if err != nil {
				t.Fatal(err)
			}
			flagged := len(undelivered) == 1 && undelivered[0].IdempotencyKey == "wf-1/closed"
			if flagged != (tt.wantStatus != ledger.OutboxDelivered) {
				t.Errorf("UndeliveredEvents = %+v; want the event listed for ops unless delivered", undelivered)
			}
			if tt.wantStatus == ledger.OutboxFailed && !strings.Contains(undelivered[0].LastError, fmt.Sprint(tt.status)) {
				t.Errorf("failed event's last error = %q, want the billing system's answer", undelivered[0].LastError)
			}
		})
	}
}

func TestDispatchRefusalMarksServiceChangeFailed(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	bs, url := newBillingSystem(t, http.StatusUnprocessableEntity)
	if _, err := s.OpenRun(ctx, ledger.Run{WorkflowID: "wf-1", Tenant: "acme", InvoiceID: "inv-1", CustomerID: "cus_1",
		Amount: decimal.RequireFromString("49.90"), Currency: "EUR", Policy: "default@v1"}); err != nil {
		t.Fatal(err)
	}
	ev := &ledger.OutboxEvent{Kind: "service.state_changed", URL: url, Body: []byte(`{"type":"service.state_changed","state":"paused"}`)}
	if _, err := s.RecordServiceChangeWithEvent(ctx, ledger.ServiceChange{IdempotencyKey: "wf-1/service-paused", WorkflowID: "wf-1", State: "paused"}, ev); err != nil {
		t.Fatal(err)
	}
	d := &outbox.Dispatcher{Ledger: s, Logger: quiet}
	dispatchOnce(t, d)
	changes, err := s.ServiceChanges(ctx, "wf-1")
	if err != nil || len(changes) != 1 {
		t.Fatalf("ServiceChanges = %+v, %v", changes, err)
	}
	if c := changes[0]; c.CallbackStatus != "failed" || !strings.Contains(c.CallbackDetail, "422") {
		t.Errorf("service change = %+v, want callback failed with the billing system's answer", c)
	}
	if got := len(bs.requests()); got != 1 {
		t.Errorf("billing system got %d requests, want 1", got)
	}
}

func TestDispatchBillingSystemDownThenUp(t *testing.T) {
	s := ledgertest.NewStore(t)
	// Take a free port, then close it: the billing system is down.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	enqueue(t, s, "http://"+addr+"/dunning", "wf-1", "wf-1/closed")
	clk := &clock{now: time.Now()}
	d := &outbox.Dispatcher{Ledger: s, Callback: billingCallback(), Logger: quiet, Now: clk.Now}

	// Each failed attempt doubles the wait: 5s, 10s, 20s.
	for i, wantWait := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second} {
		if n := dispatchOnce(t, d); n != 1 {
			t.Fatalf("pass %d sent %d events, want 1", i+1, n)
		}
		e := event(t, s, "wf-1/closed")
		if e.Status != ledger.OutboxPending || e.Attempts != i+1 || e.LastError == "" {
			t.Fatalf("pass %d: %+v, want pending with the connection error", i+1, e)
		}
		if wait := e.NextAttemptAt.Sub(clk.Now()); wait < wantWait-time.Millisecond || wait > wantWait {
			t.Errorf("pass %d: retry in %s, want %s", i+1, wait, wantWait)
		}
		clk.advance(wantWait)
	}

	// The billing system comes back on the same address.
	bs := &billingSystem{script: []int{http.StatusOK}}
	srv := httptest.NewUnstartedServer(bs)
	if srv.Listener, err = net.Listen("tcp", addr); err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv.Start()
	defer srv.Close()

	if n := dispatchOnce(t, d); n != 1 {
		t.Fatalf("pass after recovery sent %d events, want 1", n)
	}
	if e := event(t, s, "wf-1/closed"); e.Status != ledger.OutboxDelivered || e.Attempts != 4 {
		t.Errorf("after recovery: %s after %d attempts, want delivered after 4", e.Status, e.Attempts)
	}
	if reqs := bs.requests(); len(reqs) != 1 || reqs[0].key != "wf-1/closed" {
		t.Errorf("billing system got %+v, want the event once", reqs)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		b       outbox.Backoff
		attempt int
		want    time.Duration
	}{
		{outbox.Backoff{}, 1, 5 * time.Second},
		{outbox.Backoff{}, 2, 10 * time.Second},
		{outbox.Backoff{}, 3, 20 * time.Second},
		{outbox.Backoff{}, 7, 320 * time.Second},
		{outbox.Backoff{}, 8, 10 * time.Minute},
		{outbox.Backoff{}, 1000, 10 * time.Minute},
		{outbox.Backoff{Min: time.Second, Max: 3 * time.Second}, 1, time.Second},
		{outbox.Backoff{Min: time.Second, Max: 3 * time.Second}, 2, 2 * time.Second},
		{outbox.Backoff{Min: time.Second, Max: 3 * time.Second}, 3, 3 * time.Second},
		{outbox.Backoff{Min: time.Second, Max: 3 * time.Second}, 0, time.Second},
	}
	for _, tt := range tests {
		if got := tt.b.Delay(tt.attempt); got != tt.want {
			t.Errorf("%+v.Delay(%d) = %s, want %s", tt.b, tt.attempt, got, tt.want)
		}
	}
}

func TestRunDeliversUntilStopped(t *testing.T) {
	s := ledgertest.NewStore(t)
	bs, url := newBillingSystem(t, http.StatusNoContent)
	d := &outbox.Dispatcher{Ledger: s, Logger: quiet, Interval: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	// Enqueued while Run is polling: it goes out on a later poll.
	enqueue(t, s, url, "wf-1", "wf-1/closed")
	deadline := time.Now().Add(10 * time.Second)
	for event(t, s, "wf-1/closed").Status != ledger.OutboxDelivered {
		if time.Now().After(deadline) {
			t.Fatal("event not delivered within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after ctx ends", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
	if got := len(bs.requests()); got != 1 {
		t.Errorf("billing system got %d requests, want 1", got)
	}
}

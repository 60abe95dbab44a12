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
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/outbox"
)

// secret is the example secret of the Standard Webhooks specification.
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

var quiet = slog.New(slog.DiscardHandler)

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// received is one POST as the billing system saw it.
type received struct {
	header http.Header
	body   []byte
}

func (r received) id() string { return r.header.Get("webhook-id") }

// billingSystem is a fake billing system: it answers each request with the
// next status of its script (the last one repeats) and counts what it got.
type billingSystem struct {
	mu     sync.Mutex
	script []int
	answer string // the body of every answer; the status text when empty
	reqs   []received
}

func (b *billingSystem) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.reqs = append(b.reqs, received{header: r.Header.Clone(), body: body})
	status := b.script[0]
	if len(b.script) > 1 {
		b.script = b.script[1:]
	}
	answer := b.answer
	b.mu.Unlock()
	if answer == "" {
		answer = http.StatusText(status)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

func (b *billingSystem) requests() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.reqs...)
}

func (b *billingSystem) setScript(script ...int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.script = script
}

func newBillingSystem(t *testing.T, script ...int) (*billingSystem, string) {
	t.Helper()
	b := &billingSystem{script: script}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return b, srv.URL
}

// endpoints is a tenant configuration in a map. Unlike tenants.Config it
// checks nothing, so tests can hand the dispatcher the endpoints a
// validated file could never hold (or that a host name starts resolving
// to later).
type endpoints map[string]billing.Endpoint

func (e endpoints) EventEndpoint(tenant string) (billing.Endpoint, bool) {
	ep, ok := e[tenant]
	return ep, ok
}

// acmeAt sends tenant acme's events to url, which is on this machine, so
// acme must be allowed private networks.
func acmeAt(url string) endpoints {
	return endpoints{"acme": {URL: url, Secret: secret, AllowPrivateNetwork: true}}
}

// enqueue records an event of tenant acme for run workflowID, as the
// activities do.
func enqueue(t *testing.T, s *ledger.Store, workflowID, key string) ledger.OutboxEvent {
	t.Helper()
	return enqueueFor(t, s, "acme", workflowID, key)
}

func enqueueFor(t *testing.T, s *ledger.Store, tenant, workflowID, key string) ledger.OutboxEvent {
	t.Helper()
	body, err := json.Marshal(map[string]any{"type": "run.closed", "workflow_id": workflowID, "tenant": tenant, "reason": "paid <in full> & on time"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Enqueue(ctxFor(t), ledger.OutboxEvent{IdempotencyKey: key, WorkflowID: workflowID, Tenant: tenant, Kind: "run.closed", Body: body})
	if err != nil {
		t.Fatalf("Enqueue %s: %v", key, err)
	}
	return e
}

// envelope is what the billing system must receive for a stored event.
func envelope(t *testing.T, e ledger.OutboxEvent) []byte {
	t.Helper()
	b, err := billing.Envelope{Type: e.Kind, Version: e.Version, Timestamp: e.CreatedAt, Data: e.Body}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verify checks a request the way a billing system does, with the
// Standard Webhooks library.
func verify(t *testing.T, r received) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(r.body, r.header); err != nil {
		t.Errorf("%s: signature does not verify: %v", r.id(), err)
	}
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
			e := enqueue(t, s, wf, fmt.Sprintf("%s/event-%d", wf, i))
			want[billing.WebhookID(e.IdempotencyKey)] = e
		}
	}
	d := &outbox.Dispatcher{Ledger: s, Endpoints: acmeAt(url), Logger: quiet, Batch: 4}

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
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
		})
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
		seen[r.id()]++
		e, ok := want[r.id()]
		if !ok {
			t.Errorf("billing system got unknown webhook-id %q", r.id())
			continue
		}
		if string(r.body) != string(envelope(t, e)) {
			t.Errorf("%s body = %s, want the stored event in its envelope", e.IdempotencyKey, r.body)
		}
		verify(t, r)
		var n int
		fmt.Sscanf(e.IdempotencyKey[strings.LastIndex(e.IdempotencyKey, "-")+1:], "%d", &n)
		if prev, ok := lastOfRun[e.WorkflowID]; ok && n != prev+1 {
			t.Errorf("%s: event %d arrived after event %d", e.WorkflowID, n, prev)
		}
		lastOfRun[e.WorkflowID] = n
	}
	if len(seen) != runs*perRun || len(reqs) != runs*perRun {
		t.Errorf("billing system got %d requests with %d distinct IDs, want %d of each", len(reqs), len(seen), runs*perRun)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
	for _, e := range want {
		if e := event(t, s, e.IdempotencyKey); e.Status != ledger.OutboxDelivered || e.Attempts != 1 {
			t.Errorf("%s = %s after %d attempts, want delivered after 1", e.IdempotencyKey, e.Status, e.Attempts)
		}
	}
}

// The envelope: type, version, timestamp (when the event happened) and the
// stored data, the same bytes on every attempt.
func TestDispatchSendsTheEnvelope(t *testing.T) {
	s := ledgertest.NewStore(t)
	bs, url := newBillingSystem(t, http.StatusOK)
	stored := enqueue(t, s, "dunning/acme/inv-1", "dunning/acme/inv-1/closed")
	dispatchOnce(t, &outbox.Dispatcher{Ledger: s, Endpoints: acmeAt(url), Logger: quiet})

	reqs := bs.requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %d, want 1", len(reqs))
	}
	var got struct {
		Type      string         `json:"type"`
		Version   int            `json:"version"`
		Timestamp time.Time      `json:"timestamp"`
		Data      map[string]any `json:"data"`
	}
	if err := json.Unmarshal(reqs[0].body, &got); err != nil {
		t.Fatalf("body %s: %v", reqs[0].body, err)
	}
	if got.Type != "run.closed" || got.Version != 1 || !got.Timestamp.Equal(stored.CreatedAt) ||
		got.Data["workflow_id"] != "dunning/acme/inv-1" || got.Data["reason"] != "paid <in full> & on time" {
		t.Errorf("envelope = %+v", got)
	}
	if want := billing.WebhookID("dunning/acme/inv-1/closed"); reqs[0].id() != want {
		t.Errorf("webhook-id = %q, want %q", reqs[0].id(), want)
	}
	verify(t, reqs[0])
}

// A receiver that fails three times and then accepts gets four requests
// for one logical event: the same webhook-id and body each time, each
// signed afresh, and the event delivered once.
func TestDispatchRetriesUntilDelivered(t *testing.T) {
	s := ledgertest.NewStore(t)
	bs, url := newBillingSystem(t, http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusOK)
	stored := enqueue(t, s, "wf-1", "wf-1/closed")
	clk := &clock{now: time.Now()}
	d := &outbox.Dispatcher{Ledger: s, Endpoints: acmeAt(url), Logger: quiet, Now: clk.Now}

	if n := dispatchOnce(t, d); n != 1 {
		t.Fatalf("first pass sent %d events, want 1", n)
	}
	e := event(t, s, "wf-1/closed")
	if e.Status != ledger.OutboxPending || e.Attempts != 1 || e.LastError != "HTTP 500: Internal Server Error" {
		t.Errorf("after a 500: %+v, want pending after 1 attempt with the error", e)
	}
	if wait := e.NextAttemptAt.Sub(clk.Now()); wait < outbox.DefaultBackoffMin-time.Millisecond || wait > outbox.DefaultBackoffMin {
		t.Errorf("retry scheduled in %s, want %s", wait, outbox.DefaultBackoffMin)
	}
	if n := dispatchOnce(t, d); n != 0 {
		t.Errorf("a pass before the backoff sent %d events", n)
	}
	for range 3 {
		clk.advance(time.Hour)
		if n := dispatchOnce(t, d); n != 1 {
			t.Fatalf("pass sent %d events, want 1", n)
		}
	}
	e = event(t, s, "wf-1/closed")
	if e.Status != ledger.OutboxDelivered || e.Attempts != 4 || e.LastError != "" || e.DeliveredAt.IsZero() {
		t.Errorf("after a 200: %+v, want delivered after 4 attempts", e)
	}
	reqs := bs.requests()
	if len(reqs) != 4 {
		t.Fatalf("billing system got %d requests, want 4", len(reqs))
	}
	ids := map[string]bool{}
	for _, r := range reqs {
		ids[r.id()] = true
		if string(r.body) != string(envelope(t, stored)) {
			t.Errorf("request body %s, want the same envelope on every attempt", r.body)
		}
		verify(t, r)
	}
	if len(ids) != 1 || !ids[billing.WebhookID("wf-1/closed")] {
		t.Errorf("webhook-ids %v, want one, the event's, on all 4 requests", ids)
	}
	clk.advance(time.Hour)
	if n := dispatchOnce(t, d); n != 0 || len(bs.requests()) != 4 {
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
		{http.StatusFound, ledger.OutboxFailed},
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
			enqueue(t, s, "wf-1", "wf-1/closed")
			clk := &clock{now: time.Now()}
			d := &outbox.Dispatcher{Ledger: s, Endpoints: acmeAt(url), Logger: quiet, Now: clk.Now}

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
			if tt.wantStatus == ledger.OutboxFailed && !strings.HasPrefix(undelivered[0].LastError, fmt.Sprintf("HTTP %d", tt.status)) {
				t.Errorf("failed event's last error = %q, want the status", undelivered[0].LastError)
			}
		})
	}
}

// A refusal is recorded with the status and a short, clean reason, on the
// event and on the service change it reports; then redeliver sends it
// again, with the same webhook-id.
func TestDispatchRefusalThenRedeliver(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	bs, url := newBillingSystem(t, http.StatusUnprocessableEntity)
	bs.answer = "unknown customer\r\n\x1b[2J" + strings.Repeat("<p>details</p>\n", 2000)
	if _, err := s.OpenRun(ctx, ledger.Run{WorkflowID: "wf-1", Tenant: "acme", InvoiceID: "inv-1", CustomerID: "cus_1",
		Amount: decimal.RequireFromString("49.90"), Currency: "EUR", Policy: "default@v1"}); err != nil {
		t.Fatal(err)
	}
	ev := &ledger.OutboxEvent{Tenant: "acme", Kind: "service.state_changed", Body: []byte(`{"type":"service.state_changed","state":"paused"}`)}
	if _, err := s.RecordServiceChangeWithEvent(ctx, ledger.ServiceChange{IdempotencyKey: "wf-1/service-paused", WorkflowID: "wf-1", State: "paused"}, ev); err != nil {
		t.Fatal(err)
	}
	d := &outbox.Dispatcher{Ledger: s, Endpoints: acmeAt(url), Logger: quiet}
	dispatchOnce(t, d)

	e := event(t, s, "wf-1/service-paused")
	if e.Status != ledger.OutboxFailed || !strings.HasPrefix(e.LastError, "HTTP 422: unknown customer [2J<p>details</p>") {
		t.Errorf("event = %s, %q; want failed with the status and the start of the answer", e.Status, e.LastError)
	}
	if len(e.LastError) > 120 || strings.ContainsFunc(e.LastError, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		t.Errorf("last error %q: want short and free of control characters", e.LastError)
	}
	changes, err := s.ServiceChanges(ctx, "wf-1")
	if err != nil || len(changes) != 1 {
		t.Fatalf("ServiceChanges = %+v, %v", changes, err)
	}
	if c := changes[0]; c.CallbackStatus != "failed" || c.CallbackDetail != e.LastError {
		t.Errorf("service change = %+v, want callback failed with the event's reason", c)
	}

	// Ops fix the cause and redeliver.
	bs.setScript(http.StatusNoContent)
	if _, err := s.Redeliver(ctx, "wf-1/service-paused", time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := dispatchOnce(t, d); n != 1 {
		t.Fatalf("pass after redeliver sent %d events, want 1", n)
	}
	if e := event(t, s, "wf-1/service-paused"); e.Status != ledger.OutboxDelivered || e.Attempts != 2 {
		t.Errorf("after redeliver: %s after %d attempts, want delivered after 2", e.Status, e.Attempts)
	}
	if changes, _ := s.ServiceChanges(ctx, "wf-1"); changes[0].CallbackStatus != "delivered" {
		t.Errorf("service change = %+v, want delivered", changes[0])
	}
	reqs := bs.requests()
	if len(reqs) != 2 || reqs[0].id() != reqs[1].id() || reqs[0].id() != billing.WebhookID("wf-1/service-paused") {
		t.Fatalf("requests %d with IDs %v, want 2 with the same webhook-id", len(reqs), []string{reqs[0].id(), reqs[len(reqs)-1].id()})
	}
	if string(reqs[0].body) != string(reqs[1].body) {
		t.Errorf("redelivered body %s differs from %s", reqs[1].body, reqs[0].body)
	}
	verify(t, reqs[1])
}

// A tenant without an endpoint: the event is skipped, not failed, and
// nothing is sent; once ops configure one, redeliver sends it.
func TestDispatchSkipsTenantsWithoutEndpoint(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	bs, url := newBillingSystem(t, http.StatusNoContent)
	enqueueFor(t, s, "globex", "wf-g", "wf-g/closed")
	enqueue(t, s, "wf-a", "wf-a/closed")
	for _, d := range []*outbox.Dispatcher{
		{Ledger: s, Endpoints: acmeAt(url), Logger: quiet},
		{Ledger: s, Logger: quiet}, // no configuration at all
	} {
		dispatchOnce(t, d)
	}
	if e := event(t, s, "wf-g/closed"); e.Status != ledger.OutboxSkipped || e.Attempts != 0 || !strings.Contains(e.LastError, `tenant "globex"`) {
		t.Errorf("globex event = %+v, want skipped", e)
	}
	if e := event(t, s, "wf-a/closed"); e.Status != ledger.OutboxDelivered {
		t.Errorf("acme event = %s, want delivered", e.Status)
	}
	if n := len(bs.requests()); n != 1 {
		t.Errorf("billing system got %d requests, want acme's only", n)
	}

	if _, err := s.Redeliver(ctx, "wf-g/closed", time.Now()); err != nil {
		t.Fatal(err)
	}
	both := acmeAt(url)
	both["globex"] = both["acme"]
	dispatchOnce(t, &outbox.Dispatcher{Ledger: s, Endpoints: both, Logger: quiet})
	if e := event(t, s, "wf-g/closed"); e.Status != ledger.OutboxDelivered {
		t.Errorf("globex event after redeliver = %s, want delivered", e.Status)
	}
}

// Events enqueued before tenants had endpoints carried the URL a request
// named. That URL is dead: the event goes to the tenant's endpoint.
func TestDispatchIgnoresStoredURL(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	var victimHits atomic.Int64
	victim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { victimHits.Add(1) }))
	t.Cleanup(victim.Close)
	bs, url := newBillingSystem(t, http.StatusNoContent)
	enqueue(t, s, "wf-1", "wf-1/closed")
	if _, err := s.Pool().Exec(ctx, `UPDATE outbox SET url = $1`, victim.URL); err != nil {
		t.Fatal(err)
	}
	dispatchOnce(t, &outbox.Dispatcher{Ledger: s, Endpoints: acmeAt(url), Logger: quiet})
	if victimHits.Load() != 0 || len(bs.requests()) != 1 {
		t.Errorf("stored URL got %d requests, tenant endpoint %d; want 0 and 1", victimHits.Load(), len(bs.requests()))
	}
}

// resolver points billing.example.com at loopback, as a hostile or
// rebinding DNS answer would, and asks the system for any other name.
type resolver struct{}

func (resolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if host == "billing.example.com" || host == "rebind.example.com" {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return net.DefaultResolver.LookupNetIP(ctx, network, host)
}

// SSRF: endpoints inside our network are refused and recorded as failed,
// and no request reaches anything listening there. The private, link-local
// and metadata addresses are refused before any connection is attempted, so
// these tests send nothing off this machine.
func TestDispatchRefusesEndpointsInOurNetwork(t *testing.T) {
	var hits atomic.Int64
	count := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	victim4 := httptest.NewServer(count)
	t.Cleanup(victim4.Close)
	_, port4, _ := net.SplitHostPort(victim4.Listener.Addr().String())
	victim6URL := ""
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		v6 := httptest.NewUnstartedServer(count)
		v6.Listener = ln
		v6.Start()
		t.Cleanup(v6.Close)
		victim6URL = v6.URL
	}
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, victim4.URL+"/admin", http.StatusFound)
	}))
	t.Cleanup(redirector.Close)
	_, redirPort, _ := net.SplitHostPort(redirector.Listener.Addr().String())

	tests := []struct {
		name         string
		url          string
		allowPrivate bool
		wantErr      string // "" means delivered
	}{
		{"127.0.0.1", victim4.URL + "/events", false, "loopback"},
		{"::1", victim6URL + "/events", false, "loopback"},
		{"10.x", "http://10.0.0.12:" + port4 + "/events", false, "RFC 1918"},
		{"172.16.x", "http://172.16.5.4:" + port4 + "/events", false, "RFC 1918"},
		{"192.168.x", "http://192.168.1.20:" + port4 + "/events", false, "RFC 1918"},
		{"CGNAT", "http://100.64.1.1:" + port4 + "/events", false, "carrier-grade NAT"},
		{"metadata service", "http://169.254.169.254/latest/meta-data/", false, "link-local"},
		{"metadata service, private allowed", "http://169.254.169.254/latest/meta-data/", true, "link-local"},
		{"unspecified", "http://0.0.0.0:" + port4 + "/events", false, "unspecified"},
		{"name resolving to loopback", "http://localhost:" + port4 + "/events", false, "loopback"},
		{"public-looking name resolving to loopback", "https://rebind.example.com:" + port4 + "/events", false, "loopback"},
		{"public-looking URL redirecting to loopback", "http://billing.example.com:" + redirPort + "/events", true, "HTTP 302: redirect not followed"},
		{"allowed: private networks on for the tenant", victim4.URL + "/events", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.HasPrefix(tt.url, "/") {
				t.Skip("no IPv6 loopback here")
			}
			hits.Store(0)
			s := ledgertest.NewStore(t)
			enqueue(t, s, "wf-1", "wf-1/closed")
			d := &outbox.Dispatcher{
				Ledger: s, Logger: quiet,
				Endpoints: endpoints{"acme": {URL: tt.url, Secret: secret, AllowPrivateNetwork: tt.allowPrivate}},
				Callback:  &billing.Callback{Resolver: resolver{}, Timeout: 5 * time.Second},
			}
			dispatchOnce(t, d)
			e := event(t, s, "wf-1/closed")
			if tt.wantErr == "" {
				if e.Status != ledger.OutboxDelivered || hits.Load() != 1 {
					t.Errorf("event %s (%q), %d requests; want delivered once", e.Status, e.LastError, hits.Load())
				}
				return
			}
			if e.Status != ledger.OutboxFailed || !strings.Contains(e.LastError, tt.wantErr) {
				t.Errorf("event %s with %q, want failed naming %q", e.Status, e.LastError, tt.wantErr)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("a listener inside our network got %d requests, want 0", n)
			}
		})
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
	enqueue(t, s, "wf-1", "wf-1/closed")
	clk := &clock{now: time.Now()}
	d := &outbox.Dispatcher{Ledger: s, Endpoints: acmeAt("http://" + addr + "/dunning"), Logger: quiet, Now: clk.Now}

	// Each failed attempt doubles the wait: 5s, 10s, 20s.
	for i, wantWait := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second} {
		if n := dispatchOnce(t, d); n != 1 {
			t.Fatalf("pass %d sent %d events, want 1", i+1, n)
		}
		e := event(t, s, "wf-1/closed")
		if e.Status != ledger.OutboxPending || e.Attempts != i+1 || e.LastError != "connection refused" {
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
	if reqs := bs.requests(); len(reqs) != 1 || reqs[0].id() != billing.WebhookID("wf-1/closed") {
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
	d := &outbox.Dispatcher{Ledger: s, Endpoints: acmeAt(url), Logger: quiet, Interval: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	// Enqueued while Run is polling: it goes out on a later poll.
	enqueue(t, s, "wf-1", "wf-1/closed")
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

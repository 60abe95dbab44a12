package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/outbox"
)

const (
	testWorkflowID = "dunning/acme/inv-1"
	testSecret     = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

var t0 = time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC)

var quietLogger = slog.New(slog.DiscardHandler)

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func openRunInput(workflowID, invoice string) activities.OpenRunInput {
	return activities.OpenRunInput{
		WorkflowID: workflowID, Tenant: "acme", InvoiceID: invoice, CustomerID: "cus_1",
		Amount: "49.90", Currency: "EUR", Policy: "default@v1", OpenedAt: t0,
	}
}

// newLedger returns a fresh ledger holding one open run, testWorkflowID.
func newLedger(t *testing.T) *ledger.Store {
	t.Helper()
	store := ledgertest.NewStore(t)
	runs := &activities.Runs{Ledger: store}
	if err := runs.OpenRun(ctxFor(t), openRunInput(testWorkflowID, "inv-1")); err != nil {
		t.Fatalf("OpenRun: %v", err)
	}
	// Tests count the events their own activity records; the run.started
	// event OpenRun recorded is tested in runs_test.go.
	if _, err := store.Pool().Exec(ctxFor(t), `DELETE FROM outbox WHERE kind = 'run.started'`); err != nil {
		t.Fatal(err)
	}
	return store
}

func closeRun(t *testing.T, store *ledger.Store, workflowID string) {
	t.Helper()
	runs := &activities.Runs{Ledger: store}
	err := runs.CloseRun(ctxFor(t), activities.CloseRunInput{
		WorkflowID: workflowID, Outcome: "exhausted", Reason: "retries exhausted", ClosedAt: t0.Add(72 * time.Hour),
	})
	if err != nil {
		t.Fatalf("CloseRun: %v", err)
	}
}

func counts(t *testing.T, store *ledger.Store) map[string]int64 {
	t.Helper()
	c, err := store.Counts(ctxFor(t))
	if err != nil {
		t.Fatalf("Counts: %v", err)
	}
	return c
}

func assertCount(t *testing.T, store *ledger.Store, table string, want int64) {
	t.Helper()
	if got := counts(t, store)[table]; got != want {
		t.Errorf("%s rows = %d, want %d", table, got, want)
	}
}

// newActivityEnv returns a test activity environment with a real activity
// context and the given activities registered.
func newActivityEnv(t *testing.T, acts ...any) *testsuite.TestActivityEnvironment {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	suite.SetLogger(log.NewStructuredLogger(quietLogger))
	env := suite.NewTestActivityEnvironment()
	for _, a := range acts {
		env.RegisterActivity(a)
	}
	return env
}

// assertPermanent checks that err is a non-retryable application error of
// errType, as the retry policies see it.
func assertPermanent(t *testing.T, err error, errType string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want a non-retryable %s", errType)
	}
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		t.Fatalf("error %v (%T) is not an application error", err, err)
	}
	if appErr.Type() != errType || !appErr.NonRetryable() {
		t.Errorf("error type = %q, non-retryable = %v, want %q and true (err: %v)", appErr.Type(), appErr.NonRetryable(), errType, err)
	}
	if !activities.IsType(err, errType) {
		t.Errorf("IsType(err, %q) = false for %v", errType, err)
	}
	if !slices.Contains(activities.NonRetryable, errType) {
		t.Errorf("%q is not listed in activities.NonRetryable", errType)
	}
}

// assertRetryable checks that err is an error a retry policy listing
// activities.NonRetryable would retry.
func assertRetryable(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("error = nil, want a retryable error")
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && (appErr.NonRetryable() || slices.Contains(activities.NonRetryable, appErr.Type())) {
		t.Errorf("error %v is non-retryable (type %q, non-retryable %v), want retryable", err, appErr.Type(), appErr.NonRetryable())
	}
}

// billingRequest is one event as the billing system received it.
type billingRequest struct {
	Method, ContentType string
	Header              http.Header
	Body                []byte
}

// billingServer is a fake billing system answering with a settable status.
type billingServer struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	reqs   []billingRequest
}

func newBillingServer(t *testing.T, status int) *billingServer {
	t.Helper()
	b := &billingServer{status: status}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.reqs = append(b.reqs, billingRequest{Method: r.Method, ContentType: r.Header.Get("Content-Type"), Header: r.Header.Clone(), Body: body})
		status := b.status
		b.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, http.StatusText(status))
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *billingServer) setStatus(status int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status = status
}

func (b *billingServer) requests() []billingRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.reqs)
}

// tenantAt is the tenant configuration sending tenant acme's events to
// srv, on this machine (so acme is allowed private networks).
func tenantAt(srv *billingServer) endpoints {
	return endpoints{"acme": {URL: srv.URL, Secret: testSecret, AllowPrivateNetwork: true}}
}

// endpoints is a tenant configuration in a map.
type endpoints map[string]billing.Endpoint

func (e endpoints) EventEndpoint(tenant string) (billing.Endpoint, bool) {
	ep, ok := e[tenant]
	return ep, ok
}

// dispatcher delivers tenant acme's events to srv.
func dispatcher(store *ledger.Store, srv *billingServer, now func() time.Time) *outbox.Dispatcher {
	return &outbox.Dispatcher{Ledger: store, Endpoints: tenantAt(srv), Logger: quietLogger, Now: now}
}

// assertSigned checks the request as a billing system does, with the
// Standard Webhooks library.
func assertSigned(t *testing.T, req billingRequest) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(req.Body, req.Header); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
	other, _ := standardwebhooks.NewWebhook("whsec_" + strings.Repeat("B", 32))
	if other.Verify(req.Body, req.Header) == nil {
		t.Errorf("signature verifies with the wrong secret")
	}
}

func decodeJSON(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", body, err)
	}
	return m
}

// dispatch runs one outbox dispatcher pass sending tenant acme's events to
// srv, and returns how many events it sent.
func dispatch(t *testing.T, store *ledger.Store, srv *billingServer) int {
	t.Helper()
	n, err := dispatcher(store, srv, nil).DispatchOnce(ctxFor(t))
	if err != nil {
		t.Fatalf("DispatchOnce: %v", err)
	}
	return n
}

// outboxEvent returns the outbox event stored under key.
func outboxEvent(t *testing.T, store *ledger.Store, key string) ledger.OutboxEvent {
	t.Helper()
	e, err := store.OutboxEvent(ctxFor(t), key)
	if err != nil {
		t.Fatalf("outbox event %s: %v", key, err)
	}
	return e
}

// assertSentAsStored checks that req carries the event's webhook-id and
// exactly the data the outbox stored, in its envelope, signed.
func assertSentAsStored(t *testing.T, req billingRequest, e ledger.OutboxEvent) {
	t.Helper()
	if req.Method != http.MethodPost || req.ContentType != "application/json" {
		t.Errorf("request = %s %s, want POST application/json", req.Method, req.ContentType)
	}
	if id := req.Header.Get("webhook-id"); id != billing.WebhookID(e.IdempotencyKey) {
		t.Errorf("webhook-id = %q, want %q", id, billing.WebhookID(e.IdempotencyKey))
	}
	want, err := billing.Envelope{Type: e.Kind, Version: e.Version, Timestamp: e.CreatedAt, Data: e.Body}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if string(req.Body) != string(want) {
		t.Errorf("body sent = %s, want the stored event in its envelope %s", req.Body, want)
	}
	assertSigned(t, req)
}

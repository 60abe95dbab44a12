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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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
	testSecret     = "whsec_test"
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

// billingRequest is one callback as the billing system received it.
type billingRequest struct {
	Method, ContentType, Key, Signature string
	Body                                []byte
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
		b.reqs = append(b.reqs, billingRequest{
			Method: r.Method, ContentType: r.Header.Get("Content-Type"), Key: r.Header.Get("Idempotency-Key"),
			Signature: r.Header.Get(billing.SignatureHeader), Body: body,
		})
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

func signedCallback() billing.Callback {
	return billing.Callback{Secret: testSecret, Now: func() time.Time { return t0 }}
}

// assertSigned checks the request's signature header against billing.Sign
// over the received body and the header's own timestamp.
func assertSigned(t *testing.T, req billingRequest, wantAt time.Time) {
	t.Helper()
	ts, _, ok := strings.Cut(strings.TrimPrefix(req.Signature, "t="), ",")
	if !ok || !strings.HasPrefix(req.Signature, "t=") {
		t.Fatalf("%s = %q, want t=<unix>,v1=<hmac>", billing.SignatureHeader, req.Signature)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		t.Fatalf("%s timestamp %q: %v", billing.SignatureHeader, ts, err)
	}
	if unix != wantAt.Unix() {
		t.Errorf("signature timestamp = %d, want %d", unix, wantAt.Unix())
	}
	if want := billing.Sign(testSecret, time.Unix(unix, 0), req.Body); req.Signature != want {
		t.Errorf("%s = %q does not verify: want %q", billing.SignatureHeader, req.Signature, want)
	}
	if other := billing.Sign("whsec_other", time.Unix(unix, 0), req.Body); req.Signature == other {
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

// dispatch runs one outbox dispatcher pass, signing as signedCallback does,
// and returns how many events it sent.
func dispatch(t *testing.T, store *ledger.Store) int {
	t.Helper()
	d := &outbox.Dispatcher{Ledger: store, Callback: signedCallback(), Logger: quietLogger}
	n, err := d.DispatchOnce(ctxFor(t))
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

// assertSentAsStored checks that req carries the event's key and exactly
// the body the outbox stored, signed.
func assertSentAsStored(t *testing.T, req billingRequest, e ledger.OutboxEvent) {
	t.Helper()
	if req.Method != http.MethodPost || req.ContentType != "application/json" {
		t.Errorf("request = %s %s, want POST application/json", req.Method, req.ContentType)
	}
	if req.Key != e.IdempotencyKey {
		t.Errorf("Idempotency-Key = %q, want %q", req.Key, e.IdempotencyKey)
	}
	if string(req.Body) != string(e.Body) {
		t.Errorf("body sent = %s, want the stored %s", req.Body, e.Body)
	}
	assertSigned(t, req, t0)
}

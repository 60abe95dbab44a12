package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"go.temporal.io/api/serviceerror"

	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/workflows"
)

var r0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// fakeReadModel answers with canned values and records what it was asked.
type fakeReadModel struct {
	mu      sync.Mutex
	view    ledger.RunView
	err     error
	asked   []string
	queries []ledger.RunStatusQuery
	page    ledger.RunStatusPage
}

func (f *fakeReadModel) RunView(_ context.Context, id string) (ledger.RunView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, id)
	return f.view, f.err
}

func (f *fakeReadModel) ListRunStatus(_ context.Context, q ledger.RunStatusQuery) (ledger.RunStatusPage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	return f.page, f.err
}

func heldView() ledger.RunView {
	return ledger.RunView{
		Run: ledger.Run{WorkflowID: "dunning/acme/inv-1", Tenant: "acme", InvoiceID: "inv-1", CustomerID: "cus_1",
			Amount: mustDecimal("49.9"), Currency: "EUR", Policy: "default@3#abc", Status: "open", OpenedAt: r0},
		Status: ledger.RunStatus{WorkflowID: "dunning/acme/inv-1", Tenant: "acme", InvoiceID: "inv-1", CustomerID: "cus_1",
			Phase: "needs_attention", ServiceState: "paused", Attempts: 1,
			AttentionCause: "gateway_auth", AttentionDetail: "the gateway refused our key", AttentionSince: r0.Add(time.Hour),
			UpdatedAt: r0.Add(time.Hour)},
		Attempts: []ledger.Attempt{{IdempotencyKey: "dunning/acme/inv-1/attempt-1", WorkflowID: "dunning/acme/inv-1", Number: 1,
			Reason: "scheduled", Status: "declined", DeclineCode: "insufficient_funds", StartedAt: r0, FinishedAt: r0.Add(time.Second)}},
		Messages: []ledger.Message{{IdempotencyKey: "dunning/acme/inv-1/attempt-1-failed/email", WorkflowID: "dunning/acme/inv-1",
			Kind: "retry_failed", Channel: "email", Status: "dry-run", CreatedAt: r0, FinishedAt: r0.Add(2 * time.Second)}},
		ServiceChanges: []ledger.ServiceChange{{IdempotencyKey: "dunning/acme/inv-1/pause", State: "paused", CreatedAt: r0.Add(time.Minute)}},
	}
}

func newReadModelHandler(runs Runs, rm ReadModel, opts ...Option) http.Handler {
	opts = append([]Option{WithReadModel(rm), withTestKeys()}, opts...)
	return NewHandler(runs, slog.New(slog.DiscardHandler), opts...)
}

func TestStatusFallsBackToTheReadModel(t *testing.T) {
	tests := []struct {
		name    string
		liveErr error
	}{
		{"live query timed out here", fmt.Errorf("query status of dunning/acme/inv-1: %w", context.DeadlineExceeded)},
		{"live query timed out on the server", serviceerror.NewDeadlineExceeded("context deadline exceeded")},
		{"Temporal unavailable", serviceerror.NewUnavailable("connection refused")},
		{"no worker polls the queue", serviceerror.NewFailedPrecondition("no poller seen for task queue recently, worker may be down")},
		{"workflow task failing", serviceerror.NewWorkflowNotReady("Unable to query workflow due to Workflow Task in failed state.")},
		{"Temporal forgot the run", fmt.Errorf("query: %w", starter.ErrRunNotFound)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := &fakeRuns{err: tt.liveErr}
			rm := &fakeReadModel{view: heldView()}
			rec, out := do(t, newReadModelHandler(runs, rm), http.MethodGet, "/v1/runs/acme/inv-1", "", "")
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, body %s", rec.Code, rec.Body)
			}
			if out["source"] != SourceReadModel || out["as_of"] != "2026-03-01T10:00:00Z" {
				t.Errorf("source %v as of %v, want read_model as of the last report", out["source"], out["as_of"])
			}
			var got StatusAnswer
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			st := got.Status
			if st.Phase != workflows.PhaseNeedsAttention || st.Amount != "49.90" || st.ServiceState != policy.ServicePaused ||
				st.Attention == nil || st.Attention.Cause != "gateway_auth" || st.NextStep != nil || st.Policy != "default@3#abc" {
				t.Errorf("status = %+v", st)
			}
			if len(st.Attempts) != 1 || st.Attempts[0].Outcome != "declined" || st.Attempts[0].DeclineCode != "insufficient_funds" {
				t.Errorf("attempts = %+v", st.Attempts)
			}
			if len(st.Messages) != 1 || st.Messages[0].Key != "attempt-1-failed/email" || st.Messages[0].Status != "dry-run" ||
				!st.Messages[0].At.Equal(r0.Add(2*time.Second)) {
				t.Errorf("messages = %+v", st.Messages)
			}
			if len(st.ServiceLog) != 1 || st.ServiceLog[0].State != policy.ServicePaused {
				t.Errorf("service changes = %+v", st.ServiceLog)
			}
			if !slices.Equal(rm.asked, []string{"dunning/acme/inv-1"}) {
				t.Errorf("read model asked for %v", rm.asked)
			}
		})
	}
}

func TestStatusPrefersTheLiveAnswer(t *testing.T) {
	runs := &fakeRuns{status: workflows.Status{WorkflowID: "dunning/acme/inv-1", Phase: workflows.PhasePaused}}
	rm := &fakeReadModel{view: heldView()}
	rec, out := do(t, newReadModelHandler(runs, rm), http.MethodGet, "/v1/runs/acme/inv-1", "", "")
	if rec.Code != http.StatusOK || out["source"] != SourceLive || out["phase"] != "paused" {
		t.Errorf("status = %d, body %v", rec.Code, out)
	}
	if _, ok := out["as_of"]; ok {
		t.Error("a live answer carries as_of")
	}
	if len(rm.asked) != 0 {
		t.Errorf("read model asked for %v while the run answered", rm.asked)
	}
}

func TestStatusWhenNeitherSourceAnswers(t *testing.T) {
	dbDown := errors.New("ledger: dial tcp 127.0.0.1:5432: connection refused")
	notFound := fmt.Errorf("ledger: run x: %w", ledger.ErrNotFound)
	tests := []struct {
		name           string
		liveErr        error
		readModel      *fakeReadModel // nil: no read model configured
		wantStatus     int
		wantRetryAfter bool
		wantError      string
		wantAsked      bool
	}{
		{"timeout, run unknown to the ledger", context.DeadlineExceeded, &fakeReadModel{err: notFound}, 504, true, "no worker answered in time", true},
		{"server timeout, ledger down", serviceerror.NewDeadlineExceeded("deadline"), &fakeReadModel{err: dbDown}, 504, true, "timed out", true},
		{"Temporal unavailable, ledger down", serviceerror.NewUnavailable("connection refused"), &fakeReadModel{err: dbDown}, 503, true, "cannot be reached", true},
		{"no worker, no read model", serviceerror.NewFailedPrecondition("no poller seen for task queue recently"), nil, 503, true, "cannot be reached", false},
		{"timeout, no read model", context.DeadlineExceeded, nil, 504, true, "timed out", false},
		{"rate limited, unknown to the ledger", serviceerror.NewResourceExhausted(0, "busy"), &fakeReadModel{err: notFound}, 503, true, "cannot be reached", true},
		{"unknown everywhere", fmt.Errorf("q: %w", starter.ErrRunNotFound), &fakeReadModel{err: notFound}, 404, false, "no dunning run", true},
		{"unexpected error, unknown to the ledger", errors.New("rpc error: code = Internal"), &fakeReadModel{err: notFound}, 500, false, "internal error", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := &fakeRuns{err: tt.liveErr}
			var h http.Handler
			if tt.readModel != nil {
				h = newReadModelHandler(runs, tt.readModel)
			} else {
				h = newTestHandler(runs)
			}
			rec, out := do(t, h, http.MethodGet, "/v1/runs/acme/inv-1", "", "")
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if got := rec.Header().Get("Retry-After"); (got == "5") != tt.wantRetryAfter {
				t.Errorf("Retry-After = %q, want it set: %v", got, tt.wantRetryAfter)
			}
			if msg, _ := out["detail"].(string); !strings.Contains(msg, tt.wantError) {
				t.Errorf("detail = %q, want it to contain %q", msg, tt.wantError)
			}
			if tt.readModel != nil && (len(tt.readModel.asked) == 1) != tt.wantAsked {
				t.Errorf("read model asked %v, want asked: %v", tt.readModel.asked, tt.wantAsked)
			}
		})
	}

	// A malformed run key is refused before either source is asked.
	rm := &fakeReadModel{view: heldView()}
	runs := &fakeRuns{}
	if rec, _ := do(t, newReadModelHandler(runs, rm), http.MethodGet, "/v1/runs/acme/inv%201", "", ""); rec.Code != http.StatusBadRequest ||
		len(rm.asked) != 0 || len(runs.Calls()) != 0 {
		t.Errorf("bad key: status %d, read model asked %v, runs called %v", rec.Code, rm.asked, runs.Calls())
	}
}

// TestSignalsMapTransientErrors: a signal that Temporal could not take
// answers 503 or 504 with Retry-After, never 500.
func TestSignalsMapTransientErrors(t *testing.T) {
	for _, tt := range []struct {
		err        error
		wantStatus int
	}{
		{serviceerror.NewUnavailable("connection refused"), 503},
		{serviceerror.NewDeadlineExceeded("deadline"), 504},
		{context.DeadlineExceeded, 504},
	} {
		rec, _ := do(t, newTestHandler(&fakeRuns{err: tt.err}), http.MethodPost, "/v1/runs/acme/inv-1/resume", "", "")
		if rec.Code != tt.wantStatus || rec.Header().Get("Retry-After") != "5" {
			t.Errorf("%v: status %d Retry-After %q, want %d with Retry-After", tt.err, rec.Code, rec.Header().Get("Retry-After"), tt.wantStatus)
		}
	}
}

// blockingRuns answers Status only when its context ends, like a query no
// worker takes.
type blockingRuns struct{ fakeRuns }

func (b *blockingRuns) Status(ctx context.Context, _, _ string) (workflows.Status, error) {
	<-ctx.Done()
	return workflows.Status{}, fmt.Errorf("query status: %w", ctx.Err())
}

func TestStatusWaitsBrieflyForTheLiveQuery(t *testing.T) {
	rm := &fakeReadModel{view: heldView()}
	h := newReadModelHandler(&blockingRuns{}, rm, WithStatusTimeout(50*time.Millisecond))
	start := time.Now()
	rec, out := do(t, h, http.MethodGet, "/v1/runs/acme/inv-1", "", "")
	if rec.Code != http.StatusOK || out["source"] != SourceReadModel {
		t.Fatalf("status = %d, body %v", rec.Code, out)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("answered after %v, want about the 50ms status timeout", took)
	}

	// Without a read model the live query may take the request's timeout.
	runs := &deadlineRuns{}
	NewHandler(runs, slog.New(slog.DiscardHandler), WithStatusTimeout(time.Millisecond), WithTimeout(time.Minute), withTestKeys()).
		ServeHTTP(nopWriter{}, mustRequest(t, "/v1/runs/acme/inv-1"))
	if remaining := time.Until(runs.deadline); remaining < 50*time.Second {
		t.Errorf("live deadline in %v without a read model, want the request's minute", remaining)
	}
	// With one, the shorter status timeout.
	runs = &deadlineRuns{}
	newReadModelHandler(runs, rm, WithStatusTimeout(3*time.Second), WithTimeout(time.Minute)).
		ServeHTTP(nopWriter{}, mustRequest(t, "/v1/runs/acme/inv-1"))
	if remaining := time.Until(runs.deadline); remaining <= 0 || remaining > 3*time.Second {
		t.Errorf("live deadline in %v with a read model, want the 3s status timeout", remaining)
	}
}

type nopWriter struct{}

func (nopWriter) Header() http.Header         { return http.Header{} }
func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (nopWriter) WriteHeader(int)             {}

func mustRequest(t *testing.T, path string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+acmeKey)
	return r
}

// TestReadModelStatusHasTheLiveShape: every member of a read-model answer
// is one the live status has (plus source and as_of), so clients decode
// both with one type; and it is read from a real ledger.
func TestReadModelStatusHasTheLiveShape(t *testing.T) {
	store := ledgertest.NewStore(t)
	ctx := context.Background()
	id := "dunning/acme/inv-1"
	if _, err := store.OpenRun(ctx, ledger.Run{WorkflowID: id, Tenant: "acme", InvoiceID: "inv-1", CustomerID: "cus_1",
		Amount: mustDecimal("49.90"), Currency: "EUR", Policy: "default@3", OpenedAt: r0}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.BeginAttempt(ctx, ledger.Attempt{IdempotencyKey: id + "/attempt-1", WorkflowID: id, Number: 1, Reason: "scheduled",
		Amount: mustDecimal("49.90"), Currency: "EUR", Gateway: "simulator", StartedAt: r0}); err != nil {
		t.Fatal(err)
	}
	if err := store.FinishAttempt(ctx, id+"/attempt-1", ledger.AttemptOutcome{Status: "declined", DeclineCode: "do_not_honor",
		NetworkDeclineCode: "05", At: r0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.BeginMessage(ctx, ledger.Message{IdempotencyKey: id + "/attempt-1-failed/email", WorkflowID: id,
		Kind: "retry_failed", Channel: "email", CreatedAt: r0}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RecordServiceChange(ctx, ledger.ServiceChange{IdempotencyKey: id + "/pause", WorkflowID: id, State: "paused", CreatedAt: r0}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RecordServiceCredit(ctx, ledger.ServiceCredit{IdempotencyKey: id + "/credit", WorkflowID: id, Amount: mustDecimal("3.3"),
		Currency: "EUR", Days: 2, PeriodDays: 30, PeriodCharge: mustDecimal("49.90"), Reason: "suspended", CreatedAt: r0}); err != nil {
		t.Fatal(err)
	}
	if err := store.ReportStatus(ctx, ledger.RunStatus{WorkflowID: id, Phase: "paused", ServiceState: "paused", Attempts: 1,
		NextAction: "retry", NextAt: r0.Add(72 * time.Hour), UpdatedAt: r0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}

	rec, got := do(t, newReadModelHandler(&fakeRuns{err: context.DeadlineExceeded}, store), http.MethodGet, "/v1/runs/acme/inv-1", "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, body %s", rec.Code, rec.Body)
	}
	next, _ := got["next_step"].(map[string]any)
	credit, _ := got["credit"].(map[string]any)
	msgs, _ := got["messages"].([]any)
	if got["phase"] != "paused" || next["action"] != "retry" || next["at"] != "2026-03-04T09:00:00Z" ||
		credit["amount"] != "3.30" || len(msgs) != 1 || msgs[0].(map[string]any)["status"] != "pending" {
		t.Errorf("read-model status = %v", got)
	}

	live := workflows.Status{
		Declines: []workflows.Decline{{}}, Attempts: []workflows.AttemptRecord{{}}, Messages: []workflows.MessageRecord{{}},
		ServiceLog: []policy.ServiceChange{{}}, NextStep: &policy.Step{}, UnknownDeclineCodes: 1, Experiment: "e", Variant: "v",
		Credit: &workflows.Credit{}, Decline: &decline.Decline{}, ClosedAt: r0, ClosingReason: "r",
		Refusals: []workflows.Refusal{{}}, LateSignals: []workflows.LateSignal{{}}, Attention: &workflows.Attention{}, Holds: []workflows.Hold{{}},
	}
	want := jsonMap(t, StatusAnswer{Status: live, Source: SourceLive, AsOf: r0})
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			t.Errorf("the read-model answer has %q, which the live status has not", k)
		}
	}
}

func TestListRuns(t *testing.T) {
	store := ledgertest.NewStore(t)
	ctx := context.Background()
	for i, sd := range []struct{ invoice, customer, phase string }{
		{"inv-1", "cus_1", "paused"}, {"inv-2", "cus_2", "needs_attention"}, {"inv-3", "cus_1", "needs_attention"},
		{"inv-4", "cus_1", "recovering"}, {"inv-5", "cus_2", "needs_attention"},
	} {
		id := workflows.WorkflowID("acme", sd.invoice)
		if _, err := store.OpenRun(ctx, ledger.Run{WorkflowID: id, Tenant: "acme", InvoiceID: sd.invoice, CustomerID: sd.customer,
			Amount: mustDecimal("10.00"), Currency: "EUR", Policy: "default", OpenedAt: r0}); err != nil {
			t.Fatal(err)
		}
		rs := ledger.RunStatus{WorkflowID: id, Phase: sd.phase, ServiceState: "active", Attempts: i,
			NextAction: "retry", NextAt: r0.Add(24 * time.Hour), UpdatedAt: r0.Add(time.Duration(i+1) * time.Minute)}
		if sd.phase == "needs_attention" {
			rs.NextAction, rs.NextAt = "", time.Time{}
			rs.AttentionCause, rs.AttentionSince = "unavailable", rs.UpdatedAt
		}
		if err := store.ReportStatus(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	h := newReadModelHandler(&fakeRuns{}, store)

	list := func(t *testing.T, query string) []string {
		t.Helper()
		var got []string
		for range 10 {
			// An admin key, so another tenant's (empty) list can be asked for.
			rec, out := send(t, h, http.MethodGet, "/v1/runs?"+query, bearer(adminKey), "")
			if rec.Code != http.StatusOK {
				t.Fatalf("GET /v1/runs?%s = %d %s", query, rec.Code, rec.Body)
			}
			var page ListAnswer
			if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
				t.Fatal(err)
			}
			if _, ok := out["runs"].([]any); !ok {
				t.Fatalf("runs is not a list: %v", out)
			}
			for _, r := range page.Runs {
				got = append(got, r.InvoiceID)
				if r.StatusURL != "/v1/runs/acme/"+r.InvoiceID || r.Tenant != "acme" {
					t.Errorf("listed run = %+v", r)
				}
				if (r.Phase == workflows.PhaseNeedsAttention) != (r.Attention != nil && r.NextStep == nil) {
					t.Errorf("run %s: attention %+v next step %+v", r.InvoiceID, r.Attention, r.NextStep)
				}
			}
			if page.NextCursor == "" {
				return got
			}
			query = setParam(query, "cursor", page.NextCursor)
		}
		t.Fatalf("listing %q did not end", query)
		return nil
	}
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"tenant=acme", []string{"inv-1", "inv-2", "inv-3", "inv-4", "inv-5"}},
		{"tenant=acme&limit=2", []string{"inv-1", "inv-2", "inv-3", "inv-4", "inv-5"}},
		{"tenant=acme&limit=1&phase=needs_attention", []string{"inv-2", "inv-3", "inv-5"}},
		{"tenant=acme&customer=cus_1&limit=2", []string{"inv-1", "inv-3", "inv-4"}},
		{"tenant=acme&customer=cus_2&phase=needs_attention", []string{"inv-2", "inv-5"}},
		{"tenant=acme&phase=cancelled", nil},
		{"tenant=globex", nil},
	} {
		t.Run(tt.query, func(t *testing.T) {
			if got := list(t, tt.query); !slices.Equal(got, tt.want) {
				t.Errorf("listed %v, want %v", got, tt.want)
			}
		})
	}

	// An empty page is an empty list, not null.
	rec, _ := send(t, h, http.MethodGet, "/v1/runs?tenant=globex", bearer(adminKey), "")
	if !strings.Contains(rec.Body.String(), `"runs":[]`) {
		t.Errorf("empty listing = %s", rec.Body)
	}
}

func setParam(query, name, value string) string {
	q, _ := url.ParseQuery(query)
	q.Set(name, value)
	return q.Encode()
}

func TestListRunsValidation(t *testing.T) {
	tests := []struct {
		query      string
		wantStatus int
		wantParams []string
	}{
		{"", 422, []string{"tenant"}},
		{"phase=paused", 422, []string{"tenant"}},
		{"tenant=ac%20me", 422, []string{"tenant"}},
		{"tenant=acme&customer=" + strings.Repeat("c", 129), 422, []string{"customer"}},
		{"tenant=acme&phase=sleeping", 422, []string{"phase"}},
		{"tenant=acme&limit=0", 422, []string{"limit"}},
		{"tenant=acme&limit=501", 422, []string{"limit"}},
		{"tenant=acme&limit=ten", 400, []string{"limit"}},
		{"tenant=acme&cursor=nope!", 400, []string{"cursor"}},
		{"tenant=acme&customer_id=cus_1", 400, []string{"customer_id"}},
		{"tenant=acme&tenant=globex", 400, []string{"tenant"}},
		// Syntax first: a request with both kinds of problems is a 400.
		{"limit=x&phase=sleeping", 400, []string{"limit"}},
		{"phase=sleeping&limit=900", 422, []string{"limit", "phase", "tenant"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			rm := &fakeReadModel{}
			rec, out := do(t, newReadModelHandler(&fakeRuns{}, rm), http.MethodGet, "/v1/runs?"+tt.query, "", "")
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d (%s)", rec.Code, tt.wantStatus, rec.Body)
			}
			var params []string
			errs, _ := out["errors"].([]any)
			for _, e := range errs {
				params = append(params, e.(map[string]any)["parameter"].(string))
			}
			if !slices.Equal(params, tt.wantParams) {
				t.Errorf("parameters named = %v, want %v", params, tt.wantParams)
			}
			if len(rm.queries) != 0 {
				t.Errorf("the read model was asked: %+v", rm.queries)
			}
		})
	}

	// Defaults reach the ledger as given.
	rm := &fakeReadModel{}
	if rec, _ := do(t, newReadModelHandler(&fakeRuns{}, rm), http.MethodGet, "/v1/runs?tenant=acme", "", ""); rec.Code != http.StatusOK ||
		len(rm.queries) != 1 || rm.queries[0] != (ledger.RunStatusQuery{Tenant: "acme", Limit: 50}) {
		t.Errorf("status %d, queries %+v", rec.Code, rm.queries)
	}
	// Without the ledger the list is not available; other methods are 405.
	if rec, _ := do(t, newTestHandler(&fakeRuns{}), http.MethodGet, "/v1/runs?tenant=acme", "", ""); rec.Code != http.StatusNotImplemented {
		t.Errorf("list without a read model = %d, want 501", rec.Code)
	}
	if rec, _ := do(t, newReadModelHandler(&fakeRuns{}, rm), http.MethodPost, "/v1/runs?tenant=acme", "", ""); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/runs = %d, want 405", rec.Code)
	}
	// The ledger timing out is a 504 the caller may retry.
	slow := &fakeReadModel{err: fmt.Errorf("ledger: %w", context.DeadlineExceeded)}
	if rec, _ := do(t, newReadModelHandler(&fakeRuns{}, slow), http.MethodGet, "/v1/runs?tenant=acme", "", ""); rec.Code != http.StatusGatewayTimeout ||
		rec.Header().Get("Retry-After") == "" {
		t.Errorf("list with the ledger timing out = %d", rec.Code)
	}
}

func mustDecimal(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// visibleRuns answers the live query with a timeout and the visibility
// store with a parked run's search attributes.
type visibleRuns struct {
	Runs
	vis starter.Visibility
}

func (v visibleRuns) Visibility(context.Context, string, string) (starter.Visibility, error) {
	return v.vis, nil
}

// Without a worker, the run's phase and next step come from the search
// attributes it set when it parked; the rest from the ledger.
func TestReadModelStatusTakesPhaseAndNextStepFromVisibility(t *testing.T) {
	view := heldView()
	view.Status.Phase, view.Status.AttentionCause = "recovering", ""
	next := r0.Add(72 * time.Hour)
	runs := visibleRuns{Runs: &fakeRuns{err: context.DeadlineExceeded},
		vis: starter.Visibility{Running: true, Phase: workflows.PhaseActionRequired, NextAction: "notify", NextAt: next}}
	rec, _ := do(t, newReadModelHandler(runs, &fakeReadModel{view: view}), http.MethodGet, "/v1/runs/acme/inv-1", "", "")
	var got StatusAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Source != SourceReadModel || got.Phase != workflows.PhaseActionRequired || got.NextStep == nil ||
		got.NextStep.Action != policy.ActionNotify || !got.NextStep.At.Equal(next) || len(got.Attempts) != 1 {
		t.Errorf("answer = source %s, phase %s, next %+v, %d attempts", got.Source, got.Phase, got.NextStep, len(got.Attempts))
	}
}

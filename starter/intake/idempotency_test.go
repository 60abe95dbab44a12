package intake

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/api/serviceerror"

	"github.com/dunningco/dunning/idempotency"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/workflows"
)

// post sends a POST with a key and, unless idemKey is "", an
// Idempotency-Key.
func post(t *testing.T, h http.Handler, path, key, idemKey, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Authorization", bearer(key))
	if idemKey != "" {
		req.Header.Set(HeaderIdempotencyKey, idemKey)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func newIdempotencyStore(t *testing.T) *idempotency.Store {
	t.Helper()
	return idempotency.NewStore(ledgertest.NewStore(t).Pool())
}

// TestIdempotencyKey: the same key and request get the first answer and
// change nothing; the same key with another request, or while the first
// runs, is refused; answers that say "try again" are not kept.
func TestIdempotencyKey(t *testing.T) {
	store := newIdempotencyStore(t)
	runs := &fakeRuns{result: starter.StartResult{WorkflowID: "dunning/acme/inv-1001", RunID: "run-1"}}
	h := NewHandler(runs, slog.New(slog.DiscardHandler), withTestKeys(), WithIdempotency(store))
	body := validJSON(t)

	first := post(t, h, "/v1/declines", acmeKey, "k-1", body)
	if first.Code != http.StatusAccepted || first.Header().Get(HeaderReplayed) != "" {
		t.Fatalf("first = %d %s", first.Code, first.Body)
	}
	tests := []struct {
		name         string
		key, idem    string
		path, body   string
		wantStatus   int
		wantType     string
		wantReplayed bool
	}{
		{"same key, same request", acmeKey, "k-1", "/v1/declines", body, http.StatusAccepted, "", true},
		{"quoted as the draft writes it", acmeKey, `"k-1"`, "/v1/declines", body, http.StatusAccepted, "", true},
		{"same key, another body", acmeKey, "k-1", "/v1/declines", reportWith(t, func(m map[string]any) { m["amount"] = "50.00" }), http.StatusUnprocessableEntity, ProblemIdempotencyMismatch, false},
		{"same key, another endpoint", acmeKey, "k-1", "/v1/runs/acme/inv-1001/paid", body, http.StatusUnprocessableEntity, ProblemIdempotencyMismatch, false},
		{"malformed key", acmeKey, strings.Repeat("k", 256), "/v1/declines", body, http.StatusBadRequest, ProblemMalformed, false},
		{"key with a space", acmeKey, "k 1", "/v1/declines", body, http.StatusBadRequest, ProblemMalformed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(t, h, tt.path, tt.key, tt.idem, tt.body)
			out := checkAnswer(t, rec)
			if rec.Code != tt.wantStatus || (tt.wantType != "" && out["type"] != tt.wantType) {
				t.Fatalf("answer = %d %v, want %d %s", rec.Code, out, tt.wantStatus, tt.wantType)
			}
			if got := rec.Header().Get(HeaderReplayed) == "true"; got != tt.wantReplayed {
				t.Errorf("%s = %q", HeaderReplayed, rec.Header().Get(HeaderReplayed))
			}
			if tt.wantReplayed && (rec.Body.String() != first.Body.String() || rec.Header().Get("Location") != first.Header().Get("Location") ||
				rec.Header().Get("Content-Type") != first.Header().Get("Content-Type")) {
				t.Errorf("replay = %s %v, first %s %v", rec.Body, rec.Header(), first.Body, first.Header())
			}
		})
	}
	if calls := runs.Calls(); len(calls) != 1 {
		t.Errorf("runs called %d times, want once: %+v", len(calls), calls)
	}

	// Keys are the tenant's own: another tenant's same key is another
	// request.
	other := reportWith(t, func(m map[string]any) { m["tenant"] = "globex" })
	if rec := post(t, h, "/v1/declines", globexKey, "k-1", other); rec.Code != http.StatusAccepted || rec.Header().Get(HeaderReplayed) != "" {
		t.Errorf("globex with acme's key = %d %v", rec.Code, rec.Header())
	}
	// Without the header nothing is remembered.
	if rec := post(t, h, "/v1/declines", acmeKey, "", body); rec.Code != http.StatusAccepted || rec.Header().Get(HeaderReplayed) != "" {
		t.Errorf("without a key = %d %v", rec.Code, rec.Header())
	}
	if calls := runs.Calls(); len(calls) != 3 {
		t.Errorf("runs called %d times, want 3", len(calls))
	}
}

// A refusal the run gave is the request's answer and is replayed; an
// outage is not, so the retry runs again.
func TestIdempotencyKeepsOutcomesNotOutages(t *testing.T) {
	store := newIdempotencyStore(t)
	runs := &fakeRuns{err: starter.ErrRunClosed}
	h := NewHandler(runs, slog.New(slog.DiscardHandler), withTestKeys(), WithIdempotency(store))
	if rec := post(t, h, "/v1/runs/acme/inv-1/cancel", acmeKey, "c-1", `{"reason":"x"}`); rec.Code != http.StatusConflict {
		t.Fatalf("cancel of a closed run = %d %s", rec.Code, rec.Body)
	}
	runs.err = nil
	if rec := post(t, h, "/v1/runs/acme/inv-1/cancel", acmeKey, "c-1", `{"reason":"x"}`); rec.Code != http.StatusConflict || rec.Header().Get(HeaderReplayed) != "true" {
		t.Errorf("replayed refusal = %d %v", rec.Code, rec.Header())
	}

	runs.err = serviceerror.NewUnavailable("temporal down")
	rec := post(t, h, "/v1/runs/acme/inv-1/paid", acmeKey, "p-1", "")
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("paid while Temporal is down = %d %s", rec.Code, rec.Body)
	}
	runs.err = nil
	rec = post(t, h, "/v1/runs/acme/inv-1/paid", acmeKey, "p-1", "")
	if rec.Code != http.StatusAccepted || rec.Header().Get(HeaderReplayed) != "" {
		t.Errorf("retry after the outage = %d %v", rec.Code, rec.Header())
	}
	if calls := runs.Calls(); len(calls) != 3 {
		t.Errorf("calls = %+v, want cancel, paid, paid", calls)
	}
}

// gatedRuns blocks Expedite until released, like a charge in flight.
type gatedRuns struct {
	fakeRuns
	entered chan struct{}
	release chan struct{}
}

func (g *gatedRuns) Expedite(ctx context.Context, tenant, invoice string, req workflows.ExpediteRequest) (workflows.AttemptRecord, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.fakeRuns.Expedite(ctx, tenant, invoice, req)
}

func TestIdempotencyKeyInProgress(t *testing.T) {
	store := newIdempotencyStore(t)
	runs := &gatedRuns{fakeRuns: fakeRuns{record: workflows.AttemptRecord{Number: 2}}, entered: make(chan struct{}, 1), release: make(chan struct{})}
	h := NewHandler(runs, slog.New(slog.DiscardHandler), withTestKeys(), WithIdempotency(store))

	var wg sync.WaitGroup
	var first *httptest.ResponseRecorder
	wg.Go(func() {
		first = post(t, h, "/v1/runs/acme/inv-1/expedite", acmeKey, "e-1", `{"reason":"customer called"}`)
	})
	<-runs.entered

	rec := post(t, h, "/v1/runs/acme/inv-1/expedite", acmeKey, "e-1", `{"reason":"customer called"}`)
	out := checkAnswer(t, rec)
	if rec.Code != http.StatusConflict || out["type"] != ProblemIdempotencyInProgress || rec.Header().Get("Retry-After") == "" {
		t.Errorf("while the first runs = %d %v %v", rec.Code, rec.Header(), out)
	}
	close(runs.release)
	wg.Wait()
	if first.Code != http.StatusOK {
		t.Fatalf("first = %d %s", first.Code, first.Body)
	}
	rec = post(t, h, "/v1/runs/acme/inv-1/expedite", acmeKey, "e-1", `{"reason":"customer called"}`)
	if rec.Code != http.StatusOK || rec.Body.String() != first.Body.String() || rec.Header().Get(HeaderReplayed) != "true" {
		t.Errorf("after it finished = %d %s", rec.Code, rec.Body)
	}
	if calls := runs.Calls(); len(calls) != 1 {
		t.Errorf("expedite ran %d times, want once", len(calls))
	}
}

package integration

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/starter/intake"
	"github.com/dunningco/dunning/workflows"
)

// testStatusWithoutWorker asks a real Temporal server for runs that no
// worker can answer for: they are started on a task queue nobody polls (the
// platform's worker is shared by the parallel scenarios, so it cannot be
// stopped). Their workflows never run, so OpenRun never writes the ledger;
// the ledger is seeded for one of them as the worker would have left it.
// The status answers from the read model for that run, and 503/504 with
// Retry-After for the other; the list finds the seeded run; a resume is
// accepted by the server; and a run whose workflow was terminated can be
// started again for its invoice.
func (p *platform) testStatusWithoutWorker(t *testing.T) {
	const tenant = "acme-noworker" // its own tenant, so listings are exact
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nobody := starter.NewClient(p.temporal, starter.Options{TaskQueue: "nobody"})
	api := httptest.NewServer(intake.NewHandler(nobody, slog.New(slog.DiscardHandler),
		intake.WithReadModel(p.store), intake.WithStatusTimeout(time.Second), intake.WithAuthenticator(p.keys)))
	key := issueKey(t, p.keys, tenant)
	defer api.Close()

	start := func(invoice string) starter.StartResult {
		t.Helper()
		res, err := nobody.Start(ctx, workflows.Input{
			Tenant: tenant, InvoiceID: invoice, Customer: workflows.Customer{ID: "cus-nw", Email: "ada@example.com"},
			Amount: "49.90", Currency: "EUR", PaymentMethod: "sim:succeed", PolicyName: "default",
			Decline: workflows.Decline{Gateway: "simulator", Code: "insufficient_funds"},
		})
		if err != nil {
			t.Fatalf("start %s: %v", invoice, err)
		}
		t.Cleanup(func() {
			_ = p.temporal.TerminateWorkflow(context.Background(), res.WorkflowID, "", "test over")
		})
		return res
	}
	get := func(path string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, api.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, raw)
		}
		return resp, out
	}

	seeded := start("inv-nw-seeded")
	since := time.Now().UTC().Truncate(time.Second)
	if _, err := p.store.OpenRun(ctx, ledger.Run{WorkflowID: seeded.WorkflowID, Tenant: tenant, InvoiceID: "inv-nw-seeded",
		CustomerID: "cus-nw", Amount: decimal.RequireFromString("49.90"), Currency: "EUR", Policy: "default", OpenedAt: since}); err != nil {
		t.Fatal(err)
	}
	if err := p.store.ReportStatus(ctx, ledger.RunStatus{WorkflowID: seeded.WorkflowID, Phase: "needs_attention", ServiceState: "active",
		AttentionCause: workflows.CauseUnavailable, AttentionDetail: "the gateway did not answer", AttentionSince: since,
		UpdatedAt: since}); err != nil {
		t.Fatal(err)
	}

	began := time.Now()
	resp, st := get("/v1/runs/" + tenant + "/inv-nw-seeded")
	attention, _ := st["attention"].(map[string]any)
	if resp.StatusCode != http.StatusOK || st["source"] != intake.SourceReadModel || st["phase"] != "needs_attention" ||
		attention["cause"] != workflows.CauseUnavailable || st["as_of"] != since.Format(time.RFC3339) || st["amount"] != "49.90" {
		t.Fatalf("status of the seeded run = %d %v", resp.StatusCode, st)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("the read-model answer took %v", took)
	}

	// Started, never opened by a worker: neither source knows it, and the
	// answer says to come back rather than that it does not exist.
	start("inv-nw-unknown")
	resp, problem := get("/v1/runs/" + tenant + "/inv-nw-unknown")
	if (resp.StatusCode != http.StatusGatewayTimeout && resp.StatusCode != http.StatusServiceUnavailable) ||
		resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != intake.ProblemContentType {
		t.Errorf("status of the unseeded run = %d (Retry-After %q) %v", resp.StatusCode, resp.Header.Get("Retry-After"), problem)
	}

	resp, list := get("/v1/runs?tenant=" + tenant + "&phase=needs_attention")
	runs, _ := list["runs"].([]any)
	if resp.StatusCode != http.StatusOK || len(runs) != 1 || runs[0].(map[string]any)["invoice_id"] != "inv-nw-seeded" {
		t.Errorf("list = %d %v", resp.StatusCode, list)
	}

	// The server takes a resume without a worker; the run reads it when a
	// worker comes back.
	req, _ := http.NewRequest(http.MethodPost, api.URL+"/v1/runs/"+tenant+"/inv-nw-seeded/resume",
		strings.NewReader(`{"reason":"gateway back","by":"ops"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Errorf("resume = %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// A run whose workflow did not end by itself (here: terminated) may be
	// started again for its invoice: the reuse rule lets failed runs retry.
	if err := p.temporal.TerminateWorkflow(ctx, seeded.WorkflowID, "", "simulating a failed run"); err != nil {
		t.Fatal(err)
	}
	again := start("inv-nw-seeded")
	if again.RunID == seeded.RunID || again.WorkflowID != seeded.WorkflowID {
		t.Errorf("second start = %+v, want a new run of %+v", again, seeded)
	}
}

package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/client"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// seedExplained writes a recovered run's ledger rows as the activities
// would: the intake decline, a retry decision with its facts and budget,
// a declined charge, a message, a refused expedite, a card-update charge
// that succeeded, and the close.
func seedExplained(t *testing.T, store *ledger.Store) {
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	id := "dunning/acme/inv-golden"
	if _, err := store.OpenRun(ctx, ledger.Run{WorkflowID: id, Tenant: "acme", InvoiceID: "inv-golden", CustomerID: "cus-42",
		Amount: decimal.RequireFromString("49.90"), Currency: "EUR", Policy: "default@1", Status: "open", OpenedAt: at}); err != nil {
		t.Fatal(err)
	}
	facts := []byte(`{"decline_reason":"insufficient_funds","decline_category":"soft","time_zone":"Europe/Warsaw","planned":"2026-11-30T08:00:00Z",` +
		`"moves":[{"rule":"payday rule (the 1st, the 15th, the last business day or a Friday)","from":"2026-11-30T08:00:00Z","to":"2026-12-01T08:00:00Z"}],"slot":"1 of 3"}`)
	if err := store.RecordDecisions(ctx, []ledger.Decision{
		{Key: id + "/journal-1", WorkflowID: id, At: at, Kind: ledger.DecisionInput, Action: "decline",
			Words: "decline reported at intake: insufficient_funds via simulator; source api"},
		{Key: id + "/journal-2", WorkflowID: id, At: at, Kind: ledger.DecisionDecision, Action: "notify",
			Words: "send payment_failed by email: first notice of the failed payment"},
	}); err != nil {
		t.Fatal(err)
	}
	retry := at.Add(4 * 24 * time.Hour)
	if _, err := store.ReserveCardAttempt(ctx, ledger.Reservation{IdempotencyKey: id + "/attempt-1", CardKey: "fp:fp-1", Network: "visa",
		Merchant: "acme", AmountMinor: 4990, Currency: "EUR", WorkflowID: id, At: retry,
		Decisions: []ledger.Decision{{Key: id + "/journal-3", WorkflowID: id, At: retry, Kind: ledger.DecisionDecision, Action: "retry",
			Words:   "scheduled retry 1 of 3, 72h0m0s after the decline: insufficient funds (soft decline); payday rule (the 1st, the 15th, the last business day or a Friday) moved it from 2026-11-30 09:00:00 Europe/Warsaw to 2026-12-01 09:00:00 Europe/Warsaw; at 2026-12-01 09:00:00 Europe/Warsaw",
			CardKey: "fp:fp-1", AttemptKey: id + "/attempt-1", Facts: facts}},
	}, ledger.DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	if _, err := store.BeginAttempt(ctx, ledger.Attempt{IdempotencyKey: id + "/attempt-1", WorkflowID: id, Number: 1, Reason: "scheduled",
		Amount: decimal.RequireFromString("49.90"), Currency: "EUR", Gateway: "simulator", PaymentMethod: "pm_1", StartedAt: retry}); err != nil {
		t.Fatal(err)
	}
	if err := store.FinishAttempt(ctx, id+"/attempt-1", ledger.AttemptOutcome{Status: "declined", DeclineCode: "insufficient_funds",
		NetworkDeclineCode: "51", GatewayRef: "sim_ch_1", At: retry.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	msg := at.Add(time.Second)
	if _, err := store.BeginMessage(ctx, ledger.Message{IdempotencyKey: id + "/payment-failed/email", WorkflowID: id, Kind: "payment_failed",
		Channel: "email", Recipient: "a@example.com", Subject: "s", Body: "b", CreatedAt: msg}); err != nil {
		t.Fatal(err)
	}
	if err := store.FinishMessage(ctx, id+"/payment-failed/email", "dry-run", "dry-run", "", "no email provider configured", msg); err != nil {
		t.Fatal(err)
	}
	update := retry.Add(2 * time.Hour)
	if err := store.RecordDecisions(ctx, []ledger.Decision{
		{Key: id + "/journal-4", WorkflowID: id, At: update, Kind: ledger.DecisionInput, Action: "payment-method-updated",
			Words: "payment method updated: a new card (visa)"},
		{Key: id + "/journal-5", WorkflowID: id, At: update, Kind: ledger.DecisionInput, Action: "expedite", By: "support",
			Words: "expedite asked: customer called"},
		{Key: id + "/journal-6", WorkflowID: id, At: update, Kind: ledger.DecisionRefusal, Action: "expedite", By: "support",
			Rule:  "policy cap: 3 of 3 scheduled and expedited attempts used",
			Words: "expedite attempt refused: policy cap: 3 of 3 scheduled and expedited attempts used", CardKey: "fp:fp-2"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := store.CloseRun(ctx, id, "recovered", "payment recovered", update.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

// explain's output for people and as JSON, against golden files (rewrite
// them with go test -run TestExplainGolden -update ./starter/cli/).
func TestExplainGolden(t *testing.T) {
	dbURL := ledgertest.NewDatabaseURL(t)
	store, err := ledger.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	seedExplained(t, store)
	env := map[string]string{"DATABASE_URL": dbURL}
	for _, tt := range []struct{ name, golden string }{
		{"table", "explain.golden"},
		{"json", "explain.json.golden"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			a := &app{stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] },
				dial: func(context.Context) (client.Client, error) { return nil, errors.New("no Temporal in this test") }}
			code := a.run(context.Background(), []string{"explain", "-tenant", "acme", "-invoice", "inv-golden", "-live=false", "-o", tt.name})
			if code != ExitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(stdout.Bytes(), want) {
				t.Fatalf("output differs from %s:\n%s", path, stdout.String())
			}
		})
	}
}

// Bad command lines are refused before anything is read.
func TestExplainUsage(t *testing.T) {
	for _, args := range [][]string{
		{"explain", "-tenant", "acme"},
		{"explain", "-tenant", "acme", "-invoice", "inv-1", "-o", "yaml"},
		{"audit"},
		{"audit", "export", "-tenant", "acme", "-format", "xml"},
		{"audit", "compliance", "-tenant", "acme", "-from", "2026-10-01", "-to", "2026-11-30"},
		{"audit", "export", "-tenant", "acme", "-from", "yesterday"},
	} {
		var stdout, stderr bytes.Buffer
		a := &app{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" },
			dial: func(context.Context) (client.Client, error) { return nil, errors.New("not dialled") }}
		if code := a.run(context.Background(), args); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, ExitUsage, stderr.String())
		}
	}
}

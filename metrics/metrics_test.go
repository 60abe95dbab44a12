package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/metrics"
	"github.com/dunningco/dunning/metrics/scrape"
)

var t0 = time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC)

// TestLedgerFactsCountOnce repeats every write the way a retried activity
// does and checks each fact is counted once, with the labels it had.
func TestLedgerFactsCountOnce(t *testing.T) {
	ctx := context.Background()
	store := ledgertest.NewStore(t)
	m := metrics.New()
	store.SetObserver(m)

	const wf = "dunning/acme/inv-1"
	if _, err := store.OpenRun(ctx, ledger.Run{WorkflowID: wf, Tenant: "acme", InvoiceID: "inv-1", CustomerID: "cus-1",
		Amount: decimal.RequireFromString("49.90"), Currency: "EUR", Policy: "default@3#0123456789ab", OpenedAt: t0}); err != nil {
		t.Fatal(err)
	}
	lim := ledger.DefaultLimits()
	for n, outcome := range []ledger.AttemptOutcome{
		{Status: "declined", DeclineCode: "insufficient_funds", NetworkDeclineCode: "51"},
		{Status: "succeeded", GatewayRef: "ch_1"},
	} {
		key := wf + "/attempt-" + string(rune('1'+n))
		at := t0.Add(time.Duration(n) * time.Hour)
		if _, err := store.ReserveCardAttempt(ctx, ledger.Reservation{IdempotencyKey: key, CardKey: "fp:card-1", Network: "visa",
			Merchant: "acme", AmountMinor: 4990, Currency: "EUR", WorkflowID: wf, At: at}, lim); err != nil {
			t.Fatal(err)
		}
		if _, err := store.BeginAttempt(ctx, ledger.Attempt{IdempotencyKey: key, WorkflowID: wf, Number: n + 1, Reason: "scheduled",
			Amount: decimal.RequireFromString("49.90"), Currency: "EUR", Gateway: "stripe", StartedAt: at}); err != nil {
			t.Fatal(err)
		}
		outcome.At = at
		for range 3 { // the activity's retries finish it again
			if err := store.FinishAttempt(ctx, key, outcome); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 2 {
		if _, err := store.BeginMessage(ctx, ledger.Message{IdempotencyKey: wf + "/msg-1", WorkflowID: wf, Kind: "payment_failed", Channel: "email", CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if err := store.FinishMessage(ctx, wf+"/msg-1", "sent", "sendgrid", "ref", "", t0); err != nil {
			t.Fatal(err)
		}
	}
	// A card block, then two refused reservations under one key: one refusal.
	if err := store.BlockCard(ctx, "fp:card-2", "mastercard", "mastercard advice 03", "src-1", t0.Add(30*24*time.Hour), t0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		v, err := store.ReserveCardAttempt(ctx, ledger.Reservation{IdempotencyKey: wf + "/attempt-9", CardKey: "fp:card-2", Network: "mastercard",
			Merchant: "acme", AmountMinor: 4990, Currency: "EUR", WorkflowID: wf, At: t0.Add(time.Hour)}, lim)
		if err != nil || v.Allowed {
			t.Fatalf("reservation on a blocked card = %+v, %v; want refused", v, err)
		}
	}
	for range 2 {
		if err := store.CloseRun(ctx, wf, "recovered", "paid", t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}

	s := scrapeHandler(t, m.Handler())
	for _, tt := range []struct {
		series string
		want   float64
	}{
		{`dunning_attempts_total{category="soft",network="visa",outcome="declined",reason="scheduled"}`, 1},
		{`dunning_attempts_total{category="none",network="visa",outcome="succeeded",reason="scheduled"}`, 1},
		{`dunning_messages_total{channel="email",kind="payment_failed",status="sent"}`, 1},
		{`dunning_card_refusals_total{network="mastercard",rule="card_blocked"}`, 1},
		{`dunning_runs_closed_total{outcome="recovered",policy="default@3",variant="none"}`, 1},
		{`dunning_recovered_amount_total{currency="EUR"}`, 49.9},
	} {
		if got, ok := s[tt.series]; !ok || got != tt.want {
			t.Errorf("%s = %v (present %v), want %v", tt.series, got, ok, tt.want)
		}
	}
	if n := s.Sum("dunning_attempts_total"); n != 2 {
		t.Errorf("attempts counted %v times, want 2", n)
	}
}

// TestRecoveredAmountIsExact adds a currency's amounts as decimals: a float
// sum of 0.10 a thousand times is not 100.
func TestRecoveredAmountIsExact(t *testing.T) {
	m := metrics.New()
	for range 1000 {
		m.RunClosed(context.Background(), ledger.Run{Status: "recovered", Amount: decimal.RequireFromString("0.10"), Currency: "EUR", Policy: "p@1"})
	}
	m.RunClosed(context.Background(), ledger.Run{Status: "exhausted", Amount: decimal.RequireFromString("5.00"), Currency: "EUR", Policy: "p@1"})
	m.RunClosed(context.Background(), ledger.Run{Status: "recovered", Amount: decimal.RequireFromString("1500"), Currency: "JPY", Policy: "p@1"})
	s := scrapeHandler(t, m.Handler())
	if got := s[`dunning_recovered_amount_total{currency="EUR"}`]; got != 100 {
		t.Errorf("EUR recovered = %v, want 100", got)
	}
	if got := s[`dunning_recovered_amount_total{currency="JPY"}`]; got != 1500 {
		t.Errorf("JPY recovered = %v, want 1500", got)
	}
	if got := s[`dunning_runs_closed_total{outcome="exhausted",policy="p@1",variant="none"}`]; got != 1 {
		t.Errorf("exhausted closes = %v, want 1", got)
	}
}

func TestLabels(t *testing.T) {
	for _, tt := range []struct{ fn, in, want string }{
		{"code", "insufficient_funds", "insufficient_funds"},
		{"code", "Insufficient_Funds ", "insufficient_funds"},
		{"code", "51", "51"},
		{"code", "cus_123_made_up", "other"},
		{"code", "", "none"},
		{"rule", "visa: 15 reattempts per card in 30 days", "visa_reattempts"},
		{"rule", "mastercard: 10 declines per card in 24h", "mastercard_daily_declines"},
		{"rule", "mastercard: 35 declines per card, merchant and amount in 30 days", "mastercard_same_amount"},
		{"rule", "mastercard: blocked until 2026-04-04T08:00:00Z (mastercard advice 03)", "card_blocked"},
		{"rule", "something new", "other"},
		{"policy", "default@3#0123456789ab", "default@3"},
		{"policy", "", "unknown"},
	} {
		var got string
		switch tt.fn {
		case "code":
			got = metrics.Code(tt.in)
		case "rule":
			got = metrics.RuleName(tt.in)
		case "policy":
			got = metrics.PolicyName(tt.in)
		}
		if got != tt.want {
			t.Errorf("%s(%q) = %q, want %q", tt.fn, tt.in, got, tt.want)
		}
	}
}

func TestDeclineReceivedMapsUnknownCodes(t *testing.T) {
	m := metrics.New()
	m.DeclineReceived(decline.Input{Gateway: "stripe", DeclineCode: "stolen_card"})
	m.DeclineReceived(decline.Input{Gateway: "stripe", DeclineCode: "made_up_code_42"})
	s := scrapeHandler(t, m.Handler())
	if s[`dunning_declines_received_total{category="hard",code="stolen_card",gateway="stripe"}`] != 1 ||
		s[`dunning_declines_received_total{category="unknown",code="other",gateway="stripe"}`] != 1 {
		t.Errorf("declines = %v", s)
	}
}

func TestPhaseGauge(t *testing.T) {
	m := metrics.New()
	n := int64(3)
	if err := m.WatchPhase(metrics.PhaseNeedsAttention, func(context.Context, string) (int64, error) { return n, nil }); err != nil {
		t.Fatal(err)
	}
	if got := scrapeHandler(t, m.Handler())["dunning_runs_needs_attention"]; got != 3 {
		t.Errorf("gauge = %v, want 3", got)
	}
}

func scrapeHandler(t *testing.T, h http.Handler) scrape.Samples {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	s, err := scrape.Get(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(s.Names(), ","), "go_goroutines") {
		t.Errorf("runtime metrics missing: %v", s.Names())
	}
	return s
}

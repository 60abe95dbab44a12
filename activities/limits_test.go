package activities_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

const month = 30 * 24 * time.Hour

func reserveInput(key, card, network string, at time.Time) activities.ReserveInput {
	return activities.ReserveInput{
		WorkflowID: testWorkflowID, IdempotencyKey: key, CardKey: card, Network: network,
		Merchant: "acme", Amount: "49.90", Currency: "EUR", At: at,
	}
}

func mustReserve(t *testing.T, l *activities.NetworkLimits, in activities.ReserveInput) activities.ReserveOutput {
	t.Helper()
	out, err := l.Reserve(ctxFor(t), in)
	if err != nil {
		t.Fatalf("Reserve(%s): %v", in.IdempotencyKey, err)
	}
	return out
}

func TestReserveAndSettle(t *testing.T) {
	store := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	twice := ledger.DefaultLimits()
	twice.VisaMaxReattempts = 2

	tests := []struct {
		name    string
		limits  ledger.Limits
		network string
		charges int // reserved and declined before the last reservation
		want    activities.ReserveOutput
	}{
		{"first visa charge", ledger.Limits{}, "visa", 0, activities.ReserveOutput{Allowed: true}},
		{"16th visa charge with the default limits", ledger.Limits{}, "visa", 15, activities.ReserveOutput{
			Rule: "visa: 15 reattempts per card in 30 days", NotBefore: t0.Add(month),
		}},
		{"3rd visa charge with the limit at 2", twice, "visa", 2, activities.ReserveOutput{
			Rule: "visa: 2 reattempts per card in 30 days", NotBefore: t0.Add(month),
		}},
		{"11th mastercard decline in a day", ledger.Limits{}, "mastercard", 10, activities.ReserveOutput{
			Rule: "mastercard: 10 declines per card in 24 hours", NotBefore: t0.Add(24 * time.Hour),
		}},
		{"another network", ledger.Limits{}, "amex", 40, activities.ReserveOutput{Allowed: true}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limits := &activities.NetworkLimits{Ledger: store, Limits: tt.limits}
			card := fmt.Sprintf("card_%02d", i)
			for n := range tt.charges {
				at := t0.Add(time.Duration(n) * time.Minute)
				in := reserveInput(fmt.Sprintf("%s/attempt-%d", card, n+1), card, tt.network, at)
				if out := mustReserve(t, limits, in); !out.Allowed {
					t.Fatalf("charge %d denied: %+v", n+1, out)
				}
				err := limits.Settle(ctx, activities.SettleInput{
					IdempotencyKey: in.IdempotencyKey, CardKey: card, Network: tt.network, Outcome: "declined", At: at.Add(time.Second),
				})
				if err != nil {
					t.Fatalf("Settle %d: %v", n+1, err)
				}
			}
			in := reserveInput(card+"/last", card, tt.network, t0.Add(time.Hour))
			if got := mustReserve(t, limits, in); got != tt.want {
				t.Errorf("Reserve = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSettleMerchantAdviceCode03BlocksCard(t *testing.T) {
	store := ledgertest.NewStore(t)
	limits := &activities.NetworkLimits{Ledger: store}
	const card = "card_mac03"
	first := reserveInput("dunning/acme/inv-1/attempt-1", card, "mastercard", t0)
	if out := mustReserve(t, limits, first); !out.Allowed {
		t.Fatalf("first charge denied: %+v", out)
	}
	settle := activities.SettleInput{
		IdempotencyKey: first.IdempotencyKey, CardKey: card, Network: "mastercard", Outcome: "declined",
		MerchantAdviceCode: "03", NeverRetryFor: month, At: t0.Add(time.Second),
	}
	// The second call is an activity retry: nothing changes.
	for range 2 {
		if err := limits.Settle(ctxFor(t), settle); err != nil {
			t.Fatalf("Settle: %v", err)
		}
	}
	until := t0.Add(time.Second + month)
	blocked := activities.ReserveOutput{
		Rule:      "mastercard: blocked until 2026-04-04T08:00:01Z (mastercard advice 03)",
		NotBefore: until,
	}

	tests := []struct {
		name string
		in   activities.ReserveInput
		want activities.ReserveOutput
	}{
		{"the same run the next day", reserveInput("dunning/acme/inv-1/attempt-2", card, "mastercard", t0.Add(24*time.Hour)), blocked},
		{"another run on the same card", func() activities.ReserveInput {
			in := reserveInput("dunning/acme/inv-2/attempt-1", card, "mastercard", t0.Add(48*time.Hour))
			in.WorkflowID = "dunning/acme/inv-2"
			return in
		}(), blocked},
		{"a second before the block ends", reserveInput("dunning/acme/inv-1/attempt-3", card, "mastercard", until.Add(-time.Second)), blocked},
		{"another card", reserveInput("dunning/acme/inv-1/attempt-4", "card_other", "mastercard", t0.Add(24*time.Hour)), activities.ReserveOutput{Allowed: true}},
		{"when the block ends", reserveInput("dunning/acme/inv-1/attempt-5", card, "mastercard", until), activities.ReserveOutput{Allowed: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustReserve(t, limits, tt.in); got != tt.want {
				t.Errorf("Reserve = %+v, want %+v", got, tt.want)
			}
		})
	}

	var blocks int
	if err := store.Pool().QueryRow(ctxFor(t), `SELECT count(*) FROM card_blocks WHERE card_key = $1`, card).Scan(&blocks); err != nil {
		t.Fatalf("count blocks: %v", err)
	}
	if blocks != 1 {
		t.Errorf("card_blocks rows = %d, want 1", blocks)
	}
}

func TestNetworkLimitsRejectInvalidInput(t *testing.T) {
	store := ledgertest.NewStore(t)
	limits := &activities.NetworkLimits{Ledger: store}
	ctx := ctxFor(t)
	const card = "card_invalid"
	if out := mustReserve(t, limits, reserveInput("inv-1/attempt-1", card, "visa", t0)); !out.Allowed {
		t.Fatalf("reservation denied: %+v", out)
	}
	if err := limits.Settle(ctx, activities.SettleInput{IdempotencyKey: "inv-1/attempt-1", Outcome: "declined", At: t0}); err != nil {
		t.Fatalf("Settle: %v", err)
	}
	reserve := func(change func(*activities.ReserveInput)) func() error {
		return func() error {
			in := reserveInput("inv-1/attempt-2", card, "visa", t0)
			change(&in)
			_, err := limits.Reserve(ctx, in)
			return err
		}
	}
	settle := func(in activities.SettleInput) func() error {
		return func() error { return limits.Settle(ctx, in) }
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"amount not a number", reserve(func(in *activities.ReserveInput) { in.Amount = "lots" })},
		{"negative amount", reserve(func(in *activities.ReserveInput) { in.Amount = "-49.90" })},
		{"too many decimals", reserve(func(in *activities.ReserveInput) { in.Amount = "49.901" })},
		{"unknown currency", reserve(func(in *activities.ReserveInput) { in.Currency = "XYZ" })},
		{"no card", reserve(func(in *activities.ReserveInput) { in.CardKey = "" })},
		{"no key", reserve(func(in *activities.ReserveInput) { in.IdempotencyKey = "" })},
		{"key reserved for another amount", reserve(func(in *activities.ReserveInput) {
			in.IdempotencyKey, in.Amount = "inv-1/attempt-1", "10.00"
		})},
		{"settle an unknown key", settle(activities.SettleInput{IdempotencyKey: "inv-9/attempt-1", Outcome: "declined"})},
		{"settle with another outcome", settle(activities.SettleInput{IdempotencyKey: "inv-1/attempt-1", Outcome: "succeeded"})},
		{"settle as pending", settle(activities.SettleInput{IdempotencyKey: "inv-1/attempt-1", Outcome: "pending"})},
		{"negative never-retry period", settle(activities.SettleInput{
			IdempotencyKey: "inv-1/attempt-1", CardKey: card, Outcome: "declined", NeverRetryFor: -time.Hour,
		})},
		{"block without a card", settle(activities.SettleInput{
			IdempotencyKey: "inv-1/attempt-1", Outcome: "declined", MerchantAdviceCode: "21", NeverRetryFor: month,
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertPermanent(t, tt.call(), activities.ErrTypeInvalidInput)
		})
	}
}

// unavailableLedger is the ledger with the card budget unreachable.
type unavailableLedger struct {
	*ledger.Store
}

var errUnavailable = errors.New("connection refused")

func (unavailableLedger) ReserveCardAttempt(context.Context, ledger.Reservation, ledger.Limits) (ledger.Verdict, error) {
	return ledger.Verdict{}, errUnavailable
}

func (unavailableLedger) FinishCardAttempt(context.Context, string, string, time.Time) error {
	return errUnavailable
}

func TestNetworkLimitsLedgerUnavailable(t *testing.T) {
	limits := &activities.NetworkLimits{Ledger: unavailableLedger{}}
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"reserve", func(ctx context.Context) error {
			_, err := limits.Reserve(ctx, reserveInput("inv-1/attempt-1", "card_1", "visa", t0))
			return err
		}},
		{"settle", func(ctx context.Context) error {
			return limits.Settle(ctx, activities.SettleInput{IdempotencyKey: "inv-1/attempt-1", Outcome: "declined", At: t0})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(ctxFor(t))
			assertRetryable(t, err)
			if !errors.Is(err, errUnavailable) {
				t.Errorf("error %v does not wrap the ledger's error", err)
			}
		})
	}
}

package activities_test

import (
	"testing"
	"time"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/gateway"
)

func (f *chargeFixture) attemptOnce(t *testing.T, in activities.AttemptInput) (activities.AttemptOutput, error) {
	t.Helper()
	val, err := f.env.ExecuteActivity(f.charges.Attempt, in)
	if err != nil {
		return activities.AttemptOutput{}, err
	}
	var out activities.AttemptOutput
	if err := val.Get(&out); err != nil {
		t.Fatalf("decode AttemptOutput: %v", err)
	}
	return out, nil
}

func attemptInput(n int, pm, cardKey, network string) activities.AttemptInput {
	in := chargeInput(n, pm)
	return activities.AttemptInput{ChargeInput: in, Card: activities.CardSnapshot{Key: cardKey, Network: network, PaymentMethod: pm},
		At: time.Now().UTC()}
}

// A charge activity retried after a crash (the ledger already holds the
// outcome) returns the network codes the first call saw, so a MAC 03 still
// blocks the card; the card budget row is settled, not left pending.
func TestAttemptReplayKeepsNetworkCodes(t *testing.T) {
	f := newChargeFixture(t)
	in := attemptInput(1, "sim:decline;code=do_not_honor;network_advice=03", "fp:mc-1", "mastercard")
	first, err := f.attemptOnce(t, in)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.attemptOnce(t, in) // the retry after a crash
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || again.NetworkAdviceCode != "03" || again.Decline == nil || again.Decline.Advice != decline.Stop {
		t.Fatalf("replayed attempt = %+v (decline %+v), want MAC 03 read as stop", again, again.Decline)
	}
	if first.BlockedUntil.IsZero() || !again.BlockedUntil.Equal(first.BlockedUntil) {
		t.Fatalf("blocked until %s then %s", first.BlockedUntil, again.BlockedUntil)
	}
	if got := len(f.gw.requests()); got != 1 {
		t.Fatalf("gateway called %d times, want 1", got)
	}
	row := f.attempt(t, in.IdempotencyKey)
	if row.NetworkAdviceCode != "03" {
		t.Fatalf("ledger attempt = %+v", row)
	}
	var outcome string
	if err := f.store.Pool().QueryRow(ctxFor(t), `SELECT outcome FROM card_attempts WHERE idempotency_key = $1`, in.IdempotencyKey).Scan(&outcome); err != nil || outcome != "declined" {
		t.Fatalf("card budget row = %q, %v", outcome, err)
	}
	// Another run on the same card is refused without a gateway call.
	other := attemptInput(2, "sim:succeed", "fp:mc-1", "mastercard")
	denied, err := f.attemptOnce(t, other)
	if err != nil {
		t.Fatal(err)
	}
	if !denied.Denied || denied.Outcome != gateway.Skipped || len(f.gw.requests()) != 1 {
		t.Fatalf("second attempt on a blocked card = %+v", denied)
	}
}

// A permanent error before any charge (here an unknown gateway) releases
// the card-budget reservation as failed instead of leaving it pending.
func TestAttemptPermanentErrorReleasesReservation(t *testing.T) {
	f := newChargeFixture(t)
	in := attemptInput(1, "sim:succeed", "fp:visa-1", "visa")
	in.Gateway = "paypal"
	if _, err := f.attemptOnce(t, in); err == nil {
		t.Fatal("attempt through an unknown gateway succeeded")
	}
	var outcome string
	if err := f.store.Pool().QueryRow(ctxFor(t), `SELECT outcome FROM card_attempts WHERE idempotency_key = $1`, in.IdempotencyKey).Scan(&outcome); err != nil || outcome != "failed" {
		t.Fatalf("card budget row = %q, %v; want failed", outcome, err)
	}
	if len(f.gw.requests()) != 0 {
		t.Fatal("the gateway was called")
	}
}

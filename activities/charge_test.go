package activities_test

import (
	"context"
	"errors"
	"fmt"
	"go.temporal.io/sdk/temporal"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/ledger"
)

// recordingGateway passes charges on to a gateway and keeps the requests.
type recordingGateway struct {
	gateway.Gateway
	mu   sync.Mutex
	reqs []gateway.ChargeRequest
}

func (g *recordingGateway) Charge(ctx context.Context, req gateway.ChargeRequest) (gateway.ChargeResult, error) {
	g.mu.Lock()
	g.reqs = append(g.reqs, req)
	g.mu.Unlock()
	return g.Gateway.Charge(ctx, req)
}

func (g *recordingGateway) requests() []gateway.ChargeRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.reqs)
}

type chargeFixture struct {
	store   *ledger.Store
	sim     *gateway.Simulator
	gw      *recordingGateway
	charges *activities.Charges
	env     *testsuite.TestActivityEnvironment
}

func newChargeFixture(t *testing.T) *chargeFixture {
	t.Helper()
	f := &chargeFixture{store: newLedger(t), sim: gateway.NewSimulator()}
	f.gw = &recordingGateway{Gateway: f.sim}
	f.charges = &activities.Charges{
		Gateways: map[string]gateway.Gateway{"simulator": f.gw},
		Ledger:   f.store,
		Logger:   quietLogger,
	}
	f.env = newActivityEnv(t, f.charges)
	return f
}

// charge runs Charge as an activity, with a real activity context.
func (f *chargeFixture) charge(t *testing.T, in activities.ChargeInput) (activities.ChargeOutput, error) {
	t.Helper()
	val, err := f.env.ExecuteActivity(f.charges.Charge, in)
	if err != nil {
		return activities.ChargeOutput{}, err
	}
	var out activities.ChargeOutput
	if err := val.Get(&out); err != nil {
		t.Fatalf("decode ChargeOutput: %v", err)
	}
	return out, nil
}

func (f *chargeFixture) attempt(t *testing.T, key string) ledger.Attempt {
	t.Helper()
	attempts, err := f.store.Attempts(ctxFor(t), testWorkflowID)
	if err != nil {
		t.Fatalf("Attempts: %v", err)
	}
	for _, a := range attempts {
		if a.IdempotencyKey == key {
			return a
		}
	}
	t.Fatalf("no attempt %q in the ledger (have %d)", key, len(attempts))
	return ledger.Attempt{}
}

// storedAmount is the attempt's amount and currency as PostgreSQL holds them.
func (f *chargeFixture) storedAmount(t *testing.T, key string) (string, string) {
	t.Helper()
	var amount, currency string
	err := f.store.Pool().QueryRow(ctxFor(t), `SELECT amount::text, currency FROM attempts WHERE idempotency_key = $1`, key).
		Scan(&amount, &currency)
	if err != nil {
		t.Fatalf("read amount of %s: %v", key, err)
	}
	return amount, currency
}

func chargeInput(attempt int, paymentMethod string) activities.ChargeInput {
	return activities.ChargeInput{
		WorkflowID: testWorkflowID, Tenant: "acme", InvoiceID: "inv-1", CustomerID: "cus_1",
		Attempt: attempt, Reason: "scheduled_retry",
		IdempotencyKey: fmt.Sprintf("%s/attempt-%d", testWorkflowID, attempt),
		Amount:         "49.90", Currency: "EUR", Gateway: "simulator", PaymentMethod: paymentMethod,
	}
}

func TestChargeOutcomes(t *testing.T) {
	tests := []struct {
		name          string
		paymentMethod string
		attempt       int
		want          activities.ChargeOutput
		wantStatus    string
	}{
		{
			name: "succeeds", paymentMethod: "sim:succeed", attempt: 1,
			want:       activities.ChargeOutput{Outcome: gateway.Succeeded, Message: "simulated charge", GatewayRef: "sim_ch_1"},
			wantStatus: "succeeded",
		},
		{
			name: "declined with codes", paymentMethod: "sim:decline;code=do_not_honor;advice=try_again_later", attempt: 1,
			want: activities.ChargeOutput{Outcome: gateway.Declined, DeclineCode: "do_not_honor", AdviceCode: "try_again_later",
				Message: "simulated decline: do_not_honor", GatewayRef: "sim_ch_1"},
			wantStatus: "declined",
		},
		{
			name: "declined before succeed-on", paymentMethod: "sim:succeed-on=2", attempt: 1,
			want: activities.ChargeOutput{Outcome: gateway.Declined, DeclineCode: "insufficient_funds",
				Message: "simulated decline: insufficient_funds", GatewayRef: "sim_ch_1"},
			wantStatus: "declined",
		},
		{
			name: "succeeds on succeed-on attempt", paymentMethod: "sim:succeed-on=2", attempt: 2,
			want:       activities.ChargeOutput{Outcome: gateway.Succeeded, Message: "simulated charge", GatewayRef: "sim_ch_1"},
			wantStatus: "succeeded",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newChargeFixture(t)
			in := chargeInput(tt.attempt, tt.paymentMethod)
			before := time.Now().UTC()

			out, err := f.charge(t, in)
			if err != nil {
				t.Fatalf("Charge: %v", err)
			}
			if out.At.Before(before) || out.At.After(time.Now().UTC()) {
				t.Errorf("At = %v, want the time of the charge", out.At)
			}
			got := out
			got.At = time.Time{}
			if got != tt.want {
				t.Errorf("Charge = %+v, want %+v", got, tt.want)
			}

			row := f.attempt(t, in.IdempotencyKey)
			if row.Status != tt.wantStatus || row.DeclineCode != tt.want.DeclineCode || row.AdviceCode != tt.want.AdviceCode ||
				row.Message != tt.want.Message || row.GatewayRef != tt.want.GatewayRef {
				t.Errorf("ledger attempt = status %q decline %q advice %q message %q ref %q, want %q %q %q %q %q",
					row.Status, row.DeclineCode, row.AdviceCode, row.Message, row.GatewayRef,
					tt.wantStatus, tt.want.DeclineCode, tt.want.AdviceCode, tt.want.Message, tt.want.GatewayRef)
			}
			if row.WorkflowID != testWorkflowID || row.Number != tt.attempt || row.Reason != "scheduled_retry" ||
				row.Gateway != "simulator" || row.PaymentMethod != tt.paymentMethod {
				t.Errorf("ledger attempt = %+v, want the charge's run, number, reason, gateway and payment method", row)
			}
			if row.FinishedAt.IsZero() || row.FinishedAt.Before(row.StartedAt) {
				t.Errorf("ledger attempt started %v, finished %v", row.StartedAt, row.FinishedAt)
			}
			if d := row.FinishedAt.Sub(out.At); d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("ledger finished_at = %v, want the gateway's time %v", row.FinishedAt, out.At)
			}
			if amount, currency := f.storedAmount(t, in.IdempotencyKey); amount != "49.90" || currency != "EUR" {
				t.Errorf("stored amount = %s %s, want 49.90 EUR", amount, currency)
			}
			if row.Amount.StringFixed(2) != "49.90" || row.Amount.Exponent() != -2 || row.Currency != "EUR" {
				t.Errorf("ledger amount = %s (exp %d) %s, want 49.90 EUR", row.Amount, row.Amount.Exponent(), row.Currency)
			}

			reqs := f.gw.requests()
			if len(reqs) != 1 {
				t.Fatalf("gateway requests = %d, want 1", len(reqs))
			}
			wantReq := gateway.ChargeRequest{
				IdempotencyKey: in.IdempotencyKey, Attempt: tt.attempt, Tenant: "acme", InvoiceID: "inv-1",
				CustomerID: "cus_1", PaymentMethod: tt.paymentMethod, AmountMinor: 4990, Currency: "EUR",
			}
			if reqs[0] != wantReq {
				t.Errorf("gateway request = %+v, want %+v", reqs[0], wantReq)
			}
		})
	}
}

func TestChargeTwiceReplaysLedger(t *testing.T) {
	tests := []struct {
		name          string
		paymentMethod string
		wantOutcome   gateway.Outcome
		wantDecline   string
	}{
		{"succeeded", "sim:succeed", gateway.Succeeded, ""},
		{"declined", "sim:decline;code=do_not_honor;advice=try_again_later", gateway.Declined, "do_not_honor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newChargeFixture(t)
			in := chargeInput(1, tt.paymentMethod)

			first, err := f.charge(t, in)
			if err != nil {
				t.Fatalf("first Charge: %v", err)
			}
			second, err := f.charge(t, in)
			if err != nil {
				t.Fatalf("second Charge: %v", err)
			}
			if first.Replayed {
				t.Error("first Charge: Replayed = true, want false")
			}
			if !second.Replayed {
				t.Error("second Charge: Replayed = false, want true")
			}
			if second.Outcome != tt.wantOutcome || second.Outcome != first.Outcome || second.GatewayRef != first.GatewayRef ||
				second.GatewayRef != "sim_ch_1" || second.DeclineCode != tt.wantDecline || second.AdviceCode != first.AdviceCode ||
				second.Message != first.Message {
				t.Errorf("second Charge = %+v, want the first outcome %+v", second, first)
			}
			if d := second.At.Sub(first.At); d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("second Charge At = %v, want the first %v", second.At, first.At)
			}
			if got := f.sim.Charges(); got != 1 {
				t.Errorf("simulator Charges() = %d, want 1", got)
			}
			if got := f.sim.Calls(in.IdempotencyKey); got != 1 {
				t.Errorf("simulator Calls(%s) = %d, want 1", in.IdempotencyKey, got)
			}
			assertCount(t, f.store, "attempts", 1)
		})
	}
}

func TestChargeLostAnswerRetriesWithSameKey(t *testing.T) {
	f := newChargeFixture(t)
	in := chargeInput(1, "sim:succeed;flaky=1")

	_, err := f.charge(t, in)
	assertRetryable(t, err)
	if err != nil && !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("first Charge error = %v, want the gateway's transient error", err)
	}
	if row := f.attempt(t, in.IdempotencyKey); row.Status != "pending" || !row.FinishedAt.IsZero() || row.GatewayRef != "" {
		t.Errorf("after the lost answer the attempt is %q (finished %v, ref %q), want pending", row.Status, row.FinishedAt, row.GatewayRef)
	}
	if got := f.sim.Charges(); got != 1 {
		t.Errorf("after the lost answer simulator Charges() = %d, want 1", got)
	}

	out, err := f.charge(t, in)
	if err != nil {
		t.Fatalf("retried Charge: %v", err)
	}
	if out.Outcome != gateway.Succeeded || out.GatewayRef != "sim_ch_1" || out.Replayed {
		t.Errorf("retried Charge = %+v, want succeeded sim_ch_1 from the gateway", out)
	}
	if row := f.attempt(t, in.IdempotencyKey); row.Status != "succeeded" || row.GatewayRef != "sim_ch_1" {
		t.Errorf("ledger attempt = %q %q, want succeeded sim_ch_1", row.Status, row.GatewayRef)
	}
	if got := f.sim.Charges(); got != 1 {
		t.Errorf("simulator Charges() = %d, want exactly 1", got)
	}
	if got := f.sim.ChargesFor("inv-1"); got != 1 {
		t.Errorf("simulator ChargesFor(inv-1) = %d, want 1", got)
	}
	if got := f.sim.Calls(in.IdempotencyKey); got != 2 {
		t.Errorf("simulator Calls = %d, want 2 (one lost answer, one retry)", got)
	}
	keys := map[string]bool{}
	for _, r := range f.gw.requests() {
		keys[r.IdempotencyKey] = true
	}
	if len(keys) != 1 || !keys[in.IdempotencyKey] {
		t.Errorf("gateway saw keys %v, want only %s", keys, in.IdempotencyKey)
	}
}

// refusingGateway answers every charge as a gateway that refuses our key.
type refusingGateway struct{ gateway.Gateway }

func (refusingGateway) Charge(context.Context, gateway.ChargeRequest) (gateway.ChargeResult, error) {
	return gateway.ChargeResult{}, fmt.Errorf("stripe: %w: HTTP 401 invalid_request_error: Invalid API Key provided", gateway.ErrNotAuthorized)
}

// busyGateway answers like a gateway still processing the key's first
// request, asking us to come back in 30 seconds.
type busyGateway struct{ gateway.Gateway }

func (busyGateway) Charge(context.Context, gateway.ChargeRequest) (gateway.ChargeResult, error) {
	return gateway.ChargeResult{}, &gateway.RetryLater{Wait: 30 * time.Second, Err: fmt.Errorf("http gateway: HTTP 409: %w", gateway.ErrInProgress)}
}

// "Still processing" is an unknown outcome, never a failed attempt: the
// ledger row stays pending and the retry, after the gateway's wait, repeats
// the same key.
func TestChargeInProgressIsRetriedAfterTheGatewaysWait(t *testing.T) {
	f := newChargeFixture(t)
	f.charges.Gateways["simulator"] = busyGateway{f.sim}
	in := chargeInput(1, "sim:succeed")
	_, err := f.charge(t, in)
	appErr, ok := errors.AsType[*temporal.ApplicationError](err)
	if !ok || appErr.NonRetryable() || appErr.Type() != activities.ErrTypeGatewayBusy || appErr.NextRetryDelay() != 30*time.Second {
		t.Fatalf("err = %v, want a retryable GatewayBusy error asking for 30s", err)
	}
	if row := f.attempt(t, in.IdempotencyKey); row.Status != "pending" {
		t.Errorf("ledger attempt = %s, want pending (outcome unknown)", row.Status)
	}
}

// A gateway refusing our credentials is a configuration error the workflow
// holds on (ErrTypeGatewayAuth), not a failed attempt of the customer's.
func TestChargeRefusedCredentials(t *testing.T) {
	f := newChargeFixture(t)
	f.charges.Gateways["simulator"] = refusingGateway{f.sim}
	in := chargeInput(1, "sim:succeed")
	_, err := f.charge(t, in)
	assertPermanent(t, err, activities.ErrTypeGatewayAuth)
}

func TestChargePermanentGatewayError(t *testing.T) {
	f := newChargeFixture(t)
	in := chargeInput(1, "not-a-script")

	_, err := f.charge(t, in)
	assertPermanent(t, err, activities.ErrTypeGatewayPermanent)

	row := f.attempt(t, in.IdempotencyKey)
	if row.Status != "failed" || row.FinishedAt.IsZero() {
		t.Errorf("ledger attempt = %q (finished %v), want failed", row.Status, row.FinishedAt)
	}
	if !strings.Contains(row.Message, "not a simulator script") {
		t.Errorf("ledger message = %q, want the gateway's reason", row.Message)
	}
	if got := f.sim.Charges(); got != 0 {
		t.Errorf("simulator Charges() = %d, want 0", got)
	}

	// The recorded failure is final: a repeat does not ask the gateway again.
	out, err := f.charge(t, in)
	if err != nil {
		t.Fatalf("repeated Charge: %v", err)
	}
	if out.Outcome != gateway.Failed || !out.Replayed {
		t.Errorf("repeated Charge = %+v, want the recorded failure, replayed", out)
	}
	if got := len(f.gw.requests()); got != 1 {
		t.Errorf("gateway requests = %d, want 1", got)
	}
}

func TestChargeRejectedBeforeLedger(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*activities.ChargeInput)
		wantType string
	}{
		{"unknown gateway", func(in *activities.ChargeInput) { in.Gateway = "stripe" }, activities.ErrTypeUnknownGateway},
		{"no gateway", func(in *activities.ChargeInput) { in.Gateway = "" }, activities.ErrTypeUnknownGateway},
		{"too many decimals", func(in *activities.ChargeInput) { in.Amount = "49.999" }, activities.ErrTypeInvalidInput},
		{"negative amount", func(in *activities.ChargeInput) { in.Amount = "-49.90" }, activities.ErrTypeInvalidInput},
		{"zero amount", func(in *activities.ChargeInput) { in.Amount = "0" }, activities.ErrTypeInvalidInput},
		{"empty amount", func(in *activities.ChargeInput) { in.Amount = "" }, activities.ErrTypeInvalidInput},
		{"not a number", func(in *activities.ChargeInput) { in.Amount = "forty-nine" }, activities.ErrTypeInvalidInput},
		{"exponent", func(in *activities.ChargeInput) { in.Amount = "4.99e1" }, activities.ErrTypeInvalidInput},
		{"lower-case currency", func(in *activities.ChargeInput) { in.Currency = "eur" }, activities.ErrTypeInvalidInput},
		{"unknown currency", func(in *activities.ChargeInput) { in.Currency = "XYZ" }, activities.ErrTypeInvalidInput},
		{"no idempotency key", func(in *activities.ChargeInput) { in.IdempotencyKey = "" }, activities.ErrTypeInvalidInput},
		{"attempt zero", func(in *activities.ChargeInput) { in.Attempt = 0 }, activities.ErrTypeInvalidInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newChargeFixture(t)
			in := chargeInput(1, "sim:succeed")
			tt.mutate(&in)

			_, err := f.charge(t, in)
			assertPermanent(t, err, tt.wantType)

			want := map[string]int64{"runs": 1, "attempts": 0, "messages": 0, "service_changes": 0, "outbox": 0}
			if got := counts(t, f.store); !maps.Equal(got, want) {
				t.Errorf("ledger counts = %v, want %v", got, want)
			}
			if got := len(f.gw.requests()); got != 0 {
				t.Errorf("gateway requests = %d, want 0", got)
			}
		})
	}
}

func TestChargeAfterRunClosed(t *testing.T) {
	f := newChargeFixture(t)
	first := chargeInput(1, "sim:decline;code=do_not_honor")
	if _, err := f.charge(t, first); err != nil {
		t.Fatalf("Charge before close: %v", err)
	}
	closeRun(t, f.store, testWorkflowID)

	next := chargeInput(2, "sim:succeed")
	_, err := f.charge(t, next)
	assertPermanent(t, err, activities.ErrTypeRunClosed)

	if got := f.sim.Calls(next.IdempotencyKey); got != 0 {
		t.Errorf("simulator Calls(%s) = %d, want 0", next.IdempotencyKey, got)
	}
	if got := len(f.gw.requests()); got != 1 {
		t.Errorf("gateway requests = %d, want 1 (only the charge before the close)", got)
	}
	assertCount(t, f.store, "attempts", 1)

	// The attempt made before the close still replays.
	out, err := f.charge(t, first)
	if err != nil {
		t.Fatalf("replay after close: %v", err)
	}
	if !out.Replayed || out.Outcome != gateway.Declined || out.DeclineCode != "do_not_honor" {
		t.Errorf("replay after close = %+v, want the recorded decline", out)
	}
}

func TestChargeConflictingAttemptNumber(t *testing.T) {
	f := newChargeFixture(t)
	if _, err := f.charge(t, chargeInput(1, "sim:decline")); err != nil {
		t.Fatalf("Charge: %v", err)
	}
	other := chargeInput(1, "sim:succeed")
	other.IdempotencyKey = testWorkflowID + "/attempt-1-again"

	_, err := f.charge(t, other)
	assertPermanent(t, err, activities.ErrTypeInvalidInput)
	if got := f.sim.Calls(other.IdempotencyKey); got != 0 {
		t.Errorf("simulator Calls = %d for the conflicting key, want 0", got)
	}
	assertCount(t, f.store, "attempts", 1)
}

func TestIsType(t *testing.T) {
	f := newChargeFixture(t)
	in := chargeInput(1, "sim:succeed")
	in.Gateway = "stripe"
	_, err := f.charge(t, in)

	tests := []struct {
		errType string
		want    bool
	}{
		{activities.ErrTypeUnknownGateway, true},
		{activities.ErrTypeInvalidInput, false},
		{activities.ErrTypeRunClosed, false},
		{"", false},
	}
	for _, tt := range tests {
		if got := activities.IsType(err, tt.errType); got != tt.want {
			t.Errorf("IsType(%v, %q) = %v, want %v", err, tt.errType, got, tt.want)
		}
	}
	if activities.IsType(nil, activities.ErrTypeUnknownGateway) {
		t.Error("IsType(nil) = true")
	}
}

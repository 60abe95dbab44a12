package stripehooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v85/webhook"
	"go.temporal.io/api/serviceerror"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/tenants"
	"github.com/dunningco/dunning/validation"
	"github.com/dunningco/dunning/workflows"
)

const testSecret = "whsec_stripe_endpoint_secret_for_acme"

// eventCreated is when the test events happened (their "created").
var eventCreated = time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC)

// call is one request the receiver made to the runs.
type call struct {
	Method  string
	Tenant  string
	Invoice string
	Arg     any
}

// fakeRuns records calls; errFor, when set, answers a call with an error.
type fakeRuns struct {
	mu     sync.Mutex
	calls  []call
	errFor func(c call) error
}

func (f *fakeRuns) note(c call) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.errFor != nil {
		if err := f.errFor(c); err != nil {
			return err
		}
	}
	f.calls = append(f.calls, c)
	return nil
}

func (f *fakeRuns) Start(_ context.Context, in workflows.Input) (starter.StartResult, error) {
	if err := f.note(call{"Start", in.Tenant, in.InvoiceID, in}); err != nil {
		return starter.StartResult{}, err
	}
	return starter.StartResult{WorkflowID: workflows.WorkflowID(in.Tenant, in.InvoiceID), RunID: "run-1"}, nil
}

func (f *fakeRuns) Cancel(_ context.Context, tenant, invoice string, req workflows.CancelRequest) error {
	return f.note(call{"Cancel", tenant, invoice, req})
}

func (f *fakeRuns) PaymentMethodUpdated(_ context.Context, tenant, invoice string, req workflows.PaymentMethodUpdate) error {
	return f.note(call{"PaymentMethodUpdated", tenant, invoice, req})
}

func (f *fakeRuns) Paid(_ context.Context, tenant, invoice string, req workflows.PaidOutOfBand) error {
	return f.note(call{"Paid", tenant, invoice, req})
}

func (f *fakeRuns) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// memStore keeps processed events and the read model in memory, as the
// ledger does (ledger's own tests cover the SQL).
type memStore struct {
	mu     sync.Mutex
	events map[ledger.WebhookEvent]string // status
	runs   []ledger.RunStatus
	err    error // answers every call when set
}

func newMemStore(runs ...ledger.RunStatus) *memStore {
	return &memStore{events: map[ledger.WebhookEvent]string{}, runs: runs}
}

func (s *memStore) ClaimWebhookEvent(_ context.Context, e ledger.WebhookEvent, _ time.Duration) (ledger.WebhookClaim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	e.Type = ""
	switch s.events[e] {
	case "processed":
		return ledger.WebhookProcessed, nil
	case "processing":
		return ledger.WebhookBusy, nil
	}
	s.events[e] = "processing"
	return ledger.WebhookClaimed, nil
}

func (s *memStore) CompleteWebhookEvent(_ context.Context, e ledger.WebhookEvent, _ string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.Type = ""
	s.events[e] = "processed"
	return nil
}

func (s *memStore) ReleaseWebhookEvent(_ context.Context, e ledger.WebhookEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.Type = ""
	if s.events[e] == "processing" {
		delete(s.events, e)
	}
	return nil
}

func (s *memStore) PruneWebhookEvents(context.Context, time.Time) (int64, error) { return 0, nil }

func (s *memStore) ListRunStatus(_ context.Context, q ledger.RunStatusQuery) (ledger.RunStatusPage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return ledger.RunStatusPage{}, s.err
	}
	var page ledger.RunStatusPage
	for _, r := range s.runs {
		if r.Tenant == q.Tenant && (q.CustomerID == "" || r.CustomerID == q.CustomerID) {
			page.Runs = append(page.Runs, r)
		}
	}
	return page, nil
}

func (s *memStore) status(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events[ledger.WebhookEvent{Source: Source, Tenant: "acme", EventID: id}]
}

func testTenants(t testing.TB) *tenants.Config {
	t.Helper()
	cfg, err := tenants.New(map[string]tenants.Tenant{
		"acme":   {StripeWebhookSecret: testSecret},
		"globex": {}, // configured, but not for Stripe
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newReceiver(t testing.TB, runs *fakeRuns, store *memStore) *Receiver {
	t.Helper()
	return New(runs, testTenants(t), store, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
}

// event is a Stripe event as Stripe posts it.
func event(t testing.TB, id, typ string, object map[string]any, previous map[string]any) []byte {
	t.Helper()
	data := map[string]any{"object": object}
	if previous != nil {
		data["previous_attributes"] = previous
	}
	b, err := json.Marshal(map[string]any{
		"id": id, "object": "event", "api_version": "2026-03-25.dahlia", "created": eventCreated.Unix(),
		"livemode": false, "pending_webhooks": 1, "type": typ, "data": data,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign makes the Stripe-Signature header Stripe would send at.
func sign(payload []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: at}).Header
}

// invoice is an open invoice whose automatic payment failed, in the shape
// Stripe's webhooks send it: the payments are not expanded.
func invoice() map[string]any {
	return map[string]any{
		"id": "in_1001", "object": "invoice", "status": "open",
		"customer": "cus_42", "customer_email": "ada@example.com", "customer_phone": "601 234 567",
		"customer_address": map[string]any{"country": "PL", "city": "Warsaw"},
		"amount_due":       4990, "amount_paid": 0, "amount_remaining": 4990, "currency": "eur",
		"attempt_count": 1, "attempted": true,
		"default_payment_method":  "pm_1Visa",
		"last_finalization_error": nil,
	}
}

// expandedPayments adds the invoice's payment with its PaymentIntent
// expanded, as an invoice fetched with expand[]=payments shows it.
func expandedPayments(inv map[string]any) map[string]any {
	delete(inv, "default_payment_method")
	inv["payments"] = map[string]any{"object": "list", "has_more": false, "data": []any{
		map[string]any{"id": "inpay_old", "object": "invoice_payment", "created": 1, "is_default": false, "status": "canceled",
			"payment": map[string]any{"type": "payment_intent", "payment_intent": "pi_old"}},
		map[string]any{"id": "inpay_1", "object": "invoice_payment", "created": 2, "is_default": true, "status": "open",
			"payment": map[string]any{"type": "payment_intent", "payment_intent": map[string]any{
				"id": "pi_1", "object": "payment_intent", "status": "requires_payment_method",
				"payment_method": map[string]any{"id": "pm_2Master", "object": "payment_method", "type": "card",
					"card": map[string]any{"brand": "mastercard", "fingerprint": "Fp9xK2"}},
				"last_payment_error": map[string]any{
					"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
					"advice_code": "try_again_later", "network_decline_code": "51", "network_advice_code": "24",
					"message": "Your card has insufficient funds.", "charge": "ch_1",
				},
				"latest_charge": map[string]any{"id": "ch_1", "object": "charge",
					"outcome": map[string]any{"type": "issuer_declined", "network_status": "declined_by_network"},
					"payment_method_details": map[string]any{"type": "card",
						"card": map[string]any{"brand": "mastercard", "network": "mastercard", "fingerprint": "Fp9xK2"}}},
			}}},
	}}
	return inv
}

func paymentMethod(customer any) map[string]any {
	return map[string]any{"id": "pm_3New", "object": "payment_method", "type": "card", "customer": customer,
		"card": map[string]any{"brand": "visa", "fingerprint": "FpNew1", "exp_month": 12, "exp_year": 2030,
			"networks": map[string]any{"available": []string{"visa"}, "preferred": nil}}}
}

func handle(t *testing.T, r *Receiver, tenant string, payload []byte) (Outcome, error) {
	t.Helper()
	return r.Handle(context.Background(), tenant, payload, sign(payload, testSecret, time.Now()))
}

func TestEventsMapToRuns(t *testing.T) {
	openRuns := []ledger.RunStatus{
		{WorkflowID: "dunning/acme/in_1", Tenant: "acme", InvoiceID: "in_1", CustomerID: "cus_42", Phase: "action_required"},
		{WorkflowID: "dunning/acme/in_2", Tenant: "acme", InvoiceID: "in_2", CustomerID: "cus_42", Phase: "recovered"},
		{WorkflowID: "dunning/acme/in_3", Tenant: "acme", InvoiceID: "in_3", CustomerID: "cus_42", Phase: "recovering"},
		{WorkflowID: "dunning/acme/in_4", Tenant: "acme", InvoiceID: "in_4", CustomerID: "cus_7", Phase: "recovering"},
	}
	wantDecline := workflows.Input{
		Tenant: "acme", InvoiceID: "in_1001", Amount: "49.90", Currency: "EUR",
		Customer:      workflows.Customer{ID: "cus_42", Email: "ada@example.com", Phone: "+48601234567", Country: "PL"},
		PaymentMethod: "pm_1Visa",
		Decline: workflows.Decline{ID: "evt_fail", Gateway: "stripe", Code: "generic_decline", OccurredAt: eventCreated, Source: "stripe-webhook",
			Message: "Stripe reported invoice.payment_failed without decline details (attempt 1)"},
	}
	tests := []struct {
		name     string
		typ      string
		object   map[string]any
		previous map[string]any
		want     []call
		outcome  Outcome
	}{
		{
			name: "payment failed starts the run", typ: "invoice.payment_failed", object: invoice(),
			want:    []call{{"Start", "acme", "in_1001", wantDecline}},
			outcome: Outcome{Action: ActionDeclineReported, Runs: []string{"dunning/acme/in_1001"}},
		},
		{
			name: "payment failed with the payment expanded", typ: "invoice.payment_failed", object: expandedPayments(invoice()),
			want: []call{{"Start", "acme", "in_1001", func() workflows.Input {
				in := wantDecline
				in.PaymentMethod, in.Card = "pm_2Master", workflows.Card{Network: "mastercard", Fingerprint: "Fp9xK2"}
				in.Decline.Code, in.Decline.AdviceCode, in.Decline.Message = "insufficient_funds", "try_again_later", "Your card has insufficient funds."
				in.Decline.NetworkDeclineCode, in.Decline.NetworkAdviceCode = "51", "24"
				return in
			}()}},
			outcome: Outcome{Action: ActionDeclineReported, Runs: []string{"dunning/acme/in_1001"}},
		},
		{
			name: "payment failed on a legacy source", typ: "invoice.payment_failed",
			object: with(invoice(), map[string]any{"default_payment_method": nil, "default_source": "card_9Legacy"}),
			want: []call{{"Start", "acme", "in_1001", func() workflows.Input {
				in := wantDecline
				in.PaymentMethod = "card_9Legacy"
				return in
			}()}},
			outcome: Outcome{Action: ActionDeclineReported, Runs: []string{"dunning/acme/in_1001"}},
		},
		{
			name: "payment that needs the customer's authentication", typ: "invoice.payment_failed",
			object: func() map[string]any {
				inv := expandedPayments(invoice())
				pi := inv["payments"].(map[string]any)["data"].([]any)[1].(map[string]any)["payment"].(map[string]any)["payment_intent"].(map[string]any)
				pi["status"] = "requires_action"
				pi["last_payment_error"] = map[string]any{"type": "card_error", "code": "authentication_required", "message": "This payment requires authentication."}
				delete(pi, "latest_charge")
				return inv
			}(),
			want: []call{{"Start", "acme", "in_1001", func() workflows.Input {
				in := wantDecline
				in.PaymentMethod, in.Card = "pm_2Master", workflows.Card{Network: "mastercard", Fingerprint: "Fp9xK2"}
				in.Decline.Code, in.Decline.Message = "authentication_required", "This payment requires authentication."
				return in
			}()}},
			outcome: Outcome{Action: ActionDeclineReported, Runs: []string{"dunning/acme/in_1001"}},
		},
		{
			name: "payment failed in yen", typ: "invoice.payment_failed",
			object: with(invoice(), map[string]any{"currency": "jpy", "amount_remaining": 5000, "customer_phone": nil, "customer_email": nil}),
			want: []call{{"Start", "acme", "in_1001", func() workflows.Input {
				in := wantDecline
				in.Amount, in.Currency, in.Customer = "5000", "JPY", workflows.Customer{ID: "cus_42", Country: "PL"}
				return in
			}()}},
			outcome: Outcome{Action: ActionDeclineReported, Runs: []string{"dunning/acme/in_1001"}},
		},
		{
			name: "payment failed in dinars", typ: "invoice.payment_failed",
			object: with(invoice(), map[string]any{"currency": "bhd", "amount_remaining": 12340}),
			want: []call{{"Start", "acme", "in_1001", func() workflows.Input {
				in := wantDecline
				in.Amount, in.Currency = "12.340", "BHD"
				return in
			}()}},
			outcome: Outcome{Action: ActionDeclineReported, Runs: []string{"dunning/acme/in_1001"}},
		},
		{
			name: "finalization error codes", typ: "invoice.payment_failed",
			object: with(invoice(), map[string]any{"last_finalization_error": map[string]any{
				"type": "card_error", "code": "card_declined", "decline_code": "stolen_card", "advice_code": "do_not_try_again",
				"network_decline_code": "43", "message": "Your card was declined."}}),
			want: []call{{"Start", "acme", "in_1001", func() workflows.Input {
				in := wantDecline
				in.Decline.Code, in.Decline.AdviceCode, in.Decline.NetworkDeclineCode, in.Decline.Message = "stolen_card", "do_not_try_again", "43", "Your card was declined."
				return in
			}()}},
			outcome: Outcome{Action: ActionDeclineReported, Runs: []string{"dunning/acme/in_1001"}},
		},
		{
			name: "unusable contact fields are left out", typ: "invoice.payment_failed",
			object: with(invoice(), map[string]any{"customer_email": "Ada <ada@example.com>", "customer_phone": "call me", "customer_address": nil}),
			want: []call{{"Start", "acme", "in_1001", func() workflows.Input {
				in := wantDecline
				in.Customer = workflows.Customer{ID: "cus_42"}
				return in
			}()}},
			outcome: Outcome{Action: ActionDeclineReported, Runs: []string{"dunning/acme/in_1001"}},
		},
		{
			name: "payment failed with nothing remaining", typ: "invoice.payment_failed",
			object:  with(invoice(), map[string]any{"amount_remaining": 0}),
			outcome: Outcome{Ignored: true, Reason: "invoice in_1001 has nothing left to pay"},
		},
		{
			name: "payment failed on an invoice already voided", typ: "invoice.payment_failed",
			object:  with(invoice(), map[string]any{"status": "void"}),
			outcome: Outcome{Ignored: true, Reason: "invoice in_1001 is void"},
		},
		{
			name: "paid", typ: "invoice.paid", object: with(invoice(), map[string]any{"status": "paid", "amount_remaining": 0}),
			want:    []call{{"Paid", "acme", "in_1001", workflows.PaidOutOfBand{Reference: "evt_fail", Note: "Stripe invoice.paid for invoice in_1001"}}},
			outcome: Outcome{Action: ActionPaid, Runs: []string{"dunning/acme/in_1001"}},
		},
		{
			name: "payment succeeded", typ: "invoice.payment_succeeded", object: with(invoice(), map[string]any{"status": "paid", "amount_remaining": 0}),
			want:    []call{{"Paid", "acme", "in_1001", workflows.PaidOutOfBand{Reference: "evt_fail", Note: "Stripe invoice.payment_succeeded for invoice in_1001"}}},
			outcome: Outcome{Action: ActionPaid, Runs: []string{"dunning/acme/in_1001"}},
		},
		{
			name: "a partial payment leaves the run open", typ: "invoice.payment_succeeded", object: with(invoice(), map[string]any{"amount_remaining": 990}),
			outcome: Outcome{Ignored: true, Reason: "invoice in_1001 is open with 990 (minor units) still due"},
		},
		{
			name: "voided", typ: "invoice.voided", object: with(invoice(), map[string]any{"status": "void"}),
			want:    []call{{"Cancel", "acme", "in_1001", workflows.CancelRequest{Reason: "invoice in_1001 was voided in Stripe (event evt_fail)", By: "stripe"}}},
			outcome: Outcome{Action: ActionCancelled, Runs: []string{"dunning/acme/in_1001"}},
		},
		{
			name: "marked uncollectible", typ: "invoice.marked_uncollectible", object: with(invoice(), map[string]any{"status": "uncollectible"}),
			want:    []call{{"Cancel", "acme", "in_1001", workflows.CancelRequest{Reason: "invoice in_1001 was marked uncollectible in Stripe (event evt_fail)", By: "stripe"}}},
			outcome: Outcome{Action: ActionCancelled, Runs: []string{"dunning/acme/in_1001"}},
		},
		{
			name: "card attached reaches the customer's open runs", typ: "payment_method.attached", object: paymentMethod("cus_42"),
			want: []call{
				{"PaymentMethodUpdated", "acme", "in_1", workflows.PaymentMethodUpdate{PaymentMethod: "pm_3New", Card: &workflows.Card{Network: "visa", Fingerprint: "FpNew1"}}},
				{"PaymentMethodUpdated", "acme", "in_3", workflows.PaymentMethodUpdate{PaymentMethod: "pm_3New", Card: &workflows.Card{Network: "visa", Fingerprint: "FpNew1"}}},
			},
			outcome: Outcome{Action: ActionPaymentMethodUpdated, Runs: []string{"dunning/acme/in_1", "dunning/acme/in_3"}},
		},
		{
			name: "card updated by the network", typ: "payment_method.automatically_updated", object: paymentMethod("cus_7"),
			want:    []call{{"PaymentMethodUpdated", "acme", "in_4", workflows.PaymentMethodUpdate{PaymentMethod: "pm_3New", Card: &workflows.Card{Network: "visa", Fingerprint: "FpNew1"}}}},
			outcome: Outcome{Action: ActionPaymentMethodUpdated, Runs: []string{"dunning/acme/in_4"}},
		},
		{
			name: "card of a customer without runs", typ: "payment_method.attached", object: paymentMethod("cus_none"),
			outcome: Outcome{Ignored: true, Reason: "customer cus_none has no open dunning run"},
		},
		{
			name: "card without a customer", typ: "payment_method.attached", object: paymentMethod(nil),
			outcome: Outcome{Ignored: true, Reason: "payment method pm_3New belongs to no customer"},
		},
		{
			name: "customer's default payment method changed", typ: "customer.updated",
			object:   map[string]any{"id": "cus_42", "object": "customer", "invoice_settings": map[string]any{"default_payment_method": "pm_4Default"}},
			previous: map[string]any{"invoice_settings": map[string]any{"default_payment_method": "pm_1Visa"}},
			want: []call{
				{"PaymentMethodUpdated", "acme", "in_1", workflows.PaymentMethodUpdate{PaymentMethod: "pm_4Default"}},
				{"PaymentMethodUpdated", "acme", "in_3", workflows.PaymentMethodUpdate{PaymentMethod: "pm_4Default"}},
			},
			outcome: Outcome{Action: ActionPaymentMethodUpdated, Runs: []string{"dunning/acme/in_1", "dunning/acme/in_3"}},
		},
		{
			name: "customer's legacy default source changed", typ: "customer.updated",
			object:   map[string]any{"id": "cus_7", "object": "customer", "default_source": "card_5Src"},
			previous: map[string]any{"default_source": nil},
			want:     []call{{"PaymentMethodUpdated", "acme", "in_4", workflows.PaymentMethodUpdate{PaymentMethod: "card_5Src"}}},
			outcome:  Outcome{Action: ActionPaymentMethodUpdated, Runs: []string{"dunning/acme/in_4"}},
		},
		{
			name: "customer updated otherwise", typ: "customer.updated",
			object:   map[string]any{"id": "cus_42", "object": "customer", "email": "new@example.com"},
			previous: map[string]any{"email": "ada@example.com"},
			outcome:  Outcome{Ignored: true, Reason: "the customer's default payment method did not change"},
		},
		{
			name: "unknown type", typ: "charge.refunded", object: map[string]any{"id": "ch_1", "object": "charge"},
			outcome: Outcome{Ignored: true, Reason: "event type charge.refunded needs nothing of dunning"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs, store := &fakeRuns{}, newMemStore(openRuns...)
			r := newReceiver(t, runs, store)
			out, err := handle(t, r, "acme", event(t, "evt_fail", tt.typ, tt.object, tt.previous))
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			want := tt.outcome
			want.EventID, want.Type = "evt_fail", tt.typ
			if !reflect.DeepEqual(out, want) {
				t.Errorf("outcome = %+v\nwant      %+v", out, want)
			}
			if got := runs.Calls(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("calls = %+v\nwant    %+v", got, tt.want)
			}
			if got := store.status("evt_fail"); got != "processed" {
				t.Errorf("event is %q in the store, want processed", got)
			}
			// Every input the receiver builds is one the intake accepts.
			for _, c := range runs.Calls() {
				if in, ok := c.Arg.(workflows.Input); ok {
					if _, err := (validation.Rules{}).Decline(in); err != nil {
						t.Errorf("the intake refuses the input: %v", err)
					}
				}
			}
		})
	}
}

func with(m map[string]any, changes map[string]any) map[string]any {
	m = maps.Clone(m)
	for k, v := range changes {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return m
}

func TestReplayChangesNothing(t *testing.T) {
	runs, store := &fakeRuns{}, newMemStore()
	r := newReceiver(t, runs, store)
	payload := event(t, "evt_once", "invoice.payment_failed", invoice(), nil)
	if _, err := handle(t, r, "acme", payload); err != nil {
		t.Fatal(err)
	}
	out, err := handle(t, r, "acme", payload)
	if err != nil || !out.Duplicate || out.EventID != "evt_once" {
		t.Fatalf("replay = %+v, %v; want a duplicate", out, err)
	}
	if n := len(runs.Calls()); n != 1 {
		t.Fatalf("%d calls, want 1: the replay must not reach the run", n)
	}
}

func TestTransientFailureLeavesTheEventForStripesRetry(t *testing.T) {
	unavailable := serviceerror.NewUnavailable("connection refused")
	runs, store := &fakeRuns{}, newMemStore()
	runs.errFor = func(call) error { return fmt.Errorf("start dunning run: %w", unavailable) }
	r := newReceiver(t, runs, store)
	payload := event(t, "evt_retry", "invoice.payment_failed", invoice(), nil)

	if _, err := handle(t, r, "acme", payload); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Handle with Temporal down: %v, want ErrUnavailable", err)
	}
	if got := store.status("evt_retry"); got != "" {
		t.Fatalf("event is %q after the failure, want unrecorded", got)
	}
	// Stripe retries once Temporal is back.
	runs.errFor = nil
	out, err := handle(t, r, "acme", payload)
	if err != nil || out.Duplicate || out.Action != ActionDeclineReported {
		t.Fatalf("retry = %+v, %v; want the decline reported", out, err)
	}
}

func TestRefusedEventIsNotRecorded(t *testing.T) {
	runs, store := &fakeRuns{}, newMemStore()
	runs.errFor = func(call) error {
		return fmt.Errorf("%w: %w", starter.ErrInvalid, validation.Invalid("/decline/gateway", "gateway stripe is not configured"))
	}
	r := newReceiver(t, runs, store)
	_, err := handle(t, r, "acme", event(t, "evt_refused", "invoice.payment_failed", invoice(), nil))
	if !errors.Is(err, starter.ErrInvalid) {
		t.Fatalf("Handle: %v, want ErrInvalid", err)
	}
	if got := store.status("evt_refused"); got != "" {
		t.Fatalf("event is %q, want unrecorded so a retry after a fix goes through", got)
	}
}

func TestRunsThatEndedOrNeverExisted(t *testing.T) {
	for _, tt := range []struct {
		name, typ string
		object    map[string]any
		err       error
		reason    string
	}{
		{"paid invoice without a run", "invoice.paid", with(invoice(), map[string]any{"status": "paid", "amount_remaining": 0}),
			starter.ErrRunNotFound, "invoice in_1001 has no dunning run"},
		{"voided invoice whose run ended", "invoice.voided", invoice(), starter.ErrRunClosed,
			"the dunning run for invoice in_1001 has already ended"},
		{"decline for a closed invoice", "invoice.payment_failed", invoice(), starter.ErrRunClosed,
			"the dunning run for invoice in_1001 has already ended; a closed invoice is never dunned twice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			runs, store := &fakeRuns{}, newMemStore()
			runs.errFor = func(call) error { return fmt.Errorf("send: %w", tt.err) }
			out, err := handle(t, newReceiver(t, runs, store), "acme", event(t, "evt_x", tt.typ, tt.object, nil))
			if err != nil || !out.Ignored || out.Reason != tt.reason || out.Action != "" {
				t.Fatalf("outcome = %+v, %v; want ignored: %s", out, err, tt.reason)
			}
			if got := store.status("evt_x"); got != "processed" {
				t.Fatalf("event is %q, want processed", got)
			}
		})
	}
}

func TestVerificationAndTenants(t *testing.T) {
	payload := event(t, "evt_sig", "invoice.payment_failed", invoice(), nil)
	for _, tt := range []struct {
		name      string
		tenant    string
		payload   []byte
		signature string
		want      error
	}{
		{"unknown tenant", "initech", payload, sign(payload, testSecret, time.Now()), ErrUnknownTenant},
		{"tenant without a Stripe secret", "globex", payload, sign(payload, testSecret, time.Now()), ErrUnknownTenant},
		{"missing signature", "acme", payload, "", ErrSignature},
		{"garbled signature", "acme", payload, "t=abc,v1=zz", ErrSignature},
		{"another endpoint's secret", "acme", payload, sign(payload, "whsec_other", time.Now()), ErrSignature},
		{"tampered body", "acme", []byte(strings.Replace(string(payload), "4990", "1", 1)), sign(payload, testSecret, time.Now()), ErrSignature},
		{"stale timestamp", "acme", payload, sign(payload, testSecret, time.Now().Add(-DefaultTolerance-time.Minute)), ErrSignature},
		{"signed, but not an event", "acme", []byte(`{"object":"invoice"}`), sign([]byte(`{"object":"invoice"}`), testSecret, time.Now()), ErrMalformed},
		{"signed, but not JSON", "acme", []byte(`evt`), sign([]byte(`evt`), testSecret, time.Now()), ErrMalformed},
		{"signed event whose object is not an invoice", "acme", event(t, "evt_pm", "invoice.paid", paymentMethod("cus_42"), nil),
			sign(event(t, "evt_pm", "invoice.paid", paymentMethod("cus_42"), nil), testSecret, time.Now()), ErrMalformed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			runs, store := &fakeRuns{}, newMemStore()
			_, err := newReceiver(t, runs, store).Handle(context.Background(), tt.tenant, tt.payload, tt.signature)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Handle: %v, want %v", err, tt.want)
			}
			if len(runs.Calls()) != 0 || len(store.events) != 0 {
				t.Fatalf("a refused delivery had effects: calls %v, events %v", runs.Calls(), store.events)
			}
		})
	}
}

func TestConcurrentDeliveryIsBusy(t *testing.T) {
	runs, store := &fakeRuns{}, newMemStore()
	r := newReceiver(t, runs, store)
	payload := event(t, "evt_busy", "invoice.payment_failed", invoice(), nil)
	// Another delivery holds the event.
	if _, err := store.ClaimWebhookEvent(context.Background(), ledger.WebhookEvent{Source: Source, Tenant: "acme", EventID: "evt_busy"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := handle(t, r, "acme", payload); !errors.Is(err, ErrBusy) {
		t.Fatalf("Handle: %v, want ErrBusy", err)
	}
	if len(runs.Calls()) != 0 {
		t.Fatal("a busy event reached the runs")
	}
}

func TestLedgerDownIsUnavailable(t *testing.T) {
	runs, store := &fakeRuns{}, newMemStore()
	store.err = errors.New("connection refused")
	_, err := handle(t, newReceiver(t, runs, store), "acme", event(t, "evt_db", "invoice.payment_failed", invoice(), nil))
	if !errors.Is(err, ErrUnavailable) || len(runs.Calls()) != 0 {
		t.Fatalf("Handle: %v with %d calls; want ErrUnavailable and no call", err, len(runs.Calls()))
	}
}

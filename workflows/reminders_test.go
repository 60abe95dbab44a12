package workflows

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/policy"
)

// reminderHarness runs ReminderWorkflow with time skipping and records the
// messages it sends.
type reminderHarness struct {
	t        *testing.T
	env      *testsuite.TestWorkflowEnvironment
	in       ReminderInput
	messages []activities.NotifyInput
	sentAt   []time.Time
	steps    [][]string
}

func newReminderHarness(t *testing.T, in ReminderInput) *reminderHarness {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	h := &reminderHarness{t: t, env: s.NewTestWorkflowEnvironment(), in: in}
	h.env.SetStartTime(t0)
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: ReminderWorkflowID(in)})
	h.env.RegisterWorkflowWithOptions(ReminderWorkflow, workflow.RegisterOptions{Name: ReminderWorkflowName})
	h.env.RegisterActivity(notifications)
	send := func(in activities.NotifyInput) (activities.NotifyOutput, error) {
		h.messages = append(h.messages, in)
		h.sentAt = append(h.sentAt, h.env.Now())
		return activities.NotifyOutput{Status: "sent", Provider: "test"}, nil
	}
	h.env.OnActivity(notifications.Notify, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NotifyInput) (activities.NotifyOutput, error) {
		return send(in)
	})
	mockNotifyStep(h.env, send, &h.steps)
	return h
}

func (h *reminderHarness) run() ReminderResult {
	h.t.Helper()
	h.env.ExecuteWorkflow(ReminderWorkflowName, h.in)
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("the reminder run did not complete")
	}
	if err := h.env.GetWorkflowError(); err != nil {
		h.t.Fatalf("workflow error: %v", err)
	}
	var res ReminderResult
	if err := h.env.GetWorkflowResult(&res); err != nil {
		h.t.Fatal(err)
	}
	return res
}

// at is a signal or query moment: d after the run started.
func (h *reminderHarness) at(when time.Time, fn func()) {
	h.env.RegisterDelayedCallback(fn, when.Sub(t0))
}

var warsaw = mustLoad("Europe/Warsaw")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

func reminderPolicy() *policy.Policy {
	p := policy.Default()
	return &p
}

// preDueInput is due on Monday 30 March 2026 in Warsaw, the day after the
// switch to summer time: the reminder before it goes out at 08:00 UTC, the
// ones on and after it at 07:00 UTC, all at 09:00 local.
func preDueInput() ReminderInput {
	return ReminderInput{
		Tenant:    "acme",
		Kind:      ReminderPreDue,
		Customer:  Customer{ID: "cus-1", Email: "ada@example.com", Locale: "en", TimeZone: "Europe/Warsaw"},
		InvoiceID: "inv-1",
		Amount:    "49.90",
		Currency:  "EUR",
		Anchor:    time.Date(2026, 3, 30, 0, 0, 0, 0, warsaw),
		Policy:    reminderPolicy(),
	}
}

func TestPreDueRemindersAt0900Local(t *testing.T) {
	h := newReminderHarness(t, preDueInput())
	res := h.run()
	if res.Outcome != ReminderCompleted || res.Sent != 3 {
		t.Fatalf("result = %+v, want completed with 3 sent", res)
	}
	want := []struct {
		key string
		at  time.Time
	}{
		{"pre-due-minus-3d", time.Date(2026, 3, 27, 8, 0, 0, 0, time.UTC)},
		{"pre-due-0d", time.Date(2026, 3, 30, 7, 0, 0, 0, time.UTC)},
		{"pre-due-plus-3d", time.Date(2026, 4, 2, 7, 0, 0, 0, time.UTC)},
	}
	if len(h.messages) != len(want) {
		t.Fatalf("sent %d messages, want %d", len(h.messages), len(want))
	}
	id := "reminders/acme/pre-due/inv-1"
	for i, w := range want {
		m := h.messages[i]
		if m.IdempotencyKey != id+"/"+w.key+"/email" || m.Kind != MessagePaymentDue || m.Channel != "email" || m.Recipient != "ada@example.com" {
			t.Errorf("message %d = %+v, want key %s/%s/email, kind %s", i, m, id, w.key, MessagePaymentDue)
		}
		if m.WorkflowID != id || m.Data.InvoiceID != "inv-1" || m.Data.Amount != "49.90" || m.Data.Currency != "EUR" {
			t.Errorf("message %d data = %+v", i, m)
		}
		if !h.sentAt[i].Equal(w.at) {
			t.Errorf("%s sent at %s, want %s", w.key, h.sentAt[i].UTC(), w.at)
		}
		if local := h.sentAt[i].In(warsaw); local.Hour() != 9 || local.Minute() != 0 {
			t.Errorf("%s sent at %s local, want 09:00", w.key, local)
		}
	}
}

func TestPaidStopsPreDueReminders(t *testing.T) {
	h := newReminderHarness(t, preDueInput())
	h.at(time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC), func() {
		h.env.SignalWorkflow(SignalPaidOutOfBand, PaidOutOfBand{Reference: "wire-7"})
	})
	res := h.run()
	if res.Outcome != ReminderPaid || res.Reason != "paid: wire-7" || res.Sent != 1 {
		t.Fatalf("result = %+v, want paid after 1 reminder", res)
	}
	if len(h.messages) != 1 || !strings.HasSuffix(h.messages[0].IdempotencyKey, "/pre-due-minus-3d/email") {
		t.Fatalf("messages = %+v, want only the one 3 days before", h.messages)
	}
	if got := h.env.Now(); got.After(time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("the run ended at %s, want as soon as it was paid", got)
	}
}

func TestCancelStopsReminders(t *testing.T) {
	h := newReminderHarness(t, preDueInput())
	var mid ReminderStatus
	h.at(time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC), func() {
		v, err := h.env.QueryWorkflow(QueryStatus)
		if err != nil {
			t.Errorf("query: %v", err)
			return
		}
		if err := v.Get(&mid); err != nil {
			t.Errorf("query result: %v", err)
		}
		h.env.SignalWorkflow(SignalCancel, CancelRequest{Reason: "invoice voided"})
	})
	res := h.run()
	if res.Outcome != ReminderCancelled || res.Reason != "cancelled: invoice voided" || res.Sent != 1 {
		t.Fatalf("result = %+v, want cancelled after 1 reminder", res)
	}
	if mid.State != ReminderWaiting || len(mid.Sent) != 1 || mid.Sent[0].Key != "pre-due-minus-3d/email" || mid.Sent[0].Status != "sent" {
		t.Errorf("status before the cancel: %+v", mid)
	}
	if len(mid.Pending) != 2 || mid.Pending[0].Key != "pre-due-0d" || mid.Pending[1].Key != "pre-due-plus-3d" {
		t.Errorf("pending before the cancel: %+v", mid.Pending)
	}
	if mid.Policy != policy.Default().Ref() || mid.WorkflowID != "reminders/acme/pre-due/inv-1" {
		t.Errorf("status = %+v", mid)
	}
	if len(h.messages) != 1 {
		t.Errorf("sent %d messages, want 1", len(h.messages))
	}
}

func TestCardExpiryReminders(t *testing.T) {
	in := ReminderInput{
		Tenant:   "acme",
		Kind:     ReminderCardExpiry,
		Customer: Customer{ID: "cus-1", Email: "ada@example.com", Locale: "fr", TimeZone: "Europe/Warsaw"},
		Card:     Card{Network: "visa", Fingerprint: "fp_123"},
		Anchor:   time.Date(2026, 6, 30, 0, 0, 0, 0, warsaw),
		Policy:   reminderPolicy(),
	}
	h := newReminderHarness(t, in)
	// Paying an invoice does not stop card-expiry reminders.
	h.at(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), func() {
		h.env.SignalWorkflow(SignalPaidOutOfBand, PaidOutOfBand{})
	})
	res := h.run()
	if res.Outcome != ReminderCompleted || res.Sent != 4 {
		t.Fatalf("result = %+v, want completed with 4 sent", res)
	}
	id := "reminders/acme/card-expiry/cus-1/fp_123/2026-06-29"
	want := []struct {
		key string
		day int // of June, 07:00 UTC = 09:00 in Warsaw
		mon time.Month
	}{{"card-expiry-30d", 31, time.May}, {"card-expiry-14d", 16, time.June}, {"card-expiry-7d", 23, time.June}, {"card-expiry-1d", 29, time.June}}
	if len(h.messages) != len(want) {
		t.Fatalf("sent %d messages, want %d", len(h.messages), len(want))
	}
	for i, w := range want {
		m := h.messages[i]
		if m.IdempotencyKey != id+"/"+w.key+"/email" || m.Kind != MessageCardExpiring || m.Locale != "fr" {
			t.Errorf("message %d = %+v, want key %s/%s/email, kind %s", i, m, id, w.key, MessageCardExpiring)
		}
		if at := time.Date(2026, w.mon, w.day, 7, 0, 0, 0, time.UTC); !h.sentAt[i].Equal(at) {
			t.Errorf("%s sent at %s, want %s", w.key, h.sentAt[i].UTC(), at)
		}
	}
}

// A run started after some reminders' time sends only those still ahead.
func TestRemindersSkipThePast(t *testing.T) {
	in := preDueInput()
	in.Anchor = time.Date(2026, 3, 3, 0, 0, 0, 0, warsaw) // t0 is 2 March, 10:00 in Warsaw
	h := newReminderHarness(t, in)
	res := h.run()
	if res.Sent != 2 || len(h.messages) != 2 || !strings.HasSuffix(h.messages[0].IdempotencyKey, "/pre-due-0d/email") {
		t.Fatalf("result = %+v, messages = %+v; want the reminders on and after the due date", res, h.messages)
	}
}

func TestReminderInputValidate(t *testing.T) {
	good := preDueInput()
	if err := good.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	cases := []struct {
		name string
		edit func(*ReminderInput)
		want string
	}{
		{"unknown kind", func(in *ReminderInput) { in.Kind = "renewal" }, "kind"},
		{"no invoice", func(in *ReminderInput) { in.InvoiceID = "" }, "invoice_id"},
		{"no amount", func(in *ReminderInput) { in.Amount = "" }, "amount"},
		{"bad tenant", func(in *ReminderInput) { in.Tenant = "a/b" }, "tenant"},
		{"no anchor", func(in *ReminderInput) { in.Anchor = time.Time{} }, "anchor"},
		{"bad zone", func(in *ReminderInput) { in.Customer.TimeZone = "Mars/Base" }, "time_zone"},
		{"card without fingerprint", func(in *ReminderInput) { in.Kind = ReminderCardExpiry }, "card.fingerprint"},
	}
	for _, c := range cases {
		in := good
		c.edit(&in)
		if err := in.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate() = %v, want an error about %s", c.name, err, c.want)
		}
	}
}

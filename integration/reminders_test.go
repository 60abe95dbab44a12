package integration

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/dunningco/dunning/workflows"
)

// testRemindersStopOnCancelAndPayment starts two pre-due reminder runs
// through the API and ends one with a cancel and one with a payment, while
// both wait for their first reminder.
func (p *platform) testRemindersStopOnCancelAndPayment(t *testing.T) {
	anchor := time.Now().AddDate(0, 0, 10).UTC().Format(time.RFC3339)
	start := func(invoice string) string {
		body := fmt.Sprintf(`{"tenant":"acme","kind":"pre-due","invoice_id":%q,"amount":"49.90","currency":"EUR",
			"customer":{"id":"cus-%s","email":"ada@example.com","time_zone":"Europe/Warsaw"},"anchor":%q}`, invoice, invoice, anchor)
		code, out := p.do(t, http.MethodPost, "/v1/reminders", body)
		if code != http.StatusAccepted {
			t.Fatalf("start reminders for %s: %d %v", invoice, code, out)
		}
		return out["workflow_id"].(string)
	}
	cancelled, paid := start("rem-cancel"), start("rem-paid")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if code, out := p.do(t, http.MethodDelete, "/v1/"+cancelled+"?reason=invoice+voided", ""); code >= 300 {
		t.Fatalf("cancel reminders: %d %v", code, out)
	}
	if err := p.temporal.SignalWorkflow(ctx, paid, "", workflows.SignalPaidOutOfBand, workflows.PaidOutOfBand{Reference: "wire-7"}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{cancelled: workflows.ReminderCancelled, paid: workflows.ReminderPaid} {
		var res workflows.ReminderResult
		if err := p.temporal.GetWorkflow(ctx, id, "").Get(ctx, &res); err != nil {
			t.Fatalf("reminder run %s: %v", id, err)
		}
		if res.Outcome != want || res.Sent != 0 {
			t.Errorf("reminder run %s = %+v, want %s with nothing sent", id, res, want)
		}
	}
	p.recordHistory(t, cancelled, "v5-reminders-cancelled")
	p.recordHistory(t, paid, "v5-reminders-paid")
}

package ledger_test

import (
	"errors"
	"testing"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

func TestServiceCreditsAreIdempotentAndExact(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	run := mustOpenRun(t, s, newRun("dunning/acme/inv-c", "inv-c"))
	c := ledger.ServiceCredit{IdempotencyKey: run.WorkflowID + "/credit-suspended", WorkflowID: run.WorkflowID,
		Amount: dec("11.64"), Currency: "EUR", Days: 7, PeriodDays: 30, PeriodCharge: dec("49.90"), Reason: "service suspended 7 days"}
	first, err := s.RecordServiceCredit(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordServiceCredit(ctx, c); err != nil {
		t.Fatalf("repeat: %v", err)
	}
	other := c
	other.Amount = dec("12.00")
	if _, err := s.RecordServiceCredit(ctx, other); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("different amount under the same key: %v, want ErrConflict", err)
	}
	credits, err := s.ServiceCredits(ctx, run.WorkflowID)
	if err != nil {
		t.Fatal(err)
	}
	if len(credits) != 1 || exact(credits[0].Amount) != "11.64" || exact(credits[0].PeriodCharge) != "49.90" || credits[0].Days != 7 || !first.CreatedAt.Equal(credits[0].CreatedAt) {
		t.Fatalf("credits = %+v", credits)
	}
	bad := c
	bad.IdempotencyKey, bad.Days = "k2", 31
	if _, err := s.RecordServiceCredit(ctx, bad); !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("31 days of a 30-day period: %v, want ErrInvalid", err)
	}
	unknown := c
	unknown.IdempotencyKey, unknown.WorkflowID = "k3", "dunning/acme/none"
	if _, err := s.RecordServiceCredit(ctx, unknown); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("unknown run: %v, want ErrNotFound", err)
	}
}

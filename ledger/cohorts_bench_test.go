package ledger_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// BenchmarkRunLifecycle is the ledger's writes for one run recovered on
// attempt 2 (open, two attempts, a message, the close: 8 writes), with the
// analytics aggregates kept by their triggers, and with those triggers
// disabled for comparison only (what keeping them costs each run):
//
//	go test -run '^$' -bench RunLifecycle -benchtime 2000x ./ledger/
func BenchmarkRunLifecycle(b *testing.B) {
	for _, bc := range []struct {
		name     string
		triggers bool
	}{{"aggregates kept", true}, {"aggregate triggers off", false}} {
		b.Run(bc.name, func(b *testing.B) {
			s := ledgertest.NewStore(b)
			ctx := b.Context()
			if !bc.triggers {
				for _, q := range []string{
					`ALTER TABLE runs DISABLE TRIGGER runs_sync_aggregates_insert`,
					`ALTER TABLE runs DISABLE TRIGGER runs_sync_aggregates_update`,
					`ALTER TABLE runs DISABLE TRIGGER runs_set_churned`,
					`ALTER TABLE service_changes DISABLE TRIGGER service_changes_mark_churned`,
				} {
					if _, err := s.Pool().Exec(ctx, q); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ResetTimer()
			for i := range b.N {
				id := fmt.Sprintf("wf-%d", i)
				r := newRun(id, "inv-"+id)
				// A few hundred runs a day, so runs share their day's rows.
				r.OpenedAt = t0.Add(time.Duration(i) * 5 * time.Minute)
				if _, err := s.OpenRun(ctx, r); err != nil {
					b.Fatal(err)
				}
				for n, status := range []string{"declined", "succeeded"} {
					a := newAttempt(id, n+1, fmt.Sprintf("%s/attempt-%d", id, n+1))
					if _, err := s.BeginAttempt(ctx, a); err != nil {
						b.Fatal(err)
					}
					if err := s.FinishAttempt(ctx, a.IdempotencyKey, ledger.AttemptOutcome{Status: status}); err != nil {
						b.Fatal(err)
					}
				}
				key := id + "/msg"
				if _, err := s.BeginMessage(ctx, newMessage(id, key, r.OpenedAt)); err != nil {
					b.Fatal(err)
				}
				if err := s.FinishMessage(ctx, key, "sent", "sendgrid", "ref", "", time.Time{}); err != nil {
					b.Fatal(err)
				}
				if err := s.CloseRun(ctx, id, "recovered", "attempt 2 succeeded", r.OpenedAt.Add(48*time.Hour)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package ledger_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

func stripeEvent(id string) ledger.WebhookEvent {
	return ledger.WebhookEvent{Source: "stripe", Tenant: "acme", EventID: id, Type: "invoice.payment_failed"}
}

func mustClaim(t *testing.T, s *ledger.Store, e ledger.WebhookEvent, lease time.Duration) ledger.WebhookClaim {
	t.Helper()
	c, err := s.ClaimWebhookEvent(ctxFor(t), e, lease)
	if err != nil {
		t.Fatalf("ClaimWebhookEvent(%s): %v", e.EventID, err)
	}
	return c
}

func TestWebhookEventIsProcessedOnce(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	e := stripeEvent("evt_1")

	if c := mustClaim(t, s, e, time.Minute); c != ledger.WebhookClaimed {
		t.Fatalf("first claim = %s, want claimed", c)
	}
	// A second delivery while the first still works on it.
	if c := mustClaim(t, s, e, time.Minute); c != ledger.WebhookBusy {
		t.Fatalf("claim while held = %s, want busy", c)
	}
	if err := s.CompleteWebhookEvent(ctx, e, "decline reported to dunning/acme/in_1"); err != nil {
		t.Fatal(err)
	}
	if c := mustClaim(t, s, e, time.Minute); c != ledger.WebhookProcessed {
		t.Fatalf("claim after completion = %s, want processed", c)
	}
	// Releasing a processed event changes nothing.
	if err := s.ReleaseWebhookEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	rec, err := s.GetWebhookEvent(ctx, "stripe", "acme", "evt_1")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != "processed" || rec.Outcome != "decline reported to dunning/acme/in_1" || rec.ProcessedAt.IsZero() || rec.Type != e.Type {
		t.Fatalf("record = %+v", rec)
	}

	// Tenants are kept apart: the same event ID posted to another
	// tenant's endpoint is another event.
	other := e
	other.Tenant = "globex"
	if c := mustClaim(t, s, other, time.Minute); c != ledger.WebhookClaimed {
		t.Fatalf("other tenant's claim = %s, want claimed", c)
	}
}

func TestReleasedWebhookEventIsClaimedAgain(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	e := stripeEvent("evt_2")
	mustClaim(t, s, e, time.Minute)
	if err := s.ReleaseWebhookEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetWebhookEvent(ctx, "stripe", "acme", "evt_2"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("released event: %v, want not found", err)
	}
	if c := mustClaim(t, s, e, time.Minute); c != ledger.WebhookClaimed {
		t.Fatalf("claim after release = %s, want claimed", c)
	}
}

func TestExpiredWebhookClaimIsTakenOver(t *testing.T) {
	s := ledgertest.NewStore(t)
	e := stripeEvent("evt_3")
	// The delivery holding it died; its lease runs out.
	mustClaim(t, s, e, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if c := mustClaim(t, s, e, time.Minute); c != ledger.WebhookClaimed {
		t.Fatalf("claim after the lease expired = %s, want claimed", c)
	}
	if c := mustClaim(t, s, e, time.Minute); c != ledger.WebhookBusy {
		t.Fatalf("claim under the new lease = %s, want busy", c)
	}
}

func TestConcurrentWebhookDeliveriesClaimOnce(t *testing.T) {
	s := ledgertest.NewStore(t)
	e := stripeEvent("evt_4")
	const deliveries = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		claimed int
	)
	for range deliveries {
		wg.Go(func() {
			c, err := s.ClaimWebhookEvent(ctxFor(t), e, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if c == ledger.WebhookClaimed {
				mu.Lock()
				claimed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if claimed != 1 {
		t.Fatalf("%d of %d concurrent deliveries claimed the event, want 1", claimed, deliveries)
	}
}

func TestPruneWebhookEvents(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	done, held := stripeEvent("evt_done"), stripeEvent("evt_held")
	mustClaim(t, s, done, time.Minute)
	if err := s.CompleteWebhookEvent(ctx, done, "ignored"); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, s, held, time.Minute)

	n, err := s.PruneWebhookEvents(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("prune = %d, %v; want the processed event only", n, err)
	}
	if _, err := s.GetWebhookEvent(ctx, "stripe", "acme", "evt_held"); err != nil {
		t.Fatalf("the held event was pruned: %v", err)
	}
	if _, err := s.GetWebhookEvent(ctx, "stripe", "acme", "evt_done"); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("the processed event was kept: %v", err)
	}
}

func TestWebhookEventRefusesIncompleteKeys(t *testing.T) {
	s := ledgertest.NewStore(t)
	for _, e := range []ledger.WebhookEvent{
		{Tenant: "acme", EventID: "evt_1", Type: "x"},
		{Source: "stripe", EventID: "evt_1", Type: "x"},
		{Source: "stripe", Tenant: "acme", Type: "x"},
		{Source: "stripe", Tenant: "acme", EventID: "evt_1"},
	} {
		if _, err := s.ClaimWebhookEvent(ctxFor(t), e, time.Minute); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("claim %+v: %v, want ErrInvalid", e, err)
		}
	}
	if _, err := s.ClaimWebhookEvent(ctxFor(t), stripeEvent("evt_1"), 0); !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("claim without a lease: %v, want ErrInvalid", err)
	}
}

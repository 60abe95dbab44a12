package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

func outboxEvent(kind, key, workflowID string, created time.Time) *ledger.OutboxEvent {
	return &ledger.OutboxEvent{
		IdempotencyKey: key, WorkflowID: workflowID, Tenant: "acme", Kind: kind,
		Body: json.RawMessage(fmt.Sprintf(`{"type": %q, "idempotency_key": %q, "n": 1}`, kind, key)), CreatedAt: created,
	}
}

// sameJSON compares two JSON documents by value: jsonb hands back its own
// canonical text (key order, spacing), not the bytes it was given.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func outboxRows(t *testing.T, s *ledger.Store) int64 {
	t.Helper()
	c, err := s.Counts(ctxFor(t))
	if err != nil {
		t.Fatal(err)
	}
	return c["outbox"]
}

// outboxWrite is a ledger write that carries an outbox event.
type outboxWrite struct {
	name, kind string
	key        func(workflowID string) string
	write      func(ctx context.Context, s *ledger.Store, workflowID string, ev *ledger.OutboxEvent) error
	// written reports whether the ledger row the write makes exists.
	written func(t *testing.T, s *ledger.Store, workflowID string) bool
}

var outboxWrites = []outboxWrite{
	{
		name: "service change", kind: "service.state_changed",
		key: func(wf string) string { return wf + "/service-paused" },
		write: func(ctx context.Context, s *ledger.Store, wf string, ev *ledger.OutboxEvent) error {
			_, err := s.RecordServiceChangeWithEvent(ctx, ledger.ServiceChange{
				IdempotencyKey: wf + "/service-paused", WorkflowID: wf, State: "paused", Reason: "unpaid", CreatedAt: t0,
			}, ev)
			return err
		},
		written: func(t *testing.T, s *ledger.Store, wf string) bool {
			changes, err := s.ServiceChanges(ctxFor(t), wf)
			if err != nil {
				t.Fatal(err)
			}
			return len(changes) == 1
		},
	},
	{
		name: "run close", kind: "run.closed",
		key: func(wf string) string { return wf + "/closed" },
		write: func(ctx context.Context, s *ledger.Store, wf string, ev *ledger.OutboxEvent) error {
			return s.CloseRunWithEvent(ctx, wf, "exhausted", "retries exhausted", t0.Add(time.Hour), ev)
		},
		written: func(t *testing.T, s *ledger.Store, wf string) bool {
			run, err := s.GetRun(ctxFor(t), wf)
			if errors.Is(err, ledger.ErrNotFound) {
				return false
			}
			if err != nil {
				t.Fatal(err)
			}
			return run.Status == "exhausted"
		},
	},
	{
		name: "service credit", kind: "service.credited",
		key: func(wf string) string { return wf + "/credit-suspended" },
		write: func(ctx context.Context, s *ledger.Store, wf string, ev *ledger.OutboxEvent) error {
			_, err := s.RecordServiceCreditWithEvent(ctx, ledger.ServiceCredit{
				IdempotencyKey: wf + "/credit-suspended", WorkflowID: wf, Amount: dec("2.90"), Currency: "EUR",
				Days: 7, PeriodDays: 30, PeriodCharge: dec("12.50"), Reason: "suspended 7 days", CreatedAt: t0,
			}, ev)
			return err
		},
		written: func(t *testing.T, s *ledger.Store, wf string) bool {
			credits, err := s.ServiceCredits(ctxFor(t), wf)
			if err != nil {
				t.Fatal(err)
			}
			return len(credits) == 1
		},
	},
}

func TestOutboxEnqueueIsAtomicAndIdempotent(t *testing.T) {
	for _, w := range outboxWrites {
		t.Run(w.name+"/enqueued once", func(t *testing.T) {
			s := ledgertest.NewStore(t)
			ctx := ctxFor(t)
			mustOpenRun(t, s, newRun("wf-1", "inv-1"))
			first := outboxEvent(w.kind, w.key("wf-1"), "wf-1", t0)
			if err := w.write(ctx, s, "wf-1", first); err != nil {
				t.Fatalf("first write: %v", err)
			}
			// A retried activity builds its event again (a later "at" in
			// the body, say): the first one stays, so every attempt sends
			// the same bytes.
			again := outboxEvent(w.kind, w.key("wf-1"), "wf-1", t0.Add(time.Minute))
			again.Body = json.RawMessage(`{"type": "changed on retry"}`)
			if err := w.write(ctx, s, "wf-1", again); err != nil {
				t.Fatalf("repeated write: %v", err)
			}
			if !w.written(t, s, "wf-1") {
				t.Errorf("ledger row missing")
			}
			if n := outboxRows(t, s); n != 1 {
				t.Fatalf("outbox rows = %d, want 1", n)
			}
			got, err := s.OutboxEvent(ctx, w.key("wf-1"))
			if err != nil {
				t.Fatal(err)
			}
			if got.Kind != w.kind || got.WorkflowID != "wf-1" || got.Tenant != "acme" || got.Version != 1 || got.Status != ledger.OutboxPending ||
				got.Attempts != 0 || !got.CreatedAt.Equal(t0) || !got.NextAttemptAt.Equal(t0) || !got.DeliveredAt.IsZero() {
				t.Errorf("stored event = %+v, want the first one, pending and due at once", got)
			}
			if !sameJSON(t, got.Body, first.Body) {
				t.Errorf("stored body = %s, want %s", got.Body, first.Body)
			}
		})

		t.Run(w.name+"/no event without one given", func(t *testing.T) {
			s := ledgertest.NewStore(t)
			mustOpenRun(t, s, newRun("wf-1", "inv-1"))
			if err := w.write(ctxFor(t), s, "wf-1", nil); err != nil {
				t.Fatal(err)
			}
			if !w.written(t, s, "wf-1") {
				t.Errorf("ledger row missing")
			}
			if n := outboxRows(t, s); n != 0 {
				t.Errorf("outbox rows = %d, want 0", n)
			}
		})

		t.Run(w.name+"/write rolled back with its event", func(t *testing.T) {
			s := ledgertest.NewStore(t)
			ctx := ctxFor(t)
			mustOpenRun(t, s, newRun("wf-1", "inv-1"))
			mustOpenRun(t, s, newRun("wf-other", "inv-other"))
			// The key is taken by another run's event: the enqueue fails
			// inside the transaction, so the ledger write must not stay.
			if _, err := s.Enqueue(ctx, *outboxEvent("other.kind", w.key("wf-1"), "wf-other", t0)); err != nil {
				t.Fatal(err)
			}
			err := w.write(ctx, s, "wf-1", outboxEvent(w.kind, w.key("wf-1"), "wf-1", t0))
			if !errors.Is(err, ledger.ErrConflict) {
				t.Fatalf("write = %v, want ErrConflict", err)
			}
			if w.written(t, s, "wf-1") {
				t.Errorf("the ledger row was committed without its event")
			}
			if n := outboxRows(t, s); n != 1 {
				t.Errorf("outbox rows = %d, want only the other run's", n)
			}
		})

		t.Run(w.name+"/event rolled back with its write", func(t *testing.T) {
			s := ledgertest.NewStore(t)
			err := w.write(ctxFor(t), s, "wf-missing", outboxEvent(w.kind, w.key("wf-missing"), "wf-missing", t0))
			if !errors.Is(err, ledger.ErrNotFound) {
				t.Fatalf("write for an unknown run = %v, want ErrNotFound", err)
			}
			if n := outboxRows(t, s); n != 0 {
				t.Errorf("outbox rows = %d, want 0: the event outlived its failed write", n)
			}
		})
	}
}

func TestServiceChangeCallbackStatusFollowsOutbox(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	mustOpenRun(t, s, newRun("wf-1", "inv-1"))
	record := func(key string, ev *ledger.OutboxEvent) ledger.ServiceChange {
		t.Helper()
		c, err := s.RecordServiceChangeWithEvent(ctx, ledger.ServiceChange{IdempotencyKey: key, WorkflowID: "wf-1", State: "paused",
			CallbackStatus: "none", CallbackDetail: "no billing callback configured", CreatedAt: t0}, ev)
		if err != nil {
			t.Fatalf("RecordServiceChangeWithEvent(%s): %v", key, err)
		}
		return c
	}

	if c := record("wf-1/none", nil); c.CallbackStatus != "none" || c.CallbackDetail != "no billing callback configured" {
		t.Errorf("change without an event = %+v, want callback none", c)
	}
	ev := outboxEvent("service.state_changed", "wf-1/a", "wf-1", t0)
	if c := record("wf-1/a", ev); c.CallbackStatus != "pending" || c.CallbackDetail != "" {
		t.Errorf("change with an event = %+v, want callback pending", c)
	}
	if err := s.MarkRetry(ctx, "wf-1/a", "billing: callback answered HTTP 503", t0.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if c := record("wf-1/a", ev); c.CallbackStatus != "pending" || c.CallbackDetail != "billing: callback answered HTTP 503" {
		t.Errorf("change after a retry = %+v, want pending with the last error", c)
	}
	if err := s.MarkDelivered(ctx, "wf-1/a"); err != nil {
		t.Fatal(err)
	}
	if c := record("wf-1/a", ev); c.CallbackStatus != "delivered" || c.CallbackDetail != "" {
		t.Errorf("change after delivery = %+v, want delivered", c)
	}

	record("wf-1/b", outboxEvent("service.state_changed", "wf-1/b", "wf-1", t0))
	if err := s.MarkFailed(ctx, "wf-1/b", "billing: billing callback rejected: HTTP 422: unknown customer"); err != nil {
		t.Fatal(err)
	}
	if c := record("wf-1/b", nil); c.CallbackStatus != "failed" || c.CallbackDetail != "billing: billing callback rejected: HTTP 422: unknown customer" {
		t.Errorf("change after refusal = %+v, want failed with the billing system's answer", c)
	}
	// A change recorded without an event keeps "none" even if a later call
	// brings one: repeating a call changes nothing.
	if c := record("wf-1/none", outboxEvent("service.state_changed", "wf-1/none", "wf-1", t0)); c.CallbackStatus != "none" {
		t.Errorf("repeated change = %+v, want none", c)
	}
	if n := outboxRows(t, s); n != 2 {
		t.Errorf("outbox rows = %d, want 2", n)
	}
}

func TestOutboxMarks(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	for _, key := range []string{"wf-a/e", "wf-b/e", "wf-c/e"} {
		if _, err := s.Enqueue(ctx, *outboxEvent("run.closed", key, key[:4], t0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkRetry(ctx, "wf-a/e", "HTTP 500", t0.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDelivered(ctx, "wf-a/e"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(ctx, "wf-b/e", "HTTP 400"); err != nil {
		t.Fatal(err)
	}

	a, err := s.OutboxEvent(ctx, "wf-a/e")
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != ledger.OutboxDelivered || a.Attempts != 2 || a.LastError != "" || a.DeliveredAt.IsZero() || a.LastAttemptAt.IsZero() {
		t.Errorf("delivered event = %+v, want delivered after 2 attempts", a)
	}
	b, err := s.OutboxEvent(ctx, "wf-b/e")
	if err != nil {
		t.Fatal(err)
	}
	if b.Status != ledger.OutboxFailed || b.Attempts != 1 || b.LastError != "HTTP 400" || !b.DeliveredAt.IsZero() {
		t.Errorf("failed event = %+v, want failed after 1 attempt", b)
	}

	for _, tc := range []struct {
		name    string
		mark    func() error
		wantErr error
	}{
		{"delivered again", func() error { return s.MarkDelivered(ctx, "wf-a/e") }, nil},
		{"failed again", func() error { return s.MarkFailed(ctx, "wf-b/e", "HTTP 400") }, nil},
		{"retry after delivery", func() error { return s.MarkRetry(ctx, "wf-a/e", "late", t0) }, ledger.ErrConflict},
		{"retry after refusal", func() error { return s.MarkRetry(ctx, "wf-b/e", "late", t0) }, ledger.ErrConflict},
		{"failed after delivery", func() error { return s.MarkFailed(ctx, "wf-a/e", "late") }, ledger.ErrConflict},
		{"unknown key", func() error { return s.MarkDelivered(ctx, "wf-x/e") }, ledger.ErrNotFound},
		{"retry unknown key", func() error { return s.MarkRetry(ctx, "wf-x/e", "", t0) }, ledger.ErrNotFound},
		{"no key", func() error { return s.MarkFailed(ctx, "", "") }, ledger.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.mark(); !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	if a2, _ := s.OutboxEvent(ctx, "wf-a/e"); a2.Attempts != 2 || a2.Status != ledger.OutboxDelivered {
		t.Errorf("a late mark changed the delivered event: %+v", a2)
	}
}

func TestClaimDueRetryScheduleAndLease(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	if _, err := s.Enqueue(ctx, *outboxEvent("run.closed", "wf-1/closed", "wf-1", t0)); err != nil {
		t.Fatal(err)
	}
	keys := func(now time.Time) []string {
		t.Helper()
		events, err := s.ClaimDue(ctx, now, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range events {
			out = append(out, e.IdempotencyKey)
		}
		return out
	}

	if got := keys(t0.Add(-time.Second)); len(got) != 0 {
		t.Errorf("claimed before it was due: %v", got)
	}
	if got := keys(t0); !slices.Equal(got, []string{"wf-1/closed"}) {
		t.Fatalf("claim at t0 = %v", got)
	}
	// Leased: no one else gets it until the lease runs out.
	if got := keys(t0.Add(ledger.OutboxLease - time.Second)); len(got) != 0 {
		t.Errorf("claimed again within the lease: %v", got)
	}
	if got := keys(t0.Add(ledger.OutboxLease)); !slices.Equal(got, []string{"wf-1/closed"}) {
		t.Fatalf("claim after the lease = %v, want the event back (its dispatcher died)", got)
	}

	// A transient failure schedules the next attempt.
	retryAt := t0.Add(ledger.OutboxLease + 10*time.Second)
	if err := s.MarkRetry(ctx, "wf-1/closed", "billing: callback answered HTTP 503", retryAt); err != nil {
		t.Fatal(err)
	}
	e, err := s.OutboxEvent(ctx, "wf-1/closed")
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != ledger.OutboxPending || e.Attempts != 1 || !e.NextAttemptAt.Equal(retryAt) || e.LastError != "billing: callback answered HTTP 503" {
		t.Errorf("after MarkRetry = %+v", e)
	}
	if got := keys(retryAt.Add(-time.Millisecond)); len(got) != 0 {
		t.Errorf("claimed before its retry time: %v", got)
	}
	if got := keys(retryAt); !slices.Equal(got, []string{"wf-1/closed"}) {
		t.Errorf("claim at the retry time = %v", got)
	}
}

func TestClaimDueKeepsEachRunInOrder(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	for i, key := range []string{"wf-1/paused", "wf-1/suspended", "wf-1/closed", "wf-2/paused"} {
		wf := key[:4]
		if _, err := s.Enqueue(ctx, *outboxEvent("k", key, wf, t0.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	now := t0.Add(time.Minute)
	claim := func() []string {
		t.Helper()
		events, err := s.ClaimDue(ctx, now, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range events {
			out = append(out, e.IdempotencyKey)
		}
		return out
	}
	if got := claim(); !slices.Equal(got, []string{"wf-1/paused", "wf-2/paused"}) {
		t.Fatalf("first claim = %v, want the head of each run", got)
	}
	// wf-1/paused is leased, so still pending: wf-1's next event waits.
	if got := claim(); len(got) != 0 {
		t.Fatalf("second claim = %v, want nothing while wf-1/paused is in flight", got)
	}
	if err := s.MarkDelivered(ctx, "wf-1/paused"); err != nil {
		t.Fatal(err)
	}
	if got := claim(); !slices.Equal(got, []string{"wf-1/suspended"}) {
		t.Fatalf("claim after delivery = %v", got)
	}
	// A refused event does not hold its run up.
	if err := s.MarkFailed(ctx, "wf-1/suspended", "HTTP 400"); err != nil {
		t.Fatal(err)
	}
	if got := claim(); !slices.Equal(got, []string{"wf-1/closed"}) {
		t.Fatalf("claim after refusal = %v", got)
	}
}

func TestClaimDueSkipsLockedRows(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	for _, key := range []string{"wf-a/e", "wf-b/e", "wf-c/e"} {
		if _, err := s.Enqueue(ctx, *outboxEvent("k", key, key[:4], t0)); err != nil {
			t.Fatal(err)
		}
	}
	// Another dispatcher is in the middle of claiming wf-a/e.
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT id FROM outbox WHERE idempotency_key = 'wf-a/e' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}

	// Without SKIP LOCKED this would wait for the lock until the deadline.
	quick, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	events, err := s.ClaimDue(quick, t0, 10)
	if err != nil {
		t.Fatalf("ClaimDue next to a locked row: %v", err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.IdempotencyKey)
	}
	if !slices.Equal(got, []string{"wf-b/e", "wf-c/e"}) {
		t.Fatalf("claimed %v, want the two unlocked events", got)
	}

	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	events, err = s.ClaimDue(ctx, t0, 10)
	if err != nil || len(events) != 1 || events[0].IdempotencyKey != "wf-a/e" {
		t.Fatalf("claim after the lock is gone = %+v, %v; want only wf-a/e", events, err)
	}
}

func TestClaimDueConcurrentClaimersNeverShare(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	const total = 60
	for i := range total {
		wf := fmt.Sprintf("wf-%02d", i)
		if _, err := s.Enqueue(ctx, *outboxEvent("k", wf+"/e", wf, t0)); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu      sync.Mutex
		claimed = map[string]int{}
		wg      sync.WaitGroup
		start   = make(chan struct{})
		errs    = make(chan error, 2)
	)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				events, err := s.ClaimDue(ctx, t0, 7)
				if err != nil {
					errs <- err
					return
				}
				if len(events) == 0 {
					return
				}
				mu.Lock()
				for _, e := range events {
					claimed[e.IdempotencyKey]++
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(claimed) != total {
		t.Errorf("claimed %d distinct events, want %d", len(claimed), total)
	}
	for key, n := range claimed {
		if n != 1 {
			t.Errorf("%s claimed %d times", key, n)
		}
	}
}

func TestUndeliveredEvents(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	for i, key := range []string{"wf-a/old-pending", "wf-b/delivered", "wf-c/failed", "wf-d/new-pending"} {
		if _, err := s.Enqueue(ctx, *outboxEvent("k", key, key[:4], t0.Add(time.Duration(i)*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkDelivered(ctx, "wf-b/delivered"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(ctx, "wf-c/failed", "billing: billing callback rejected: HTTP 400"); err != nil {
		t.Fatal(err)
	}
	events, err := s.UndeliveredEvents(ctx, t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		got = append(got, e.IdempotencyKey+"="+e.Status)
	}
	if want := []string{"wf-a/old-pending=pending", "wf-c/failed=failed"}; !slices.Equal(got, want) {
		t.Errorf("UndeliveredEvents = %v, want %v", got, want)
	}
	if events[1].LastError == "" {
		t.Errorf("failed event without the billing system's answer: %+v", events[1])
	}
}

func TestOutboxRejectsInvalidEvents(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	mustOpenRun(t, s, newRun("wf-1", "inv-1"))
	change := ledger.ServiceChange{IdempotencyKey: "wf-1/p", WorkflowID: "wf-1", State: "paused"}
	mutated := func(mut func(*ledger.OutboxEvent)) *ledger.OutboxEvent {
		e := outboxEvent("service.state_changed", "wf-1/p", "wf-1", t0)
		mut(e)
		return e
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"no tenant", func() error {
			_, err := s.RecordServiceChangeWithEvent(ctx, change, mutated(func(e *ledger.OutboxEvent) { e.Tenant = "" }))
			return err
		}},
		{"negative version", func() error {
			_, err := s.RecordServiceChangeWithEvent(ctx, change, mutated(func(e *ledger.OutboxEvent) { e.Version = -1 }))
			return err
		}},
		{"no kind", func() error {
			_, err := s.RecordServiceChangeWithEvent(ctx, change, mutated(func(e *ledger.OutboxEvent) { e.Kind = "" }))
			return err
		}},
		{"body not JSON", func() error {
			_, err := s.RecordServiceChangeWithEvent(ctx, change, mutated(func(e *ledger.OutboxEvent) { e.Body = []byte("{") }))
			return err
		}},
		{"event of another change", func() error {
			_, err := s.RecordServiceChangeWithEvent(ctx, change, mutated(func(e *ledger.OutboxEvent) { e.IdempotencyKey = "wf-1/q" }))
			return err
		}},
		{"close event of another run", func() error {
			return s.CloseRunWithEvent(ctx, "wf-1", "recovered", "", t0, mutated(func(e *ledger.OutboxEvent) { e.WorkflowID = "wf-2" }))
		}},
		{"enqueue without key", func() error {
			_, err := s.Enqueue(ctx, *mutated(func(e *ledger.OutboxEvent) { e.IdempotencyKey = "" }))
			return err
		}},
		{"claim nothing", func() error { _, err := s.ClaimDue(ctx, t0, 0); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, ledger.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if n := outboxRows(t, s); n != 0 {
		t.Errorf("outbox rows = %d, want 0", n)
	}
	if changes, _ := s.ServiceChanges(ctx, "wf-1"); len(changes) != 0 {
		t.Errorf("service changes = %+v, want none", changes)
	}
	if run, _ := s.GetRun(ctx, "wf-1"); run.Status != "open" {
		t.Errorf("run status = %s, want open", run.Status)
	}
}

func TestOutboxSkipAndRedeliver(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	mustOpenRun(t, s, newRun("wf-1", "inv-1"))
	record := func(key string) {
		t.Helper()
		if _, err := s.RecordServiceChangeWithEvent(ctx, ledger.ServiceChange{IdempotencyKey: key, WorkflowID: "wf-1", State: "paused", CreatedAt: t0},
			outboxEvent("service.state_changed", key, "wf-1", t0)); err != nil {
			t.Fatal(err)
		}
	}
	change := func(key string) ledger.ServiceChange {
		t.Helper()
		changes, err := s.ServiceChanges(ctx, "wf-1")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range changes {
			if c.IdempotencyKey == key {
				return c
			}
		}
		t.Fatalf("no service change %s", key)
		return ledger.ServiceChange{}
	}
	event := func(key string) ledger.OutboxEvent {
		t.Helper()
		e, err := s.OutboxEvent(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}

	// No endpoint for the tenant: skipped, not failed, and the change says so.
	record("wf-1/a")
	const reason = `no event endpoint configured for tenant "acme"`
	if err := s.MarkSkipped(ctx, "wf-1/a", reason); err != nil {
		t.Fatal(err)
	}
	if e := event("wf-1/a"); e.Status != ledger.OutboxSkipped || e.Attempts != 0 || e.LastError != reason {
		t.Errorf("skipped event = %+v", e)
	}
	if c := change("wf-1/a"); c.CallbackStatus != "none" || c.CallbackDetail != reason {
		t.Errorf("change of a skipped event = %+v, want callback none with the reason", c)
	}
	if err := s.MarkSkipped(ctx, "wf-1/a", reason); err != nil {
		t.Errorf("skipping again = %v, want a no-op", err)
	}
	if undelivered, _ := s.UndeliveredEvents(ctx, t0.Add(24*time.Hour)); len(undelivered) != 0 {
		t.Errorf("UndeliveredEvents = %+v; a skipped event is not a failure", undelivered)
	}

	// Redeliver: pending again, due at the given time, same key.
	again := t0.Add(time.Hour)
	e, err := s.Redeliver(ctx, "wf-1/a", again)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != ledger.OutboxPending || !e.NextAttemptAt.Equal(again) || e.LastError != "" || !e.DeliveredAt.IsZero() {
		t.Errorf("redelivered event = %+v, want pending and due at %s", e, again)
	}
	if c := change("wf-1/a"); c.CallbackStatus != "pending" || c.CallbackDetail != "" {
		t.Errorf("change of a redelivered event = %+v, want pending", c)
	}
	if claimed, err := s.ClaimDue(ctx, again, 10); err != nil || len(claimed) != 1 || claimed[0].IdempotencyKey != "wf-1/a" {
		t.Fatalf("ClaimDue after redeliver = %+v, %v", claimed, err)
	}

	// Delivered and failed events come back too; pending stays as it is.
	if err := s.MarkDelivered(ctx, "wf-1/a"); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Redeliver(ctx, "wf-1/a", again); err != nil || e.Status != ledger.OutboxPending || e.Attempts != 1 {
		t.Errorf("redeliver a delivered event = %+v, %v; want pending, attempts kept", e, err)
	}
	if err := s.MarkFailed(ctx, "wf-1/a", "HTTP 422: unknown customer"); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Redeliver(ctx, "wf-1/a", again); err != nil || e.Status != ledger.OutboxPending || e.LastError != "" {
		t.Errorf("redeliver a failed event = %+v, %v", e, err)
	}
	if e, err := s.Redeliver(ctx, "wf-1/a", again.Add(time.Hour)); err != nil || !e.NextAttemptAt.Equal(again) {
		t.Errorf("redeliver a pending event = %+v, %v; want it unchanged", e, err)
	}
	if _, err := s.Redeliver(ctx, "wf-1/none", again); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("redeliver an unknown key = %v, want ErrNotFound", err)
	}
	if err := s.MarkSkipped(ctx, "wf-1/none", reason); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("skip an unknown key = %v, want ErrNotFound", err)
	}
	if err := s.MarkDelivered(ctx, "wf-1/a"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSkipped(ctx, "wf-1/a", reason); !errors.Is(err, ledger.ErrConflict) {
		t.Errorf("skip a delivered event = %v, want ErrConflict", err)
	}
}

func TestListEvents(t *testing.T) {
	s := ledgertest.NewStore(t)
	ctx := ctxFor(t)
	for i, ev := range []struct{ key, tenant string }{
		{"wf-a/1", "acme"}, {"wf-b/1", "globex"}, {"wf-c/1", "acme"}, {"wf-d/1", "acme"},
	} {
		e := outboxEvent("run.closed", ev.key, ev.key[:4], t0.Add(time.Duration(i)*time.Minute))
		e.Tenant = ev.tenant
		if _, err := s.Enqueue(ctx, *e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkFailed(ctx, "wf-c/1", "HTTP 400"); err != nil {
		t.Fatal(err)
	}
	keys := func(f ledger.EventFilter) []string {
		t.Helper()
		events, err := s.ListEvents(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range events {
			out = append(out, e.IdempotencyKey)
		}
		return out
	}
	for _, tt := range []struct {
		f    ledger.EventFilter
		want []string
	}{
		{ledger.EventFilter{Tenant: "acme"}, []string{"wf-d/1", "wf-c/1", "wf-a/1"}},
		{ledger.EventFilter{Tenant: "acme", Status: ledger.OutboxFailed}, []string{"wf-c/1"}},
		{ledger.EventFilter{Tenant: "acme", Limit: 1}, []string{"wf-d/1"}},
		{ledger.EventFilter{Status: ledger.OutboxPending}, []string{"wf-d/1", "wf-b/1", "wf-a/1"}},
		{ledger.EventFilter{Tenant: "initech"}, nil},
	} {
		if got := keys(tt.f); !slices.Equal(got, tt.want) {
			t.Errorf("ListEvents(%+v) = %v, want %v", tt.f, got, tt.want)
		}
	}
	for _, f := range []ledger.EventFilter{{Status: "lost"}, {Limit: -1}, {Limit: 1001}} {
		if _, err := s.ListEvents(ctx, f); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("ListEvents(%+v) = %v, want ErrInvalid", f, err)
		}
	}
}

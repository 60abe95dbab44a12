package idempotency

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/ledger/ledgertest"
)

// A request whose process died holding the key is taken over once its
// lease is over; a record past its expiry is forgotten.
func TestIdempotencyLeaseAndExpiry(t *testing.T) {
	ctx := context.Background()
	store := NewStore(ledgertest.NewStore(t).Pool())
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	store.Now = func() time.Time { return now }
	fp := []byte("fingerprint-a")

	if got, _, err := store.Begin(ctx, "acme", "k", fp, time.Minute); err != nil || got != Acquired {
		t.Fatalf("first Begin = %v, %v", got, err)
	}
	if got, _, _ := store.Begin(ctx, "acme", "k", fp, time.Minute); got != InProgress {
		t.Errorf("within the lease = %v, want InProgress", got)
	}
	now = now.Add(2 * time.Minute)
	if got, _, _ := store.Begin(ctx, "acme", "k", []byte("fingerprint-b"), time.Minute); got != Mismatch {
		t.Errorf("another request after the lease = %v, want Mismatch", got)
	}
	if got, _, _ := store.Begin(ctx, "acme", "k", fp, time.Minute); got != Acquired {
		t.Errorf("same request after the lease = %v, want Acquired", got)
	}
	if err := store.Complete(ctx, "acme", "k", Response{Status: 202, Header: map[string]string{"Content-Type": "application/json"}, Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	got, resp, _ := store.Begin(ctx, "acme", "k", fp, time.Minute)
	if got != Replay || resp.Status != 202 || string(resp.Body) != `{}` || resp.Header["Content-Type"] != "application/json" {
		t.Errorf("after Complete = %v %+v", got, resp)
	}
	now = now.Add(DefaultTTL)
	if got, _, _ := store.Begin(ctx, "acme", "k", []byte("fingerprint-b"), time.Minute); got != Acquired {
		t.Errorf("after expiry = %v, want Acquired", got)
	}
}

// Of requests racing with one key, exactly one runs.
func TestBeginRace(t *testing.T) {
	ctx := context.Background()
	store := NewStore(ledgertest.NewStore(t).Pool())
	const n = 8
	outcomes := make(chan Outcome, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			got, _, err := store.Begin(ctx, "acme", "race", []byte("fp"), time.Minute)
			if err != nil {
				t.Error(err)
			}
			outcomes <- got
		})
	}
	close(start)
	wg.Wait()
	close(outcomes)
	acquired := 0
	for o := range outcomes {
		switch o {
		case Acquired:
			acquired++
		case InProgress:
		default:
			t.Errorf("outcome %v", o)
		}
	}
	if acquired != 1 {
		t.Errorf("%d requests acquired the key, want 1", acquired)
	}
	// Released, the key is free for the retry.
	if err := store.Release(ctx, "acme", "race"); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := store.Begin(ctx, "acme", "race", []byte("fp"), time.Minute); got != Acquired {
		t.Errorf("after Release = %v, want Acquired", got)
	}
	// Another scope never sees it.
	if got, _, _ := store.Begin(ctx, "globex", "race", []byte("other"), time.Minute); got != Acquired {
		t.Errorf("another scope = %v, want Acquired", got)
	}
}

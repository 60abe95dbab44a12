package ledger

import (
	"context"
	"fmt"
)

// Observer hears of facts the ledger has just recorded for the first time:
// a charge's outcome, a message's final status, a run's close, a charge a
// card-network rule refused. It is told after the write committed, once per
// fact: a retried activity that finds its row already finished, or closes a
// closed run again, tells it nothing, so counters built on it (package
// metrics) count what happened, not how often an activity ran. A process
// that crashes between the commit and the call loses that one notice; it
// never doubles one.
//
// Methods are called on the writer's goroutine and must not block.
type Observer interface {
	// AttemptFinished: a pending attempt got its outcome. Network is the
	// card network its reservation named ("" when unknown or not reserved).
	AttemptFinished(ctx context.Context, a Attempt, network string)
	// MessageFinished: a pending message got its final status.
	MessageFinished(ctx context.Context, m Message)
	// RunClosed: an open run closed (recovered, exhausted or cancelled).
	RunClosed(ctx context.Context, r Run)
	// CardDenied: a card-network rule or a card block refused a charge
	// before the gateway was called.
	CardDenied(ctx context.Context, d CardDenial)
}

// SetObserver makes o hear of every fact the store records from now on; nil
// stops it. Call it before the store is shared.
func (s *Store) SetObserver(o Observer) { s.observer = o }

// observe calls fn with the observer when one is set.
func (s *Store) observe(fn func(Observer)) {
	if s.observer != nil {
		fn(s.observer)
	}
}

// RunsInPhase counts the runs the read model shows in phase, e.g.
// "needs_attention", across tenants, for a gauge read at scrape time.
func (s *Store) RunsInPhase(ctx context.Context, phase string) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM run_status WHERE phase = $1`, phase).Scan(&n); err != nil {
		return 0, fmt.Errorf("ledger: count runs in phase %s: %w", phase, err)
	}
	return n, nil
}

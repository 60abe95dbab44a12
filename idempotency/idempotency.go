// Package idempotency records the answers to HTTP requests that carry an
// Idempotency-Key (IETF httpapi draft "The Idempotency-Key HTTP Header
// Field"), so a client that retries after a lost answer gets the first
// answer again instead of a second effect. Records live in the ledger's
// PostgreSQL database (table idempotency_keys, ledger migration 0011) and
// expire after a day by default.
package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultTTL is how long an answer is kept for replay.
const DefaultTTL = 24 * time.Hour

// Outcome is what Begin found.
type Outcome int

const (
	// Acquired: the key is new (or its record expired, or the request that
	// held it died); the caller runs the request and then calls Complete or
	// Release.
	Acquired Outcome = iota
	// Replay: the request was answered before; Response is the answer.
	Replay
	// Mismatch: the key was used with another request.
	Mismatch
	// InProgress: the first request with the key is still running.
	InProgress
)

// Response is a recorded answer.
type Response struct {
	Status int
	Header map[string]string
	Body   []byte
}

// Store keeps idempotency records. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// Now is the clock; TTL how long records are kept (DefaultTTL). Set
	// them before first use.
	Now func() time.Time
	TTL time.Duration

	sweepMu   sync.Mutex
	lastSweep time.Time
}

// NewStore is a store on pool (ledger.Store.Pool).
func NewStore(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, Now: time.Now, TTL: DefaultTTL}
}

// sweepEvery is how often Begin deletes expired records.
const sweepEvery = 10 * time.Minute

// Begin claims key in scope for a request with fingerprint, for at most
// lease (after which a retry may take the key over from a request presumed
// dead), or reports what became of the key before.
func (s *Store) Begin(ctx context.Context, scope, key string, fingerprint []byte, lease time.Duration) (Outcome, Response, error) {
	now := s.Now().UTC()
	s.maybeSweep(ctx, now)
	// Insert, or take over a record that expired or whose request died
	// holding it with the same fingerprint; otherwise read what is there.
	var taken bool
	err := s.pool.QueryRow(ctx, `INSERT INTO idempotency_keys AS k (scope, key, fingerprint, state, locked_until, created_at, expires_at)
		VALUES ($1, $2, $3, 'in_progress', $4, $5, $6)
		ON CONFLICT (scope, key) DO UPDATE SET
			fingerprint = EXCLUDED.fingerprint, state = 'in_progress', locked_until = EXCLUDED.locked_until,
			status = NULL, headers = NULL, body = NULL, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
		WHERE k.expires_at <= $5
		   OR (k.state = 'in_progress' AND k.locked_until <= $5 AND k.fingerprint = EXCLUDED.fingerprint)
		RETURNING true`,
		scope, key, fingerprint, now.Add(lease), now, now.Add(s.ttl())).Scan(&taken)
	switch {
	case err == nil:
		return Acquired, Response{}, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return 0, Response{}, fmt.Errorf("idempotency: claim key: %w", err)
	}
	var (
		fp      []byte
		state   string
		status  *int
		headers []byte
		body    []byte
	)
	err = s.pool.QueryRow(ctx, `SELECT fingerprint, state, status, headers, body FROM idempotency_keys WHERE scope = $1 AND key = $2`,
		scope, key).Scan(&fp, &state, &status, &headers, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		// Released between the two statements: the key is free again.
		return s.Begin(ctx, scope, key, fingerprint, lease)
	}
	if err != nil {
		return 0, Response{}, fmt.Errorf("idempotency: read key: %w", err)
	}
	switch {
	case string(fp) != string(fingerprint):
		return Mismatch, Response{}, nil
	case state == "in_progress":
		return InProgress, Response{}, nil
	}
	resp := Response{Status: *status, Body: body}
	if len(headers) > 0 {
		if err := json.Unmarshal(headers, &resp.Header); err != nil {
			return 0, Response{}, fmt.Errorf("idempotency: read key: headers: %w", err)
		}
	}
	return Replay, resp, nil
}

// Complete records the answer to the request that holds key.
func (s *Store) Complete(ctx context.Context, scope, key string, resp Response) error {
	headers, err := json.Marshal(resp.Header)
	if err != nil {
		return fmt.Errorf("idempotency: record answer: %w", err)
	}
	_, err = s.pool.Exec(ctx, `UPDATE idempotency_keys SET state = 'done', status = $3, headers = $4, body = $5
		WHERE scope = $1 AND key = $2`, scope, key, resp.Status, headers, resp.Body)
	if err != nil {
		return fmt.Errorf("idempotency: record answer: %w", err)
	}
	return nil
}

// Release frees key without recording an answer, so a retry runs the
// request again (the answer said "try again": 5xx, 429).
func (s *Store) Release(ctx context.Context, scope, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND state = 'in_progress'`, scope, key); err != nil {
		return fmt.Errorf("idempotency: release key: %w", err)
	}
	return nil
}

func (s *Store) ttl() time.Duration {
	if s.TTL > 0 {
		return s.TTL
	}
	return DefaultTTL
}

// maybeSweep deletes a batch of expired records every sweepEvery, so the
// table holds about a day of keys without a separate job. Failure is
// harmless: expired records are taken over by Begin anyway.
func (s *Store) maybeSweep(ctx context.Context, now time.Time) {
	s.sweepMu.Lock()
	due := now.Sub(s.lastSweep) >= sweepEvery
	if due {
		s.lastSweep = now
	}
	s.sweepMu.Unlock()
	if !due {
		return
	}
	_, _ = s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE ctid IN (
		SELECT ctid FROM idempotency_keys WHERE expires_at <= $1 LIMIT 1000)`, now)
}

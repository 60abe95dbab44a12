// Package ledger is the PostgreSQL record of dunning: one run per failed
// invoice and the charge attempts, customer messages and service changes made
// for it. Every row is keyed so that a retried activity finds what it wrote
// before instead of doing the work twice. Amounts are numeric with an ISO 4217
// currency and are read back as exact decimals.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
)

// Errors callers branch on.
// DefaultURL is the local ledger database used when DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/dunning?sslmode=disable"

var (
	ErrNotFound  = errors.New("ledger: not found")
	ErrRunClosed = errors.New("ledger: run already closed")
	// ErrConflict means a row already exists under the key or invoice that
	// disagrees with the request: retrying cannot succeed.
	ErrConflict = errors.New("ledger: conflicting record")
	// ErrInvalid means the request was rejected before touching the database.
	ErrInvalid = errors.New("ledger: invalid input")
)

// PostgreSQL error codes the store handles.
const (
	codeInvalidCatalogName  = "3D000"
	codeDuplicateDatabase   = "42P04"
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)

// querier is what a write needs: the pool for a single statement, or a
// transaction when the write must commit together with another one (a
// ledger row and its outbox event).
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store is the ledger on one PostgreSQL database. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// observer, when set, hears of facts recorded for the first time
	// (SetObserver).
	observer Observer
}

// Open connects to databaseURL, creating the database if it does not exist,
// and applies pending migrations.
func Open(ctx context.Context, databaseURL string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("ledger: parse database URL: %w", err)
	}
	pool, err := connect(ctx, cfg)
	if pgCode(err) == codeInvalidCatalogName {
		if err := createDatabase(ctx, cfg.ConnConfig); err != nil {
			return nil, err
		}
		pool, err = connect(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: connect to database %q on %s: %w", cfg.ConnConfig.Database, cfg.ConnConfig.Host, err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool}, nil
}

// connect opens a pool and pings it, because pgxpool connects lazily and a
// missing database would otherwise only show up on first use.
func connect(ctx context.Context, cfg *pgxpool.Config) (*pgxpool.Pool, error) {
	pool, err := pgxpool.NewWithConfig(ctx, cfg.Copy())
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// createDatabase creates cc.Database through the "postgres" maintenance
// database on the same server, with the same credentials.
func createDatabase(ctx context.Context, cc *pgx.ConnConfig) error {
	admin := cc.Copy()
	admin.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("ledger: connect to database \"postgres\" to create %q: %w", cc.Database, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{cc.Database}.Sanitize())
	// Another process may create it first: that surfaces as 42P04, or as a
	// unique violation on pg_database when the two commands overlap.
	if code := pgCode(err); err != nil && code != codeDuplicateDatabase && code != codeUniqueViolation {
		return fmt.Errorf("ledger: create database %q: %w", cc.Database, err)
	}
	return nil
}

// Close closes the connection pool.
func (s *Store) Close() { s.pool.Close() }

// Pool is the underlying connection pool, for health checks and reports.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ready reports whether PostgreSQL answers, for readiness checks.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ledger: ping: %w", err)
	}
	return nil
}

// Counts returns the number of rows in runs, attempts, messages,
// service_changes and outbox, keyed by table name.
func (s *Store) Counts(ctx context.Context) (map[string]int64, error) {
	var runs, attempts, messages, changes, outbox int64
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM runs),
		(SELECT count(*) FROM attempts),
		(SELECT count(*) FROM messages),
		(SELECT count(*) FROM service_changes),
		(SELECT count(*) FROM outbox)`).Scan(&runs, &attempts, &messages, &changes, &outbox)
	if err != nil {
		return nil, fmt.Errorf("ledger: count rows: %w", err)
	}
	return map[string]int64{"runs": runs, "attempts": attempts, "messages": messages, "service_changes": changes, "outbox": outbox}, nil
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// numericText writes d with the scale it was given, so "12.50" is stored as
// 12.50 and not 12.5 (decimal.String drops trailing zeros).
func numericText(d decimal.Decimal) string {
	if exp := d.Exponent(); exp < 0 {
		return d.StringFixed(-exp)
	}
	return d.String()
}

// validCurrency accepts an ISO 4217-shaped code: three upper-case letters.
func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := range len(c) {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// orNow defaults a missing timestamp to the time of the write.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now().UTC()
	}
	return t
}

// nullTime maps a NULL timestamp to the zero time; times come back in UTC.
func nullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// explainFinish tells why finishing a pending row (UPDATE ... WHERE status =
// 'pending') changed nothing: no such row (ErrNotFound), already finished
// with the same status (no-op), or finished otherwise (ErrConflict: an
// outcome never changes).
func (s *Store) explainFinish(ctx context.Context, table, what, key, status string) error {
	var current string
	err := s.pool.QueryRow(ctx, `SELECT status FROM `+table+` WHERE idempotency_key = $1`, key).Scan(&current)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("ledger: finish %s %s: %w", what, key, ErrNotFound)
	case err != nil:
		return fmt.Errorf("ledger: finish %s %s: %w", what, key, err)
	case current == status:
		return nil
	default:
		return fmt.Errorf("ledger: finish %s %s as %s: already %s: %w", what, key, status, current, ErrConflict)
	}
}

package ledger

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockKey is the pg_advisory_lock key that serialises migrations
// when several workers start against the same database at once.
const migrationLockKey int64 = 0x64756e6e_6c656467 // "dunnledg"

// migration is one embedded SQL file; its version is the file name without
// ".sql", e.g. "0001_ledger".
type migration struct {
	version string
	sql     string
}

func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, fmt.Errorf("ledger: list migrations: %w", err)
	}
	slices.Sort(names) // NNNN_ prefixes make lexical order the apply order
	out := make([]migration, 0, len(names))
	for _, name := range names {
		body, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("ledger: read migration %s: %w", name, err)
		}
		out = append(out, migration{version: strings.TrimSuffix(path.Base(name), ".sql"), sql: string(body)})
	}
	return out, nil
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, each in its own transaction, under a session advisory
// lock held on one dedicated connection.
func migrate(ctx context.Context, pool *pgxpool.Pool) (err error) {
	migrations, err := loadMigrations()
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("ledger: migrate: acquire connection: %w", err)
	}
	defer conn.Release()

	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return fmt.Errorf("ledger: migrate: take advisory lock: %w", err)
	}
	defer func() {
		// Unlock even if ctx is done. If that fails, closing the connection
		// ends the session and so releases the lock; the pool then discards it.
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLockKey); uerr != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
			err = errors.Join(err, fmt.Errorf("ledger: migrate: release advisory lock: %w", uerr))
		}
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    text PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("ledger: migrate: create schema_migrations: %w", err)
	}
	for _, m := range migrations {
		if err := applyMigration(ctx, conn.Conn(), m); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *pgx.Conn, m migration) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var applied bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", m.version).Scan(&applied); err != nil {
			return fmt.Errorf("ledger: migrate %s: check version: %w", m.version, err)
		}
		if applied {
			return nil
		}
		// No arguments: pgx sends the file over the simple protocol, which
		// allows several statements in one call.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("ledger: migrate %s: %w", m.version, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", m.version); err != nil {
			return fmt.Errorf("ledger: migrate %s: record version: %w", m.version, err)
		}
		return nil
	})
}

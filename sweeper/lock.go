package sweeper

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// lockKey is the PostgreSQL advisory lock the sweepers of one ledger share
// ("dunswep1").
const lockKey int64 = 0x64756e7377657031

// PoolLocker is the sweepers' advisory lock in the ledger's database. It is
// held by one session for one sweep: a replica that dies mid-sweep loses
// its connection and with it the lock, so another replica sweeps next.
type PoolLocker struct{ Pool *pgxpool.Pool }

// TryLock takes the lock without waiting.
func (l PoolLocker) TryLock(ctx context.Context) (func(), bool, error) {
	conn, err := l.Pool.Acquire(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("acquire a connection: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&ok); err != nil {
		conn.Release()
		return nil, false, fmt.Errorf("try the advisory lock: %w", err)
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return func() {
		// A detached context: the lock must be given back even when the
		// sweep ended because ctx did.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey); err != nil {
			// Closing the session releases the lock for sure.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
		conn.Release()
	}, true, nil
}

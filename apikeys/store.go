package apikeys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Key is a stored key as listings show it; it never holds the secret.
type Key struct {
	ID         string
	Prefix     string
	Tenant     string
	Scopes     []Scope
	Name       string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero: never used
	ExpiresAt  time.Time // zero: does not expire (set by rotation)
	ReplacedBy string    // the key that replaced this one on rotation
	RevokedAt  time.Time // zero: not revoked
}

// State is the key's state at now: "active", "rotating" (rotated, still
// valid until ExpiresAt), "expired" or "revoked".
func (k Key) State(now time.Time) string {
	switch {
	case !k.RevokedAt.IsZero():
		return "revoked"
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return "expired"
	case !k.ExpiresAt.IsZero():
		return "rotating"
	}
	return "active"
}

// Issued is a key as created or rotated: Token is the whole key, shown
// once and never stored.
type Issued struct {
	Key   Key
	Token string
}

// NewKey is what Create makes.
type NewKey struct {
	Tenant string
	Scopes []Scope
	Name   string // free text for people: which integration holds the key
	// Prefix is PrefixLive (the default) or PrefixTest.
	Prefix string
}

// DefaultTouchInterval is how stale a key's last-used time may get: a
// request writes it only when it is older than this, so the hot path reads
// and does not write.
const DefaultTouchInterval = time.Minute

// MaxNameLen bounds a key's name.
const MaxNameLen = 128

// Store keeps API keys in the ledger's PostgreSQL database (table api_keys,
// ledger migration 0011). It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	hash   hasher
	logger *slog.Logger
	// Now is the clock; TouchInterval throttles last-used writes. Set them
	// before first use.
	Now           func() time.Time
	TouchInterval time.Duration
}

// NewStore is a store on pool (ledger.Store.Pool) hashing with pepper,
// which must be at least MinPepperLen bytes.
func NewStore(pool *pgxpool.Pool, pepper []byte, logger *slog.Logger) (*Store, error) {
	h, err := newHasher(pepper)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Store{pool: pool, hash: h, logger: logger, Now: time.Now, TouchInterval: DefaultTouchInterval}, nil
}

const keyColumns = `id, prefix, tenant, scopes, name, created_at, last_used_at, expires_at, coalesce(replaced_by, ''), revoked_at`

// Create issues a key for a tenant.
func (s *Store) Create(ctx context.Context, nk NewKey) (Issued, error) {
	if !tenantPattern.MatchString(nk.Tenant) {
		return Issued{}, fmt.Errorf("%w: tenant %.64q must be 1-128 characters of letters, digits and . _ : @ -", ErrInvalid, nk.Tenant)
	}
	if len(nk.Scopes) == 0 {
		return Issued{}, fmt.Errorf("%w: a key needs at least one scope", ErrInvalid)
	}
	if len(nk.Name) > MaxNameLen || strings.IndexFunc(nk.Name, unicode.IsControl) >= 0 {
		return Issued{}, fmt.Errorf("%w: the name must be at most %d bytes without control characters", ErrInvalid, MaxNameLen)
	}
	scopes, err := ParseScopes(scopeList(nk.Scopes))
	if err != nil {
		return Issued{}, err
	}
	switch nk.Prefix {
	case "":
		nk.Prefix = PrefixLive
	case PrefixLive, PrefixTest:
	default:
		return Issued{}, fmt.Errorf("%w: prefix %q is neither %s nor %s", ErrInvalid, nk.Prefix, PrefixLive, PrefixTest)
	}
	nk.Scopes = scopes
	var out Issued
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = s.insert(ctx, tx, nk)
		return err
	})
	return out, err
}

// insert adds a key with a fresh ID, drawing again on the rare clash.
func (s *Store) insert(ctx context.Context, tx pgx.Tx, nk NewKey) (Issued, error) {
	now := s.Now().UTC()
	for range 5 {
		id := newID()
		token := newToken(nk.Prefix, id)
		// A savepoint, so a clash does not abort the caller's transaction.
		sp, err := tx.Begin(ctx)
		if err != nil {
			return Issued{}, fmt.Errorf("apikeys: create key: %w", err)
		}
		_, err = sp.Exec(ctx, `INSERT INTO api_keys (id, prefix, tenant, scopes, name, secret_hash, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, nk.Prefix, nk.Tenant, scopeStrings(nk.Scopes), nk.Name, s.hash.sum(token), now)
		if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "23505" {
			_ = sp.Rollback(ctx)
			continue
		}
		if err != nil {
			_ = sp.Rollback(ctx)
			return Issued{}, fmt.Errorf("apikeys: create key: %w", err)
		}
		if err := sp.Commit(ctx); err != nil {
			return Issued{}, fmt.Errorf("apikeys: create key: %w", err)
		}
		return Issued{Key: Key{ID: id, Prefix: nk.Prefix, Tenant: nk.Tenant, Scopes: nk.Scopes, Name: nk.Name, CreatedAt: now}, Token: token}, nil
	}
	return Issued{}, errors.New("apikeys: create key: no free ID after 5 draws")
}

// Get reads one key.
func (s *Store) Get(ctx context.Context, id string) (Key, error) {
	k, _, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+`, secret_hash FROM api_keys WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Key{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	if err != nil {
		return Key{}, fmt.Errorf("apikeys: read key %s: %w", id, err)
	}
	return k, nil
}

// List is a tenant's keys, oldest first, revoked and expired ones included
// so the listing shows what happened to each.
func (s *Store) List(ctx context.Context, tenant string) ([]Key, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyColumns+`, secret_hash FROM api_keys WHERE tenant = $1 ORDER BY created_at, id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("apikeys: list keys of %q: %w", tenant, err)
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		k, _, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("apikeys: list keys of %q: %w", tenant, err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("apikeys: list keys of %q: %w", tenant, err)
	}
	return out, nil
}

// Rotate issues a replacement for key id, with its tenant, scopes and name.
// The old key keeps working for grace, so clients can switch without an
// outage; a grace of 0 ends it at once. A revoked or expired key cannot be
// rotated: create a new one.
func (s *Store) Rotate(ctx context.Context, id string, grace time.Duration) (Issued, error) {
	if grace < 0 {
		return Issued{}, fmt.Errorf("%w: grace %s is negative", ErrInvalid, grace)
	}
	var out Issued
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		old, _, err := scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+`, secret_hash FROM api_keys WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: %q", ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("apikeys: rotate key %s: %w", id, err)
		}
		now := s.Now().UTC()
		switch old.State(now) {
		case "revoked":
			return fmt.Errorf("%w: key %s is revoked; create a new one", ErrInvalid, id)
		case "expired", "rotating":
			return fmt.Errorf("%w: key %s was already rotated (replaced by %s)", ErrInvalid, id, old.ReplacedBy)
		}
		out, err = s.insert(ctx, tx, NewKey{Tenant: old.Tenant, Scopes: old.Scopes, Name: old.Name, Prefix: old.Prefix})
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE api_keys SET expires_at = $2, replaced_by = $3 WHERE id = $1`,
			id, now.Add(grace), out.Key.ID); err != nil {
			return fmt.Errorf("apikeys: rotate key %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return Issued{}, err
	}
	return out, nil
}

// Revoke ends key id at once. Revoking a revoked key changes nothing.
func (s *Store) Revoke(ctx context.Context, id string) (Key, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, s.Now().UTC())
	if err != nil {
		return Key{}, fmt.Errorf("apikeys: revoke key %s: %w", id, err)
	}
	k, err := s.Get(ctx, id)
	if err != nil {
		return Key{}, err
	}
	if tag.RowsAffected() == 1 {
		s.logger.InfoContext(ctx, "API key revoked", "key_id", id, "tenant", k.Tenant)
	}
	return k, nil
}

// Authenticate checks a key and answers who it acts as: ErrMalformed,
// ErrUnknown (no such ID, or a wrong secret), ErrRevoked or ErrExpired when
// it may not be used. It writes the key's last-used time when that is
// older than TouchInterval.
func (s *Store) Authenticate(ctx context.Context, token string) (Principal, error) {
	_, id, err := ParseToken(token)
	if err != nil {
		return Principal{}, err
	}
	k, stored, err := scanKey(s.pool.QueryRow(ctx, `SELECT `+keyColumns+`, secret_hash FROM api_keys WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		// Hash anyway, so an unknown ID takes as long as a wrong secret.
		s.hash.verify(token, make([]byte, sha256Size))
		return Principal{}, ErrUnknown
	}
	if err != nil {
		return Principal{}, fmt.Errorf("apikeys: look up key %s: %w", id, err)
	}
	if !s.hash.verify(token, stored) {
		return Principal{}, ErrUnknown
	}
	now := s.Now().UTC()
	switch k.State(now) {
	case "revoked":
		return Principal{}, ErrRevoked
	case "expired":
		return Principal{}, ErrExpired
	}
	if k.LastUsedAt.IsZero() || now.Sub(k.LastUsedAt) >= s.TouchInterval {
		s.touch(ctx, id, now)
	}
	return Principal{KeyID: k.ID, Tenant: k.Tenant, Scopes: k.Scopes}, nil
}

const sha256Size = 32

// touch records that key id was used at now. The condition keeps several
// API processes from each writing within the interval; a failure is only
// logged, since the request itself is authenticated.
func (s *Store) touch(ctx context.Context, id string, now time.Time) {
	// Not tied to the request: a client that hangs up does not make the
	// write fail.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := s.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = $2
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)`, id, now, now.Add(-s.TouchInterval))
	if err != nil {
		s.logger.WarnContext(ctx, "could not record the API key's last use", "key_id", id, "error", err)
	}
}

func scanKey(row pgx.Row) (Key, []byte, error) {
	var k Key
	var scopes []string
	var lastUsed, expires, revoked *time.Time
	var hash []byte
	if err := row.Scan(&k.ID, &k.Prefix, &k.Tenant, &scopes, &k.Name, &k.CreatedAt, &lastUsed, &expires, &k.ReplacedBy, &revoked, &hash); err != nil {
		return Key{}, nil, err
	}
	for _, sc := range scopes {
		k.Scopes = append(k.Scopes, Scope(sc))
	}
	k.Scopes = sortScopes(k.Scopes)
	k.CreatedAt = k.CreatedAt.UTC()
	if lastUsed != nil {
		k.LastUsedAt = lastUsed.UTC()
	}
	if expires != nil {
		k.ExpiresAt = expires.UTC()
	}
	if revoked != nil {
		k.RevokedAt = revoked.UTC()
	}
	return k, hash, nil
}

func scopeStrings(ss []Scope) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

// Package ledgertest gives tests a ledger on a fresh, throw-away PostgreSQL
// database.
package ledgertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dunningco/dunning/ledger"
)

// defaultAdminURL is the server tests use unless TEST_DATABASE_ADMIN_URL is set.
const defaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is a URL for a role that may create and drop databases:
// $TEST_DATABASE_ADMIN_URL, or defaultAdminURL.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_ADMIN_URL"); u != "" {
		return u
	}
	return defaultAdminURL
}

// NewDatabaseURL names a database that does not exist yet on the admin
// server (ledger_test_<random>) and drops it, with any connections still
// open, when the test ends. Opening the URL creates the database.
func NewDatabaseURL(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(AdminURL())
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("ledgertest: admin URL must be a postgres:// URL (err: %v)", err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("ledgertest: random database name: %v", err)
	}
	name := "ledger_test_" + hex.EncodeToString(b[:])
	u.Path = "/" + name
	t.Cleanup(func() { dropDatabase(t, name) })
	return u.String()
}

// NewStore opens a ledger on a new database that is dropped when the test ends.
func NewStore(t testing.TB) *ledger.Store {
	t.Helper()
	dbURL := NewDatabaseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := ledger.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("ledgertest: open ledger: %v", err)
	}
	// Registered after the drop, so it runs before it.
	t.Cleanup(s.Close)
	return s
}

func dropDatabase(t testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Errorf("ledgertest: connect to drop %s: %v", name, err)
		return
	}
	defer conn.Close(ctx)
	// FORCE ends connections a test left open, e.g. a leaked pool.
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("ledgertest: drop database %s: %v", name, err)
	}
}

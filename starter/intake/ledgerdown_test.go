package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// ledgerReadPaths are the endpoints that read the ledger: the analytics
// and the audit ones.
var ledgerReadPaths = []string{
	"/v1/analytics/summary?currency=EUR",
	"/v1/analytics/series?currency=EUR&interval=day",
	"/v1/analytics/breakdown?currency=EUR&by=decline_code",
	"/v1/analytics/methods?currency=EUR",
	"/v1/analytics/experiments?currency=EUR&control=control",
	"/v1/analytics/aging?currency=EUR",
	"/v1/analytics/forecast?currency=EUR&accounts=1000&bill=10&failed_rate=0.1&lifetime=20&recovery_rate=0.8",
	"/v1/runs/acme/inv-1/timeline",
	"/v1/audit/export",
	"/v1/audit/compliance",
}

// TestLedgerOutageAnswers503 takes a real PostgreSQL ledger away in the
// ways it goes away in production and checks that every endpoint reading
// it says "not now" (503, Retry-After, a problem) rather than "broken"
// (500): the client should retry, and nothing needs a bug report.
func TestLedgerOutageAnswers503(t *testing.T) {
	// Created and migrated once; each outage reaches it through its own
	// proxy.
	dbURL := ledgertest.NewMigratedDatabaseURL(t)
	for _, o := range ledgertest.Outages {
		for _, path := range ledgerReadPaths {
			t.Run(o.Name+" "+path, func(t *testing.T) {
				store := ledgertest.OpenDown(t, dbURL, o)
				h := NewHandler(&fakeRuns{err: errors.New("no worker")}, slog.New(slog.DiscardHandler), withTestKeys(),
					WithAnalytics(analytics.New(store.Pool())), WithAudit(store, ledger.Limits{}), WithTimeout(10*time.Second))
				rec, out := send(t, h, http.MethodGet, path, bearer(acmeKey), "")
				if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
					t.Fatalf("%d (Retry-After %q) %v, want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"), out)
				}
				if out["detail"] != "the ledger could not be read; try again" {
					t.Errorf("detail = %q", out["detail"])
				}
			})
		}
	}
}

// brokenAnalytics fails every read with err.
type brokenAnalytics struct {
	Analytics
	err error
}

func (b brokenAnalytics) Summary(context.Context, analytics.Query) (analytics.Summary, error) {
	return analytics.Summary{}, b.err
}

func (b brokenAnalytics) Aging(context.Context, string, string, time.Time) (analytics.Aging, error) {
	return analytics.Aging{}, b.err
}

// TestLedgerFailureStatus: how a failed ledger read is answered, for
// analytics and audit alike; only a failure that is not the ledger's
// availability is a 500.
func TestLedgerFailureStatus(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name   string
		err    error
		status int
	}{
		{"pool closed", fmt.Errorf("analytics: summary: %w", puddle.ErrClosedPool), http.StatusServiceUnavailable},
		{"connection refused", fmt.Errorf("analytics: summary: %w", refused), http.StatusServiceUnavailable},
		{"connection closed", fmt.Errorf("ledger: runs: %w", pgconn.ErrConnClosed), http.StatusServiceUnavailable},
		{"connection dropped mid-answer", fmt.Errorf("ledger: runs: %w", io.ErrUnexpectedEOF), http.StatusServiceUnavailable},
		{"server shutting down", fmt.Errorf("ledger: runs: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}), http.StatusServiceUnavailable},
		{"server starting", &pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}, http.StatusServiceUnavailable},
		{"too many connections", &pgconn.PgError{Code: "53300", Message: "sorry, too many clients already"}, http.StatusServiceUnavailable},
		{"connection exception", &pgconn.PgError{Code: "08006", Message: "connection failure"}, http.StatusServiceUnavailable},
		{"deadline", fmt.Errorf("analytics: summary: %w", context.DeadlineExceeded), http.StatusGatewayTimeout},
		{"statement timeout", &pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}, http.StatusGatewayTimeout},
		{"missing table", &pgconn.PgError{Code: "42P01", Message: `relation "runs" does not exist`}, http.StatusInternalServerError},
		{"a bug", errors.New("analytics: scan summary: cannot scan NULL into *int64"), http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ledgerFailureStatus(tt.err); got != tt.status {
				t.Errorf("ledgerFailureStatus = %d, want %d", got, tt.status)
			}
			// Through the API: analytics answer like audit.
			h := NewHandler(&fakeRuns{}, slog.New(slog.DiscardHandler), withTestKeys(),
				WithAnalytics(brokenAnalytics{err: tt.err}))
			for _, path := range []string{"/v1/analytics/summary?currency=EUR", "/v1/analytics/aging?currency=EUR"} {
				rec, _ := send(t, h, http.MethodGet, path, bearer(acmeKey), "")
				retry := rec.Header().Get("Retry-After") != ""
				if rec.Code != tt.status || retry != (tt.status != http.StatusInternalServerError) {
					t.Errorf("GET %s = %d (Retry-After %v), want %d", path, rec.Code, retry, tt.status)
				}
			}
		})
	}
}

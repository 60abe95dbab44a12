package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// ledgerDownMessage is what a page says when the ledger cannot be reached.
const ledgerDownMessage = "The ledger is not answering"

// TestLedgerOutagePages takes a real PostgreSQL ledger away in the ways it
// goes away in production and checks that a signed-in page says "not now"
// (503, Retry-After, the ledger is not answering) rather than "broken"
// (500): reloading later is the fix, and nothing needs a bug report.
func TestLedgerOutagePages(t *testing.T) {
	dbURL := ledgertest.NewMigratedDatabaseURL(t)
	paths := []string{"/dashboard/", "/dashboard/runs/inv-1", "/dashboard/runs", "/dashboard/compliance"}
	for _, o := range ledgertest.Outages {
		t.Run(o.Name, func(t *testing.T) {
			store := ledgertest.OpenDown(t, dbURL, o)
			h, err := New(Config{
				Auth: keys, Analytics: analytics.New(store.Pool()), Ledger: store,
				SessionSecret: []byte("0123456789abcdef0123456789abcdef"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Now: func() time.Time { return testNow },
			})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h.Mount(http.NotFoundHandler()))
			t.Cleanup(srv.Close)
			f := &fixture{h: h, srv: srv}
			// Signing in needs no ledger: the key is checked by Auth.
			_, c := f.login(t, acmeKey)
			if c == nil {
				t.Fatal("sign-in set no session cookie")
			}
			for _, path := range paths {
				resp, body := f.getResponse(t, path, c)
				if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
					t.Errorf("GET %s = %d (Retry-After %q), want 503 with Retry-After: %s",
						path, resp.StatusCode, resp.Header.Get("Retry-After"), pageMessage(body))
					continue
				}
				if !strings.Contains(body, ledgerDownMessage) {
					t.Errorf("GET %s: the page does not say the ledger is not answering: %s", path, pageMessage(body))
				}
			}
		})
	}
}

// TestFailStatus: how a page answers a failed read, by what the failure
// says about the ledger; only a failure that is not its availability is a
// 500, and only the passing ones carry Retry-After.
func TestFailStatus(t *testing.T) {
	h, err := New(Config{
		Auth: keys, Analytics: analytics.New(nil), Ledger: ledgertest.NewStore(t),
		SessionSecret: []byte("0123456789abcdef0123456789abcdef"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	refused := fmt.Errorf("analytics: summary: %w", &net.OpError{Op: "dial", Net: "tcp",
		Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	tests := []struct {
		name   string
		err    error
		status int
		says   string
	}{
		{"pool closed", fmt.Errorf("analytics: summary: %w", puddle.ErrClosedPool), http.StatusServiceUnavailable, ledgerDownMessage},
		{"connection refused", refused, http.StatusServiceUnavailable, ledgerDownMessage},
		{"connection dropped", fmt.Errorf("dashboard: runs of acme: %w", io.ErrUnexpectedEOF), http.StatusServiceUnavailable, ledgerDownMessage},
		{"server shutting down", &pgconn.PgError{Code: "57P01"}, http.StatusServiceUnavailable, ledgerDownMessage},
		{"deadline", fmt.Errorf("analytics: summary: %w", context.DeadlineExceeded), http.StatusServiceUnavailable, "did not answer in time"},
		{"statement timeout", &pgconn.PgError{Code: "57014"}, http.StatusServiceUnavailable, "did not answer in time"},
		{"bad filter", badRequest{msg: "no such currency"}, http.StatusBadRequest, "no such currency"},
		{"missing table", &pgconn.PgError{Code: "42P01"}, http.StatusInternalServerError, "could not be drawn"},
		{"a bug", errors.New("analytics: scan summary: cannot scan NULL into *int64"), http.StatusInternalServerError, "could not be drawn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.fail(rec, httptest.NewRequest(http.MethodGet, "/dashboard/", nil), tt.err)
			retry := rec.Header().Get("Retry-After") != ""
			if rec.Code != tt.status || retry != (tt.status == http.StatusServiceUnavailable) {
				t.Errorf("%d (Retry-After %v), want %d", rec.Code, retry, tt.status)
			}
			if body := rec.Body.String(); !strings.Contains(body, tt.says) {
				t.Errorf("the page does not say %q: %s", tt.says, pageMessage(body))
			}
		})
	}
}

// getResponse is get with the response's headers.
func (f *fixture) getResponse(t *testing.T, path string, cookie *http.Cookie) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	req.AddCookie(cookie)
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// pageMessage is the notice of a rendered page, or the page when it has none.
func pageMessage(body string) string {
	if _, after, ok := strings.Cut(body, `role="alert">`); ok {
		msg, _, _ := strings.Cut(after, "<")
		return msg
	}
	return body
}

package intake

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// Bad audit requests get a clear 4xx problem and read nothing another
// tenant owns; good ones answer from the ledger.
func TestAuditEndpoints(t *testing.T) {
	store := ledgertest.NewStore(t)
	runs := &fakeRuns{err: errors.New("no worker")}
	h := NewHandler(runs, slog.New(slog.DiscardHandler), withTestKeys(), WithAudit(store, ledger.Limits{}))
	for _, tt := range []struct {
		name, path, key string
		status          int
		detail          string
	}{
		{"unknown format", "/v1/audit/export?tenant=acme&format=xml", acmeKey, http.StatusBadRequest, `format "xml" is not one of json, csv`},
		{"unknown parameter", "/v1/audit/export?tenant=acme&limit=5", acmeKey, http.StatusBadRequest, `unknown query parameter "limit"`},
		{"bad time", "/v1/audit/export?from=yesterday", acmeKey, http.StatusBadRequest, "neither an RFC 3339 time"},
		{"inverted period", "/v1/audit/export?from=2026-11-30&to=2026-11-01", acmeKey, http.StatusBadRequest, "must be after from"},
		{"compliance over 30 days", "/v1/audit/compliance?from=2026-10-01&to=2026-11-30", acmeKey, http.StatusBadRequest, "longer than 30 days"},
		{"another tenant's export", "/v1/audit/export?tenant=globex", acmeKey, http.StatusForbidden, `cannot act for tenant "globex"`},
		{"another tenant's report", "/v1/audit/compliance?tenant=globex", acmeKey, http.StatusForbidden, `cannot act for tenant "globex"`},
		{"another tenant's timeline", "/v1/runs/globex/inv-1/timeline", acmeKey, http.StatusNotFound, "no dunning run"},
		{"unknown run", "/v1/runs/acme/inv-none/timeline", acmeKey, http.StatusNotFound, `no dunning run for tenant "acme" invoice "inv-none"`},
		{"no key", "/v1/audit/export", "", http.StatusUnauthorized, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			auth := ""
			if tt.key != "" {
				auth = bearer(tt.key)
			}
			rec, out := send(t, h, http.MethodGet, tt.path, auth, "")
			detail, _ := out["detail"].(string)
			if rec.Code != tt.status || !strings.Contains(detail, tt.detail) {
				t.Fatalf("%d %q, want %d with %q", rec.Code, detail, tt.status, tt.detail)
			}
		})
	}
	// An empty period exports nothing, in either format.
	req := httptest.NewRequest(http.MethodGet, "/v1/audit/export?from=2026-11-01&to=2026-11-02&format=json", nil)
	req.Header.Set("Authorization", bearer(acmeKey))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "[]" || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("json export: %d %s %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	req = httptest.NewRequest(http.MethodGet, "/v1/audit/compliance?from=2026-11-01&to=2026-11-02", nil)
	req.Header.Set("Authorization", bearer(acmeKey))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "card,network,from,to,attempts") ||
		!strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") {
		t.Fatalf("compliance: %d %s %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}

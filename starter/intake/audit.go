package intake

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/dunningco/dunning/audit"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/workflows"
)

// AuditStore is what the audit endpoints read; *ledger.Store implements it.
type AuditStore interface {
	audit.ExportLedger
	audit.ComplianceLedger
}

var _ AuditStore = (*ledger.Store)(nil)

// WithAudit turns on the audit endpoints, read from the ledger (plus the
// live run for a timeline's next step):
//
//	GET /v1/runs/{tenant}/{invoice}/timeline
//	GET /v1/audit/export?tenant=T&from=...&to=...&format=json|csv
//	GET /v1/audit/compliance?tenant=T&from=...&to=...&format=csv|json
//
// lim are the card-network limits the workers apply (the compliance report
// checks every charge against them).
func WithAudit(store AuditStore, lim ledger.Limits) Option {
	if lim == (ledger.Limits{}) {
		lim = ledger.DefaultLimits()
	}
	return func(h *handler) { h.audit, h.auditLimits = store, lim }
}

// registerAudit adds the audit routes when WithAudit was given.
func (h *handler) registerAudit(route func(method, path string, fn http.HandlerFunc)) {
	if h.audit == nil {
		return
	}
	route(http.MethodGet, "/v1/runs/{tenant}/{invoice}/timeline", h.timeline)
	route(http.MethodGet, "/v1/audit/export", h.auditExport)
	route(http.MethodGet, "/v1/audit/compliance", h.compliance)
}

// timeline answers a run's audit trail: the ledger's rows, and from the
// live run (when it answers within the status timeout) its next step, what
// would change it, and entries not yet recorded.
func (h *handler) timeline(w http.ResponseWriter, r *http.Request) {
	tenant, invoice, ok := runKey(w, r)
	if !ok {
		return
	}
	var live *workflows.Status
	ctx, cancel := context.WithTimeout(r.Context(), min(h.statusTimeout, h.timeout))
	if st, err := h.runs.Status(ctx, tenant, invoice); err == nil {
		live = &st
	} else if r.Context().Err() == nil {
		h.logger.InfoContext(r.Context(), "timeline without the live run", "tenant", tenant, "invoice_id", invoice, "error", err)
	}
	cancel()
	ctx, cancel = context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	t, err := audit.Build(ctx, h.audit, workflows.WorkflowID(tenant, invoice), live)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, t)
	case audit.IsNotFound(err):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no dunning run for tenant %q invoice %q", tenant, invoice))
	default:
		h.auditFailed(w, r, err)
	}
}

// auditQuery reads ?tenant, ?from, ?to and ?format; the tenant defaults to
// the key's own, the period to the last 30 days.
func auditQuery(w http.ResponseWriter, r *http.Request, formats ...string) (tenant string, from, to time.Time, format string, ok bool) {
	q := r.URL.Query()
	for name := range q {
		switch name {
		case "tenant", "from", "to", "format":
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q; use tenant, from, to, format", name), paramField(name, "unknown parameter"))
			return "", time.Time{}, time.Time{}, "", false
		}
	}
	tenant = fillTenant(r, q.Get("tenant"))
	if tenant == "" {
		writeError(w, http.StatusBadRequest, "tenant is required", paramField("tenant", "required"))
		return "", time.Time{}, time.Time{}, "", false
	}
	if !allowTenant(w, r, tenant, paramField("tenant", "")) {
		return "", time.Time{}, time.Time{}, "", false
	}
	to, from = time.Now().UTC(), time.Time{}
	var err error
	if v := q.Get("to"); v != "" {
		if to, err = ParseTime(v); err != nil {
			writeError(w, http.StatusBadRequest, "to: "+err.Error(), paramField("to", err.Error()))
			return "", time.Time{}, time.Time{}, "", false
		}
	}
	from = to.Add(-audit.ComplianceWindow)
	if v := q.Get("from"); v != "" {
		if from, err = ParseTime(v); err != nil {
			writeError(w, http.StatusBadRequest, "from: "+err.Error(), paramField("from", err.Error()))
			return "", time.Time{}, time.Time{}, "", false
		}
	}
	format = q.Get("format")
	if format == "" {
		format = formats[0]
	}
	if !slices.Contains(formats, format) {
		detail := fmt.Sprintf("format %q is not one of %s", format, strings.Join(formats, ", "))
		writeError(w, http.StatusBadRequest, detail, paramField("format", detail))
		return "", time.Time{}, time.Time{}, "", false
	}
	return tenant, from, to, format, true
}

// ParseTime reads an audit period's end: RFC 3339, or a date (midnight UTC).
func ParseTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-30T09:00:00Z) nor a date (2026-11-30)", v)
}

func (h *handler) auditExport(w http.ResponseWriter, r *http.Request) {
	tenant, from, to, format, ok := auditQuery(w, r, "json", "csv")
	if !ok {
		return
	}
	if err := audit.CheckWindow(from, to, audit.MaxExportWindow); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), paramField("from", err.Error()))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	rows, err := audit.Export(ctx, h.audit, tenant, from, to)
	if err != nil {
		h.auditFailed(w, r, err)
		return
	}
	var buf bytes.Buffer
	if format == "csv" {
		err = audit.WriteCSV(&buf, rows)
	} else {
		err = audit.WriteJSON(&buf, rows)
	}
	if err != nil {
		h.auditFailed(w, r, err)
		return
	}
	writeFile(w, format, fmt.Sprintf("audit-%s-%s-%s", tenant, from.Format("20060102T150405Z"), to.Format("20060102T150405Z")), buf.Bytes())
}

func (h *handler) compliance(w http.ResponseWriter, r *http.Request) {
	tenant, from, to, format, ok := auditQuery(w, r, "csv", "json")
	if !ok {
		return
	}
	if err := audit.CheckWindow(from, to, audit.ComplianceWindow); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), paramField("from", err.Error()))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	rows, err := audit.Compliance(ctx, h.audit, tenant, from, to, h.auditLimits)
	if err != nil {
		h.auditFailed(w, r, err)
		return
	}
	if format == "json" {
		writeJSON(w, http.StatusOK, rows)
		return
	}
	var buf bytes.Buffer
	if err := audit.WriteComplianceCSV(&buf, rows, from, to); err != nil {
		h.auditFailed(w, r, err)
		return
	}
	writeFile(w, "csv", fmt.Sprintf("compliance-%s-%s", tenant, from.Format("20060102")), buf.Bytes())
}

// writeFile answers an export in its format, named for download.
func writeFile(w http.ResponseWriter, format, name string, body []byte) {
	ct := "application/json"
	if format == "csv" {
		ct = "text/csv; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", url.PathEscape(name)+"."+format))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (h *handler) auditFailed(w http.ResponseWriter, r *http.Request, err error) {
	h.ledgerFailed(w, r, "audit", err)
}

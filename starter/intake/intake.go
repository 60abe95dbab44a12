// Package intake is the HTTP API billing systems report declines to and
// manage dunning runs through. It checks every request fully before any run
// is touched, so a bad request never starts or changes a run.
package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/openapi"
	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/validation"
	"github.com/dunningco/dunning/workflows"
)

// Runs is what the API needs from the dunning runs; *starter.Client
// implements it.
type Runs interface {
	Start(ctx context.Context, in workflows.Input) (starter.StartResult, error)
	Status(ctx context.Context, tenant, invoiceID string) (workflows.Status, error)
	Cancel(ctx context.Context, tenant, invoiceID string, req workflows.CancelRequest) error
	Expedite(ctx context.Context, tenant, invoiceID string, req workflows.ExpediteRequest) (workflows.AttemptRecord, error)
	PaymentMethodUpdated(ctx context.Context, tenant, invoiceID string, req workflows.PaymentMethodUpdate) error
	Paid(ctx context.Context, tenant, invoiceID string, req workflows.PaidOutOfBand) error
	Resume(ctx context.Context, tenant, invoiceID string, req workflows.ResumeRequest) error
}

var _ Runs = (*starter.Client)(nil)

// DefaultTimeout bounds how long one request waits for a run.
const DefaultTimeout = 30 * time.Second

// Option configures the handler.
type Option func(*handler)

// WithPolicies sets the policy names declines may use; it should match the
// catalog of the Runs implementation. Defaults to policy.Builtin().
func WithPolicies(c *policy.Catalog) Option {
	return func(h *handler) { h.policies = c }
}

// WithRules sets the intake rules: the gateways the deployment charges
// through and its amount limits. They should be the Runs' own
// (starter.Options.Rules), so a request the API accepts is one the client
// accepts. Defaults to validation.Rules{}: every gateway the platform ships,
// default amount limits.
func WithRules(r validation.Rules) Option {
	return func(h *handler) { h.rules = r }
}

// WithTimeout sets how long one request waits for a run; default
// DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(h *handler) { h.timeout = d }
}

type handler struct {
	runs     Runs
	logger   *slog.Logger
	policies *policy.Catalog
	rules    validation.Rules
	timeout  time.Duration
	webhooks webhooks
	// cardLinks, when set, resolves card-update link tokens.
	cardLinks *cardlink.Signer
	// readModel, when set, lists runs and answers a status the live query
	// cannot; statusTimeout bounds the live query then.
	readModel     ReadModel
	statusTimeout time.Duration
	// surface is which routes this handler serves (WithSurface); auth,
	// limiter and idem guard the private ones.
	surface Surface
	auth    Authenticator
	limiter *limiter
	idem    IdempotencyStore
	// routes are the method and pattern of every route registered, for
	// the contract tests that hold them to the OpenAPI document.
	routes []Route
	// analytics, when set, serves GET /v1/analytics/... (analytics.go).
	analytics Analytics
	// declines, when set, counts each decline a run accepted.
	declines DeclineCounter
	// audit, when set, serves timelines, exports and the compliance report.
	audit       AuditStore
	auditLimits ledger.Limits
}

// Route is one registered route: its method and its ServeMux pattern.
type Route struct{ Method, Pattern string }

// NewHandler serves the intake API. The private surface needs an API key
// (WithAuthenticator; see NewPrivateHandler):
//
//	POST /v1/declines
//	POST /v1/reminders
//	GET  /v1/reminders/{id...}, DELETE /v1/reminders/{id...}
//	GET  /v1/runs?tenant=...            (with WithReadModel)
//	GET  /v1/runs/{tenant}/{invoice}
//	POST /v1/runs/{tenant}/{invoice}/cancel
//	POST /v1/runs/{tenant}/{invoice}/expedite
//	POST /v1/runs/{tenant}/{invoice}/payment-method-updated
//	POST /v1/runs/{tenant}/{invoice}/paid
//	POST /v1/runs/{tenant}/{invoice}/resume
//
// The public surface authenticates each request its own way (see
// NewPublicHandler):
//
//	POST /v1/webhooks/twilio/sms      (with WithTwilioInbound)
//	POST /v1/webhooks/sendgrid/events (with WithSendGridEvents)
//	GET  /v1/card-links/{token}       (with WithCardLinks)
//
// and GET /healthz, /readyz, /openapi.json (the API's OpenAPI document) and
// /docs (its reference page) are on both, without a key. Without WithSurface the handler serves both
// surfaces, as tests and single-listener embedders want.
func NewHandler(runs Runs, logger *slog.Logger, opts ...Option) http.Handler {
	_, root := newHandler(runs, logger, opts...)
	return root
}

func newHandler(runs Runs, logger *slog.Logger, opts ...Option) (*handler, http.Handler) {
	if logger == nil {
		logger = slog.Default()
	}
	h := &handler{runs: runs, logger: logger, policies: policy.Builtin(), timeout: DefaultTimeout, statusTimeout: DefaultStatusTimeout,
		limiter: newLimiter(DefaultRate, DefaultBurst)}
	for _, opt := range opts {
		opt(h)
	}

	private, public := http.NewServeMux(), http.NewServeMux()
	// Each path is registered twice: with its method, and without one so
	// other methods get a JSON 405 rather than the mux's plain-text one.
	// The path says which surface a route is on (IsPublicPath); private
	// routes are guarded by scope and tenant (guard), their POSTs honour
	// Idempotency-Key.
	handle := func(method, path string, fn http.HandlerFunc) *http.ServeMux {
		h.routes = append(h.routes, Route{Method: method, Pattern: path})
		switch {
		case IsPublicPath(path) || onBothSurfaces(path):
			// The health checks and the API document are served from here
			// on both surfaces.
			public.HandleFunc(method+" "+path, fn)
			return public
		case method == http.MethodPost:
			private.HandleFunc(method+" "+path, h.guard(method, h.idempotent(fn)))
		default:
			private.HandleFunc(method+" "+path, h.guard(method, fn))
		}
		return private
	}
	route := func(method, path string, fn http.HandlerFunc) {
		mux := handle(method, path, fn)
		allow := method
		if method == http.MethodGet {
			allow = "GET, HEAD"
		}
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s; use %s", r.Method, r.URL.Path, allow))
		})
	}
	route(http.MethodPost, "/v1/declines", h.startRun)
	route(http.MethodPost, "/v1/reminders", h.startReminders)
	route(http.MethodGet, "/v1/reminders/{id...}", h.reminderRun)
	// DELETE cancels; route already answers other methods with 405.
	handle(http.MethodDelete, "/v1/reminders/{id...}", h.reminderRun)
	route(http.MethodGet, "/v1/runs", h.listRuns)
	route(http.MethodGet, "/v1/runs/{tenant}/{invoice}", h.status)
	route(http.MethodPost, "/v1/runs/{tenant}/{invoice}/cancel", h.cancel)
	route(http.MethodPost, "/v1/runs/{tenant}/{invoice}/expedite", h.expedite)
	route(http.MethodPost, "/v1/runs/{tenant}/{invoice}/payment-method-updated", h.paymentMethodUpdated)
	route(http.MethodPost, "/v1/runs/{tenant}/{invoice}/paid", h.paid)
	route(http.MethodPost, "/v1/runs/{tenant}/{invoice}/resume", h.resume)
	if h.cardLinks != nil {
		route(http.MethodGet, "/v1/card-links/{token}", h.resolveCardLink)
	}
	route(http.MethodGet, healthPath, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	route(http.MethodGet, readyPath, h.ready)
	route(http.MethodGet, openapi.DocumentPath, openapi.ServeDocument)
	route(http.MethodGet, openapi.ReferencePath, openapi.ServeReference)
	h.registerWebhooks(route)
	h.registerAnalytics(route)
	h.registerAudit(route)
	private.HandleFunc("/", notFound)
	public.HandleFunc("/", notFound)
	return h, h.recoverPanics(h.surfaces(private, public))
}

// startResponse is the 202 answer to a decline report.
type startResponse struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
	StatusURL  string `json:"status_url"`
}

// runResponse is the 202 answer to a request sent to a run.
type runResponse struct {
	WorkflowID string `json:"workflow_id"`
	StatusURL  string `json:"status_url"`
}

func (h *handler) startRun(w http.ResponseWriter, r *http.Request) {
	data, ok := h.readBody(w, r)
	if !ok {
		return
	}
	report, err := DecodeDeclineReport(data)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	report.Tenant = fillTenant(r, report.Tenant)
	// Checked and normalized here, before any run is touched; the client
	// checks again with the same rules, which changes nothing.
	in, err := h.rules.Decline(report.Input())
	if err != nil {
		writeInvalid(w, err)
		return
	}
	in.Decline.Source = "api"
	if !allowTenant(w, r, in.Tenant, bodyField("/tenant", "")) {
		return
	}
	if err := starter.CheckPolicyName(h.policies, report.Policy); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error(), bodyField("/policy", err.Error()))
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	res, err := h.runs.Start(ctx, in)
	if err == nil {
		h.countDecline(in)
	}
	if err != nil {
		if errors.Is(err, starter.ErrRunClosed) {
			writeError(w, http.StatusConflict, fmt.Sprintf("the dunning run for invoice %q already ended; a closed invoice is never dunned twice", report.InvoiceID))
			return
		}
		h.fail(w, r, err, report.Tenant, report.InvoiceID)
		return
	}
	h.logger.InfoContext(r.Context(), "decline accepted",
		"tenant", in.Tenant, "invoice_id", in.InvoiceID,
		"workflow_id", res.WorkflowID, "run_id", res.RunID, "decline_code", in.Decline.Code)
	statusURL := statusPath(in.Tenant, in.InvoiceID)
	w.Header().Set("Location", statusURL)
	writeJSON(w, http.StatusAccepted, startResponse{WorkflowID: res.WorkflowID, RunID: res.RunID, StatusURL: statusURL})
}

func (h *handler) cancel(w http.ResponseWriter, r *http.Request) {
	var req workflows.CancelRequest
	tenant, invoice, ok := h.runRequest(w, r, &req, false)
	if !ok {
		return
	}
	if err := validation.Cancel(req); err != nil {
		writeInvalid(w, err)
		return
	}
	h.signal(w, r, tenant, invoice, func(ctx context.Context) error {
		return h.runs.Cancel(ctx, tenant, invoice, req)
	})
}

func (h *handler) expedite(w http.ResponseWriter, r *http.Request) {
	var req workflows.ExpediteRequest
	tenant, invoice, ok := h.runRequest(w, r, &req, true)
	if !ok {
		return
	}
	if err := validation.Expedite(req); err != nil {
		writeInvalid(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	rec, err := h.runs.Expedite(ctx, tenant, invoice, req)
	if err != nil {
		h.fail(w, r, err, tenant, invoice)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

func (h *handler) paymentMethodUpdated(w http.ResponseWriter, r *http.Request) {
	var req workflows.PaymentMethodUpdate
	tenant, invoice, ok := h.runRequest(w, r, &req, true)
	if !ok {
		return
	}
	if err := h.rules.PaymentMethodUpdate(req); err != nil {
		writeInvalid(w, err)
		return
	}
	h.signal(w, r, tenant, invoice, func(ctx context.Context) error {
		return h.runs.PaymentMethodUpdated(ctx, tenant, invoice, req)
	})
}

func (h *handler) paid(w http.ResponseWriter, r *http.Request) {
	var req workflows.PaidOutOfBand
	tenant, invoice, ok := h.runRequest(w, r, &req, true)
	if !ok {
		return
	}
	if err := validation.Paid(req); err != nil {
		writeInvalid(w, err)
		return
	}
	h.signal(w, r, tenant, invoice, func(ctx context.Context) error {
		return h.runs.Paid(ctx, tenant, invoice, req)
	})
}

// resume puts a run that needs attention back on schedule; a run that was
// not holding records the resume as late and goes on.
func (h *handler) resume(w http.ResponseWriter, r *http.Request) {
	var req workflows.ResumeRequest
	tenant, invoice, ok := h.runRequest(w, r, &req, true)
	if !ok {
		return
	}
	if err := validation.Resume(req); err != nil {
		writeInvalid(w, err)
		return
	}
	h.signal(w, r, tenant, invoice, func(ctx context.Context) error {
		return h.runs.Resume(ctx, tenant, invoice, req)
	})
}

// signal sends a fire-and-forget request to a run and answers 202.
func (h *handler) signal(w http.ResponseWriter, r *http.Request, tenant, invoice string, send func(context.Context) error) {
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	if err := send(ctx); err != nil {
		h.fail(w, r, err, tenant, invoice)
		return
	}
	writeJSON(w, http.StatusAccepted, runResponse{
		WorkflowID: workflows.WorkflowID(tenant, invoice),
		StatusURL:  statusPath(tenant, invoice),
	})
}

// runRequest checks the path's run key and decodes the body into v.
func (h *handler) runRequest(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) (tenant, invoice string, ok bool) {
	tenant, invoice, ok = runKey(w, r)
	if !ok {
		return "", "", false
	}
	data, ok := h.readBody(w, r)
	if !ok {
		return "", "", false
	}
	if err := decodeStrict(data, v, allowEmpty); err != nil {
		writeBodyError(w, err)
		return "", "", false
	}
	return tenant, invoice, true
}

// runKey reads the run's tenant and invoice from the path; a malformed one
// is a 400 naming the parameter.
func runKey(w http.ResponseWriter, r *http.Request) (tenant, invoice string, ok bool) {
	tenant, invoice = r.PathValue("tenant"), r.PathValue("invoice")
	if err := starter.ValidateRunKey(tenant, invoice); err != nil {
		writeParamError(w, http.StatusBadRequest, err)
		return "", "", false
	}
	return tenant, invoice, true
}

// writeBodyError answers 400 for a body that is not the JSON the endpoint
// takes, naming the member when the decoder could tell.
func writeBodyError(w http.ResponseWriter, err error) {
	if berr, ok := errors.AsType[*BodyError](err); ok {
		writeError(w, http.StatusBadRequest, berr.Detail, bodyField(berr.Pointer, berr.Detail))
		return
	}
	writeError(w, http.StatusBadRequest, err.Error(), bodyField("", err.Error()))
}

// writeParamError answers status for bad path or query parameters, naming
// each one.
func writeParamError(w http.ResponseWriter, status int, err error) {
	verr, ok := errors.AsType[*validation.Error](err)
	if !ok {
		writeError(w, status, err.Error())
		return
	}
	fields := make([]FieldProblem, len(verr.Problems))
	for i, p := range verr.Problems {
		fields[i] = paramField(p.Field(), p.Detail)
	}
	writeError(w, status, invalidDetail(verr), fields...)
}

// readBody checks the content type and reads at most MaxBodyBytes.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mediaType, _, err := mime.ParseMediaType(ct)
		if err != nil || mediaType != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported content type %q; send application/json", ct))
			return nil, false
		}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			detail := fmt.Sprintf("the request body exceeds %d bytes", MaxBodyBytes)
			writeError(w, http.StatusRequestEntityTooLarge, detail, bodyField("", detail))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "could not read the request body")
		return nil, false
	}
	return data, true
}

// fail answers an error from Runs.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error, tenant, invoice string) {
	switch {
	case errors.Is(err, starter.ErrUnknownPolicy):
		writeError(w, http.StatusUnprocessableEntity, err.Error(), bodyField("/policy", err.Error()))
	case errors.Is(err, starter.ErrInvalid):
		writeInvalid(w, err)
	case errors.Is(err, starter.ErrConflict):
		// The message names the run's amount and the reported one.
		writeError(w, http.StatusConflict, err.Error(),
			bodyField("/amount", err.Error()), bodyField("/currency", err.Error()))
	case errors.Is(err, starter.ErrTooManyReports):
		wait := time.Minute
		if e, ok := errors.AsType[*starter.TooManyReportsError](err); ok {
			wait = e.Wait
		}
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(wait.Seconds()+0.5))))
		writeError(w, http.StatusTooManyRequests, err.Error())
	case errors.Is(err, starter.ErrRunNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no dunning run for tenant %q invoice %q", tenant, invoice))
	case errors.Is(err, starter.ErrRunAborted):
		// Only when the ledger cannot say how the run ended.
		end := "ended"
		if ae, ok := errors.AsType[*starter.AbortedError](err); ok {
			end = ae.Execution
		}
		writeError(w, http.StatusConflict, fmt.Sprintf("the dunning run for tenant %q invoice %q did not complete (its workflow %s) and no ledger record of it is available", tenant, invoice, end))
	case errors.Is(err, starter.ErrRunClosed):
		writeError(w, http.StatusConflict, fmt.Sprintf("the dunning run for tenant %q invoice %q has already ended", tenant, invoice))
	case errors.Is(err, starter.ErrRejected):
		writeProblem(w, ProblemRejected, http.StatusConflict, err.Error())
	case r.Context().Err() != nil:
		// The caller went away; nobody reads the answer.
		h.logger.InfoContext(r.Context(), "request abandoned by the client", "path", r.URL.Path, "error", err)
	case retryableStatus(err) == http.StatusGatewayTimeout && !h.temporalAnswers(r.Context()):
		// The SDK retries an unreachable server until the deadline, so
		// an outage looks like a timeout: a health check tells them apart.
		h.logger.WarnContext(r.Context(), "Temporal unavailable", "path", r.URL.Path, "error", err)
		writeRetryable(w, http.StatusServiceUnavailable, "the dunning run cannot be reached right now (Temporal is unavailable); try again")
	case retryableStatus(err) == http.StatusGatewayTimeout:
		h.logger.WarnContext(r.Context(), "timed out waiting for the dunning run", "path", r.URL.Path, "error", err)
		detail := "timed out waiting for the dunning run; the request may still take effect, check the run's status"
		if r.Method == http.MethodGet {
			detail = "timed out waiting for the dunning run: no worker answered in time; try again"
		}
		writeRetryable(w, http.StatusGatewayTimeout, detail)
	case retryableStatus(err) == http.StatusServiceUnavailable:
		h.logger.WarnContext(r.Context(), "dunning run unavailable", "path", r.URL.Path, "error", err)
		writeRetryable(w, http.StatusServiceUnavailable, "the dunning run cannot be reached right now (Temporal or its workers are unavailable); try again")
	default:
		h.logger.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
		writeError(w, http.StatusInternalServerError, "internal error; the failure was logged")
	}
}

func (h *handler) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				h.logger.ErrorContext(r.Context(), "handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, http.StatusInternalServerError, "internal error; the failure was logged")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func statusPath(tenant, invoice string) string {
	return "/v1/runs/" + url.PathEscape(tenant) + "/" + url.PathEscape(invoice)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// The status line is out; an encoding error can only be a broken
	// connection, which the server logs itself.
	_ = json.NewEncoder(w).Encode(v)
}

// temporalAnswers reports whether Temporal answers a health check within
// two seconds. Runs that cannot say are taken to answer.
func (h *handler) temporalAnswers(ctx context.Context) bool {
	rd, ok := h.runs.(readiness)
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return rd.Ready(ctx) == nil
}

// readiness is what a dependency that can say whether it answers offers.
type readiness interface {
	Ready(ctx context.Context) error
}

// ready answers GET /readyz: 200 when Temporal and, with a read model,
// PostgreSQL answer within two seconds; 503 with Retry-After naming what
// does not.
func (h *handler) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	failed := false
	check := func(name string, dep any) {
		rd, ok := dep.(readiness)
		if !ok {
			return
		}
		if err := rd.Ready(ctx); err != nil {
			checks[name], failed = "unavailable", true
			h.logger.WarnContext(r.Context(), "not ready", "dependency", name, "error", err)
			return
		}
		checks[name] = "ok"
	}
	check("temporal", h.runs)
	if h.readModel != nil {
		check("postgresql", h.readModel)
	}
	if failed {
		var down []string
		for name, state := range checks {
			if state != "ok" {
				down = append(down, name)
			}
		}
		slices.Sort(down)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "not ready: "+strings.Join(down, ", ")+" unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "checks": checks})
}

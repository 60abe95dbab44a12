package intake

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/money"
	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/workflows"
)

// ReadModel is the ledger's view of runs, which answers without a worker:
// the status of one run and lists of a tenant's runs. *ledger.Store
// implements it.
type ReadModel interface {
	RunView(ctx context.Context, workflowID string) (ledger.RunView, error)
	ListRunStatus(ctx context.Context, q ledger.RunStatusQuery) (ledger.RunStatusPage, error)
}

var _ ReadModel = (*ledger.Store)(nil)

// WithReadModel turns on GET /v1/runs (the list) and lets the status answer
// from the ledger when the run's live status query cannot answer in time
// (no worker polls its task queue, Temporal is unavailable, the workflow
// was forgotten past its retention).
func WithReadModel(m ReadModel) Option {
	return func(h *handler) { h.readModel = m }
}

// DefaultStatusTimeout is how long the status waits for the live query
// before it answers from the read model. A worker answers a query in
// milliseconds; waiting longer only delays the answer when none polls.
const DefaultStatusTimeout = 2 * time.Second

// WithStatusTimeout sets how long the status waits for the live query when
// a read model can answer instead; default DefaultStatusTimeout.
func WithStatusTimeout(d time.Duration) Option {
	return func(h *handler) { h.statusTimeout = d }
}

// RetryAfter is what the Retry-After header of a 503 or 504 says: the
// caller may try again in that many seconds.
const RetryAfter = 5 * time.Second

// Sources of a status answer.
const (
	SourceLive      = "live"       // the run's status query, answered by a worker
	SourceReadModel = "read_model" // the ledger's read model; see as_of
)

// StatusAnswer is GET /v1/runs/{tenant}/{invoice}: the run's status and
// where it came from. From the read model, fields the ledger does not keep
// (declines, the decline's reading, refusals, late signals, holds) are
// empty, and AsOf is when the run last reported its state; its attempts,
// messages and service changes are the ledger's rows at the time of the
// request.
type StatusAnswer struct {
	workflows.Status
	Source string    `json:"source"`
	AsOf   time.Time `json:"as_of,omitzero"`
	// Execution is how the run's latest workflow execution ended when it
	// ended without completing (terminated, failed, timed_out, canceled);
	// such a run is always answered from the read model.
	Execution string `json:"execution,omitempty"`
}

// errNoWorker marks a live query that no worker could take: the server
// answers FailedPrecondition ("no poller seen for task queue recently").
var errNoWorker = errors.New("no worker is polling the run's task queue")

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	tenant, invoice, ok := runKey(w, r)
	if !ok {
		return
	}
	// With a read model to fall back on, the live query gets a short
	// deadline; without one it may take the request's whole timeout.
	live := h.timeout
	if h.readModel != nil {
		live = min(h.statusTimeout, h.timeout)
	}
	ctx, cancel := context.WithTimeout(r.Context(), live)
	st, err := h.runs.Status(ctx, tenant, invoice)
	cancel()
	if err == nil {
		writeJSON(w, http.StatusOK, StatusAnswer{Status: st, Source: SourceLive})
		return
	}
	// A run whose workflow ended without completing (terminated by ops or
	// by the server for its history's size, failed, timed out) is not
	// asked: what the workflow last knew is not how the run ended. The
	// ledger says that (aborted once the sweeper closed it).
	var execution string
	if ae, ok := errors.AsType[*starter.AbortedError](err); ok {
		execution = ae.Execution
	}
	if _, ok := errors.AsType[*serviceerror.FailedPrecondition](err); ok {
		err = fmt.Errorf("%w: %w", errNoWorker, err)
	}
	if errors.Is(err, starter.ErrInvalid) || r.Context().Err() != nil || h.readModel == nil {
		h.fail(w, r, err, tenant, invoice)
		return
	}
	// Whatever kept the live status from answering (no worker, a timeout,
	// Temporal down, a run Temporal no longer keeps), the ledger may know.
	ctx, cancel = context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	view, rerr := h.readModel.RunView(ctx, workflows.WorkflowID(tenant, invoice))
	switch {
	case rerr == nil:
		h.logger.InfoContext(r.Context(), "status answered from the read model",
			"tenant", tenant, "invoice_id", invoice, "live_error", err)
		ans := statusFromView(view)
		ans.Execution = execution
		if vr, ok := h.runs.(VisibilityReader); ok && ans.ClosedAt.IsZero() && execution == "" {
			// The run parks with its phase and next step in search
			// attributes, which Temporal answers without a worker.
			if v, verr := vr.Visibility(ctx, tenant, invoice); verr == nil && v.Running {
				withVisibility(&ans, v)
			}
		}
		writeJSON(w, http.StatusOK, ans)
		return
	case errors.Is(rerr, ledger.ErrNotFound):
		// The run may exist all the same (started, but no worker has
		// opened it yet): the live error decides the answer.
	default:
		h.logger.WarnContext(r.Context(), "read model unavailable", "tenant", tenant, "invoice_id", invoice, "error", rerr)
	}
	h.fail(w, r, err, tenant, invoice)
}

// statusFromView is the run's status as the ledger knows it, in the shape
// of the live status.
func statusFromView(v ledger.RunView) StatusAnswer {
	run, rs := v.Run, v.Status
	st := workflows.Status{
		WorkflowID:    run.WorkflowID,
		Tenant:        run.Tenant,
		InvoiceID:     run.InvoiceID,
		CustomerID:    run.CustomerID,
		Phase:         workflows.Phase(rs.Phase),
		Amount:        amountText(run.Amount.String(), run.Currency),
		Currency:      run.Currency,
		Policy:        run.Policy,
		ServiceState:  policy.ServiceState(rs.ServiceState),
		Attempts:      make([]workflows.AttemptRecord, 0, len(v.Attempts)),
		Messages:      make([]workflows.MessageRecord, 0, len(v.Messages)),
		ServiceLog:    make([]policy.ServiceChange, 0, len(v.ServiceChanges)),
		StartedAt:     run.OpenedAt,
		ClosedAt:      run.ClosedAt,
		ClosingReason: run.ClosingReason,
	}
	for _, a := range v.Attempts {
		st.Attempts = append(st.Attempts, workflows.AttemptRecord{
			Number: a.Number, Reason: policy.Reason(a.Reason), IdempotencyKey: a.IdempotencyKey,
			StartedAt: a.StartedAt, FinishedAt: a.FinishedAt, Outcome: gateway.Outcome(a.Status), // or "pending": not known yet
			DeclineCode: a.DeclineCode, AdviceCode: a.AdviceCode, Message: a.Message, GatewayRef: a.GatewayRef,
			NetworkDeclineCode: a.NetworkDeclineCode, NetworkAdviceCode: a.NetworkAdviceCode, RequiresAction: a.RequiresAction,
		})
	}
	for _, m := range v.Messages {
		at := m.FinishedAt
		if at.IsZero() {
			at = m.CreatedAt
		}
		st.Messages = append(st.Messages, workflows.MessageRecord{
			// The live status names a message by its step; the ledger
			// keys it by the run's ID and the step.
			Key:  strings.TrimPrefix(m.IdempotencyKey, run.WorkflowID+"/"),
			Kind: policy.MessageKind(m.Kind), Channel: policy.Channel(m.Channel), At: at, Status: m.Status, Detail: m.Detail,
		})
	}
	for _, c := range v.ServiceChanges {
		st.ServiceLog = append(st.ServiceLog, policy.ServiceChange{State: policy.ServiceState(c.State), At: c.CreatedAt})
	}
	if n := len(v.Credits); n > 0 {
		c := v.Credits[n-1]
		st.Credit = &workflows.Credit{Amount: amountText(c.Amount.String(), c.Currency), Currency: c.Currency, Days: c.Days}
	}
	if rs.NextAction != "" {
		st.NextStep = &policy.Step{Action: policy.Action(rs.NextAction), At: rs.NextAt}
	}
	if rs.AttentionCause != "" {
		st.Attention = &workflows.Attention{Cause: rs.AttentionCause, Detail: rs.AttentionDetail, Since: rs.AttentionSince}
	}
	return StatusAnswer{Status: st, Source: SourceReadModel, AsOf: rs.UpdatedAt}
}

// VisibilityReader is the optional part of Runs that reads a run's search
// attributes (starter.Client has it).
type VisibilityReader interface {
	Visibility(ctx context.Context, tenant, invoiceID string) (starter.Visibility, error)
}

// withVisibility completes a read-model answer with what the run last set
// in its search attributes when it parked: its next step, and whether the
// card is ruled out. The ledger's rows stay the source
// for attempts, messages and service changes.
func withVisibility(ans *StatusAnswer, v starter.Visibility) {
	// The ledger knows pauses, suspensions and holds itself; what only the
	// run knows is whether the card is ruled out (action_required).
	if ans.Phase == workflows.PhaseRecovering && v.Phase == workflows.PhaseActionRequired {
		ans.Phase = v.Phase
	}
	if !v.NextAt.IsZero() {
		ans.NextStep = &policy.Step{Action: policy.Action(v.NextAction), At: v.NextAt}
	}
}

// amountText writes an amount with its currency's decimals ("49.9" EUR is
// "49.90"), as the live status does; an unknown currency keeps the text.
func amountText(value, currency string) string {
	a, err := money.Parse(value, currency)
	if err != nil {
		return value
	}
	return a.Decimal()
}

// ListAnswer is GET /v1/runs: one page of a tenant's runs from the read
// model, least recently updated first. NextCursor, when present, fetches the
// next page (?cursor=...); it is absent on the last page.
type ListAnswer struct {
	Runs       []ListedRun `json:"runs"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// ListedRun is one run in a list.
type ListedRun struct {
	WorkflowID   string               `json:"workflow_id"`
	Tenant       string               `json:"tenant"`
	InvoiceID    string               `json:"invoice_id"`
	CustomerID   string               `json:"customer_id"`
	Phase        workflows.Phase      `json:"phase"`
	ServiceState policy.ServiceState  `json:"service_state"`
	Attempts     int                  `json:"attempts"`
	NextStep     *ListedStep          `json:"next_step,omitempty"`
	Attention    *workflows.Attention `json:"attention,omitempty"`
	UpdatedAt    time.Time            `json:"updated_at"`
	StatusURL    string               `json:"status_url"`
}

// ListedStep is a listed run's next step: what and when.
type ListedStep struct {
	Action policy.Action `json:"action"`
	At     time.Time     `json:"at,omitzero"`
}

// Phases are the phases a list may filter on. "aborted" is the ledger's:
// the sweeper closed the run because its workflow ended without closing it.
var Phases = []workflows.Phase{
	workflows.PhaseRecovering, workflows.PhaseActionRequired, workflows.PhasePaused, workflows.PhaseSuspended,
	workflows.PhaseNeedsAttention, workflows.PhaseRecovered, workflows.PhaseExhausted, workflows.PhaseCancelled,
	workflows.Phase(ledger.RunAborted),
}

// listParams are the query parameters GET /v1/runs takes.
var listParams = []string{"tenant", "phase", "customer", "limit", "cursor"}

// idParam is the rule of a tenant or customer ID in a query: the rule runs
// were ever started with (starter.ValidateRunKey).
var idParam = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)

// ParseListQuery reads GET /v1/runs's query. Syntax errors (an unknown or
// repeated parameter, a limit that is not a number, a cursor this API did
// not hand out) come back as a *QueryError with status 400; values that
// break a rule (no tenant, an unknown phase, a limit out of range) with 422.
func ParseListQuery(q url.Values) (ledger.RunStatusQuery, error) {
	var malformed, invalid []FieldProblem
	for name, vals := range q {
		switch {
		case !slices.Contains(listParams, name):
			malformed = append(malformed, paramField(name, fmt.Sprintf("unknown parameter; use %s", strings.Join(listParams, ", "))))
		case len(vals) > 1:
			malformed = append(malformed, paramField(name, "given more than once"))
		}
	}
	out := ledger.RunStatusQuery{Tenant: q.Get("tenant"), Phase: q.Get("phase"), CustomerID: q.Get("customer"), Limit: ledger.DefaultListLimit}
	switch {
	case out.Tenant == "":
		invalid = append(invalid, paramField("tenant", "is required"))
	case !idParam.MatchString(out.Tenant):
		invalid = append(invalid, paramField("tenant", fmt.Sprintf("%.64q must be 1-128 characters of letters, digits and . _ : @ -", out.Tenant)))
	}
	if out.CustomerID != "" && !idParam.MatchString(out.CustomerID) {
		invalid = append(invalid, paramField("customer", fmt.Sprintf("%.64q must be 1-128 characters of letters, digits and . _ : @ -", out.CustomerID)))
	}
	if out.Phase != "" && !slices.Contains(Phases, workflows.Phase(out.Phase)) {
		names := make([]string, len(Phases))
		for i, p := range Phases {
			names[i] = string(p)
		}
		invalid = append(invalid, paramField("phase", fmt.Sprintf("%.64q is not a phase; use one of %s", out.Phase, strings.Join(names, ", "))))
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		switch {
		case err != nil:
			malformed = append(malformed, paramField("limit", fmt.Sprintf("%.32q is not a whole number", s)))
		case n < 1 || n > ledger.MaxListLimit:
			invalid = append(invalid, paramField("limit", fmt.Sprintf("%d is not between 1 and %d", n, ledger.MaxListLimit)))
		default:
			out.Limit = n
		}
	}
	if s := q.Get("cursor"); s != "" {
		c, err := ledger.ParseCursor(s)
		if err != nil {
			malformed = append(malformed, paramField("cursor", "is not a cursor this API handed out; start again without it"))
		}
		out.After = c
	}
	if len(malformed) > 0 {
		return ledger.RunStatusQuery{}, &QueryError{Status: http.StatusBadRequest, Problems: sortedFields(malformed)}
	}
	if len(invalid) > 0 {
		return ledger.RunStatusQuery{}, &QueryError{Status: http.StatusUnprocessableEntity, Problems: sortedFields(invalid)}
	}
	return out, nil
}

// QueryError is a refused query string: Status says how (400 or 422),
// Problems name each parameter.
type QueryError struct {
	Status   int
	Problems []FieldProblem
}

func (e *QueryError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Detail
	}
	return strings.Join(parts, "; ")
}

// sortedFields orders problems by parameter, so answers do not depend on
// map order.
func sortedFields(f []FieldProblem) []FieldProblem {
	slices.SortStableFunc(f, func(a, b FieldProblem) int { return strings.Compare(a.Field, b.Field) })
	return f
}

func (h *handler) listRuns(w http.ResponseWriter, r *http.Request) {
	if h.readModel == nil {
		writeError(w, http.StatusNotImplemented, "listing runs needs the ledger; this server has none (set DATABASE_URL)")
		return
	}
	q, err := ParseListQuery(r.URL.Query())
	if qerr, ok := errors.AsType[*QueryError](err); ok {
		writeError(w, qerr.Status, qerr.Error(), qerr.Problems...)
		return
	}
	// A list is always one tenant's (?tenant is required), and only the
	// key's own unless it is an admin key.
	if !allowTenant(w, r, q.Tenant, paramField("tenant", "")) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	page, err := h.readModel.ListRunStatus(ctx, q)
	switch {
	case err == nil:
	case r.Context().Err() != nil:
		h.logger.InfoContext(r.Context(), "request abandoned by the client", "path", r.URL.Path, "error", err)
		return
	case errors.Is(err, context.DeadlineExceeded):
		h.logger.WarnContext(r.Context(), "timed out listing runs", "tenant", q.Tenant, "error", err)
		writeRetryable(w, http.StatusGatewayTimeout, "timed out reading the ledger; try again")
		return
	default:
		h.logger.ErrorContext(r.Context(), "list runs failed", "tenant", q.Tenant, "error", err)
		writeError(w, http.StatusInternalServerError, "internal error; the failure was logged")
		return
	}
	out := ListAnswer{Runs: make([]ListedRun, len(page.Runs)), NextCursor: page.Next.String()}
	for i, rs := range page.Runs {
		out.Runs[i] = NewListedRun(rs)
	}
	writeJSON(w, http.StatusOK, out)
}

// NewListedRun is a read-model row as the list shows it.
func NewListedRun(rs ledger.RunStatus) ListedRun {
	lr := ListedRun{
		WorkflowID: rs.WorkflowID, Tenant: rs.Tenant, InvoiceID: rs.InvoiceID, CustomerID: rs.CustomerID,
		Phase: workflows.Phase(rs.Phase), ServiceState: policy.ServiceState(rs.ServiceState), Attempts: rs.Attempts,
		UpdatedAt: rs.UpdatedAt, StatusURL: statusPath(rs.Tenant, rs.InvoiceID),
	}
	if rs.NextAction != "" {
		lr.NextStep = &ListedStep{Action: policy.Action(rs.NextAction), At: rs.NextAt}
	}
	if rs.AttentionCause != "" {
		lr.Attention = &workflows.Attention{Cause: rs.AttentionCause, Detail: rs.AttentionDetail, Since: rs.AttentionSince}
	}
	return lr
}

// retryableStatus says whether err means "not now" rather than "no": a
// timeout (504) or Temporal, or the run's worker, unavailable (503).
// Either answer carries Retry-After. 0 means neither.
func retryableStatus(err error) int {
	if _, ok := errors.AsType[*serviceerror.DeadlineExceeded](err); ok || errors.Is(err, context.DeadlineExceeded) {
		return http.StatusGatewayTimeout
	}
	if errors.Is(err, errNoWorker) {
		return http.StatusServiceUnavailable
	}
	if _, ok := errors.AsType[*serviceerror.Unavailable](err); ok {
		return http.StatusServiceUnavailable
	}
	if _, ok := errors.AsType[*serviceerror.WorkflowNotReady](err); ok {
		return http.StatusServiceUnavailable
	}
	if _, ok := errors.AsType[*serviceerror.ResourceExhausted](err); ok {
		return http.StatusServiceUnavailable
	}
	return 0
}

// writeRetryable answers a 503 or 504 the caller may retry.
func writeRetryable(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter/time.Second)))
	writeError(w, status, detail)
}

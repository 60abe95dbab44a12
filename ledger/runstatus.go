package ledger

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// This file is the read model of runs (table run_status): where each run
// stands, kept in PostgreSQL so that a run's status and lists of runs can be
// answered without a worker. The workflow reports its state when it parks;
// OpenRun and CloseRun keep the row right where the ledger already knows.

// Page sizes of ListRunStatus.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// RunStatus is where one run stands, as its workflow last reported it or as
// the ledger knows from opening and closing it.
type RunStatus struct {
	WorkflowID string
	// Tenant, InvoiceID and CustomerID are the run's; ReportStatus takes
	// them from the run row and ignores what the report says.
	Tenant, InvoiceID, CustomerID string
	// Phase is the workflow's phase: recovering, action_required, paused,
	// suspended, needs_attention, or the run's final status once closed.
	Phase        string
	ServiceState string // active, paused, suspended, cancelled
	Attempts     int    // charge attempts made so far
	NextAction   string // the next step's action; "" when none is planned
	NextAt       time.Time
	// The cause of a hold for ops, while the run needs attention.
	AttentionCause, AttentionDetail string
	AttentionSince                  time.Time
	// UpdatedAt is the moment the row describes (the workflow's clock for
	// reports). Reports older than the stored one are ignored.
	UpdatedAt time.Time
}

const runStatusColumns = `workflow_id, tenant, invoice_id, customer_id, phase, service_state, attempts,
	next_action, next_at, attention_cause, attention_detail, attention_since, updated_at`

func scanRunStatus(row pgx.Row) (RunStatus, error) {
	var (
		st                RunStatus
		nextAt, attention *time.Time
	)
	err := row.Scan(&st.WorkflowID, &st.Tenant, &st.InvoiceID, &st.CustomerID, &st.Phase, &st.ServiceState, &st.Attempts,
		&st.NextAction, &nextAt, &st.AttentionCause, &st.AttentionDetail, &attention, &st.UpdatedAt)
	if err != nil {
		return RunStatus{}, err
	}
	st.NextAt, st.AttentionSince, st.UpdatedAt = nullTime(nextAt), nullTime(attention), st.UpdatedAt.UTC()
	return st, nil
}

// phasePattern keeps phases to the workflow's vocabulary shape without
// listing it, so a new phase needs no ledger release.
var phasePattern = regexp.MustCompile(`^[a-z][a-z_]{0,63}$`)

// ValidPhase reports whether phase has the shape of a workflow phase.
func ValidPhase(phase string) bool { return phasePattern.MatchString(phase) }

func validateRunStatus(st RunStatus) error {
	switch {
	case st.WorkflowID == "":
		return invalid("run status: workflow ID is required")
	case !ValidPhase(st.Phase):
		return invalid("run status %s: phase %q is not a phase name", st.WorkflowID, st.Phase)
	case !slices.Contains(serviceStates, st.ServiceState):
		return invalid("run status %s: service state %q is not one of %v", st.WorkflowID, st.ServiceState, serviceStates)
	case st.Attempts < 0:
		return invalid("run status %s: attempts %d must not be negative", st.WorkflowID, st.Attempts)
	case st.NextAction == "" && !st.NextAt.IsZero():
		return invalid("run status %s: a next step time needs its action", st.WorkflowID)
	case st.AttentionCause == "" && (st.AttentionDetail != "" || !st.AttentionSince.IsZero()):
		return invalid("run status %s: attention detail and time need a cause", st.WorkflowID)
	}
	return nil
}

// nullable maps the zero time to NULL.
func nullable(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ReportStatus records where an open run stands. It is idempotent and never
// moves backwards: a report older than the stored row (a retried local
// activity that lands late) changes nothing, and so does any report once the
// run has closed, whose row CloseRun owns. An unknown run is ErrNotFound. A
// zero UpdatedAt is recorded as now.
func (s *Store) ReportStatus(ctx context.Context, st RunStatus) error {
	if err := validateRunStatus(st); err != nil {
		return err
	}
	// FOR SHARE, as in BeginAttempt: a concurrent CloseRun either commits
	// first, and then the run is not open and nothing is written, or waits
	// for this report and then overwrites it with the final phase.
	tag, err := s.pool.Exec(ctx, `INSERT INTO run_status (`+runStatusColumns+`)
		SELECT workflow_id, tenant, invoice_id, customer_id, $2, $3, $4, $5, $6, $7, $8, $9, $10
		FROM runs WHERE workflow_id = $1 AND status = 'open'
		FOR SHARE
		ON CONFLICT (workflow_id) DO UPDATE SET
			phase = EXCLUDED.phase, service_state = EXCLUDED.service_state, attempts = EXCLUDED.attempts,
			next_action = EXCLUDED.next_action, next_at = EXCLUDED.next_at,
			attention_cause = EXCLUDED.attention_cause, attention_detail = EXCLUDED.attention_detail,
			attention_since = EXCLUDED.attention_since, updated_at = EXCLUDED.updated_at
		WHERE run_status.updated_at <= EXCLUDED.updated_at`,
		st.WorkflowID, st.Phase, st.ServiceState, st.Attempts, st.NextAction, nullable(st.NextAt),
		st.AttentionCause, st.AttentionDetail, nullable(st.AttentionSince), orNow(st.UpdatedAt))
	if err != nil {
		return fmt.Errorf("ledger: report status of %s: %w", st.WorkflowID, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// Nothing written: a stale report or a closed run (fine), or no run.
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM runs WHERE workflow_id = $1)`, st.WorkflowID).Scan(&exists); err != nil {
		return fmt.Errorf("ledger: report status of %s: %w", st.WorkflowID, err)
	}
	if !exists {
		return fmt.Errorf("ledger: report status of %s: %w", st.WorkflowID, ErrNotFound)
	}
	return nil
}

// openRunStatus puts a run that (re)opens at recovering with nothing planned
// and no hold, unless the row already describes a later moment: a retried
// OpenRun must not undo what the run reported since. A workflow started
// again for the same run (after its previous execution failed) opens at a
// later time and so starts over; the service state and attempt count stay,
// as the ledger's facts.
func openRunStatus(ctx context.Context, q querier, r Run) error {
	_, err := q.Exec(ctx, `INSERT INTO run_status
		(workflow_id, tenant, invoice_id, customer_id, phase, service_state, attempts, updated_at)
		VALUES ($1, $2, $3, $4, 'recovering', 'active', 0, $5)
		ON CONFLICT (workflow_id) DO UPDATE SET
			phase = 'recovering', next_action = '', next_at = NULL,
			attention_cause = '', attention_detail = '', attention_since = NULL, updated_at = EXCLUDED.updated_at
		WHERE run_status.updated_at < EXCLUDED.updated_at`,
		r.WorkflowID, r.Tenant, r.InvoiceID, r.CustomerID, orNow(r.OpenedAt))
	if err != nil {
		return fmt.Errorf("ledger: open run %s: record its status: %w", r.WorkflowID, err)
	}
	return nil
}

// closeRunStatus gives a run that has just closed its final phase, clears
// the next step and any hold, and takes the service state and attempt count
// from the ledger's own rows, so the row is right even when the workflow
// never reported. The close is the last word, whatever time a report
// carried.
func closeRunStatus(ctx context.Context, q querier, workflowID string) error {
	_, err := q.Exec(ctx, `INSERT INTO run_status
		(workflow_id, tenant, invoice_id, customer_id, phase, service_state, attempts, updated_at)
		SELECT r.workflow_id, r.tenant, r.invoice_id, r.customer_id, r.status,
			COALESCE((SELECT c.state FROM service_changes c WHERE c.workflow_id = r.workflow_id
				ORDER BY c.created_at DESC, c.idempotency_key DESC LIMIT 1), 'active'),
			(SELECT count(*) FROM attempts a WHERE a.workflow_id = r.workflow_id AND a.status IN ('succeeded', 'declined')),
			r.closed_at
		FROM runs r WHERE r.workflow_id = $1
		ON CONFLICT (workflow_id) DO UPDATE SET
			phase = EXCLUDED.phase, service_state = EXCLUDED.service_state,
			attempts = GREATEST(run_status.attempts, EXCLUDED.attempts),
			next_action = '', next_at = NULL, attention_cause = '', attention_detail = '', attention_since = NULL,
			updated_at = GREATEST(run_status.updated_at, EXCLUDED.updated_at)`, workflowID)
	if err != nil {
		return fmt.Errorf("ledger: close run %s: record its status: %w", workflowID, err)
	}
	return nil
}

// GetRunStatus returns the run's read-model row, or ErrNotFound.
func (s *Store) GetRunStatus(ctx context.Context, workflowID string) (RunStatus, error) {
	st, err := scanRunStatus(s.pool.QueryRow(ctx, `SELECT `+runStatusColumns+` FROM run_status WHERE workflow_id = $1`, workflowID))
	if errors.Is(err, pgx.ErrNoRows) {
		return RunStatus{}, fmt.Errorf("ledger: status of run %s: %w", workflowID, ErrNotFound)
	}
	if err != nil {
		return RunStatus{}, fmt.Errorf("ledger: status of run %s: %w", workflowID, err)
	}
	return st, nil
}

// RunView is everything the ledger knows about one run, read in one
// snapshot: the run, its read-model row, and its attempts, messages,
// service changes and credits.
type RunView struct {
	Run            Run
	Status         RunStatus
	Attempts       []Attempt
	Messages       []Message
	ServiceChanges []ServiceChange
	Credits        []ServiceCredit
}

// RunView reads the run and everything recorded for it in one read-only
// snapshot, so the parts agree with each other. An unknown run is
// ErrNotFound. A run opened by a worker older than the read model has no
// status row until it next reports; its status is then made up from the run
// row (recovering while open, else its final status).
func (s *Store) RunView(ctx context.Context, workflowID string) (RunView, error) {
	var v RunView
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if v.Run, err = getRun(ctx, tx, workflowID); err != nil {
			return err
		}
		v.Status, err = scanRunStatus(tx.QueryRow(ctx, `SELECT `+runStatusColumns+` FROM run_status WHERE workflow_id = $1`, workflowID))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			v.Status = RunStatus{WorkflowID: v.Run.WorkflowID, Tenant: v.Run.Tenant, InvoiceID: v.Run.InvoiceID,
				CustomerID: v.Run.CustomerID, Phase: "recovering", ServiceState: "active", UpdatedAt: v.Run.OpenedAt}
			if v.Run.Status != runOpen {
				v.Status.Phase, v.Status.UpdatedAt = v.Run.Status, v.Run.ClosedAt
			}
		case err != nil:
			return fmt.Errorf("ledger: status of run %s: %w", workflowID, err)
		}
		if v.Attempts, err = collect(ctx, tx, `SELECT `+attemptColumns+` FROM attempts WHERE workflow_id = $1 ORDER BY attempt`,
			workflowID, scanAttempt); err != nil {
			return fmt.Errorf("ledger: attempts of %s: %w", workflowID, err)
		}
		if v.Messages, err = collect(ctx, tx, `SELECT `+messageColumns+` FROM messages WHERE workflow_id = $1 ORDER BY created_at, idempotency_key`,
			workflowID, scanMessage); err != nil {
			return fmt.Errorf("ledger: messages of %s: %w", workflowID, err)
		}
		if v.ServiceChanges, err = collect(ctx, tx, `SELECT `+serviceChangeColumns+` FROM service_changes WHERE workflow_id = $1 ORDER BY created_at, idempotency_key`,
			workflowID, scanServiceChange); err != nil {
			return fmt.Errorf("ledger: service changes of %s: %w", workflowID, err)
		}
		if v.Credits, err = collect(ctx, tx, `SELECT `+creditColumns+` FROM service_credits WHERE workflow_id = $1 ORDER BY created_at, idempotency_key`,
			workflowID, scanCredit); err != nil {
			return fmt.Errorf("ledger: credits of %s: %w", workflowID, err)
		}
		return nil
	})
	if err != nil {
		return RunView{}, err
	}
	return v, nil
}

// collect runs a query for one run's rows and scans each with scan.
func collect[T any](ctx context.Context, tx pgx.Tx, sql, workflowID string, scan func(pgx.Row) (T, error)) ([]T, error) {
	rows, err := tx.Query(ctx, sql, workflowID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
}

// Cursor is a position in a listing: the last row of a page. The API hands
// it out as an opaque string (String, ParseCursor).
type Cursor struct {
	UpdatedAt  time.Time
	WorkflowID string
}

// IsZero reports whether c is the start of a listing.
func (c Cursor) IsZero() bool { return c.WorkflowID == "" && c.UpdatedAt.IsZero() }

type cursorJSON struct {
	T int64  `json:"t"` // updated_at in Unix microseconds, PostgreSQL's precision
	W string `json:"w"`
}

// String encodes the cursor as base64url JSON; "" for the zero cursor.
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	b, _ := json.Marshal(cursorJSON{T: c.UpdatedAt.UnixMicro(), W: c.WorkflowID}) // cannot fail
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseCursor decodes a cursor from String; "" is the zero cursor. A string
// that is not one is ErrInvalid.
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	if len(s) > 1024 {
		return Cursor{}, invalid("cursor is %d bytes long; it is not one this API handed out", len(s))
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, invalid("cursor %.32q is not one this API handed out", s)
	}
	var c cursorJSON
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.W == "" {
		return Cursor{}, invalid("cursor %.32q is not one this API handed out", s)
	}
	return Cursor{UpdatedAt: time.UnixMicro(c.T).UTC(), WorkflowID: c.W}, nil
}

// RunStatusQuery selects one tenant's runs.
type RunStatusQuery struct {
	Tenant     string // required
	Phase      string // optional
	CustomerID string // optional
	// Limit is the page size, at most MaxListLimit; 0 means DefaultListLimit.
	Limit int
	// After continues a listing after the last row of the previous page.
	After Cursor
}

// RunStatusPage is one page of a listing.
type RunStatusPage struct {
	Runs []RunStatus
	// Next continues the listing; zero on the last page.
	Next Cursor
}

// ListRunStatus lists a tenant's runs, least recently updated first
// (updated_at, then workflow ID), with keyset pagination: a page starts
// after q.After. A run that changes while a listing is paged through moves
// to its end, so it shows up again rather than being skipped.
func (s *Store) ListRunStatus(ctx context.Context, q RunStatusQuery) (RunStatusPage, error) {
	switch {
	case q.Tenant == "":
		return RunStatusPage{}, invalid("list runs: tenant is required")
	case q.Limit < 0 || q.Limit > MaxListLimit:
		return RunStatusPage{}, invalid("list runs: limit %d is not between 1 and %d", q.Limit, MaxListLimit)
	case q.Limit == 0:
		q.Limit = DefaultListLimit
	}
	// Conditions are added only when given, so each query reads the index
	// that leads with its columns.
	where, args := []string{"tenant = $1"}, []any{q.Tenant}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Phase != "" {
		where = append(where, "phase = "+arg(q.Phase))
	}
	if q.CustomerID != "" {
		where = append(where, "customer_id = "+arg(q.CustomerID))
	}
	if !q.After.IsZero() {
		where = append(where, "(updated_at, workflow_id) > ("+arg(q.After.UpdatedAt)+", "+arg(q.After.WorkflowID)+")")
	}
	// One row more than asked tells whether a next page exists.
	limit := arg(q.Limit + 1)
	rows, err := s.pool.Query(ctx, `SELECT `+runStatusColumns+` FROM run_status WHERE `+strings.Join(where, " AND ")+
		` ORDER BY updated_at, workflow_id LIMIT `+limit, args...)
	if err != nil {
		return RunStatusPage{}, fmt.Errorf("ledger: list runs of %s: %w", q.Tenant, err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RunStatus, error) { return scanRunStatus(row) })
	if err != nil {
		return RunStatusPage{}, fmt.Errorf("ledger: list runs of %s: %w", q.Tenant, err)
	}
	page := RunStatusPage{Runs: list}
	if len(list) > q.Limit {
		page.Runs = list[:q.Limit]
		last := page.Runs[q.Limit-1]
		page.Next = Cursor{UpdatedAt: last.UpdatedAt, WorkflowID: last.WorkflowID}
	}
	return page, nil
}

// noteServiceState keeps the read model's service state and phase in step
// with a service change, in the change's own transaction: the workflow does
// not report these (a report per step would cost a history event and a
// billed action each). A closed run keeps its final phase.
func noteServiceState(ctx context.Context, q querier, c ServiceChange) error {
	_, err := q.Exec(ctx, `UPDATE run_status SET
			service_state = $2,
			phase = CASE $2 WHEN 'active' THEN 'recovering' WHEN 'paused' THEN 'paused' ELSE 'suspended' END,
			updated_at = GREATEST(updated_at, $3)
		WHERE workflow_id = $1 AND phase NOT IN ('recovered', 'exhausted', 'cancelled', 'aborted') AND updated_at <= $3`,
		c.WorkflowID, c.State, c.CreatedAt)
	if err != nil {
		return fmt.Errorf("ledger: service change %s: record it in the run's status: %w", c.IdempotencyKey, err)
	}
	return nil
}

// noteAttempts keeps the read model's attempt count in step with the
// ledger's finished attempts.
func noteAttempts(ctx context.Context, q querier, key string) error {
	_, err := q.Exec(ctx, `UPDATE run_status s SET attempts = (
			SELECT count(*) FROM attempts a WHERE a.workflow_id = s.workflow_id AND a.status IN ('succeeded', 'declined'))
		WHERE s.workflow_id = (SELECT workflow_id FROM attempts WHERE idempotency_key = $1)`, key)
	if err != nil {
		return fmt.Errorf("ledger: attempt %s: count it in the run's status: %w", key, err)
	}
	return nil
}

package intake

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/validation"
	"github.com/dunningco/dunning/workflows"
)

// ReminderStarter starts reminder runs; *starter.Client implements it. A
// Runs that does not answers POST /v1/reminders with 501.
type ReminderStarter interface {
	StartReminders(ctx context.Context, in workflows.ReminderInput) (starter.StartResult, error)
}

var _ ReminderStarter = (*starter.Client)(nil)

// ReminderSteering reads and stops reminder runs; *starter.Client
// implements it.
type ReminderSteering interface {
	ReminderStatus(ctx context.Context, workflowID string) (workflows.ReminderStatus, error)
	CancelReminders(ctx context.Context, workflowID string, req workflows.CancelRequest) error
}

var _ ReminderSteering = (*starter.Client)(nil)

// maxReminderIDLen is the longest reminder run ID starter.Client takes.
const maxReminderIDLen = 512

// reminderRun serves GET (status) and DELETE (cancel, ?reason=...) on
// /v1/reminders/{id...}, where id is the run ID without "reminders/".
func (h *handler) reminderRun(w http.ResponseWriter, r *http.Request) {
	steer, ok := h.runs.(ReminderSteering)
	if !ok {
		writeError(w, http.StatusNotImplemented, "reminders are not available on this server")
		return
	}
	id := "reminders/" + r.PathValue("id")
	// The ID begins with the tenant: another tenant's run is one this key
	// cannot see. An ID over the client's limit names no run and is
	// refused by it as malformed (400).
	if p, ok := PrincipalFrom(r.Context()); ok && len(id) <= maxReminderIDLen {
		if tenant, _, _ := strings.Cut(r.PathValue("id"), "/"); !p.MayActFor(tenant) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no reminder run %q", id))
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	var err error
	if r.Method == http.MethodGet {
		var st workflows.ReminderStatus
		if st, err = steer.ReminderStatus(ctx, id); err == nil {
			writeJSON(w, http.StatusOK, st)
			return
		}
	} else {
		req := workflows.CancelRequest{Reason: r.URL.Query().Get("reason"), By: r.URL.Query().Get("by")}
		if err := validation.Cancel(req); err != nil {
			writeParamError(w, http.StatusUnprocessableEntity, err) // ?reason=...
			return
		}
		if err = steer.CancelReminders(ctx, id, req); err == nil {
			writeJSON(w, http.StatusAccepted, map[string]string{"workflow_id": id})
			return
		}
	}
	switch {
	case errors.Is(err, starter.ErrInvalid):
		writeError(w, http.StatusBadRequest, err.Error(), paramField("id", err.Error()))
	case errors.Is(err, starter.ErrRunNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no reminder run %q", id))
	case errors.Is(err, starter.ErrRunClosed):
		writeError(w, http.StatusConflict, fmt.Sprintf("the reminder run %q has already ended", id))
	default:
		h.logger.ErrorContext(r.Context(), "reminder run request failed", "workflow_id", id, "error", err)
		writeError(w, http.StatusInternalServerError, "internal error; the failure was logged")
	}
}

// ReminderRequest is the body of POST /v1/reminders: reminders before an
// invoice falls due (kind "pre-due") or before a card expires or the
// subscription renews (kind "card-expiry").
type ReminderRequest struct {
	Tenant   string             `json:"tenant"`
	Kind     string             `json:"kind"`
	Customer workflows.Customer `json:"customer"`
	// InvoiceID, Amount (a decimal string such as "49.90") and Currency
	// are the invoice due (pre-due).
	InvoiceID string         `json:"invoice_id,omitempty"`
	Amount    string         `json:"amount,omitempty"`
	Currency  string         `json:"currency,omitempty"`
	Card      workflows.Card `json:"card,omitzero"`
	// Anchor is the due date (pre-due) or the expiry or renewal date
	// (card-expiry), RFC 3339.
	Anchor time.Time `json:"anchor"`
	Policy string    `json:"policy,omitempty"`
}

// Input is the reminder run input the request asks for.
func (r ReminderRequest) Input() workflows.ReminderInput {
	return workflows.ReminderInput{
		Tenant:     r.Tenant,
		Kind:       r.Kind,
		Customer:   r.Customer,
		InvoiceID:  r.InvoiceID,
		Amount:     r.Amount,
		Currency:   r.Currency,
		Card:       r.Card,
		Anchor:     r.Anchor,
		PolicyName: r.Policy,
	}
}

// DecodeReminderRequest decodes a request strictly, like
// DecodeDeclineReport.
func DecodeReminderRequest(data []byte) (ReminderRequest, error) {
	var r ReminderRequest
	if err := decodeStrict(data, &r, false); err != nil {
		return ReminderRequest{}, err
	}
	return r, nil
}

// reminderResponse is the 202 answer to a reminder request.
type reminderResponse struct {
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
}

func (h *handler) startReminders(w http.ResponseWriter, r *http.Request) {
	starterFor, ok := h.runs.(ReminderStarter)
	if !ok {
		writeError(w, http.StatusNotImplemented, "reminders are not available on this server")
		return
	}
	data, ok := h.readBody(w, r)
	if !ok {
		return
	}
	req, err := DecodeReminderRequest(data)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	req.Tenant = fillTenant(r, req.Tenant)
	in, err := h.rules.Reminder(req.Input())
	if err != nil {
		writeInvalid(w, err)
		return
	}
	if !allowTenant(w, r, in.Tenant, bodyField("/tenant", "")) {
		return
	}
	if err := starter.CheckPolicyName(h.policies, req.Policy); err != nil {
		writeError(w, http.StatusUnprocessableEntity, err.Error(), bodyField("/policy", err.Error()))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	res, err := starterFor.StartReminders(ctx, in)
	if err != nil {
		h.fail(w, r, err, req.Tenant, req.InvoiceID)
		return
	}
	h.logger.InfoContext(r.Context(), "reminders accepted",
		"tenant", req.Tenant, "kind", req.Kind, "workflow_id", res.WorkflowID, "run_id", res.RunID)
	writeJSON(w, http.StatusAccepted, reminderResponse{WorkflowID: res.WorkflowID, RunID: res.RunID})
}

package intake

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"go.temporal.io/api/serviceerror"

	"github.com/dunningco/dunning/apikeys"
	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/idempotency"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/openapi"
	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/stripehooks"
	"github.com/dunningco/dunning/tenants"
	"github.com/dunningco/dunning/workflows"
)

func init() {
	// The document's non-JSON answers: Twilio's TwiML and the reference
	// page are checked as text.
	openapi3filter.RegisterBodyDecoder("text/xml", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
}

// contractWorld is everything a handler under contract test talks to;
// each case gets a fresh one and may change it before the handler is
// built.
type contractWorld struct {
	runs    *fakeReminderRuns
	plain   bool // serve runs without reminders (a Runs that cannot start them)
	rm      *fakeReadModel
	noRM    bool
	prefs   *fakePreferences
	keys    testKeyring
	signer  *cardlink.Signer
	sgKey   string
	idem    *fakeIdempotency
	limit   bool // a rate limit of one request
	opts    []Option
	stripe  *ledger.Store
	panicky bool
}

// fakeIdempotency answers Begin with a set outcome.
type fakeIdempotency struct {
	outcome idempotency.Outcome
	first   idempotency.Response
	err     error
}

func (f *fakeIdempotency) Begin(context.Context, string, string, []byte, time.Duration) (idempotency.Outcome, idempotency.Response, error) {
	return f.outcome, f.first, f.err
}
func (f *fakeIdempotency) Complete(context.Context, string, string, idempotency.Response) error {
	return nil
}
func (f *fakeIdempotency) Release(context.Context, string, string) error { return nil }

// readyReminderRuns is the fake runs with readiness.
type readyReminderRuns struct {
	*fakeReminderRuns
	err error
}

func (r readyReminderRuns) Ready(context.Context) error { return r.err }

// plainRuns hides the reminder methods.
type plainRuns struct{ *fakeRuns }

func (w *contractWorld) handler() http.Handler {
	opts := []Option{WithAuthenticator(w.keys), WithCardLinks(w.signer), WithTwilioInbound(testAuthToken, testTwilioURL, w.prefs),
		WithSendGridEvents(w.sgKey, w.prefs), withClock(time.Now()), WithIdempotency(w.idem)}
	if !w.noRM {
		opts = append(opts, WithReadModel(w.rm))
	}
	if w.stripe != nil {
		cfg, _ := tenants.New(map[string]tenants.Tenant{"acme": {StripeWebhookSecret: stripeTestSecret}})
		opts = append(opts, WithStripeWebhooks(cfg, w.stripe))
	}
	if w.limit {
		opts = append(opts, WithRateLimit(0.0001, 1))
	}
	opts = append(opts, w.opts...)
	var runs Runs = readyReminderRuns{fakeReminderRuns: w.runs}
	if w.plain {
		runs = plainRuns{&w.runs.fakeRuns}
	}
	if w.panicky {
		runs = &panicRuns{}
	}
	return NewHandler(runs, slog.New(slog.DiscardHandler), opts...)
}

// contractCase is one request and the status its answer must have; the
// answer, whatever it is, must validate against the document.
type contractCase struct {
	name   string
	op     string // operationId the request is for
	method string
	path   string
	body   string
	ctype  string // Content-Type; "application/json" when body is set and this is empty
	auth   string // API key; acmeKey unless noKey
	noKey  bool
	header map[string]string
	prep   func(w *contractWorld)
	status int
	// validRequest: the request itself must validate against the
	// document (the cases the server accepts).
	validRequest bool
	// bodyHas are strings the answer's body must contain: the data the
	// case's world holds, so an empty answer cannot pass for one.
	bodyHas []string
}

var (
	contractNow   = time.Now().UTC().Truncate(time.Second)
	statusSample  = fullStatus()
	attemptSample = workflows.AttemptRecord{Number: 2, Reason: policy.ReasonExpedite, IdempotencyKey: "dunning/acme/inv-1/attempt-2",
		StartedAt: contractNow, FinishedAt: contractNow.Add(time.Second), Outcome: "declined", DeclineCode: "insufficient_funds",
		AdviceCode: "try_again_later", Message: "Insufficient funds", GatewayRef: "ch_2", Category: "soft", Advice: "retry",
		NetworkDeclineCode: "51", NetworkAdviceCode: "24", Card: "fp_1"}
)

// fullStatus fills every member of a live status, so the document must
// describe each one.
func fullStatus() workflows.Status {
	return workflows.Status{
		WorkflowID: "dunning/acme/inv-1", Tenant: "acme", InvoiceID: "inv-1", CustomerID: "cus_1", Phase: workflows.PhaseRecovering,
		Amount: "49.90", Currency: "EUR", Policy: "default@3", ServiceState: policy.ServicePaused,
		Declines: []workflows.Decline{{ID: "ch_1", Gateway: "stripe", Code: "insufficient_funds", AdviceCode: "try_again_later",
			NetworkDeclineCode: "51", NetworkAdviceCode: "24", Message: "no", OccurredAt: contractNow, ReceivedAt: contractNow}},
		Attempts:   []workflows.AttemptRecord{attemptSample},
		Messages:   []workflows.MessageRecord{{Key: "decline/email", Kind: "first_notice", Channel: policy.Email, At: contractNow, Status: "sent", Detail: "x"}},
		ServiceLog: []policy.ServiceChange{{State: policy.ServicePaused, At: contractNow}},
		NextStep: &policy.Step{Action: policy.ActionRetry, At: contractNow.Add(time.Hour), Attempt: 3, Reason: policy.ReasonScheduled,
			Message: "retry_failed", Channel: policy.Email, Key: "k", State: policy.ServicePaused, Outcome: policy.Recovered, Why: "schedule"},
		UnknownDeclineCodes: 1, Experiment: "e", Variant: "v",
		Credit: &workflows.Credit{Amount: "1.63", Currency: "EUR", Days: 1},
		Decline: &decline.Decline{Category: decline.Soft, Reason: "insufficient_funds", Advice: decline.RetryLater, RetryAfter: time.Hour,
			VisaCategory: 2, NoRetryWindow: time.Hour, Sources: []decline.Source{{Kind: "stripe", Code: "insufficient_funds"}},
			Unrecognized: []decline.Source{{Kind: "iso", Code: "zz"}}, Known: true},
		StartedAt: contractNow, ClosedAt: contractNow, ClosingReason: "r",
		Refusals:    []workflows.Refusal{{At: contractNow, Reason: policy.ReasonExpedite, Rule: "min_gap", Until: contractNow, By: "ops"}},
		LateSignals: []workflows.LateSignal{{Signal: "cancel", At: contractNow, Note: "n"}}, DeclinesNotListed: 1, LateSignalsNotListed: 1, RefusalsNotListed: 1,
		Attention: &workflows.Attention{Cause: "gateway_auth", Detail: "d", Since: contractNow, Repeat: 2},
		Holds:     []workflows.Hold{{Cause: "c", From: contractNow, To: contractNow, Ended: "resumed by ops"}},
	}
}

func contractCases(t *testing.T, sgPriv *ecdsa.PrivateKey, signer *cardlink.Signer) []contractCase {
	t.Helper()
	validToken, _ := signer.Token("dunning/acme/inv-1", "cus_1", time.Now())
	expiredToken, _ := signer.Token("dunning/acme/inv-1", "cus_1", time.Now().Add(-2*time.Hour))
	forged, _ := (&cardlink.Signer{Secret: []byte(strings.Repeat("x", 32)), BaseURL: signer.BaseURL, TTL: time.Hour}).Token("dunning/acme/inv-1", "cus_1", time.Now())
	report := reportWith(t, func(map[string]any) {})
	sms := inboundSMS("STOP")
	smsForm := sms.Encode()
	smsSig := twilioSignature(testAuthToken, testTwilioURL, sms)
	batch := string(sendGridBatch(t, event("ada@example.com", "bounce", "type", "bounce"), event("bo@example.com", "delivered")))
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	sgSig := signSendGrid(t, sgPriv, ts, []byte(batch))
	stale := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	staleSig := signSendGrid(t, sgPriv, stale, []byte(batch))
	failed := stripeEvent(t, "evt_contract_1", "invoice.payment_failed")
	other := stripeEvent(t, "evt_contract_2", "customer.created")
	stripeHeader := func(p []byte) map[string]string {
		return map[string]string{stripehooks.SignatureHeader: stripeSignature(p, time.Now())}
	}
	runErr := func(err error) func(*contractWorld) { return func(w *contractWorld) { w.runs.err = err } }
	unavailable := serviceerror.NewUnavailable("down")
	listView := ledger.RunStatusPage{Runs: []ledger.RunStatus{heldView().Status, {WorkflowID: "dunning/acme/inv-2", Tenant: "acme", InvoiceID: "inv-2",
		CustomerID: "cus_2", Phase: "recovering", ServiceState: "active", Attempts: 1, NextAction: "retry", NextAt: contractNow, UpdatedAt: contractNow}},
		Next: ledger.Cursor{UpdatedAt: contractNow, WorkflowID: "dunning/acme/inv-2"}}
	reminderStatus := func(w *contractWorld) {}
	const runPath = "/v1/runs/acme/inv-1"
	cases := []contractCase{
		// POST /v1/declines
		{name: "accepted", op: "reportDecline", method: "POST", path: "/v1/declines", body: report, status: 202, validRequest: true,
			prep: func(w *contractWorld) {
				w.runs.result = starter.StartResult{WorkflowID: "dunning/acme/inv-1001", RunID: "r1"}
			}},
		{name: "replayed", op: "reportDecline", method: "POST", path: "/v1/declines", body: report, status: 202, validRequest: true,
			header: map[string]string{"Idempotency-Key": "k1"}, prep: func(w *contractWorld) {
				w.idem.outcome = idempotency.Replay
				w.idem.first = idempotency.Response{Status: 202, Header: map[string]string{"Content-Type": "application/json", "Location": "/v1/runs/acme/inv-1001"},
					Body: []byte(`{"workflow_id":"dunning/acme/inv-1001","run_id":"r1","status_url":"/v1/runs/acme/inv-1001"}` + "\n")}
			}},
		{name: "malformed JSON", op: "reportDecline", method: "POST", path: "/v1/declines", body: `{"tenant":`, status: 400},
		{name: "amount as a number", op: "reportDecline", method: "POST", path: "/v1/declines", body: strings.Replace(report, `"49.90"`, `49.9`, 1), status: 400},
		{name: "no key", op: "reportDecline", method: "POST", path: "/v1/declines", body: report, noKey: true, status: 401},
		{name: "read-only key", op: "reportDecline", method: "POST", path: "/v1/declines", body: report, auth: acmeReadKey, status: 403},
		{name: "another tenant", op: "reportDecline", method: "POST", path: "/v1/declines", body: report, auth: globexKey, status: 403},
		{name: "GET", op: "reportDecline", method: "GET", path: "/v1/declines", status: 405},
		{name: "run closed", op: "reportDecline", method: "POST", path: "/v1/declines", body: report, status: 409, prep: runErr(starter.ErrRunClosed)},
		{name: "other amount", op: "reportDecline", method: "POST", path: "/v1/declines", body: report, status: 409, prep: runErr(fmt.Errorf("%w: run holds 10.00 EUR", starter.ErrConflict))},
		{name: "key in use", op: "reportDecline", method: "POST", path: "/v1/declines", body: report, status: 409,
			header: map[string]string{"Idempotency-Key": "k1"}, prep: func(w *contractWorld) { w.idem.outcome = idempotency.InProgress }},
		{name: "too large", op: "reportDecline", method: "POST", path: "/v1/declines", body: `{"x":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, status: 413},
		{name: "form body", op: "reportDecline", method: "POST", path: "/v1/declines", body: "a=b", ctype: "application/x-www-form-urlencoded", status: 415},
		{name: "invalid", op: "reportDecline", method: "POST", path: "/v1/declines", body: reportWith(t, func(m map[string]any) { m["currency"] = "XXX1" }), status: 422},
		{name: "unknown policy", op: "reportDecline", method: "POST", path: "/v1/declines", body: reportWith(t, func(m map[string]any) { m["policy"] = "nope" }), status: 422},
		{name: "key reused", op: "reportDecline", method: "POST", path: "/v1/declines", body: report, status: 422,
			header: map[string]string{"Idempotency-Key": "k1"}, prep: func(w *contractWorld) { w.idem.outcome = idempotency.Mismatch }},
		{name: "too many reports", op: "reportDecline", method: "POST", path: "/v1/declines", body: report, status: 429,
			prep: runErr(&starter.TooManyReportsError{Wait: time.Minute})},
		{name: "internal", op: "reportDecline", method: "POST", path: "/v1/declines", body: report, status: 500, prep: runErr(errors.New("boom"))},
		{name: "Temporal down", op: "reportDecline", method: "POST", path: "/v1/declines", body: report, status: 503, prep: runErr(unavailable)},
		{name: "timeout", op: "reportDecline", method: "POST", path: "/v1/declines", body: report, status: 504, prep: runErr(context.DeadlineExceeded)},

		// GET /v1/runs
		{name: "page", op: "listRuns", method: "GET", path: "/v1/runs?tenant=acme&phase=needs_attention&limit=10", status: 200, validRequest: true,
			prep: func(w *contractWorld) { w.rm.page = listView }},
		{name: "empty", op: "listRuns", method: "GET", path: "/v1/runs?tenant=acme", status: 200, validRequest: true},
		{name: "unknown parameter", op: "listRuns", method: "GET", path: "/v1/runs?tenant=acme&sort=x", status: 400},
		{name: "no key", op: "listRuns", method: "GET", path: "/v1/runs?tenant=acme", noKey: true, status: 401},
		{name: "another tenant", op: "listRuns", method: "GET", path: "/v1/runs?tenant=globex", status: 403},
		{name: "POST", op: "listRuns", method: "POST", path: "/v1/runs", status: 405},
		{name: "no tenant", op: "listRuns", method: "GET", path: "/v1/runs?phase=nope", status: 422},
		{name: "ledger fails", op: "listRuns", method: "GET", path: "/v1/runs?tenant=acme", status: 500, prep: func(w *contractWorld) { w.rm.err = errors.New("boom") }},
		{name: "no ledger", op: "listRuns", method: "GET", path: "/v1/runs?tenant=acme", status: 501, prep: func(w *contractWorld) { w.noRM = true }},
		{name: "ledger slow", op: "listRuns", method: "GET", path: "/v1/runs?tenant=acme", status: 504, prep: func(w *contractWorld) { w.rm.err = context.DeadlineExceeded }},

		// GET /v1/runs/{tenant}/{invoice}
		{name: "live", op: "getRunStatus", method: "GET", path: runPath, status: 200, validRequest: true, prep: func(w *contractWorld) { w.runs.status = statusSample }},
		{name: "read model", op: "getRunStatus", method: "GET", path: runPath, status: 200, validRequest: true, prep: func(w *contractWorld) {
			w.runs.err = unavailable
			v := heldView()
			v.Credits = []ledger.ServiceCredit{{Amount: mustDecimal("1.5"), Currency: "EUR", Days: 1}}
			v.Status.NextAction, v.Status.NextAt = "retry", contractNow
			w.rm.view = v
		}},
		{name: "aborted: the ledger answers", op: "getRunStatus", method: "GET", path: runPath, status: 200, prep: func(w *contractWorld) {
			w.runs.err = &starter.AbortedError{WorkflowID: "dunning/acme/inv-1", Execution: "terminated"}
			v := heldView()
			v.Run.Status, v.Run.ClosedAt, v.Run.ClosingReason = ledger.RunAborted, contractNow, "workflow terminated: history size exceeds limit"
			v.Status.Phase, v.Status.AttentionCause = "aborted", ""
			w.rm.view = v
		}},
		{name: "aborted, no ledger record", op: "getRunStatus", method: "GET", path: runPath, status: 409, prep: func(w *contractWorld) {
			w.runs.err, w.rm.err = &starter.AbortedError{WorkflowID: "dunning/acme/inv-1", Execution: "failed"}, ledger.ErrNotFound
		}},
		{name: "bad invoice", op: "getRunStatus", method: "GET", path: "/v1/runs/acme/inv%20one", status: 400},
		{name: "no key", op: "getRunStatus", method: "GET", path: runPath, noKey: true, status: 401},
		{name: "revoked key", op: "getRunStatus", method: "GET", path: runPath, auth: revokedKey, status: 401},
		{name: "another tenant's run", op: "getRunStatus", method: "GET", path: "/v1/runs/globex/inv-1", status: 404},
		{name: "missing", op: "getRunStatus", method: "GET", path: runPath, status: 404, prep: func(w *contractWorld) {
			w.runs.err, w.rm.err = starter.ErrRunNotFound, ledger.ErrNotFound
		}},
		{name: "DELETE", op: "getRunStatus", method: "DELETE", path: runPath, status: 405},
		{name: "panic", op: "getRunStatus", method: "GET", path: runPath, status: 500, prep: func(w *contractWorld) { w.panicky = true }},
		{name: "nobody answers", op: "getRunStatus", method: "GET", path: runPath, status: 503, prep: func(w *contractWorld) {
			w.runs.err, w.rm.err = unavailable, ledger.ErrNotFound
		}},
		{name: "timeout", op: "getRunStatus", method: "GET", path: runPath, status: 504, prep: func(w *contractWorld) {
			w.runs.err, w.noRM = context.DeadlineExceeded, true
		}},
	}

	// The five requests to a run answer alike.
	type runOp struct {
		op, path, body, invalid string
		ok                      int
	}
	for _, r := range []runOp{
		{"cancelRun", "/cancel", `{"reason":"invoice voided","by":"ops@example.com"}`, `{"by":"ops"}`, 202},
		{"expediteRun", "/expedite", `{"reason":"customer called"}`, `{"reason":"` + strings.Repeat("r", 2000) + `"}`, 200},
		{"paymentMethodUpdated", "/payment-method-updated", `{"payment_method":"pm_card_visa","card":{"network":"visa","fingerprint":"fp1"}}`, `{"payment_method":"bad method with spaces"}`, 202},
		{"paidOutOfBand", "/paid", `{"reference":"tr-1","note":"bank transfer"}`, `{"reference":"` + strings.Repeat("r", 2000) + `"}`, 202},
		{"resumeRun", "/resume", `{"reason":"gateway key fixed","by":"ops"}`, `{"reason":"` + strings.Repeat("r", 2000) + `"}`, 202},
	} {
		p := runPath + r.path
		cases = append(cases,
			contractCase{name: "accepted", op: r.op, method: "POST", path: p, body: r.body, status: r.ok, validRequest: true, prep: func(w *contractWorld) { w.runs.record = attemptSample }},
			contractCase{name: "unknown field", op: r.op, method: "POST", path: p, body: `{"nope":1}`, status: 400},
			contractCase{name: "no key", op: r.op, method: "POST", path: p, body: r.body, noKey: true, status: 401},
			contractCase{name: "read-only key", op: r.op, method: "POST", path: p, body: r.body, auth: acmeReadKey, status: 403},
			contractCase{name: "missing run", op: r.op, method: "POST", path: p, body: r.body, status: 404, prep: runErr(starter.ErrRunNotFound)},
			contractCase{name: "GET", op: r.op, method: "GET", path: p, status: 405},
			contractCase{name: "run ended", op: r.op, method: "POST", path: p, body: r.body, status: 409, prep: runErr(starter.ErrRunClosed)},
			contractCase{name: "too large", op: r.op, method: "POST", path: p, body: `{"reason":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, status: 413},
			contractCase{name: "text body", op: r.op, method: "POST", path: p, body: "x", ctype: "text/plain", status: 415},
			contractCase{name: "invalid", op: r.op, method: "POST", path: p, body: r.invalid, status: 422},
			contractCase{name: "internal", op: r.op, method: "POST", path: p, body: r.body, status: 500, prep: runErr(errors.New("boom"))},
			contractCase{name: "unavailable", op: r.op, method: "POST", path: p, body: r.body, status: 503, prep: runErr(unavailable)},
			contractCase{name: "timeout", op: r.op, method: "POST", path: p, body: r.body, status: 504, prep: runErr(context.DeadlineExceeded)},
		)
	}
	cases = append(cases,
		contractCase{name: "refused by the rules", op: "expediteRun", method: "POST", path: runPath + "/expedite", status: 409,
			prep: runErr(fmt.Errorf("%w: min_gap until tomorrow", starter.ErrRejected))},
		contractCase{name: "empty body", op: "expediteRun", method: "POST", path: runPath + "/expedite", status: 200, validRequest: true,
			prep: func(w *contractWorld) { w.runs.record = attemptSample }},

		// Reminders
		contractCase{name: "accepted", op: "startReminders", method: "POST", path: "/v1/reminders", body: preDueBody, status: 202, validRequest: true},
		contractCase{name: "malformed", op: "startReminders", method: "POST", path: "/v1/reminders", body: `[]`, status: 400},
		contractCase{name: "no key", op: "startReminders", method: "POST", path: "/v1/reminders", body: preDueBody, noKey: true, status: 401},
		contractCase{name: "another tenant", op: "startReminders", method: "POST", path: "/v1/reminders", body: preDueBody, auth: globexKey, status: 403},
		contractCase{name: "PUT", op: "startReminders", method: "PUT", path: "/v1/reminders", status: 405},
		contractCase{name: "ended", op: "startReminders", method: "POST", path: "/v1/reminders", body: preDueBody, status: 409, prep: runErr(starter.ErrRunClosed)},
		contractCase{name: "too large", op: "startReminders", method: "POST", path: "/v1/reminders", body: `{"x":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, status: 413},
		contractCase{name: "text", op: "startReminders", method: "POST", path: "/v1/reminders", body: "x", ctype: "text/plain", status: 415},
		contractCase{name: "invalid", op: "startReminders", method: "POST", path: "/v1/reminders", body: strings.Replace(preDueBody, `"pre-due"`, `"sometime"`, 1), status: 422},
		contractCase{name: "internal", op: "startReminders", method: "POST", path: "/v1/reminders", body: preDueBody, status: 500, prep: runErr(errors.New("boom"))},
		contractCase{name: "not offered", op: "startReminders", method: "POST", path: "/v1/reminders", body: preDueBody, status: 501, prep: func(w *contractWorld) { w.plain = true }},
		contractCase{name: "unavailable", op: "startReminders", method: "POST", path: "/v1/reminders", body: preDueBody, status: 503, prep: runErr(unavailable)},
		contractCase{name: "timeout", op: "startReminders", method: "POST", path: "/v1/reminders", body: preDueBody, status: 504, prep: runErr(context.DeadlineExceeded)},

		contractCase{name: "status", op: "getReminderStatus", method: "GET", path: "/v1/reminders/acme/pre-due/inv-1001", status: 200, validRequest: true, prep: reminderStatus},
		contractCase{name: "ID too long", op: "getReminderStatus", method: "GET", path: "/v1/reminders/acme/" + strings.Repeat("x", 600), status: 400, prep: runErr(starter.ErrInvalid)},
		contractCase{name: "no key", op: "getReminderStatus", method: "GET", path: "/v1/reminders/acme/pre-due/inv-1001", noKey: true, status: 401},
		contractCase{name: "unknown key", op: "getReminderStatus", method: "GET", path: "/v1/reminders/acme/pre-due/inv-1001", auth: adminKey + "x", status: 401},
		contractCase{name: "another tenant", op: "getReminderStatus", method: "GET", path: "/v1/reminders/globex/pre-due/inv-1001", status: 404},
		contractCase{name: "PATCH", op: "getReminderStatus", method: "PATCH", path: "/v1/reminders/acme/pre-due/inv-1001", status: 405},
		contractCase{name: "internal", op: "getReminderStatus", method: "GET", path: "/v1/reminders/acme/pre-due/inv-1001", status: 500, prep: runErr(errors.New("boom"))},
		contractCase{name: "not offered", op: "getReminderStatus", method: "GET", path: "/v1/reminders/acme/pre-due/inv-1001", status: 501, prep: func(w *contractWorld) { w.plain = true }},

		contractCase{name: "cancelled", op: "cancelReminders", method: "DELETE", path: "/v1/reminders/acme/pre-due/inv-1001?reason=invoice+voided&by=ops", status: 202, validRequest: true},
		contractCase{name: "read-only key", op: "cancelReminders", method: "DELETE", path: "/v1/reminders/acme/pre-due/inv-1001?reason=x", auth: acmeReadKey, status: 403},
		contractCase{name: "missing", op: "cancelReminders", method: "DELETE", path: "/v1/reminders/acme/pre-due/inv-1001?reason=x", status: 404, prep: runErr(starter.ErrRunNotFound)},
		contractCase{name: "ended", op: "cancelReminders", method: "DELETE", path: "/v1/reminders/acme/pre-due/inv-1001?reason=x", status: 409, prep: runErr(starter.ErrRunClosed)},
		contractCase{name: "no reason", op: "cancelReminders", method: "DELETE", path: "/v1/reminders/acme/pre-due/inv-1001", status: 422},

		// Card links
		contractCase{name: "valid", op: "resolveCardLink", method: "GET", path: "/v1/card-links/" + validToken, noKey: true, status: 200, validRequest: true,
			prep: func(w *contractWorld) { w.rm.view = heldView() }},
		contractCase{name: "malformed", op: "resolveCardLink", method: "GET", path: "/v1/card-links/not-a-token", noKey: true, status: 400},
		contractCase{name: "forged", op: "resolveCardLink", method: "GET", path: "/v1/card-links/" + forged, noKey: true, status: 403},
		contractCase{name: "POST", op: "resolveCardLink", method: "POST", path: "/v1/card-links/" + validToken, noKey: true, status: 405},
		contractCase{name: "expired", op: "resolveCardLink", method: "GET", path: "/v1/card-links/" + expiredToken, noKey: true, status: 410},
		contractCase{name: "run closed", op: "resolveCardLink", method: "GET", path: "/v1/card-links/" + validToken, noKey: true, status: 410,
			prep: func(w *contractWorld) { v := heldView(); v.Run.Status = "closed"; w.rm.view = v }},
		contractCase{name: "ledger down", op: "resolveCardLink", method: "GET", path: "/v1/card-links/" + validToken, noKey: true, status: 503,
			prep: func(w *contractWorld) { w.rm.err = errors.New("down") }},

		// Webhooks
		contractCase{name: "stop", op: "twilioInboundSMS", method: "POST", path: testTwilioPath, body: smsForm, ctype: "application/x-www-form-urlencoded", noKey: true,
			header: map[string]string{"X-Twilio-Signature": smsSig}, status: 200, validRequest: true},
		contractCase{name: "bad form", op: "twilioInboundSMS", method: "POST", path: testTwilioPath, body: "%zz", ctype: "application/x-www-form-urlencoded", noKey: true,
			header: map[string]string{"X-Twilio-Signature": smsSig}, status: 400},
		contractCase{name: "bad signature", op: "twilioInboundSMS", method: "POST", path: testTwilioPath, body: smsForm, ctype: "application/x-www-form-urlencoded", noKey: true,
			header: map[string]string{"X-Twilio-Signature": "AAAA"}, status: 403},
		contractCase{name: "GET", op: "twilioInboundSMS", method: "GET", path: testTwilioPath, noKey: true, status: 405},
		contractCase{name: "in progress", op: "twilioInboundSMS", method: "POST", path: testTwilioPath, body: smsForm, ctype: "application/x-www-form-urlencoded", noKey: true,
			header: map[string]string{"X-Twilio-Signature": smsSig}, status: 409, prep: func(w *contractWorld) {
				w.opts = append(w.opts, WithTwilioInbound(testAuthToken, testTwilioURL, &claimingPrefs{fakePreferences: w.prefs, claim: ledger.WebhookBusy}))
			}},
		contractCase{name: "JSON", op: "twilioInboundSMS", method: "POST", path: testTwilioPath, body: "{}", noKey: true, status: 415},
		contractCase{name: "ledger down", op: "twilioInboundSMS", method: "POST", path: testTwilioPath, body: smsForm, ctype: "application/x-www-form-urlencoded", noKey: true,
			header: map[string]string{"X-Twilio-Signature": smsSig}, status: 503, prep: func(w *contractWorld) { w.prefs.errFor = map[string]error{testPhone: errors.New("down")} }},

		contractCase{name: "batch", op: "sendgridEvents", method: "POST", path: testEventsPath, body: batch, noKey: true, status: 200, validRequest: true,
			header: map[string]string{"X-Twilio-Email-Event-Webhook-Signature": sgSig, "X-Twilio-Email-Event-Webhook-Timestamp": ts}},
		contractCase{name: "not an array", op: "sendgridEvents", method: "POST", path: testEventsPath, body: `{}`, noKey: true, status: 400,
			prep: func(w *contractWorld) {
				w.opts = append(w.opts, WithSendGridEvents("", w.prefs), WithUnsignedSendGridEvents())
			}},
		contractCase{name: "replayed", op: "sendgridEvents", method: "POST", path: testEventsPath, body: batch, noKey: true, status: 403,
			header: map[string]string{"X-Twilio-Email-Event-Webhook-Signature": staleSig, "X-Twilio-Email-Event-Webhook-Timestamp": stale}},
		contractCase{name: "GET", op: "sendgridEvents", method: "GET", path: testEventsPath, noKey: true, status: 405},
		contractCase{name: "too large", op: "sendgridEvents", method: "POST", path: testEventsPath, body: "[" + strings.Repeat(" ", MaxEventBatchBytes) + "]", noKey: true, status: 413},
		contractCase{name: "form", op: "sendgridEvents", method: "POST", path: testEventsPath, body: "a=b", ctype: "application/x-www-form-urlencoded", noKey: true, status: 415},
		contractCase{name: "ledger fails", op: "sendgridEvents", method: "POST", path: testEventsPath, body: batch, noKey: true, status: 500,
			header: map[string]string{"X-Twilio-Email-Event-Webhook-Signature": sgSig, "X-Twilio-Email-Event-Webhook-Timestamp": ts},
			prep:   func(w *contractWorld) { w.prefs.errFor = map[string]error{"ada@example.com": errors.New("down")} }},
		contractCase{name: "no key configured", op: "sendgridEvents", method: "POST", path: testEventsPath, body: batch, noKey: true, status: 503,
			prep: func(w *contractWorld) { w.opts = append(w.opts, WithSendGridEvents("not base64!", w.prefs)) }},

		contractCase{name: "decline", op: "stripeWebhook", method: "POST", path: "/v1/webhooks/stripe/acme", body: string(failed), noKey: true, status: 200, validRequest: true,
			header: stripeHeader(failed), prep: func(w *contractWorld) {
				w.runs.result = starter.StartResult{WorkflowID: "dunning/acme/in_1001", RunID: "r"}
			}},
		contractCase{name: "ignored", op: "stripeWebhook", method: "POST", path: "/v1/webhooks/stripe/acme", body: string(other), noKey: true, status: 200, validRequest: true,
			header: stripeHeader(other)},
		contractCase{name: "unsigned", op: "stripeWebhook", method: "POST", path: "/v1/webhooks/stripe/acme", body: string(other), noKey: true, status: 400,
			header: map[string]string{stripehooks.SignatureHeader: "t=1,v1=00"}},
		contractCase{name: "unknown tenant", op: "stripeWebhook", method: "POST", path: "/v1/webhooks/stripe/globex", body: string(other), noKey: true, status: 404,
			header: stripeHeader(other)},
		contractCase{name: "GET", op: "stripeWebhook", method: "GET", path: "/v1/webhooks/stripe/acme", noKey: true, status: 405},
		contractCase{name: "other amount", op: "stripeWebhook", method: "POST", path: "/v1/webhooks/stripe/acme", noKey: true, status: 409,
			body: string(stripeEvent(t, "evt_contract_3", "invoice.payment_failed")), prep: func(w *contractWorld) {
				w.runs.err = fmt.Errorf("%w: run holds 10.00 EUR", starter.ErrConflict)
			}},
		contractCase{name: "too large", op: "stripeWebhook", method: "POST", path: "/v1/webhooks/stripe/acme", body: strings.Repeat(" ", stripehooks.MaxPayloadBytes+1), noKey: true, status: 413},
		contractCase{name: "refused by the rules", op: "stripeWebhook", method: "POST", path: "/v1/webhooks/stripe/acme", noKey: true, status: 422,
			body: string(stripeEvent(t, "evt_contract_4", "invoice.payment_failed")), prep: runErr(fmt.Errorf("%w: gateway stripe is not configured", starter.ErrInvalid))},
		contractCase{name: "Temporal down", op: "stripeWebhook", method: "POST", path: "/v1/webhooks/stripe/acme", noKey: true, status: 503,
			body: string(stripeEvent(t, "evt_contract_5", "invoice.payment_failed")), prep: runErr(unavailable)},

		contractCase{name: "bad ID", op: "cancelReminders", method: "DELETE", path: "/v1/reminders/acme/pre-due/inv-1001?reason=x", status: 400, prep: runErr(starter.ErrInvalid)},
		contractCase{name: "no key", op: "cancelReminders", method: "DELETE", path: "/v1/reminders/acme/pre-due/inv-1001?reason=x", noKey: true, status: 401},
		contractCase{name: "POST", op: "cancelReminders", method: "POST", path: "/v1/reminders/acme/pre-due/inv-1001", status: 405},
		contractCase{name: "internal", op: "cancelReminders", method: "DELETE", path: "/v1/reminders/acme/pre-due/inv-1001?reason=x", status: 500, prep: runErr(errors.New("boom"))},
		contractCase{name: "not offered", op: "cancelReminders", method: "DELETE", path: "/v1/reminders/acme/pre-due/inv-1001?reason=x", status: 501, prep: func(w *contractWorld) { w.plain = true }},
		contractCase{name: "write-only key", op: "getRunStatus", method: "GET", path: runPath, auth: writeOnlyKey, status: 403, prep: withWriteOnlyKey},
		contractCase{name: "write-only key", op: "getReminderStatus", method: "GET", path: "/v1/reminders/acme/pre-due/inv-1001", auth: writeOnlyKey, status: 403, prep: withWriteOnlyKey},

		// Operations
		contractCase{name: "up", op: "health", method: "GET", path: "/healthz", noKey: true, status: 200, validRequest: true},
		contractCase{name: "POST", op: "health", method: "POST", path: "/healthz", noKey: true, status: 405},
		contractCase{name: "ready", op: "ready", method: "GET", path: "/readyz", noKey: true, status: 200, validRequest: true},
		contractCase{name: "POST", op: "ready", method: "POST", path: "/readyz", noKey: true, status: 405},
		contractCase{name: "ledger down", op: "ready", method: "GET", path: "/readyz", noKey: true, status: 503, prep: func(w *contractWorld) {
			w.opts = append(w.opts, WithReadModel(readyReadModel{w.rm, errors.New("down")}))
		}},
		contractCase{name: "document", op: "getOpenAPI", method: "GET", path: "/openapi.json", noKey: true, status: 200, validRequest: true},
		contractCase{name: "POST", op: "getOpenAPI", method: "POST", path: "/openapi.json", noKey: true, status: 405},
		contractCase{name: "page", op: "getAPIReference", method: "GET", path: "/docs", noKey: true, status: 200, validRequest: true},
		contractCase{name: "DELETE", op: "getAPIReference", method: "DELETE", path: "/docs", noKey: true, status: 405},
	)
	// Every private operation is behind the key check and the key's rate
	// limit, whatever its route does.
	private := []contractCase{
		{op: "reportDecline", method: "POST", path: "/v1/declines", body: report},
		{op: "listRuns", method: "GET", path: "/v1/runs?tenant=acme"},
		{op: "getRunStatus", method: "GET", path: runPath},
		{op: "cancelRun", method: "POST", path: runPath + "/cancel", body: `{"reason":"x"}`},
		{op: "expediteRun", method: "POST", path: runPath + "/expedite"},
		{op: "paymentMethodUpdated", method: "POST", path: runPath + "/payment-method-updated"},
		{op: "paidOutOfBand", method: "POST", path: runPath + "/paid"},
		{op: "resumeRun", method: "POST", path: runPath + "/resume"},
		{op: "startReminders", method: "POST", path: "/v1/reminders", body: preDueBody},
		{op: "getReminderStatus", method: "GET", path: "/v1/reminders/acme/pre-due/inv-1001"},
		{op: "cancelReminders", method: "DELETE", path: "/v1/reminders/acme/pre-due/inv-1001?reason=x"},
	}
	for _, c := range private {
		limited, down := c, c
		limited.name, limited.status = "rate limited", 429
		limited.prep = func(w *contractWorld) {
			w.limit = true
			// The key's one request of the burst is spent.
			w.opts = append(w.opts, func(hh *handler) { hh.limiter.allow(acmePrincipal(t).KeyID) })
		}
		down.name, down.status = "key store down", 503
		down.prep = func(w *contractWorld) { w.keys.down = true }
		cases = append(cases, limited, down)
	}

	// The stale-signature and form cases above need the header to sign
	// each request anew where the body changes; the ones that do not
	// reach the signature check need none.
	for i := range cases {
		if strings.Contains(cases[i].name, "other amount") && cases[i].op == "stripeWebhook" ||
			cases[i].op == "stripeWebhook" && (cases[i].status == 422 || cases[i].status == 503) {
			cases[i].header = stripeHeader([]byte(cases[i].body))
		}
	}
	return cases
}

// writeOnlyKey may write runs but not read them.
var writeOnlyKey = apikeys.StaticKey("acme0009", "acmewriteonly")

func withWriteOnlyKey(w *contractWorld) {
	keys := apikeys.Static{writeOnlyKey: {Tenant: "acme", Scopes: []apikeys.Scope{apikeys.ScopeRunsWrite}}}
	maps.Copy(keys, testKeys.Static)
	w.keys = testKeyring{Static: keys}
}

// claimingPrefs is fakePreferences that also claims webhook events.
type claimingPrefs struct {
	*fakePreferences
	claim ledger.WebhookClaim
}

func (c *claimingPrefs) ClaimWebhookEvent(context.Context, ledger.WebhookEvent, time.Duration) (ledger.WebhookClaim, error) {
	return c.claim, nil
}
func (c *claimingPrefs) CompleteWebhookEvent(context.Context, ledger.WebhookEvent, string) error {
	return nil
}
func (c *claimingPrefs) ReleaseWebhookEvent(context.Context, ledger.WebhookEvent) error { return nil }

// readyReadModel is a read model that answers readiness.
type readyReadModel struct {
	*fakeReadModel
	err error
}

func (r readyReadModel) Ready(context.Context) error { return r.err }

// operationsByID indexes the document's operations.
func operationsByID(t *testing.T) (*openapi3.T, map[string]openapi.Operation) {
	t.Helper()
	doc, err := openapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]openapi.Operation{}
	for _, op := range openapi.Operations(doc) {
		ops[op.OperationID] = op
	}
	return doc, ops
}

// TestContract sends every case to a handler with fakes behind it and
// validates each answer (status, headers, content type and body) against
// the OpenAPI document with kin-openapi's openapi3filter; the requests the
// server accepts are validated against it too. Every operation, the
// fragments' included, must have at least one success and one error case,
// and every answer it documents must be produced by a case.
func TestContract(t *testing.T) {
	doc, ops := operationsByID(t)
	sgKey, sgPriv := newSendGridKey(t)
	signer := &cardlink.Signer{Secret: []byte(strings.Repeat("k", 32)), BaseURL: "https://billing.example.com/update-card", TTL: time.Hour}
	stripeStore := ledgertest.NewStore(t)
	cases := append(contractCases(t, sgPriv, signer), fragmentCases(t, newFragmentLedgers(t))...)

	covered := map[string]map[int]bool{}
	for _, tc := range cases {
		t.Run(tc.op+"/"+strconv.Itoa(tc.status)+"/"+tc.name, func(t *testing.T) {
			op, ok := ops[tc.op]
			if !ok {
				t.Fatalf("the document has no operation %s", tc.op)
			}
			w := &contractWorld{runs: &fakeReminderRuns{}, rm: &fakeReadModel{}, prefs: &fakePreferences{}, keys: testKeys,
				signer: signer, sgKey: sgKey, idem: &fakeIdempotency{}, stripe: stripeStore}
			if tc.prep != nil {
				tc.prep(w)
			}
			h := w.handler()
			newRequest := func() *http.Request {
				req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
				ct := tc.ctype
				if ct == "" && tc.body != "" {
					ct = "application/json"
				}
				if ct != "" {
					req.Header.Set("Content-Type", ct)
				}
				if !tc.noKey {
					req.Header.Set("Authorization", bearer(cmpOr(tc.auth, acmeKey)))
				}
				for k, v := range tc.header {
					req.Header.Set(k, v)
				}
				return req
			}
			req := newRequest()
			matched, params, ok := openapi.Match(doc, op.Method, req.URL.Path)
			if !ok || matched.OperationID != tc.op {
				t.Fatalf("%s %s is not %s's path %s (matched %q)", op.Method, req.URL.Path, tc.op, op.Path, matched.OperationID)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d; body %.300s", rec.Code, tc.status, rec.Body)
			}

			route := &routers.Route{Spec: doc, Path: op.Path, PathItem: doc.Paths.Value(op.Path), Method: tc.method, Operation: op.Operation}
			if tc.method != op.Method {
				// A 405 answers a method the path does not have; it is
				// held to the documented operation's answers.
				route.Method = op.Method
			}
			in := &openapi3filter.RequestValidationInput{Request: newRequest(), PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
			if tc.validRequest {
				if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
					t.Errorf("the request the server accepted does not validate against the document: %v", err)
				}
			}
			out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
				Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())), Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
			if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
				t.Errorf("the answer does not validate against the document: %v\nanswer: %d %s %.500s", err, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			for _, want := range tc.bodyHas {
				if !strings.Contains(rec.Body.String(), want) {
					t.Errorf("the answer lacks %q: %.1000s", want, rec.Body)
				}
			}
			if rec.Code >= 400 && rec.Header().Get("Content-Type") != ProblemContentType {
				t.Errorf("error answer has Content-Type %q", rec.Header().Get("Content-Type"))
			}
		})
		if covered[tc.op] == nil {
			covered[tc.op] = map[int]bool{}
		}
		covered[tc.op][tc.status] = true
	}

	for id, op := range ops {
		var success, failure bool
		var missing []string
		for code := range op.Responses.Map() {
			status, _ := strconv.Atoi(code)
			success = success || status < 300 && covered[id][status]
			failure = failure || status >= 400 && covered[id][status]
			if !covered[id][status] {
				missing = append(missing, code)
			}
		}
		if !success || !failure {
			t.Errorf("%s needs a success and an error case (covered: %v)", id, slices.Sorted(maps.Keys(covered[id])))
		}
		if len(missing) > 0 {
			// A documented answer no case produces is unproven: either a
			// case is missing or the document promises too much.
			slices.Sort(missing)
			t.Errorf("%s: documented answers no case produces: %s", id, strings.Join(missing, ", "))
		}
	}
	t.Logf("%d contract cases over %d operations", len(cases), len(ops))
}

// routeDrift lists the routes served but not documented and the
// operations documented but not served.
func routeDrift(routes []Route, doc *openapi3.T) []string {
	served := map[string]bool{}
	for _, r := range routes {
		// ServeMux's {id...} takes the rest of the path; the document
		// writes it {id} with x-rest-of-path.
		served[r.Method+" "+strings.ReplaceAll(r.Pattern, "...}", "}")] = true
	}
	documented := map[string]bool{}
	for _, op := range openapi.Operations(doc) {
		documented[op.Method+" "+op.Path] = true
	}
	var out []string
	for _, r := range slices.Sorted(maps.Keys(served)) {
		if !documented[r] {
			out = append(out, r+" is served but not in openapi/openapi.yaml (or a fragment)")
		}
	}
	for _, r := range slices.Sorted(maps.Keys(documented)) {
		if !served[r] {
			out = append(out, r+" is in the document but no route serves it")
		}
	}
	return out
}

func acmePrincipal(t *testing.T) apikeys.Principal {
	t.Helper()
	p, err := testKeys.Authenticate(context.Background(), acmeKey)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestRoutesMatchTheDocument fails when a route is registered on the server
// but not in the document, or documented but not served: with every
// optional endpoint turned on, the two lists must be the same.
func TestRoutesMatchTheDocument(t *testing.T) {
	doc, err := openapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := tenants.New(map[string]tenants.Tenant{"acme": {StripeWebhookSecret: stripeTestSecret}})
	h, _ := newHandler(&fakeReminderRuns{}, slog.New(slog.DiscardHandler),
		WithReadModel(&fakeReadModel{}), WithCardLinks(&cardlink.Signer{Secret: []byte(strings.Repeat("k", 32)), BaseURL: "https://x.example", TTL: time.Hour}),
		WithTwilioInbound(testAuthToken, testTwilioURL, &fakePreferences{}), WithSendGridEvents("", &fakePreferences{}),
		WithStripeWebhooks(cfg, nil), WithAnalytics(&recordingAnalytics{}),
		// Routes only: the audit endpoints are not called here.
		WithAudit((*ledger.Store)(nil), ledger.Limits{}))
	for _, problem := range routeDrift(h.routes, doc) {
		t.Error(problem)
	}
	for _, op := range openapi.Operations(doc) {
		// The surface in the document is the one that serves the path.
		want := "private"
		switch {
		case onBothSurfaces(op.Path):
			want = "both"
		case IsPublicPath(op.Path):
			want = "public"
		}
		if op.Surface != want {
			t.Errorf("%s %s: x-surface %q, but the server serves it on %s", op.Method, op.Path, op.Surface, want)
		}
	}
}

// TestDriftIsCaught shows the route check is not vacuous: a route the
// document lacks, and a documented path no route serves, are reported.
func TestDriftIsCaught(t *testing.T) {
	doc, err := openapi.Document()
	if err != nil {
		t.Fatal(err)
	}
	h, _ := newHandler(&fakeRuns{}, slog.New(slog.DiscardHandler))
	if !slices.Contains(h.routes, Route{Method: http.MethodPost, Pattern: "/v1/declines"}) {
		t.Fatalf("the handler did not record POST /v1/declines: %v", h.routes)
	}
	routes := append(slices.Clone(h.routes), Route{Method: http.MethodGet, Pattern: "/v1/secret/{id...}"})
	got := strings.Join(routeDrift(routes, doc), "\n")
	for _, want := range []string{"GET /v1/secret/{id} is served but not in", "POST /v1/webhooks/twilio/sms is in the document but no route serves it"} {
		if !strings.Contains(got, want) {
			t.Errorf("drift not reported: %q; got:\n%s", want, got)
		}
	}
}

// TestDocumentOnBothListeners: integrators read the document and the
// reference page before they hold a key, on either listener.
func TestDocumentOnBothListeners(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	for name, h := range map[string]http.Handler{
		"private": NewPrivateHandler(&fakeRuns{}, logger, withTestKeys()),
		"public":  NewPublicHandler(&fakeRuns{}, logger),
	} {
		for path, ctype := range map[string]string{openapi.DocumentPath: "application/json", openapi.ReferencePath: "text/html; charset=utf-8"} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != ctype || rec.Body.Len() < 1000 {
				t.Errorf("%s listener, GET %s without a key = %d %q (%d bytes)", name, path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
			}
		}
	}
}

package intake

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"
	twilioclient "github.com/twilio/twilio-go/client"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/optout"
	"github.com/dunningco/dunning/pii"
)

// ConsentStore records SMS consent from keyword replies; *ledger.Store
// implements it.
type ConsentStore interface {
	SetSMSOptOut(ctx context.Context, phone string, optedOut bool, keyword, source string, at time.Time) error
}

// SuppressionStore records email addresses not to send to; *ledger.Store
// implements it.
type SuppressionStore interface {
	SuppressEmail(ctx context.Context, email, reason, source string, at time.Time) error
}

var (
	_ ConsentStore     = (*ledger.Store)(nil)
	_ SuppressionStore = (*ledger.Store)(nil)
)

// Sources recorded with the preferences the webhooks write.
const (
	SourceTwilioInbound  = "twilio-inbound"
	SourceSendGridEvents = "sendgrid-events"
)

// MaxEventBatchBytes bounds a SendGrid event batch. SendGrid posts a batch
// when it reaches 768 KB or every 30 seconds, whichever comes first.
const MaxEventBatchBytes = 4 << 20

// emptyTwiML answers an inbound message without a reply of our own: Twilio
// itself answers the standard keywords (STOP, START, HELP).
const emptyTwiML = `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`

// webhooks is the configuration of the provider webhooks; a nil store leaves
// the endpoint unregistered.
type webhooks struct {
	twilioToken      string
	twilioURL        string
	consent          ConsentStore
	sendgridKey      string
	sendgridUnsigned bool // WithUnsignedSendGridEvents was given
	suppressions     SuppressionStore
	now              func() time.Time
	stripe           *stripeWebhook // WithStripeWebhooks (stripe.go)
}

// WithTwilioInbound serves POST /v1/webhooks/twilio/sms, the URL to set as
// the "A message comes in" webhook of the SMS numbers. Opt-out and opt-in
// keyword replies (see package optout) are recorded in store. Every request
// must carry a valid X-Twilio-Signature made with authToken for publicURL,
// the URL exactly as configured at Twilio (scheme, host, path and any
// query), since behind a proxy the URL the server sees differs from it.
func WithTwilioInbound(authToken, publicURL string, store ConsentStore) Option {
	return func(h *handler) {
		h.webhooks.twilioToken, h.webhooks.twilioURL, h.webhooks.consent = authToken, publicURL, store
	}
}

// WithSendGridEvents serves POST /v1/webhooks/sendgrid/events, the SendGrid
// Event Webhook URL. Bounces, spam reports, unsubscribes and drops of such
// addresses are recorded in store as email suppressions. verificationKey is
// the base64 ECDSA public key SendGrid shows when the signed Event Webhook is
// enabled; every batch must then carry a valid signature. An empty key
// refuses every batch unless WithUnsignedSendGridEvents is also given.
func WithSendGridEvents(verificationKey string, store SuppressionStore) Option {
	return func(h *handler) {
		h.webhooks.sendgridKey, h.webhooks.suppressions = verificationKey, store
	}
}

// WithUnsignedSendGridEvents accepts unsigned SendGrid event batches when
// WithSendGridEvents has no verification key. Anyone who can reach the
// endpoint can then suppress addresses: use it for local development only.
func WithUnsignedSendGridEvents() Option {
	return func(h *handler) { h.webhooks.sendgridUnsigned = true }
}

// registerWebhooks adds the webhook endpoints that were configured.
func (h *handler) registerWebhooks(route func(method, path string, fn http.HandlerFunc)) {
	if h.webhooks.now == nil {
		h.webhooks.now = time.Now
	}
	if h.webhooks.consent != nil {
		route(http.MethodPost, "/v1/webhooks/twilio/sms", h.twilioSMSHandler())
	}
	if h.webhooks.suppressions != nil {
		route(http.MethodPost, "/v1/webhooks/sendgrid/events", h.sendGridEventsHandler())
	}
	h.registerStripeWebhook(route)
}

// twilioSMSHandler returns the handler of Twilio's inbound message webhook.
// A misconfigured endpoint (no auth token or URL) refuses every request
// rather than accept unsigned ones.
func (h *handler) twilioSMSHandler() http.HandlerFunc {
	cfg := h.webhooks
	if cfg.twilioToken == "" || cfg.twilioURL == "" {
		h.logger.Error("Twilio inbound webhook is missing its auth token or public URL; every request will be refused")
		return func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusServiceUnavailable, "the Twilio webhook is not configured")
		}
	}
	validator := twilioclient.NewRequestValidator(cfg.twilioToken)
	return func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			if mediaType, _, err := mime.ParseMediaType(ct); err != nil || mediaType != "application/x-www-form-urlencoded" {
				writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported content type %q; Twilio posts application/x-www-form-urlencoded", ct))
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, "the request body is not a valid form")
			return
		}
		// The validator checks the first value of each parameter; acting on
		// those same values means a repeated parameter cannot smuggle in an
		// unsigned one.
		params := make(map[string]string, len(r.PostForm))
		for k, v := range r.PostForm {
			params[k] = v[0]
		}
		signature := r.Header.Get("X-Twilio-Signature")
		if signature == "" || !validator.Validate(cfg.twilioURL, params, signature) {
			h.logger.WarnContext(r.Context(), "refused Twilio webhook with a missing or invalid signature",
				"remote_addr", r.RemoteAddr, "signed", signature != "")
			writeError(w, http.StatusForbidden, "missing or invalid X-Twilio-Signature")
			return
		}

		action, keyword := optout.ParseSMSKeyword(params["Body"])
		if action == optout.OptOut || action == optout.OptIn {
			from := params["From"]
			consent := activities.SMSConsent{
				Phone: from, OptedOut: action == optout.OptOut, Keyword: keyword, Source: SourceTwilioInbound,
				At: cfg.now().UTC(), MessageSid: params["MessageSid"], AccountSid: params["AccountSid"],
			}
			// A signed message replayed later (STOP after START) must not
			// undo the customer's latest word: each MessageSid acts once.
			done, ok := h.claimMessage(w, r, cfg, params, consent)
			if !ok {
				return
			}
			err := cfg.consent.SetSMSOptOut(r.Context(), from, consent.OptedOut, keyword, SourceTwilioInbound, consent.At)
			done(err)
			switch {
			case errors.Is(err, ledger.ErrInvalid):
				// E.g. a sender that is not a phone number: there is no
				// SMS consent of ours to record.
				h.logger.WarnContext(r.Context(), "SMS keyword from a sender that is not an E.164 number ignored",
					"message_sid", params["MessageSid"], "action", action.String())
			case err != nil:
				h.logger.ErrorContext(r.Context(), "recording SMS consent failed",
					"message_sid", params["MessageSid"], "action", action.String(), "error", err)
				// Temporal holds it until the ledger is back, or Twilio
				// sends it again: the claim was handed back.
				if !h.holdConsent(w, r, consent) {
					return
				}
			default:
				h.logger.InfoContext(r.Context(), "SMS consent recorded",
					"message_sid", params["MessageSid"], "action", action.String(), "keyword", keyword, "from", pii.MaskPhone(from))
			}
		}
		twiML(w)
	}
}

// twiML answers an inbound message with the empty TwiML document.
func twiML(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, emptyTwiML)
}

// ConsentHolder holds an SMS consent durably while the ledger cannot take
// it, and writes it there once it can; *starter.Client is one (through
// Temporal, workflows.SMSConsentWorkflow). The handler uses it when its
// Runs implements it.
type ConsentHolder interface {
	HoldSMSConsent(ctx context.Context, c activities.SMSConsent) error
}

// holdConsent hands a consent the ledger could not record to the holder.
// It reports true when the holder has it and the caller may answer 200;
// otherwise it has answered 503 with Retry-After, so Twilio sends the
// message again (with PostgreSQL and Temporal both down, nothing here can
// keep it).
func (h *handler) holdConsent(w http.ResponseWriter, r *http.Request, c activities.SMSConsent) bool {
	holder, ok := h.runs.(ConsentHolder)
	if ok {
		ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
		err := holder.HoldSMSConsent(ctx, c)
		cancel()
		if err == nil {
			h.logger.WarnContext(r.Context(), "ledger unavailable: SMS consent held by Temporal until it is back",
				"message_sid", c.MessageSid, "opted_out", c.OptedOut, "from", pii.MaskPhone(c.Phone))
			return true
		}
		h.logger.ErrorContext(r.Context(), "ledger and Temporal unavailable: SMS consent not kept, Twilio must send it again",
			"message_sid", c.MessageSid, "error", err)
	}
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusServiceUnavailable, "the ledger is unavailable; the message was not recorded, try again")
	return false
}

// sendGridEvent holds the fields of a SendGrid event the webhook reads.
type sendGridEvent struct {
	Email     string `json:"email"`
	Event     string `json:"event"`
	Type      string `json:"type"`   // bounce events: "bounce" or "blocked"
	Reason    string `json:"reason"` // dropped events: why SendGrid dropped it
	Timestamp int64  `json:"timestamp"`
	EventID   string `json:"sg_event_id"`
}

// droppedSuppressionReasons are the reasons of "dropped" events that mean
// the address is on one of SendGrid's suppression lists.
var droppedSuppressionReasons = []string{"Bounced Address", "Unsubscribed Address", "Spam Reporting Address"}

// suppresses reports whether the event means no more email may go to the
// address. A "blocked" bounce is a temporary refusal by the receiving
// server, and other drops (e.g. an invalid SMTP API header) say nothing
// about the address.
func (e sendGridEvent) suppresses() bool {
	switch e.Event {
	case "bounce":
		return e.Type == "bounce"
	case "dropped":
		for _, r := range droppedSuppressionReasons {
			if strings.Contains(e.Reason, r) {
				return true
			}
		}
		return false
	case "spamreport", "unsubscribe", "group_unsubscribe":
		return true
	}
	return false
}

// sendGridResponse is the 200 answer to an event batch.
type sendGridResponse struct {
	Events     int `json:"events"`
	Suppressed int `json:"suppressed"`
}

// sendGridEventsHandler returns the handler of SendGrid's Event Webhook. A
// misconfigured endpoint (no usable key and unsigned batches not allowed)
// refuses every batch.
func (h *handler) sendGridEventsHandler() http.HandlerFunc {
	cfg := h.webhooks
	var key *ecdsa.PublicKey
	switch {
	case cfg.sendgridKey != "":
		var err error
		if key, err = parseSendGridKey(cfg.sendgridKey); err != nil {
			h.logger.Error("SendGrid event webhook verification key is unusable; every batch will be refused", "error", err)
			return func(w http.ResponseWriter, _ *http.Request) {
				writeError(w, http.StatusServiceUnavailable, "the SendGrid event webhook is not configured")
			}
		}
	case !cfg.sendgridUnsigned:
		h.logger.Error("SendGrid event webhook has no verification key; every batch will be refused")
		return func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusServiceUnavailable, "the SendGrid event webhook is not configured")
		}
	default:
		h.logger.Warn("SendGrid event webhook accepts unsigned batches")
	}

	return func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "" {
			if mediaType, _, err := mime.ParseMediaType(ct); err != nil || mediaType != "application/json" {
				writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported content type %q; send application/json", ct))
				return
			}
		}
		// The signature covers the exact bytes received, so they are read
		// whole before anything is decoded.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxEventBatchBytes))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the event batch exceeds %d bytes", MaxEventBatchBytes))
				return
			}
			writeError(w, http.StatusBadRequest, "could not read the request body")
			return
		}
		if key != nil {
			signature := r.Header.Get(eventwebhook.VerificationHTTPHeader)
			timestamp := r.Header.Get(eventwebhook.TimestampHTTPHeader)
			ok := false
			if signature != "" && timestamp != "" {
				ok, err = eventwebhook.VerifySignature(key, body, signature, timestamp)
			}
			if !ok || err != nil {
				h.logger.WarnContext(r.Context(), "refused SendGrid event batch with a missing or invalid signature",
					"remote_addr", r.RemoteAddr, "signed", signature != "")
				writeError(w, http.StatusForbidden, "missing or invalid "+eventwebhook.VerificationHTTPHeader)
				return
			}
			// A valid signature over an old timestamp is a replay: the
			// signature does not expire by itself.
			if age, ok := sendGridAge(timestamp, cfg.now()); !ok || age > SendGridTolerance || age < -SendGridTolerance {
				h.logger.WarnContext(r.Context(), "refused a signed SendGrid event batch outside the timestamp tolerance",
					"remote_addr", r.RemoteAddr, "timestamp", timestamp)
				writeError(w, http.StatusForbidden, fmt.Sprintf("the batch's %s is more than %s from now; a replayed batch is refused",
					eventwebhook.TimestampHTTPHeader, SendGridTolerance))
				return
			}
		}

		var events []sendGridEvent
		if err := json.Unmarshal(body, &events); err != nil {
			writeError(w, http.StatusBadRequest, "the body is not a JSON array of SendGrid events: "+jsonErrorText(err))
			return
		}
		suppressed := 0
		for _, e := range events {
			if !e.suppresses() {
				continue
			}
			at := cfg.now().UTC()
			if e.Timestamp > 0 {
				at = time.Unix(e.Timestamp, 0).UTC()
			}
			err := cfg.suppressions.SuppressEmail(r.Context(), e.Email, e.Event, SourceSendGridEvents, at)
			switch {
			case errors.Is(err, ledger.ErrInvalid):
				// One unusable event must not make SendGrid resend the
				// whole batch for a day.
				h.logger.WarnContext(r.Context(), "SendGrid event without a usable email address ignored",
					"event", e.Event, "sg_event_id", e.EventID)
			case err != nil:
				// Suppressing is idempotent: SendGrid resending the batch
				// repeats the events already recorded harmlessly.
				h.logger.ErrorContext(r.Context(), "recording email suppression failed",
					"event", e.Event, "sg_event_id", e.EventID, "error", err)
				writeError(w, http.StatusInternalServerError, "internal error; the failure was logged")
				return
			default:
				suppressed++
				h.logger.InfoContext(r.Context(), "email address suppressed",
					"event", e.Event, "sg_event_id", e.EventID, "email", pii.MaskEmail(e.Email))
			}
		}
		writeJSON(w, http.StatusOK, sendGridResponse{Events: len(events), Suppressed: suppressed})
	}
}

// parseSendGridKey reads the verification key SendGrid shows, a base64
// PKIX (DER) ECDSA public key. It checks the key type itself because
// eventwebhook.ConvertPublicKeyBase64ToECDSA panics on other key types.
func parseSendGridKey(b64 string) (*ecdsa.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, fmt.Errorf("verification key is not base64: %w", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("verification key is not a public key: %w", err)
	}
	key, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("verification key is a %T, not an ECDSA key", pub)
	}
	return key, nil
}

// jsonErrorText describes a JSON decoding error without quoting the body,
// which holds customers' addresses.
func jsonErrorText(err error) string {
	if e, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("syntax error at byte %d", e.Offset)
	}
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if e.Field != "" {
			return fmt.Sprintf("field %s: expected %s, got %s", e.Field, e.Type, e.Value)
		}
		return fmt.Sprintf("expected %s, got %s", e.Type, e.Value)
	}
	return "invalid JSON"
}

// SendGridTolerance is how far a signed batch's timestamp may be from now.
// SendGrid signs the timestamp with the body, so within it a replay needs a
// fresh signature; beyond it the batch is refused.
const SendGridTolerance = 10 * time.Minute

// sendGridAge is how long ago the batch's timestamp header (Unix seconds)
// says it was signed.
func sendGridAge(header string, now time.Time) (time.Duration, bool) {
	secs, err := strconv.ParseInt(strings.TrimSpace(header), 10, 64)
	if err != nil {
		return 0, false
	}
	return now.Sub(time.Unix(secs, 0)), true
}

// WebhookEventStore records provider events acted on, so a replayed one is
// not acted on twice; *ledger.Store implements it.
type WebhookEventStore interface {
	ClaimWebhookEvent(ctx context.Context, e ledger.WebhookEvent, lease time.Duration) (ledger.WebhookClaim, error)
	CompleteWebhookEvent(ctx context.Context, e ledger.WebhookEvent, outcome string) error
	ReleaseWebhookEvent(ctx context.Context, e ledger.WebhookEvent) error
}

// claimMessage claims an inbound message's MessageSid when the consent store
// can record it. It reports false when the request was answered here: a
// replay (200, nothing done) or the same message being handled right now
// (409). done completes the claim, or releases it when acting failed.
func (h *handler) claimMessage(w http.ResponseWriter, r *http.Request, cfg webhooks, params map[string]string, consent activities.SMSConsent) (done func(error), ok bool) {
	events, can := cfg.consent.(WebhookEventStore)
	sid := params["MessageSid"]
	if !can || sid == "" {
		return func(error) {}, true
	}
	account := params["AccountSid"]
	if account == "" {
		account = "twilio"
	}
	ev := ledger.WebhookEvent{Source: "twilio-sms", Tenant: account, EventID: sid, Type: "inbound"}
	claim, err := events.ClaimWebhookEvent(r.Context(), ev, time.Minute)
	switch {
	case err != nil:
		h.logger.ErrorContext(r.Context(), "recording the inbound message failed", "message_sid", sid, "error", err)
		if h.holdConsent(w, r, consent) {
			twiML(w)
		}
		return nil, false
	case claim == ledger.WebhookProcessed:
		h.logger.InfoContext(r.Context(), "replayed inbound message ignored", "message_sid", sid)
		twiML(w)
		return nil, false
	case claim == ledger.WebhookBusy:
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusConflict, "this message is being handled; try again")
		return nil, false
	}
	return func(actErr error) {
		// A context detached from the request: the outcome must be kept
		// even if the caller hung up.
		ctx := context.WithoutCancel(r.Context())
		if actErr != nil && !errors.Is(actErr, ledger.ErrInvalid) {
			_ = events.ReleaseWebhookEvent(ctx, ev)
			return
		}
		if err := events.CompleteWebhookEvent(ctx, ev, "consent recorded"); err != nil {
			h.logger.WarnContext(ctx, "inbound message acted on but not marked done", "message_sid", sid, "error", err)
		}
	}, true
}

// Package sendgrid delivers email through the Twilio SendGrid v3 Mail Send
// API (POST /v3/mail/send) with the official sendgrid-go client.
//
// Each message goes to one recipient in one personalization. Its workflow
// ID, step and idempotency key travel as custom args (workflow_id, step,
// idempotency_key), so SendGrid's event webhook can trace every delivery
// event back to its run; the categories are the configured ones plus the
// message kind. When Config.TemplateIDs names a dynamic template for the
// message kind, the request carries template_id and dynamic_template_data
// (subject, text, html, kind, locale) instead of the rendered content.
//
// Idempotency: the Mail Send API has no idempotency key, so SendGrid does
// not de-duplicate on the custom arg. The ledger decides whether a message
// went out: a retry after a recorded send returns the recorded receipt
// without calling SendGrid. After a call whose answer was lost (a crash
// between SendGrid's 202 and the ledger write, a timeout, a dropped
// connection), Find asks the Email Activity API (GET /v3/messages) for a
// message whose idempotency_key custom arg is ours, when the account has
// that paid add-on and Config.EmailActivity says so. Without it Find answers
// notify.ErrLookupUnavailable and the message is sent again: the one
// duplicate that remains, recorded as such in the ledger.
//
// Errors: a 4xx other than 408 and 429 (bad request, bad or unauthorised key,
// payload too large, ...) wraps notify.ErrRejected with SendGrid's error
// messages; 408, 429, 5xx and network errors are returned plain, to be
// retried with the same key. Neither the API key nor the recipient's address
// is logged, and the address is masked in error messages.
package sendgrid

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	sendgridapi "github.com/sendgrid/sendgrid-go"
	sgmail "github.com/sendgrid/sendgrid-go/helpers/mail"

	"github.com/dunningco/dunning/notify"
)

const (
	// Provider names SendGrid in receipts.
	Provider = "sendgrid"
	// DefaultBaseURL is SendGrid's global API host.
	DefaultBaseURL = "https://api.sendgrid.com"

	endpoint         = "/v3/mail/send"
	activityEndpoint = "/v3/messages"
	// DefaultSettle is how long after a send Find waits before it trusts
	// the Email Activity API, which indexes a message once SendGrid has
	// processed it, not when it answers 202.
	DefaultSettle = 2 * time.Minute
	// findLimit bounds the messages one lookup reads; one key names one
	// message to one recipient.
	findLimit = 10
	// requestTimeout bounds one API call when the caller's context has a
	// later deadline or none.
	requestTimeout = 30 * time.Second
	// maxCategories is SendGrid's limit per message; one is kept for the
	// message kind.
	maxCategories  = 10
	maxCategoryLen = 255
)

// Custom arg names carried by every message.
const (
	ArgWorkflowID     = "workflow_id"
	ArgStep           = "step"
	ArgIdempotencyKey = "idempotency_key"
)

// Config configures a Notifier.
type Config struct {
	// APIKey is a SendGrid API key with the Mail Send permission.
	APIKey string
	// BaseURL is the API host; DefaultBaseURL when empty. Requests go to
	// BaseURL + "/v3/mail/send".
	BaseURL string
	// FromEmail is a verified sender address; FromName is its display name.
	FromEmail string
	FromName  string
	// ReplyTo, when set, receives the customers' replies.
	ReplyTo string
	// Categories tag every message (at most 9; the message kind is added).
	Categories []string
	// TemplateIDs maps a message kind to a SendGrid dynamic template ID.
	// When set for a kind, the message is sent as template_id plus
	// dynamic_template_data instead of the rendered content.
	TemplateIDs map[string]string
	// EmailActivity says the account has the Email Activity API (a paid
	// add-on) and the key may read it: a send whose outcome is unknown is
	// then looked up before it is sent again.
	EmailActivity bool
	// Settle is how long after a send the Email Activity API is trusted to
	// show it; DefaultSettle when zero.
	Settle time.Duration
	// Logger receives one line per send; slog.Default() when nil.
	Logger *slog.Logger
}

// Notifier sends email through SendGrid. It is safe for concurrent use.
type Notifier struct {
	apiKey     string
	host       string
	from       *sgmail.Email
	replyTo    *sgmail.Email
	categories []string
	templates  map[string]string
	activity   bool
	settle     time.Duration
	logger     *slog.Logger
}

var (
	_ notify.Notifier = (*Notifier)(nil)
	_ notify.Finder   = (*Notifier)(nil)
)

// New validates cfg and returns a Notifier.
func New(cfg Config) (*Notifier, error) {
	if strings.TrimSpace(cfg.APIKey) == "" {
		return nil, errors.New("sendgrid: API key is required")
	}
	if cfg.FromEmail == "" {
		return nil, errors.New("sendgrid: from address is required")
	}
	from, err := bareAddress(cfg.FromEmail)
	if err != nil {
		return nil, fmt.Errorf("sendgrid: from address: %w", err)
	}
	n := &Notifier{
		apiKey:    cfg.APIKey,
		from:      sgmail.NewEmail(cfg.FromName, from),
		templates: make(map[string]string, len(cfg.TemplateIDs)),
		activity:  cfg.EmailActivity,
		settle:    cfg.Settle,
		logger:    cfg.Logger,
	}
	switch {
	case n.settle < 0:
		return nil, errors.New("sendgrid: settle must not be negative")
	case n.settle == 0:
		n.settle = DefaultSettle
	}
	if n.logger == nil {
		n.logger = slog.Default()
	}
	if cfg.ReplyTo != "" {
		replyTo, err := bareAddress(cfg.ReplyTo)
		if err != nil {
			return nil, fmt.Errorf("sendgrid: reply-to address: %w", err)
		}
		n.replyTo = sgmail.NewEmail("", replyTo)
	}
	if n.host, err = baseURL(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("sendgrid: %w", err)
	}
	for _, c := range cfg.Categories {
		switch {
		case strings.TrimSpace(c) == "":
			return nil, errors.New("sendgrid: empty category")
		case len(c) > maxCategoryLen:
			return nil, fmt.Errorf("sendgrid: category %.20q... is longer than %d bytes", c, maxCategoryLen)
		}
		n.categories = appendUnique(n.categories, c)
	}
	if len(n.categories) > maxCategories-1 {
		return nil, fmt.Errorf("sendgrid: %d categories configured; at most %d (the message kind makes %d)",
			len(n.categories), maxCategories-1, maxCategories)
	}
	for kind, id := range cfg.TemplateIDs {
		if kind == "" || strings.TrimSpace(id) == "" {
			return nil, fmt.Errorf("sendgrid: template for kind %q: kind and template ID are required", kind)
		}
		n.templates[kind] = id
	}
	return n, nil
}

// Send implements notify.Notifier.
func (n *Notifier) Send(ctx context.Context, m notify.Message) (notify.Receipt, error) {
	if m.To == "" {
		return notify.Receipt{}, fmt.Errorf("sendgrid: no recipient address: %w", notify.ErrRejected)
	}
	templateID := n.templates[m.Kind]
	req := sendgridapi.GetRequest(n.apiKey, endpoint, n.host)
	req.Method = http.MethodPost
	req.Body = sgmail.GetRequestBody(n.build(m, templateID))

	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	start := time.Now()
	resp, err := sendgridapi.MakeRequestWithContext(ctx, req)
	attrs := []any{
		"provider", Provider, "key", m.IdempotencyKey, "kind", m.Kind,
		"locale", m.Locale, "template", templateID != "", "duration", time.Since(start),
	}
	if err != nil {
		n.logger.WarnContext(ctx, "email not sent: sendgrid unreachable, will retry", append(attrs, "error", err)...)
		return notify.Receipt{}, fmt.Errorf("sendgrid: send: %w", err)
	}
	attrs = append(attrs, "status", resp.StatusCode)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		ref := http.Header(resp.Headers).Get("X-Message-Id")
		n.logger.InfoContext(ctx, "email accepted by sendgrid", append(attrs, "ref", ref)...)
		return notify.Receipt{Provider: Provider, Ref: ref}, nil
	}
	detail := redact(errorMessage(resp.StatusCode, resp.Body), m.To)
	if permanent(resp.StatusCode) {
		n.logger.WarnContext(ctx, "email rejected by sendgrid", append(attrs, "detail", detail)...)
		return notify.Receipt{}, fmt.Errorf("sendgrid: HTTP %d: %s: %w", resp.StatusCode, detail, notify.ErrRejected)
	}
	n.logger.WarnContext(ctx, "email not sent: sendgrid failed, will retry", append(attrs, "detail", detail)...)
	if resp.StatusCode == http.StatusTooManyRequests {
		// Rate limited: SendGrid took nothing, so the retry need not look.
		return notify.Receipt{}, fmt.Errorf("sendgrid: HTTP %d: %s: %w", resp.StatusCode, detail, notify.ErrNotAccepted)
	}
	return notify.Receipt{}, fmt.Errorf("sendgrid: HTTP %d: %s", resp.StatusCode, detail)
}

// Settle implements notify.Finder.
func (n *Notifier) Settle() time.Duration {
	if !n.activity {
		return 0 // nothing to wait for: Find cannot look
	}
	return n.settle
}

// Find implements notify.Finder through the Email Activity API: it filters
// the account's messages by the idempotency_key custom arg (unique_args in
// the query language) and returns the one to m.To. since is not part of the
// query: the key names one message, and the API keeps only recent activity
// anyway.
func (n *Notifier) Find(ctx context.Context, m notify.Message, since time.Time) (notify.Receipt, bool, error) {
	if !n.activity {
		return notify.Receipt{}, false, fmt.Errorf("sendgrid: the Email Activity API is not enabled for this account (SENDGRID_EMAIL_ACTIVITY): %w", notify.ErrLookupUnavailable)
	}
	req := sendgridapi.GetRequest(n.apiKey, activityEndpoint, n.host)
	req.Method = http.MethodGet
	req.QueryParams = map[string]string{"query": activityQuery(m.IdempotencyKey), "limit": strconv.Itoa(findLimit)}

	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	start := time.Now()
	resp, err := sendgridapi.MakeRequestWithContext(ctx, req)
	attrs := []any{"provider", Provider, "key", m.IdempotencyKey, "duration", time.Since(start)}
	if err != nil {
		n.logger.WarnContext(ctx, "email lookup failed: sendgrid unreachable", append(attrs, "error", err)...)
		return notify.Receipt{}, false, fmt.Errorf("sendgrid: email activity: %w", err)
	}
	attrs = append(attrs, "status", resp.StatusCode)
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound:
		// No add-on, or a key without Email Activity access: say so and
		// let the caller send, rather than hold the message for ever.
		detail := errorMessage(resp.StatusCode, resp.Body)
		n.logger.WarnContext(ctx, "email lookup refused: the account or key has no Email Activity access", append(attrs, "detail", detail)...)
		return notify.Receipt{}, false, fmt.Errorf("sendgrid: email activity: HTTP %d: %s: %w", resp.StatusCode, detail, notify.ErrLookupUnavailable)
	default:
		detail := redact(errorMessage(resp.StatusCode, resp.Body), m.To)
		n.logger.WarnContext(ctx, "email lookup failed", append(attrs, "detail", detail)...)
		return notify.Receipt{}, false, fmt.Errorf("sendgrid: email activity: HTTP %d: %s", resp.StatusCode, detail)
	}
	var found struct {
		Messages []struct {
			MsgID   string `json:"msg_id"`
			ToEmail string `json:"to_email"`
		} `json:"messages"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &found); err != nil {
		return notify.Receipt{}, false, fmt.Errorf("sendgrid: email activity: decode answer: %w", err)
	}
	for _, msg := range found.Messages {
		if strings.EqualFold(msg.ToEmail, m.To) {
			n.logger.InfoContext(ctx, "email found at sendgrid", append(attrs, "ref", msg.MsgID)...)
			return notify.Receipt{Provider: Provider, Ref: msg.MsgID}, true, nil
		}
	}
	n.logger.InfoContext(ctx, "email not found at sendgrid", append(attrs, "listed", len(found.Messages))...)
	return notify.Receipt{}, false, nil
}

// activityQuery is the Email Activity query for the message carrying key as
// its idempotency_key custom arg, e.g.
// unique_args['idempotency_key']="dunning/acme/inv-1/attempt-1-failed/email".
func activityQuery(key string) string {
	quoted := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(key)
	return "unique_args['" + ArgIdempotencyKey + `']="` + quoted + `"`
}

// build returns the Mail Send request body for m.
func (n *Notifier) build(m notify.Message, templateID string) *sgmail.SGMailV3 {
	msg := sgmail.NewV3Mail()
	msg.SetFrom(n.from)
	if n.replyTo != nil {
		msg.SetReplyTo(n.replyTo)
	}

	p := sgmail.NewPersonalization()
	p.AddTos(sgmail.NewEmail("", m.To))
	// Custom args sit on the personalization: the message has exactly one,
	// and SendGrid reports them with every event of its recipient.
	p.SetCustomArg(ArgIdempotencyKey, m.IdempotencyKey)
	if m.WorkflowID != "" {
		p.SetCustomArg(ArgWorkflowID, m.WorkflowID)
	}
	if m.Step != "" {
		p.SetCustomArg(ArgStep, m.Step)
	}

	if templateID != "" {
		msg.SetTemplateID(templateID)
		p.SetDynamicTemplateData("subject", m.Subject)
		p.SetDynamicTemplateData("text", m.Body)
		p.SetDynamicTemplateData("html", m.HTML)
		p.SetDynamicTemplateData("kind", m.Kind)
		p.SetDynamicTemplateData("locale", m.Locale)
	} else {
		msg.Subject = m.Subject
		// SendGrid requires text/plain before text/html.
		if m.Body != "" {
			msg.AddContent(sgmail.NewContent("text/plain", m.Body))
		}
		if m.HTML != "" {
			msg.AddContent(sgmail.NewContent("text/html", m.HTML))
		}
	}
	msg.AddPersonalizations(p)

	categories := append([]string(nil), n.categories...)
	if m.Kind != "" && len(m.Kind) <= maxCategoryLen {
		categories = appendUnique(categories, m.Kind)
	}
	if len(categories) > 0 {
		msg.AddCategories(categories...)
	}
	return msg
}

// permanent reports whether SendGrid answering with status refuses the
// message for good: any 4xx except 408 (request timeout) and 429 (rate
// limited).
func permanent(status int) bool {
	return status >= 400 && status < 500 &&
		status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
}

// errorMessage returns SendGrid's error messages from an error response
// body ({"errors":[{"field":..,"message":..}]}), or the status text.
func errorMessage(status int, body string) string {
	var parsed struct {
		Errors []struct {
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	var msgs []string
	if json.Unmarshal([]byte(body), &parsed) == nil {
		for _, e := range parsed.Errors {
			switch {
			case e.Message == "":
			case e.Field != "":
				msgs = append(msgs, e.Field+": "+e.Message)
			default:
				msgs = append(msgs, e.Message)
			}
		}
	}
	if len(msgs) == 0 {
		if text := http.StatusText(status); text != "" {
			return text
		}
		return "unexpected response"
	}
	return strings.Join(msgs, "; ")
}

// redact masks the recipient's address where an error message repeats it.
func redact(s, address string) string {
	if address == "" {
		return s
	}
	return regexp.MustCompile("(?i)"+regexp.QuoteMeta(address)).ReplaceAllString(s, "[recipient]")
}

// bareAddress parses an address such as "billing@example.com" and returns it
// without a display name.
func bareAddress(s string) (string, error) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return "", fmt.Errorf("%q: %w", s, err)
	}
	if a.Name != "" {
		return "", fmt.Errorf("%q: give the bare address; the display name is configured apart", s)
	}
	return a.Address, nil
}

// baseURL validates the configured API host and defaults it.
func baseURL(s string) (string, error) {
	if s == "" {
		return DefaultBaseURL, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("base URL: %w", err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("base URL %q: want an absolute http(s) URL such as %s", s, DefaultBaseURL)
	}
	return strings.TrimSuffix(s, "/"), nil
}

func appendUnique(list []string, s string) []string {
	for _, have := range list {
		if have == s {
			return list
		}
	}
	return append(list, s)
}

// Package twilio delivers SMS through Twilio's Programmable Messaging API
// (POST /2010-04-01/Accounts/{AccountSid}/Messages.json) with the official
// twilio-go client.
//
// A message is sent from the configured Messaging Service when
// MessagingServiceSID is set, from the From number otherwise, and carries
// StatusCallback when StatusCallbackURL is set. The receipt's Ref is the
// message SID (SM...), which Twilio's status callbacks repeat.
//
// Idempotency: Twilio's Messages API has no idempotency key, so nothing in
// the request de-duplicates a retry. The ledger decides whether a message
// went out: a retry after a recorded send returns the recorded receipt
// without calling Twilio. After a call whose answer was lost (a crash
// between Twilio's 201 and the ledger write, a timeout, a dropped
// connection), Find lists the Messages sent to the number (Messages list,
// filtered by To) and matches ours: created since the first call started,
// from our Messaging Service or number, with exactly the stored body. The
// message's idempotency key also rides in the StatusCallback URL (query
// parameter idempotency_key), so delivery callbacks name it; the Message
// resource does not return its StatusCallback, so the lookup cannot match on
// it and matches the body instead.
//
// Errors: twilio-go reports an API error as *client.TwilioRestError. A 4xx
// other than 408 and 429 wraps notify.ErrRejected, e.g. 21211 (invalid To),
// 21610 (recipient unsubscribed), 20003 (authentication); 408, 429, 5xx and
// network errors are returned plain, to be retried with the same key. Neither
// the auth token nor the recipient's number is logged, and the number is
// masked in error messages.
//
// twilio-go takes no context; each Send binds its requests to ctx through the
// client's HTTP transport, so deadlines and cancellation apply to the call.
package twilio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	twilioapi "github.com/twilio/twilio-go"
	twclient "github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/dunningco/dunning/notify"
)

const (
	// Provider names Twilio in receipts.
	Provider = "twilio"
	// DefaultBaseURL is the host twilio-go sends Messages API requests to.
	DefaultBaseURL = "https://api.twilio.com"

	// requestTimeout bounds one API call when the caller's context has a
	// later deadline or none.
	requestTimeout = 30 * time.Second
	// DefaultSettle is how long after a send Find waits before it trusts
	// the Messages list: Twilio creates the Message resource before it
	// answers 201, so a few seconds cover replication.
	DefaultSettle = 5 * time.Second
	// findLimit bounds the Messages Find reads: the newest first, to one
	// customer's number, since the first call started.
	findLimit = 100
	// CallbackKeyParam is the StatusCallback URL's query parameter that
	// carries the message's idempotency key.
	CallbackKeyParam = "idempotency_key"
)

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	// twilio-go refuses credentials with other characters.
	authTokenPattern = regexp.MustCompile(`^[A-Za-z0-9]+$`)
)

// Config configures a Notifier.
type Config struct {
	// AccountSID (AC...) and AuthToken authenticate the requests.
	AccountSID string
	AuthToken  string
	// MessagingServiceSID (MG...) sends from a Messaging Service's sender
	// pool; it takes precedence over From. One of the two is required.
	MessagingServiceSID string
	// From is the sending number (E.164) or alphanumeric sender ID.
	From string
	// StatusCallbackURL, when set, receives Twilio's delivery status
	// callbacks for every message.
	StatusCallbackURL string
	// Settle is how long after a send Find trusts the Messages list;
	// DefaultSettle when zero.
	Settle time.Duration
	// BaseURL replaces the scheme and host of api.twilio.com (and prefixes
	// its path, if any); DefaultBaseURL when empty.
	BaseURL string
	// Logger receives one line per send; slog.Default() when nil.
	Logger *slog.Logger
}

// Notifier sends SMS through Twilio. It is safe for concurrent use.
type Notifier struct {
	cfg       Config
	base      *url.URL // nil: twilio-go's own host
	transport http.RoundTripper
	logger    *slog.Logger
}

var (
	_ notify.Notifier = (*Notifier)(nil)
	_ notify.Finder   = (*Notifier)(nil)
)

// New validates cfg and returns a Notifier.
func New(cfg Config) (*Notifier, error) {
	if !accountSIDPattern.MatchString(cfg.AccountSID) {
		return nil, errors.New("twilio: account SID must match ^AC[0-9a-fA-F]{32}$")
	}
	if !authTokenPattern.MatchString(cfg.AuthToken) {
		return nil, errors.New("twilio: auth token is required and must be alphanumeric")
	}
	switch {
	case cfg.MessagingServiceSID == "" && cfg.From == "":
		return nil, errors.New("twilio: a messaging service SID or a from number is required")
	case cfg.MessagingServiceSID != "" && !serviceSIDPattern.MatchString(cfg.MessagingServiceSID):
		return nil, errors.New("twilio: messaging service SID must match ^MG[0-9a-fA-F]{32}$")
	}
	if cfg.StatusCallbackURL != "" {
		if _, err := absoluteURL(cfg.StatusCallbackURL); err != nil {
			return nil, fmt.Errorf("twilio: status callback URL: %w", err)
		}
	}
	if cfg.Settle < 0 {
		return nil, errors.New("twilio: settle must not be negative")
	}
	if cfg.Settle == 0 {
		cfg.Settle = DefaultSettle
	}
	n := &Notifier{cfg: cfg, transport: http.DefaultTransport, logger: cfg.Logger}
	if n.logger == nil {
		n.logger = slog.Default()
	}
	if cfg.BaseURL != "" && strings.TrimSuffix(cfg.BaseURL, "/") != DefaultBaseURL {
		u, err := absoluteURL(cfg.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("twilio: base URL: %w", err)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		n.base = u
	}
	return n, nil
}

// Send implements notify.Notifier.
func (n *Notifier) Send(ctx context.Context, m notify.Message) (notify.Receipt, error) {
	if m.To == "" {
		return notify.Receipt{}, fmt.Errorf("twilio: no recipient number: %w", notify.ErrRejected)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()

	params := &openapi.CreateMessageParams{}
	params.SetTo(m.To)
	params.SetBody(m.Body)
	if n.cfg.MessagingServiceSID != "" {
		params.SetMessagingServiceSid(n.cfg.MessagingServiceSID)
	} else {
		params.SetFrom(n.cfg.From)
	}
	if n.cfg.StatusCallbackURL != "" {
		params.SetStatusCallback(callbackURL(n.cfg.StatusCallbackURL, m.IdempotencyKey))
	}

	start := time.Now()
	resp, err := n.client(ctx).Api.CreateMessage(params)
	attrs := []any{
		"provider", Provider, "key", m.IdempotencyKey, "kind", m.Kind,
		"locale", m.Locale, "duration", time.Since(start),
	}
	if err != nil {
		var apiErr *twclient.TwilioRestError
		if !errors.As(err, &apiErr) {
			n.logger.WarnContext(ctx, "sms not sent: twilio unreachable, will retry", append(attrs, "error", err)...)
			return notify.Receipt{}, fmt.Errorf("twilio: send: %w", err)
		}
		detail := redact(apiErr.Message, m.To)
		attrs = append(attrs, "status", apiErr.Status, "code", apiErr.Code, "detail", detail)
		if permanent(apiErr.Status) {
			n.logger.WarnContext(ctx, "sms rejected by twilio", attrs...)
			return notify.Receipt{}, fmt.Errorf("twilio: HTTP %d, error %d: %s: %w",
				apiErr.Status, apiErr.Code, detail, notify.ErrRejected)
		}
		n.logger.WarnContext(ctx, "sms not sent: twilio failed, will retry", attrs...)
		if apiErr.Status == http.StatusTooManyRequests {
			// Rate limited: Twilio took nothing, so the retry need not look.
			return notify.Receipt{}, fmt.Errorf("twilio: HTTP %d, error %d: %s: %w", apiErr.Status, apiErr.Code, detail, notify.ErrNotAccepted)
		}
		return notify.Receipt{}, fmt.Errorf("twilio: HTTP %d, error %d: %s", apiErr.Status, apiErr.Code, detail)
	}
	var ref string
	if resp.Sid != nil {
		ref = *resp.Sid
	}
	n.logger.InfoContext(ctx, "sms accepted by twilio", append(attrs, "ref", ref)...)
	return notify.Receipt{Provider: Provider, Ref: ref}, nil
}

// Settle implements notify.Finder.
func (n *Notifier) Settle() time.Duration { return n.cfg.Settle }

// Find implements notify.Finder: it lists the Messages to m.To, newest
// first, and returns the one that is ours: created at or after since, from
// our Messaging Service (or number), with exactly m's body (every try sends
// the content stored at the first). Twilio's DateSent filter is not used:
// a message still queued has no date_sent yet, and it is precisely the
// message a lost answer leaves behind.
func (n *Notifier) Find(ctx context.Context, m notify.Message, since time.Time) (notify.Receipt, bool, error) {
	if m.To == "" {
		return notify.Receipt{}, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	params := &openapi.ListMessageParams{}
	params.SetTo(m.To)
	params.SetPageSize(findLimit)
	params.SetLimit(findLimit)
	start := time.Now()
	list, err := n.client(ctx).Api.ListMessage(params)
	attrs := []any{"provider", Provider, "key", m.IdempotencyKey, "duration", time.Since(start)}
	if err != nil {
		var apiErr *twclient.TwilioRestError
		if errors.As(err, &apiErr) {
			n.logger.WarnContext(ctx, "sms lookup failed", append(attrs, "status", apiErr.Status, "code", apiErr.Code)...)
			return notify.Receipt{}, false, fmt.Errorf("twilio: list messages: HTTP %d, error %d: %s", apiErr.Status, apiErr.Code, redact(apiErr.Message, m.To))
		}
		n.logger.WarnContext(ctx, "sms lookup failed: twilio unreachable", append(attrs, "error", err)...)
		return notify.Receipt{}, false, fmt.Errorf("twilio: list messages: %w", err)
	}
	for _, msg := range list {
		if n.ours(msg, m, since) {
			ref := deref(msg.Sid)
			n.logger.InfoContext(ctx, "sms found at twilio", append(attrs, "ref", ref, "listed", len(list))...)
			return notify.Receipt{Provider: Provider, Ref: ref}, true, nil
		}
	}
	n.logger.InfoContext(ctx, "sms not found at twilio", append(attrs, "listed", len(list))...)
	return notify.Receipt{}, false, nil
}

// ours reports whether a listed Message is m as we sent it at or after
// since.
func (n *Notifier) ours(msg openapi.ApiV2010Message, m notify.Message, since time.Time) bool {
	if deref(msg.Body) != m.Body || !strings.HasPrefix(deref(msg.Direction), "outbound") || deref(msg.Status) == "canceled" {
		return false
	}
	if n.cfg.MessagingServiceSID != "" {
		if deref(msg.MessagingServiceSid) != n.cfg.MessagingServiceSID {
			return false
		}
	} else if deref(msg.From) != n.cfg.From {
		return false
	}
	// Twilio's dates are RFC 2822 (Mon, 16 Aug 2010 03:45:01 +0000).
	created, err := time.Parse(time.RFC1123Z, deref(msg.DateCreated))
	return err != nil || !created.Before(since.Truncate(time.Second))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// callbackURL is the status callback URL carrying the message's key, so a
// delivery callback names the message it reports on.
func callbackURL(base, key string) string {
	u, err := url.Parse(base)
	if err != nil || key == "" {
		return base // New validated it; a key is always given
	}
	q := u.Query()
	q.Set(CallbackKeyParam, key)
	u.RawQuery = q.Encode()
	return u.String()
}

// client returns a Twilio REST client whose requests are bound to ctx and,
// when a base URL is configured, go there instead of api.twilio.com.
func (n *Notifier) client(ctx context.Context) *twilioapi.RestClient {
	c := &twclient.Client{
		Credentials: twclient.NewCredentials(n.cfg.AccountSID, n.cfg.AuthToken),
		HTTPClient: &http.Client{
			Transport: &boundTransport{ctx: ctx, base: n.base, next: n.transport},
			// As twilio-go's default client: report redirects, do not follow them.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	c.SetAccountSid(n.cfg.AccountSID)
	return twilioapi.NewRestClientWithParams(twilioapi.ClientParams{Client: c})
}

// boundTransport sends a request with the caller's context and, when base is
// set, to base's scheme and host.
type boundTransport struct {
	ctx  context.Context
	base *url.URL
	next http.RoundTripper
}

func (t *boundTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(t.ctx)
	if t.base != nil {
		out.URL.Scheme = t.base.Scheme
		out.URL.Host = t.base.Host
		out.URL.Path = t.base.Path + out.URL.Path
		if out.URL.RawPath != "" {
			out.URL.RawPath = t.base.EscapedPath() + out.URL.RawPath
		}
		out.Host = t.base.Host
	}
	return t.next.RoundTrip(out)
}

// permanent reports whether Twilio answering with status refuses the message
// for good: any 4xx except 408 (request timeout) and 429 (rate limited).
func permanent(status int) bool {
	return status >= 400 && status < 500 &&
		status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
}

// redact masks the recipient's number where an error message repeats it
// (Twilio's 21211 does).
func redact(s, number string) string {
	if number == "" {
		return s
	}
	return strings.ReplaceAll(s, number, "[recipient]")
}

func absoluteURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return u, nil
}

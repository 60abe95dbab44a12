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
// without calling Twilio. The window that remains is a crash (or a lost
// response) between Twilio's 201 and the ledger write; the retry then sends
// one duplicate SMS.
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

var _ notify.Notifier = (*Notifier)(nil)

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
		params.SetStatusCallback(n.cfg.StatusCallbackURL)
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
		return notify.Receipt{}, fmt.Errorf("twilio: HTTP %d, error %d: %s", apiErr.Status, apiErr.Code, detail)
	}
	var ref string
	if resp.Sid != nil {
		ref = *resp.Sid
	}
	n.logger.InfoContext(ctx, "sms accepted by twilio", append(attrs, "ref", ref)...)
	return notify.Receipt{Provider: Provider, Ref: ref}, nil
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

// Package billing delivers events to the billing system that owns the
// subscription: service-state changes, credits and run outcomes, each
// POSTed to the tenant's event endpoint and signed following the Standard
// Webhooks specification (https://www.standardwebhooks.com).
//
// Every request carries webhook-id (the same on every attempt of one
// event, so the receiver de-duplicates on it), webhook-timestamp (when this
// attempt was signed) and webhook-signature ("v1,<base64 HMAC-SHA256 of
// id.timestamp.body>"). The connection goes through package egress: no
// redirects, no proxies, and no loopback, private or link-local addresses
// unless the tenant's endpoint is allowed inside our own network.
package billing

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/dunningco/dunning/egress"
)

// ErrRejected marks a delivery that sending again will not fix: the
// billing system refused the event (4xx but 408 and 429), answered with a
// redirect, or the endpoint's address is not one we may connect to. The
// outbox marks such an event failed, for ops to fix and redeliver.
var ErrRejected = errors.New("billing event refused")

// Endpoint is where one tenant's events go.
type Endpoint struct {
	URL string
	// Secret is the Standard Webhooks signing secret, "whsec_<base64>".
	Secret string
	// AllowPrivateNetwork lets URL reach loopback and private addresses.
	AllowPrivateNetwork bool
}

// String and LogValue show the URL only: the secret never reaches a log.
func (e Endpoint) String() string { return e.URL }

// LogValue implements slog.LogValuer.
func (e Endpoint) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", e.URL), slog.Bool("allow_private_network", e.AllowPrivateNetwork))
}

// Headers of a delivery, as Standard Webhooks names them.
const (
	HeaderID        = standardwebhooks.HeaderWebhookID
	HeaderTimestamp = standardwebhooks.HeaderWebhookTimestamp
	HeaderSignature = standardwebhooks.HeaderWebhookSignature
)

// WebhookID is the webhook-id of the event stored under idempotency key:
// "msg_" and 32 hex digits of its SHA-256. Derived rather than the key
// itself so it is header-safe and of bounded length whatever the key holds,
// and stable, so every attempt and every redelivery of one event carry the
// same ID.
func WebhookID(idempotencyKey string) string {
	sum := sha256.Sum256([]byte(idempotencyKey))
	return "msg_" + hex.EncodeToString(sum[:16])
}

// EnvelopeVersion is the version an event has unless its type says
// otherwise.
const EnvelopeVersion = 1

// Envelope is the body of every event: its type, the version of its data's
// schema, when it happened, and the data. The envelope is the same for
// every type, so a new event type needs no change here or in the outbox.
type Envelope struct {
	Type      string          `json:"type"`
	Version   int             `json:"version"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// Encode returns the envelope as JSON. The same envelope always gives the
// same bytes, so every attempt of an event signs and sends the same body.
// Data goes in as it is (no HTML escaping), and the timestamp as RFC 3339
// UTC.
func (e Envelope) Encode() ([]byte, error) {
	if e.Version == 0 {
		e.Version = EnvelopeVersion
	}
	e.Timestamp = e.Timestamp.UTC()
	if !json.Valid(e.Data) {
		return nil, fmt.Errorf("billing: %s event: data is not JSON", e.Type)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, fmt.Errorf("billing: encode %s event: %w", e.Type, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// MaxResponseBytes bounds how much of an answer is read: enough for the
// short snippet an error keeps, and no more, whatever the server sends.
const MaxResponseBytes = 4 << 10

// maxSnippet bounds the part of an answer recorded with a failure.
const maxSnippet = 100

// DeliveryError is a delivery that did not succeed. Its text is short and
// safe to store and show: the status, and a reason with at most a short,
// control-character-free snippet of the answer.
type DeliveryError struct {
	Status int // the HTTP status; 0 when there was no answer
	Reason string
	// Permanent: sending again will not help (see ErrRejected).
	Permanent bool
}

func (e *DeliveryError) Error() string {
	if e.Status != 0 {
		if e.Reason == "" {
			return "HTTP " + strconv.Itoa(e.Status)
		}
		return "HTTP " + strconv.Itoa(e.Status) + ": " + e.Reason
	}
	return e.Reason
}

// Unwrap makes a permanent failure ErrRejected.
func (e *DeliveryError) Unwrap() error {
	if e.Permanent {
		return ErrRejected
	}
	return nil
}

// Callback sends events. The zero value is ready to use; share one (it
// keeps a connection pool per network policy).
type Callback struct {
	// Resolver resolves endpoint host names; net.DefaultResolver when nil.
	Resolver egress.Resolver
	// Timeout bounds one request (egress.DefaultTimeout when zero).
	Timeout time.Duration
	// TLSConfig overrides TLS settings (tests trust their own CA).
	TLSConfig *tls.Config
	// Now stamps webhook-timestamp; time.Now when nil.
	Now func() time.Time

	mu      sync.Mutex
	clients map[bool]*http.Client // by AllowPrivateNetwork
}

func (c *Callback) client(allowPrivate bool) *http.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[allowPrivate]; ok {
		return cl
	}
	if c.clients == nil {
		c.clients = map[bool]*http.Client{}
	}
	cl := egress.NewClient(egress.Options{
		AllowPrivateNetwork: allowPrivate, Resolver: c.Resolver, Timeout: c.Timeout, TLSConfig: c.TLSConfig,
	})
	c.clients[allowPrivate] = cl
	return cl
}

func (c *Callback) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Send POSTs body (an encoded Envelope) to ep, signed for webhook ID id.
// nil means the billing system answered 2xx. Otherwise the error is a
// *DeliveryError: permanent (ErrRejected) for a 3xx, a 4xx but 408 and 429,
// a refused address or an unusable endpoint; transient for the rest (5xx,
// 408, 429, timeouts, connection failures), which the caller retries with
// the same id and body.
func (c *Callback) Send(ctx context.Context, ep Endpoint, id string, body []byte) error {
	wh, err := standardwebhooks.NewWebhook(ep.Secret)
	if err != nil || ep.Secret == "" {
		return &DeliveryError{Reason: "the endpoint's signing secret is not a whsec_ secret", Permanent: true}
	}
	ts := c.now()
	sig, err := wh.Sign(id, ts, body)
	if err != nil {
		return &DeliveryError{Reason: "signing failed", Permanent: true}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return &DeliveryError{Reason: "the endpoint URL is not usable", Permanent: true}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "dunning-webhooks/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)

	resp, err := c.client(ep.AllowPrivateNetwork).Do(req)
	if err != nil {
		return transportError(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes))
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case egress.IsRedirect(resp):
		return &DeliveryError{Status: code, Reason: "redirect not followed; configure the final URL", Permanent: true}
	case code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		return &DeliveryError{Status: code, Reason: Snippet(answer), Permanent: true}
	default:
		return &DeliveryError{Status: code, Reason: Snippet(answer)}
	}
}

// transportError describes a request that got no answer in a few words:
// never the URL (it may hold a token) nor anything the far end chose.
func transportError(err error) *DeliveryError {
	var (
		refused *egress.RefusedError
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		netErr  net.Error
	)
	switch {
	case errors.As(err, &refused):
		return &DeliveryError{Reason: "refused to connect: " + refused.Error(), Permanent: true}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return &DeliveryError{Reason: "timed out"}
	case errors.Is(err, context.Canceled):
		return &DeliveryError{Reason: "cancelled"}
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return &DeliveryError{Reason: "DNS: no such host"}
		}
		return &DeliveryError{Reason: "DNS lookup failed"}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &DeliveryError{Reason: "connection refused"}
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &DeliveryError{Reason: "connection closed before an answer"}
	case errors.As(err, &certErr):
		return &DeliveryError{Reason: "TLS: the endpoint's certificate is not trusted"}
	}
	// Something else: keep the innermost cause, which names no URL.
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	return &DeliveryError{Reason: "request failed: " + Snippet([]byte(err.Error()))}
}

// Snippet is the start of an answer as it may be recorded and shown: valid
// UTF-8, no control or other non-printing characters, white space folded,
// at most 100 characters (then "...").
func Snippet(b []byte) string {
	words := strings.FieldsFunc(string(bytes.ToValidUTF8(b, []byte(" "))), func(r rune) bool {
		return unicode.IsSpace(r) || !unicode.IsPrint(r)
	})
	s := strings.Join(words, " ")
	if utf8.RuneCountInString(s) <= maxSnippet {
		return s
	}
	runes := []rune(s)
	return strings.TrimSpace(string(runes[:maxSnippet])) + "..."
}

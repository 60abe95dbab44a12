// Package billing talks back to the billing system that owns the
// subscription: service-state changes and run outcomes are POSTed to its
// callback URL.
package billing

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// ErrRejected marks a callback the billing system refused with a 4xx: sending
// it again will not help.
var ErrRejected = errors.New("billing callback rejected")

// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of t + "." + body>"
// when a secret is configured, so the billing system can verify the sender.
const SignatureHeader = "Dunning-Signature"

// Callback posts events to a billing system.
type Callback struct {
	HTTP   *http.Client
	Secret string
	Now    func() time.Time
}

// Post sends event as JSON to url with an Idempotency-Key header. 2xx is
// success; 4xx (except 408 and 429) wraps ErrRejected; anything else is a
// transient error the caller retries.
func (c Callback) Post(ctx context.Context, url, idempotencyKey string, event any) error {
	body, err := json.Marshal(event)
	if err != nil {
		return fmt.Errorf("billing: encode event: %w", err)
	}
	return c.PostJSON(ctx, url, idempotencyKey, body)
}

// PostJSON is Post for a body that is already JSON: it sends body as is, so
// an event stored once (the outbox) goes out byte for byte the same on every
// attempt, and the signature covers exactly those bytes.
func (c Callback) PostJSON(ctx context.Context, url, idempotencyKey string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("billing: %w: build request: %v", ErrRejected, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", idempotencyKey)
	if c.Secret != "" {
		now := time.Now
		if c.Now != nil {
			now = c.Now
		}
		req.Header.Set(SignatureHeader, Sign(c.Secret, now(), body))
	}
	client := c.HTTP
	if client == nil {
		client = &http.Client{Timeout: 15 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("billing: post to callback: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return fmt.Errorf("billing: %w: HTTP %d: %s", ErrRejected, resp.StatusCode, bytes.TrimSpace(snippet))
	default:
		return fmt.Errorf("billing: callback answered HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(snippet))
	}
}

// Sign returns the signature header value for body at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

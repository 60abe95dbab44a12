// Package cardlink signs and verifies the links in customer messages that
// open the hosted page for updating a payment method.
//
// A link carries a token naming the dunning run, the customer and an expiry
// time, authenticated with HMAC-SHA256 under a server-side secret. The
// token is not encrypted: the run and customer IDs in it are readable by
// whoever holds the link, which is the customer it was sent to.
//
// Token layout (all base64url without padding, so it needs no escaping in a
// URL):
//
//	base64url(payload) "." base64url(HMAC-SHA256(secret, payload))
//
// where payload is a version byte (1), the run ID and the customer ID, each
// as a uvarint length followed by its bytes, and the expiry as 8 bytes of
// big-endian Unix seconds.
package cardlink

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors Verify returns; callers branch on them with errors.Is. A page
// showing the customer why a link failed should tell expired links apart
// (offer a fresh one) and treat the rest as invalid.
var (
	// ErrMalformed: the token is not one this package produced.
	ErrMalformed = errors.New("cardlink: malformed token")
	// ErrBadSignature: the token was altered or signed with another secret.
	ErrBadSignature = errors.New("cardlink: bad signature")
	// ErrExpired: the token was genuine but its time is up.
	ErrExpired = errors.New("cardlink: token expired")
	// ErrConfig: the Signer cannot be used as configured.
	ErrConfig = errors.New("cardlink: invalid configuration")
)

const (
	// MinSecretLen is the shortest secret accepted: 256 bits, the size of
	// the HMAC-SHA256 output.
	MinSecretLen = 32
	// MaxIDLen bounds the run and customer IDs so that tokens stay short
	// enough for a URL and Verify can refuse oversized input up front.
	MaxIDLen = 200

	version = 1
	macLen  = sha256.Size
	// maxTokenLen is the longest token Token can produce, rounded up.
	maxTokenLen = 1024
	// queryParam is the name of the token's parameter in the link.
	queryParam = "token"
)

var b64 = base64.RawURLEncoding.Strict()

// Signer issues and checks card-update links. The zero value is unusable:
// set all three fields. A Signer is safe for concurrent use.
type Signer struct {
	// Secret keys the HMAC; at least MinSecretLen random bytes, the same on
	// every worker and on the hosted page that verifies links.
	Secret []byte
	// BaseURL is the hosted card-update page, e.g.
	// https://billing.example.com/update-card. It must be an absolute https
	// URL (http is allowed for localhost and loopback addresses, for
	// development). Its query parameters are kept; it must not already have
	// a "token" parameter.
	BaseURL string
	// TTL is how long a link stays valid after it is issued.
	TTL time.Duration
}

// Claims are what a valid token vouches for.
type Claims struct {
	RunID      string
	CustomerID string
	// Expires is the first instant (UTC, whole seconds) at which the token
	// is no longer valid.
	Expires time.Time
}

// Validate reports whether the Signer is configured well enough to issue
// links. Errors wrap ErrConfig.
func (s Signer) Validate() error {
	_, err := s.baseURL()
	return err
}

func (s Signer) checkSecret() error {
	if len(s.Secret) < MinSecretLen {
		return fmt.Errorf("%w: secret is %d bytes, want at least %d", ErrConfig, len(s.Secret), MinSecretLen)
	}
	return nil
}

func (s Signer) baseURL() (*url.URL, error) {
	if err := s.checkSecret(); err != nil {
		return nil, err
	}
	if s.TTL <= 0 {
		return nil, fmt.Errorf("%w: TTL must be positive, got %v", ErrConfig, s.TTL)
	}
	u, err := url.Parse(s.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: base URL: %v", ErrConfig, err)
	}
	if !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: base URL %q must be absolute, like https://billing.example.com/update-card", ErrConfig, s.BaseURL)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("%w: base URL %q must use https (http is for localhost only)", ErrConfig, s.BaseURL)
		}
	default:
		return nil, fmt.Errorf("%w: base URL %q must use https", ErrConfig, s.BaseURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: base URL must not carry credentials", ErrConfig)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("%w: base URL query: %v", ErrConfig, err)
	}
	if q.Has(queryParam) {
		return nil, fmt.Errorf("%w: base URL already has a %q parameter", ErrConfig, queryParam)
	}
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Token returns a token for the run and customer, valid for s.TTL from now
// (rounded down to the second).
func (s Signer) Token(runID, customerID string, now time.Time) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	if err := checkID("run ID", runID); err != nil {
		return "", err
	}
	if err := checkID("customer ID", customerID); err != nil {
		return "", err
	}
	expires := now.Add(s.TTL).Unix()
	payload := make([]byte, 0, 1+2*(binary.MaxVarintLen16+MaxIDLen)+8)
	payload = append(payload, version)
	payload = binary.AppendUvarint(payload, uint64(len(runID)))
	payload = append(payload, runID...)
	payload = binary.AppendUvarint(payload, uint64(len(customerID)))
	payload = append(payload, customerID...)
	payload = binary.BigEndian.AppendUint64(payload, uint64(expires))
	return b64.EncodeToString(payload) + "." + b64.EncodeToString(s.mac(payload)), nil
}

func checkID(what, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("cardlink: %s is empty", what)
	case len(id) > MaxIDLen:
		return fmt.Errorf("cardlink: %s is %d bytes, want at most %d", what, len(id), MaxIDLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("cardlink: %s is not valid UTF-8", what)
	}
	return nil
}

// URL returns the card-update link for the run and customer: BaseURL with a
// token parameter added after any it already has.
func (s Signer) URL(runID, customerID string, now time.Time) (string, error) {
	u, err := s.baseURL()
	if err != nil {
		return "", err
	}
	token, err := s.Token(runID, customerID, now)
	if err != nil {
		return "", err
	}
	// The token is base64url and ".", none of which needs escaping.
	param := queryParam + "=" + token
	if u.RawQuery == "" {
		u.RawQuery = param
	} else {
		u.RawQuery += "&" + param
	}
	return u.String(), nil
}

// Verify checks a token and returns its claims. It fails with an error
// wrapping ErrMalformed, ErrBadSignature or ErrExpired (or ErrConfig when
// the secret is too short; Verify needs only Secret). The signature is
// checked, in constant time, before anything in the payload is believed; a
// token is valid up to, not including, its expiry.
func (s Signer) Verify(token string, now time.Time) (Claims, error) {
	if err := s.checkSecret(); err != nil {
		return Claims{}, err
	}
	if len(token) > maxTokenLen {
		return Claims{}, fmt.Errorf("%w: %d bytes long", ErrMalformed, len(token))
	}
	payloadPart, macPart, ok := strings.Cut(token, ".")
	if !ok || !isBase64URL(payloadPart) || !isBase64URL(macPart) {
		return Claims{}, fmt.Errorf("%w: want base64url payload.signature", ErrMalformed)
	}
	payload, err := b64.DecodeString(payloadPart)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: payload is not base64url", ErrMalformed)
	}
	mac, err := b64.DecodeString(macPart)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: signature is not base64url", ErrMalformed)
	}
	if len(mac) != macLen {
		return Claims{}, fmt.Errorf("%w: signature is %d bytes, want %d", ErrMalformed, len(mac), macLen)
	}
	if !hmac.Equal(mac, s.mac(payload)) {
		return Claims{}, ErrBadSignature
	}
	c, err := decodePayload(payload)
	if err != nil {
		return Claims{}, err
	}
	if !now.Before(c.Expires) {
		return Claims{}, fmt.Errorf("%w at %s", ErrExpired, c.Expires.Format(time.RFC3339))
	}
	return c, nil
}

// isBase64URL reports whether s is non-empty and uses only the base64url
// alphabet. The decoder alone would skip line breaks, letting several
// spellings of one token verify.
func isBase64URL(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (s Signer) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, s.Secret)
	m.Write(payload)
	return m.Sum(nil)
}

// decodePayload parses a payload whose signature has been checked.
func decodePayload(p []byte) (Claims, error) {
	r := bytes.NewReader(p)
	v, err := r.ReadByte()
	if err != nil || v != version {
		return Claims{}, fmt.Errorf("%w: unknown version", ErrMalformed)
	}
	runID, err := readID(r)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: run ID: %v", ErrMalformed, err)
	}
	customerID, err := readID(r)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: customer ID: %v", ErrMalformed, err)
	}
	var exp [8]byte
	if n, _ := r.Read(exp[:]); n != len(exp) || r.Len() != 0 {
		return Claims{}, fmt.Errorf("%w: bad expiry", ErrMalformed)
	}
	return Claims{
		RunID:      runID,
		CustomerID: customerID,
		Expires:    time.Unix(int64(binary.BigEndian.Uint64(exp[:])), 0).UTC(),
	}, nil
}

func readID(r *bytes.Reader) (string, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return "", errors.New("bad length")
	}
	if n == 0 || n > MaxIDLen || n > uint64(r.Len()) {
		return "", fmt.Errorf("length %d out of range", n)
	}
	b := make([]byte, n)
	if _, err := r.Read(b); err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", errors.New("not UTF-8")
	}
	return string(b), nil
}

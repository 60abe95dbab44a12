// Package apikeys issues and checks the tenant API keys of the private HTTP
// API. A key reads
//
//	dk_live_<id>_<secret>
//
// where id (8 characters) names the key in listings and logs and secret (40
// characters) is shown once, when the key is created or rotated. The store
// keeps only a keyed hash of the whole key, HMAC-SHA-256 under a server
// pepper (DUNNING_KEY_PEPPER), so neither a database dump nor a log line is
// enough to use or guess a key. Each key belongs to one tenant and carries
// scopes: runs:read, runs:write, admin.
package apikeys

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Scope is what a key may do.
type Scope string

const (
	// ScopeRunsRead reads runs: status, lists, reminder status.
	ScopeRunsRead Scope = "runs:read"
	// ScopeRunsWrite starts and steers runs: declines, reminders, cancel,
	// expedite, payment-method-updated, paid, resume.
	ScopeRunsWrite Scope = "runs:write"
	// ScopeAdmin acts for every tenant, with both run scopes.
	ScopeAdmin Scope = "admin"
)

// Scopes are every scope, in the order listings print them.
var Scopes = []Scope{ScopeRunsRead, ScopeRunsWrite, ScopeAdmin}

// Prefixes of a key: live keys for production, test keys for dev mode and
// tests, so a key pasted into the wrong place is recognisable at a glance.
const (
	PrefixLive = "dk_live"
	PrefixTest = "dk_test"
)

// Errors callers branch on.
var (
	// ErrMalformed: the text is not an API key at all.
	ErrMalformed = errors.New("apikeys: malformed API key")
	// ErrUnknown: no key has this ID, or the secret is wrong. The two are
	// one error so an answer never tells which IDs exist.
	ErrUnknown = errors.New("apikeys: unknown API key")
	// ErrRevoked: the key was revoked.
	ErrRevoked = errors.New("apikeys: API key revoked")
	// ErrExpired: the key was rotated and its grace period is over.
	ErrExpired = errors.New("apikeys: API key expired")
	// ErrNotFound: no key has this ID (the CLI's rotate and revoke).
	ErrNotFound = errors.New("apikeys: no such key")
	// ErrInvalid: a key cannot be created as asked (tenant, scopes).
	ErrInvalid = errors.New("apikeys: invalid request")
	// ErrNoPepper: the environment sets no pepper.
	ErrNoPepper = errors.New("apikeys: no pepper: set " + EnvPepper + " (or " + EnvPepperFile + ") to at least 32 random bytes, e.g. $(openssl rand -base64 32)")
)

// ParseScopes reads a comma-separated list such as "runs:read,runs:write".
func ParseScopes(s string) ([]Scope, error) {
	var out []Scope
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		sc := Scope(part)
		if !slices.Contains(Scopes, sc) {
			return nil, fmt.Errorf("%w: unknown scope %q; use %s", ErrInvalid, part, scopeList(Scopes))
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no scopes; use one or more of %s", ErrInvalid, scopeList(Scopes))
	}
	return sortScopes(out), nil
}

func scopeList(ss []Scope) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ",")
}

// sortScopes orders scopes as Scopes lists them.
func sortScopes(ss []Scope) []Scope {
	slices.SortFunc(ss, func(a, b Scope) int { return slices.Index(Scopes, a) - slices.Index(Scopes, b) })
	return ss
}

// Principal is who a request acts as: the key that authenticated it, its
// tenant and its scopes.
type Principal struct {
	KeyID  string
	Tenant string
	Scopes []Scope
}

// Has reports whether the principal holds scope; admin holds every scope.
func (p Principal) Has(scope Scope) bool {
	return slices.Contains(p.Scopes, scope) || slices.Contains(p.Scopes, ScopeAdmin)
}

// MayActFor reports whether the principal may touch tenant's runs: its own
// tenant's, or any with admin.
func (p Principal) MayActFor(tenant string) bool {
	return tenant == p.Tenant || slices.Contains(p.Scopes, ScopeAdmin)
}

var (
	tenantPattern = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,128}$`)
	idPattern     = regexp.MustCompile(`^[a-z0-9]{8}$`)
	secretPattern = regexp.MustCompile(`^[A-Za-z0-9]{32,128}$`)
)

// Alphabets of the generated parts: no "_", which separates them.
const (
	idAlphabet     = "abcdefghijklmnopqrstuvwxyz0123456789"
	secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	idLen          = 8
	// 40 characters of 62: about 238 bits, out of reach of guessing even
	// with the ID known.
	secretLen = 40
)

// MaxTokenLen bounds what is looked at as a key: a longer header is
// refused before any work.
const MaxTokenLen = 256

// ParseToken splits a key into its prefix and ID, checking its shape.
func ParseToken(token string) (prefix, id string, err error) {
	if len(token) > MaxTokenLen {
		return "", "", ErrMalformed
	}
	var rest string
	var ok bool
	for _, p := range []string{PrefixLive, PrefixTest} {
		if rest, ok = strings.CutPrefix(token, p+"_"); ok {
			prefix = p
			break
		}
	}
	if !ok {
		return "", "", ErrMalformed
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || !idPattern.MatchString(id) || !secretPattern.MatchString(secret) {
		return "", "", ErrMalformed
	}
	return prefix, id, nil
}

// newID is a fresh key ID.
func newID() string { return randomString(idAlphabet, idLen) }

// newToken is a fresh key with the given prefix and ID.
func newToken(prefix, id string) string {
	return prefix + "_" + id + "_" + randomString(secretAlphabet, secretLen)
}

// randomString draws n characters of alphabet uniformly from crypto/rand,
// rejecting the bytes that would bias the draw.
func randomString(alphabet string, n int) string {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		rand.Read(buf) // never fails (crypto/rand, Go 1.24+)
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}

// MinPepperLen is the shortest pepper accepted, in bytes.
const MinPepperLen = 32

// Environment variables of the pepper.
const (
	EnvPepper     = "DUNNING_KEY_PEPPER"
	EnvPepperFile = "DUNNING_KEY_PEPPER_FILE"
)

// PepperFromEnv reads the pepper from DUNNING_KEY_PEPPER, or from the file
// DUNNING_KEY_PEPPER_FILE names (a mounted secret). Without either it
// answers ErrNoPepper. Changing the pepper invalidates every key.
func PepperFromEnv(getenv func(string) string) ([]byte, error) {
	v := getenv(EnvPepper)
	if path := getenv(EnvPepperFile); v == "" && path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("apikeys: read %s: %w", EnvPepperFile, err)
		}
		v = string(b)
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, ErrNoPepper
	}
	if len(v) < MinPepperLen {
		return nil, fmt.Errorf("apikeys: the pepper is %d bytes; use at least %d random bytes", len(v), MinPepperLen)
	}
	return []byte(v), nil
}

// hasher computes the keyed hash a key is stored as.
type hasher struct{ pepper []byte }

func newHasher(pepper []byte) (hasher, error) {
	if len(pepper) < MinPepperLen {
		return hasher{}, fmt.Errorf("apikeys: the pepper is %d bytes; use at least %d", len(pepper), MinPepperLen)
	}
	return hasher{pepper: slices.Clone(pepper)}, nil
}

// sum is HMAC-SHA-256(pepper, token). The whole key goes in, ID included,
// so a hash cannot be moved to another ID.
func (h hasher) sum(token string) []byte {
	m := hmac.New(sha256.New, h.pepper)
	m.Write([]byte(token))
	return m.Sum(nil)
}

// verify compares in constant time, so response times do not reveal how
// much of a guessed secret was right.
func (h hasher) verify(token string, stored []byte) bool {
	return hmac.Equal(h.sum(token), stored)
}

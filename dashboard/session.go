package dashboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/dunningco/dunning/apikeys"
)

// The session is a signed cookie, not a server-side record: the API runs as
// several stateless replicas, and a cookie any replica can check needs no
// shared session store. It holds the principal the API key authenticated as
// (key ID, tenant, scopes) and an expiry, never the key itself, and is
// signed with HMAC-SHA-256 under the dashboard's session secret. Because
// a signature cannot see a key revoked after login, every request also
// asks the key store whether the key is still usable (Config.Keys), so a
// revocation ends the key's sessions at once.

// CookieName is the session cookie's name.
const CookieName = "dunning_dashboard"

// DefaultSessionTTL is how long a login lasts.
const DefaultSessionTTL = 8 * time.Hour

type session struct {
	KeyID   string   `json:"k"`
	Tenant  string   `json:"t"`
	Scopes  []string `json:"s"`
	Expires int64    `json:"e"` // Unix seconds
}

func (s session) principal() apikeys.Principal {
	p := apikeys.Principal{KeyID: s.KeyID, Tenant: s.Tenant}
	for _, sc := range s.Scopes {
		p.Scopes = append(p.Scopes, apikeys.Scope(sc))
	}
	return p
}

type sessions struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

// seal encodes the session and signs it: base64url(JSON) "." base64url(MAC).
func (s sessions) seal(p apikeys.Principal) (string, time.Time) {
	exp := s.now().Add(s.ttl)
	ss := session{KeyID: p.KeyID, Tenant: p.Tenant, Expires: exp.Unix()}
	for _, sc := range p.Scopes {
		ss.Scopes = append(ss.Scopes, string(sc))
	}
	body, _ := json.Marshal(ss) // plain strings and an int: cannot fail
	payload := base64.RawURLEncoding.EncodeToString(body)
	return payload + "." + base64.RawURLEncoding.EncodeToString(s.mac(payload)), exp
}

func (s sessions) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("dunning-dashboard-session\x00"))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

var errNoSession = errors.New("no dashboard session")

// open checks a cookie value's signature and expiry.
func (s sessions) open(value string) (session, error) {
	payload, sig, ok := strings.Cut(value, ".")
	if !ok {
		return session{}, errors.New("malformed session cookie")
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(payload)) {
		return session{}, errors.New("session cookie signature does not match")
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return session{}, fmt.Errorf("session cookie payload: %w", err)
	}
	var ss session
	if err := json.Unmarshal(body, &ss); err != nil {
		return session{}, fmt.Errorf("session cookie payload: %w", err)
	}
	if !s.now().Before(time.Unix(ss.Expires, 0)) {
		return session{}, errors.New("session expired")
	}
	return ss, nil
}

// fromRequest is the request's valid session, or errNoSession.
func (s sessions) fromRequest(r *http.Request) (session, error) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return session{}, errNoSession
	}
	return s.open(c.Value)
}

// cookie is the session cookie: HttpOnly so scripts cannot read it,
// SameSite=Strict so no other site's page can make the browser send it,
// Secure when the dashboard is reached over TLS, and scoped to the
// dashboard's own path.
func (s sessions) cookie(r *http.Request, value string, expires time.Time) *http.Cookie {
	return &http.Cookie{
		Name: CookieName, Value: value, Path: basePath, Expires: expires, MaxAge: int(s.ttl / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: isTLS(r),
	}
}

func (s sessions) clear(r *http.Request) *http.Cookie {
	return &http.Cookie{Name: CookieName, Value: "", Path: basePath, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: isTLS(r)}
}

func isTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// SessionSecret derives the session-signing secret from the API key pepper,
// so every replica signs alike and changing the pepper (which invalidates
// every key) also ends every session.
func SessionSecret(pepper []byte) []byte {
	m := hmac.New(sha256.New, pepper)
	m.Write([]byte("dunning dashboard session secret v1"))
	return m.Sum(nil)
}

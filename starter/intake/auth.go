package intake

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dunningco/dunning/apikeys"
)

// Authenticator checks the API key of a private request; *apikeys.Store
// implements it, apikeys.Static serves tests.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (apikeys.Principal, error)
}

var (
	_ Authenticator = (*apikeys.Store)(nil)
	_ Authenticator = apikeys.Static(nil)
)

// WithAuthenticator sets how the private API checks keys. Without one every
// private request is refused with 401: the API never runs open.
func WithAuthenticator(a Authenticator) Option {
	return func(h *handler) { h.auth = a }
}

type principalKey struct{}

// PrincipalFrom is the key a private request was authenticated with.
func PrincipalFrom(ctx context.Context) (apikeys.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(apikeys.Principal)
	return p, ok
}

// bearerToken reads "Authorization: Bearer <key>" (the scheme is
// case-insensitive, RFC 9110).
func bearerToken(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", errNoCredentials
	case 1:
	default:
		return "", errors.New("send one Authorization header")
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(values[0]), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errors.New(`the Authorization header must be "Bearer <API key>"`)
	}
	return strings.TrimSpace(token), nil
}

var errNoCredentials = errors.New("this endpoint needs an API key: send \"Authorization: Bearer <API key>\"")

// authenticate lets through only requests with a valid key, and hands the
// key's principal to the routes in the request's context.
func (h *handler) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := bearerToken(r)
		if err != nil {
			h.unauthorized(w, r, err.Error(), errors.Is(err, errNoCredentials))
			return
		}
		if h.auth == nil {
			h.logger.ErrorContext(r.Context(), "private API request refused: the server has no API key store configured", "path", r.URL.Path)
			h.unauthorized(w, r, "this server accepts no API keys yet", false)
			return
		}
		p, err := h.auth.Authenticate(r.Context(), token)
		switch {
		case err == nil:
		case errors.Is(err, apikeys.ErrMalformed):
			h.unauthorized(w, r, "the API key is malformed: it reads dk_live_<id>_<secret>", false)
			return
		case errors.Is(err, apikeys.ErrRevoked):
			h.unauthorized(w, r, "the API key was revoked", false)
			return
		case errors.Is(err, apikeys.ErrExpired):
			h.unauthorized(w, r, "the API key was rotated and has expired; use its replacement", false)
			return
		case errors.Is(err, apikeys.ErrUnknown):
			h.unauthorized(w, r, "the API key is not valid", false)
			return
		default:
			// The store is down: not the caller's fault, and worth a retry.
			h.logger.ErrorContext(r.Context(), "could not check an API key", "path", r.URL.Path, "error", err)
			writeRetryable(w, http.StatusServiceUnavailable, "the API key cannot be checked right now; try again")
			return
		}
		if ok, wait := h.limiter.allow(p.KeyID); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			writeProblem(w, ProblemRateLimited, http.StatusTooManyRequests,
				fmt.Sprintf("too many requests with this API key; at most %s a second, bursts of %d", h.limiter.rateText(), h.limiter.burst))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// unauthorized answers 401 with the challenge RFC 6750 asks for; a request
// that sent a key learns it was refused (error="invalid_token").
func (h *handler) unauthorized(w http.ResponseWriter, r *http.Request, detail string, missing bool) {
	challenge := `Bearer realm="dunning"`
	if !missing {
		challenge += `, error="invalid_token"`
		h.logger.InfoContext(r.Context(), "API key refused", "method", r.Method, "path", r.URL.Path, "reason", detail)
	}
	w.Header().Set("WWW-Authenticate", challenge)
	writeProblem(w, ProblemUnauthorized, http.StatusUnauthorized, detail)
}

// guard checks what a route needs beyond a valid key: the scope its method
// asks for (GET and HEAD read, the rest write), and that a run named in the
// path belongs to the key's tenant. A run of another tenant answers 404
// exactly as a missing run does, so a key cannot learn which exist.
func (h *handler) guard(method string, fn http.HandlerFunc) http.HandlerFunc {
	scope := apikeys.ScopeRunsWrite
	if method == http.MethodGet || method == http.MethodHead {
		scope = apikeys.ScopeRunsRead
	}
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := PrincipalFrom(r.Context())
		if !ok {
			// authenticate runs before every private route; this is a
			// wiring mistake, and it must not open the route.
			h.unauthorized(w, r, "this endpoint needs an API key", true)
			return
		}
		if !p.Has(scope) {
			writeProblem(w, ProblemForbidden, http.StatusForbidden,
				fmt.Sprintf("the API key lacks the %s scope this request needs", scope))
			return
		}
		if r.PathValue("tenant") != "" {
			// A malformed run key is refused as the route would (400): it
			// names nobody's run, so the answer tells nothing.
			tenant, invoice, ok := runKey(w, r)
			if !ok {
				return
			}
			if !p.MayActFor(tenant) {
				writeError(w, http.StatusNotFound, fmt.Sprintf("no dunning run for tenant %q invoice %q", tenant, invoice))
				return
			}
		}
		fn(w, r)
	}
}

// fillTenant is the tenant a body or query names, or, when it names none,
// the key's own (not for admin keys: they act for many and must say which).
func fillTenant(r *http.Request, named string) string {
	if p, ok := PrincipalFrom(r.Context()); ok && named == "" && !p.Has(apikeys.ScopeAdmin) {
		return p.Tenant
	}
	return named
}

// allowTenant refuses, with 403 naming field, a body or query that names a
// tenant the key may not act for. Unlike a run in the path (guard), the
// caller chose to name the tenant, so the answer says why.
func allowTenant(w http.ResponseWriter, r *http.Request, tenant string, field FieldProblem) bool {
	p, ok := PrincipalFrom(r.Context())
	if !ok || p.MayActFor(tenant) {
		return true
	}
	detail := fmt.Sprintf("the API key is for tenant %q and cannot act for tenant %q", p.Tenant, tenant)
	field.Detail = detail
	writeProblem(w, ProblemForbidden, http.StatusForbidden, detail, field)
	return false
}

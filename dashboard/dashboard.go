// Package dashboard is the browser dashboard of the platform: what the
// dunning recovers and why the rest is lost, read from the ledger through
// package analytics, a run's timeline, the revenue forecast and the
// card-network compliance report (package audit). It is
// served on the private API listener under /dashboard/, behind the API's
// own keys: a browser signs in once with an API key and keeps a signed,
// HttpOnly, SameSite=Strict session cookie (see session.go).
//
// Every page is rendered on the server (html/template), charts included
// (inline SVG, chart.go); the stylesheet is embedded. The pages load
// nothing from elsewhere and run no script, so they work offline and under
// a strict Content-Security-Policy.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/apikeys"
	"github.com/dunningco/dunning/internal/guesslimit"
	"github.com/dunningco/dunning/ledger"
)

// basePath is where the dashboard is mounted on the private listener.
const basePath = "/dashboard/"

// Path is the dashboard's address on the private listener, for banners.
const Path = basePath

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Authenticator checks an API key, as the private API does;
// *apikeys.Store implements it, apikeys.Static serves tests.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (apikeys.Principal, error)
}

// KeyLookup finds a key by ID, so a session ends once its key is revoked or
// expired; *apikeys.Store implements it.
type KeyLookup interface {
	Get(ctx context.Context, id string) (apikeys.Key, error)
}

// Analytics is what the pages read; *analytics.Store implements it.
type Analytics interface {
	Summary(ctx context.Context, q analytics.Query) (analytics.Summary, error)
	Series(ctx context.Context, q analytics.Query, interval analytics.Granularity) (analytics.Series, error)
	Breakdown(ctx context.Context, q analytics.Query, by analytics.Dimension) (analytics.Breakdown, error)
	Methods(ctx context.Context, q analytics.Query) (analytics.Methods, error)
	Aging(ctx context.Context, tenant, currency string, at time.Time) (analytics.Aging, error)
	Experiments(ctx context.Context, q analytics.Query, control string) (analytics.Experiments, error)
}

var _ Analytics = (*analytics.Store)(nil)

// Ledger is what the run pages read; *ledger.Store implements it.
type Ledger interface {
	RunView(ctx context.Context, workflowID string) (ledger.RunView, error)
	Pool() *pgxpool.Pool
}

var _ Ledger = (*ledger.Store)(nil)

// Config is what the dashboard needs.
type Config struct {
	Auth      Authenticator // required: how a login's API key is checked
	Keys      KeyLookup     // optional: ends sessions of revoked or expired keys
	Analytics Analytics     // required
	Ledger    Ledger        // required
	// Compliance is what the compliance page reads: the ledger's card
	// activity. When nil, Ledger must have it (*ledger.Store does).
	Compliance Compliance
	// Limits are the card-network limits the workers apply, which the
	// compliance report checks every charge against; ledger.DefaultLimits
	// when zero, as for GET /v1/audit/compliance.
	Limits ledger.Limits
	// SessionSecret signs session cookies: at least 32 bytes, the same on
	// every replica (SessionSecret derives one from the key pepper).
	SessionSecret []byte
	SessionTTL    time.Duration // DefaultSessionTTL when zero
	// SignInFailures failed sign-ins are allowed per client address, one
	// more every SignInWindow / SignInFailures (DefaultSignInFailures,
	// DefaultSignInWindow when zero); past them a sign-in answers 429.
	SignInFailures int
	SignInWindow   time.Duration
	Logger         *slog.Logger
	Now            func() time.Time // time.Now when nil
}

// Handler serves the dashboard under Path.
type Handler struct {
	cfg      Config
	sessions sessions
	// signIns counts failed sign-ins per client address: a wrong key
	// takes from the budget; an empty form, a key without the scope or
	// the key store being down take nothing.
	signIns *guesslimit.Limiter
	pages   map[string]*template.Template
	mux     *http.ServeMux
	logger  *slog.Logger
}

// New checks cfg and builds the dashboard.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.Auth == nil:
		return nil, errors.New("dashboard: an authenticator is required")
	case cfg.Analytics == nil:
		return nil, errors.New("dashboard: analytics are required")
	case cfg.Ledger == nil:
		return nil, errors.New("dashboard: the ledger is required")
	case len(cfg.SessionSecret) < 32:
		return nil, fmt.Errorf("dashboard: the session secret must be at least 32 bytes, got %d", len(cfg.SessionSecret))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Compliance == nil {
		var ok bool
		if cfg.Compliance, ok = cfg.Ledger.(Compliance); !ok {
			return nil, errors.New("dashboard: the compliance page needs the ledger's card activity (Config.Compliance)")
		}
	}
	if cfg.Limits == (ledger.Limits{}) {
		cfg.Limits = ledger.DefaultLimits()
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("dashboard: card-network limits: %w", err)
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.SignInFailures <= 0 {
		cfg.SignInFailures = DefaultSignInFailures
	}
	if cfg.SignInWindow <= 0 {
		cfg.SignInWindow = DefaultSignInWindow
	}
	h := &Handler{cfg: cfg, logger: cfg.Logger, sessions: sessions{secret: cfg.SessionSecret, ttl: cfg.SessionTTL, now: cfg.Now},
		signIns: guesslimit.New(cfg.SignInFailures, cfg.SignInWindow, cfg.Now)}
	if err := h.parseTemplates(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("dashboard: static assets: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+basePath+"static/", http.StripPrefix(basePath+"static/", http.FileServerFS(static)))
	mux.HandleFunc("GET "+basePath+"login", h.loginForm)
	mux.HandleFunc("POST "+basePath+"login", h.login)
	mux.HandleFunc("POST "+basePath+"logout", h.logout)
	mux.Handle("GET "+basePath+"{$}", h.authed(h.page(h.overview)))
	mux.Handle("GET "+basePath+"declines", h.authed(h.page(h.declines)))
	mux.Handle("GET "+basePath+"policies", h.authed(h.page(h.policies)))
	mux.Handle("GET "+basePath+"aging", h.authed(h.page(h.aging)))
	mux.Handle("GET "+basePath+"runs", h.authed(h.page(h.runs)))
	mux.Handle("GET "+basePath+"runs/{invoice...}", h.authed(h.page(h.run)))
	mux.Handle("GET "+basePath+"forecast", h.authed(h.page(h.forecast)))
	mux.Handle("GET "+basePath+"compliance", h.authed(h.compliance))
	mux.Handle("GET "+basePath+"compliance.csv", h.authed(h.complianceCSV))
	mux.HandleFunc(basePath, func(w http.ResponseWriter, r *http.Request) {
		h.errorPage(w, r, http.StatusNotFound, "There is no such page.")
	})
	h.mux = mux
	return h, nil
}

// ServeHTTP serves the dashboard; paths outside Path answer 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Nothing is loaded from elsewhere and no script runs: a strict policy
	// costs nothing and limits what an injected tag could do.
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	if r.URL.Path == strings.TrimSuffix(basePath, "/") {
		http.Redirect(w, r, basePath, http.StatusSeeOther)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// Mount serves the dashboard under Path and everything else with next: the
// private listener's handler in front of the API's. The dashboard's paths
// never reach the API, whose bearer-key check does not apply to them.
func (h *Handler) Mount(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == strings.TrimSuffix(basePath, "/") || strings.HasPrefix(r.URL.Path, basePath) {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type principalKey struct{}

func principalFrom(ctx context.Context) apikeys.Principal {
	p, _ := ctx.Value(principalKey{}).(apikeys.Principal)
	return p
}

// authed lets through only requests with a valid session whose key is still
// usable and may read runs; anyone else gets the login page with 401.
// page runs a dashboard page under queryTimeout with the request's filter
// (tenant, currency, period; a bad one is answered here) and locale.
func (h *Handler) page(fn func(ctx context.Context, w http.ResponseWriter, r *http.Request, f filter, l locale)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
		defer cancel()
		f, err := h.parseFilter(ctx, r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		fn(ctx, w, r, f, pickLocale(r))
	}
}

func (h *Handler) authed(fn http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		ss, err := h.sessions.fromRequest(r)
		if err != nil {
			if !errors.Is(err, errNoSession) {
				h.logger.InfoContext(r.Context(), "dashboard session refused", "reason", err.Error())
				http.SetCookie(w, h.sessions.clear(r))
			}
			h.renderLogin(w, r, http.StatusUnauthorized, "Sign in with an API key to see the dashboard.")
			return
		}
		if h.cfg.Keys != nil {
			k, err := h.cfg.Keys.Get(r.Context(), ss.KeyID)
			switch {
			case errors.Is(err, apikeys.ErrNotFound):
				http.SetCookie(w, h.sessions.clear(r))
				h.renderLogin(w, r, http.StatusUnauthorized, "The API key of this session no longer exists; sign in again.")
				return
			case err != nil:
				h.logger.ErrorContext(r.Context(), "dashboard: could not check the session's API key", "key_id", ss.KeyID, "error", err)
				w.Header().Set("Retry-After", "5")
				h.errorPage(w, r, http.StatusServiceUnavailable, "The API key of this session cannot be checked right now; reload in a moment.")
				return
			}
			if st := k.State(h.cfg.Now()); st == "revoked" || st == "expired" {
				http.SetCookie(w, h.sessions.clear(r))
				h.renderLogin(w, r, http.StatusUnauthorized, "The API key of this session was "+st+"; sign in with a current one.")
				return
			}
		}
		p := ss.principal()
		if !p.Has(apikeys.ScopeRunsRead) {
			h.errorPage(w, r, http.StatusForbidden, "The API key lacks the runs:read scope the dashboard needs.")
			return
		}
		fn(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	if _, err := h.sessions.fromRequest(r); err == nil {
		http.Redirect(w, r, basePath, http.StatusSeeOther)
		return
	}
	h.renderLogin(w, r, http.StatusOK, "")
}

// maxLoginBody bounds the login form: one API key.
const maxLoginBody = 4 << 10

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	// The limit comes first: a client past it is refused whatever it
	// sends, so a guess it makes then tells it nothing.
	client := guesslimit.ClientAddress(r)
	ok, wait := h.signIns.Begin(client)
	if !ok {
		h.signInLimited(w, r, client, wait)
		return
	}
	failed := false
	defer func() {
		if h.signIns.End(client, failed) {
			h.logger.WarnContext(r.Context(), "dashboard sign-ins limited: too many failures from one address",
				"client", client, "failures", h.cfg.SignInFailures, "window", h.cfg.SignInWindow.String())
		}
	}()
	r.Body = http.MaxBytesReader(w, r.Body, maxLoginBody)
	if err := r.ParseForm(); err != nil {
		h.renderLogin(w, r, http.StatusBadRequest, "The sign-in form could not be read.")
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("api_key"))
	if token == "" {
		h.renderLogin(w, r, http.StatusBadRequest, "Enter an API key.")
		return
	}
	p, err := h.cfg.Auth.Authenticate(r.Context(), token)
	switch {
	case err == nil:
	case errors.Is(err, apikeys.ErrMalformed):
		failed = true
		h.renderLogin(w, r, http.StatusUnauthorized, "That is not an API key: keys read dk_live_<id>_<secret>.")
		return
	case errors.Is(err, apikeys.ErrRevoked), errors.Is(err, apikeys.ErrExpired), errors.Is(err, apikeys.ErrUnknown):
		failed = true
		h.logger.InfoContext(r.Context(), "dashboard sign-in refused", "reason", err.Error())
		h.renderLogin(w, r, http.StatusUnauthorized, "The API key is not valid (unknown, revoked or expired).")
		return
	default:
		h.logger.ErrorContext(r.Context(), "dashboard: could not check an API key", "error", err)
		w.Header().Set("Retry-After", "5")
		h.renderLogin(w, r, http.StatusServiceUnavailable, "The API key cannot be checked right now; try again in a moment.")
		return
	}
	if !p.Has(apikeys.ScopeRunsRead) {
		h.renderLogin(w, r, http.StatusForbidden, "The API key lacks the runs:read scope the dashboard needs.")
		return
	}
	value, exp := h.sessions.seal(p)
	http.SetCookie(w, h.sessions.cookie(r, value, exp))
	h.logger.InfoContext(r.Context(), "dashboard sign-in", "key_id", p.KeyID, "tenant", p.Tenant)
	http.Redirect(w, r, basePath, http.StatusSeeOther)
}

// signInLimited answers a sign-in from a client past its failure budget:
// 429, Retry-After, and the form saying when to try again.
func (h *Handler) signInLimited(w http.ResponseWriter, r *http.Request, client string, wait time.Duration) {
	secs := guesslimit.RetryAfter(wait)
	at := h.cfg.Now().Add(time.Duration(secs) * time.Second).UTC()
	h.logger.InfoContext(r.Context(), "dashboard sign-in refused: too many failures", "client", client, "retry_after_s", secs)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	unit := "seconds"
	if secs == 1 {
		unit = "second"
	}
	h.renderLogin(w, r, http.StatusTooManyRequests, fmt.Sprintf("Too many failed sign-ins from your address; try again in %d %s (at %s).",
		secs, unit, at.Format("15:04:05 MST")))
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, h.sessions.clear(r))
	http.Redirect(w, r, basePath+"login", http.StatusSeeOther)
}

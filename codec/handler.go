package codec

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"html/template"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"

	"github.com/dunningco/dunning/internal/guesslimit"
)

// PathPrefix is where the codec endpoint is mounted: the Web UI and the
// temporal CLI are given <base URL>/codec and call /codec/encode and
// /codec/decode.
const PathPrefix = "/codec"

const (
	// maxBodyBytes bounds a request: Temporal refuses payloads over 2 MiB
	// by default, and the UI sends an event's payloads at a time.
	maxBodyBytes = 16 << 20
	// minTokenLen refuses tokens short enough to guess.
	minTokenLen = 16
	// sessionCookie carries a browser's sign-in (see login).
	sessionCookie = "dunning_codec_session"
	sessionTTL    = 8 * time.Hour
)

// HandlerOptions configures the codec endpoint.
type HandlerOptions struct {
	// Token is the bearer token every encode and decode request must carry
	// ("Authorization: Bearer <token>"), or a browser session made with it
	// at /codec/login. At least 16 characters.
	Token string
	// Origins are the Web UI origins (scheme://host[:port]) whose pages may
	// call the endpoint; a request from any other page is refused.
	Origins []string
	// LoopbackWithoutToken lets requests from loopback addresses through
	// without the token: for dev mode, whose embedded UI cannot send one.
	// Never set it behind a reverse proxy, where every request is local.
	LoopbackWithoutToken bool
	// Logger receives refusals and failures; nil discards them.
	Logger *slog.Logger
}

type handler struct {
	codec    http.Handler
	token    []byte
	tokenSum [sha256.Size]byte
	origins  []string
	loopback bool
	logger   *slog.Logger
	now      func() time.Time
	// guesses counts failed token checks per client address, as the
	// dashboard counts failed sign-ins: a token of 16 characters or more
	// is not guessed at ten tries per five minutes, but without a limit
	// anyone could try as fast as the listener answers.
	guesses *guesslimit.Limiter
}

// NewHandler serves Temporal's remote codec protocol for c: POST
// /codec/encode and /codec/decode with a JSON body {"payloads": [{"metadata":
// {...}, "data": "<base64>"}]} answer the same shape, encoded or decoded.
// Every request needs the token (or a session, or a loopback address when
// allowed); CORS preflights from the configured origins need nothing, as
// browsers send no credentials with them.
func NewHandler(c *Codec, opts HandlerOptions) (http.Handler, error) {
	if c == nil {
		return nil, fmt.Errorf("codec endpoint: no codec")
	}
	switch {
	case opts.Token == "" && !opts.LoopbackWithoutToken:
		return nil, fmt.Errorf("codec endpoint: %s is required: without it the endpoint would decrypt for anyone", EnvToken)
	case opts.Token != "" && len(opts.Token) < minTokenLen:
		return nil, fmt.Errorf("codec endpoint: %s must be at least %d characters (e.g. `openssl rand -hex 32`)", EnvToken, minTokenLen)
	}
	origins := make([]string, 0, len(opts.Origins))
	for _, o := range opts.Origins {
		n, err := normalizeOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("codec endpoint: %s: %w", EnvOrigins, err)
		}
		origins = append(origins, n)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{
		codec:    converter.NewPayloadCodecHTTPHandler(c),
		token:    []byte(opts.Token),
		tokenSum: sha256.Sum256([]byte(opts.Token)),
		origins:  origins,
		loopback: opts.LoopbackWithoutToken,
		logger:   logger,
		now:      time.Now,
	}
	// Through h.now, so that a test moving the handler's clock moves the
	// limiter's too.
	h.guesses = guesslimit.New(guesslimit.DefaultFailures, guesslimit.DefaultWindow, func() time.Time { return h.now() })
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A page from an origin we do not know gets nothing, whatever it sends:
	// this also stops a cross-site form from riding on a session cookie.
	if origin := r.Header.Get("Origin"); origin != "" && !h.sameOrigin(r, origin) {
		if !h.allowedOrigin(origin) {
			h.logger.Warn("codec endpoint: request from an origin not in "+EnvOrigins, "origin", origin, "path", r.URL.Path)
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		hdr := w.Header()
		hdr.Set("Access-Control-Allow-Origin", origin)
		hdr.Set("Access-Control-Allow-Credentials", "true")
	}
	w.Header().Add("Vary", "Origin")

	switch r.URL.Path {
	case PathPrefix + "/encode", PathPrefix + "/decode":
	case PathPrefix + "/login":
		h.login(w, r)
		return
	default:
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodOptions:
		hdr := w.Header()
		hdr.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
		// What the Web UI sends: its namespace, and with passAccessToken
		// its own token, which is not ours but must not fail the preflight.
		hdr.Set("Access-Control-Allow-Headers", "Authorization, Authorization-Extras, Content-Type, X-Namespace")
		hdr.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	how, ok, answered := h.authorize(w, r)
	if answered {
		return
	}
	if !ok {
		h.logger.Warn("codec endpoint: unauthorized request", "path", r.URL.Path, "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="dunning codec"`)
		http.Error(w, "unauthorized: send Authorization: Bearer <"+EnvToken+">", http.StatusUnauthorized)
		return
	}
	// Browsers cannot send JSON cross-site without a preflight, so this
	// also closes the last way a session cookie could be used from
	// another site.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		http.Error(w, "want Content-Type: application/json", http.StatusUnsupportedMediaType)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	h.codec.ServeHTTP(rec, r)
	// Who read customer data, when: decoding is what the token guards.
	level := slog.LevelDebug
	if rec.status >= 400 {
		level = slog.LevelWarn
	}
	h.logger.Log(r.Context(), level, "codec endpoint", "path", r.URL.Path, "status", rec.status,
		"namespace", r.Header.Get("X-Namespace"), "auth", how, "remote", r.RemoteAddr)
}

// authorize says whether r may use the codec, and how it proved it. A
// client past its budget of failed token checks is refused here with 429,
// before its credentials are looked at (answered is then true): loopback
// clients let in without a token are never limited, as they guess nothing.
func (h *handler) authorize(w http.ResponseWriter, r *http.Request) (how string, ok, answered bool) {
	if h.loopback && isLoopback(r.RemoteAddr) {
		return "loopback", true, false
	}
	if len(h.token) == 0 {
		return "", false, false // no token: nothing to guess
	}
	client := guesslimit.ClientAddress(r)
	if admitted, wait := h.guesses.Begin(client); !admitted {
		h.tooManyFailures(w, r, client, wait)
		return "", false, true
	}
	how, ok, wrong := h.checkCredentials(r)
	h.endCheck(r, client, wrong)
	return how, ok, false
}

// checkCredentials checks r's bearer token and session cookie. wrong says
// whether r presented one that proved nothing, which is what a guess
// looks like: a wrong bearer token or a session cookie we did not make.
// A request with neither, or with an expired session of ours (the Web UI
// of an operator whose 8 hours are up), guesses nothing and is not
// counted, so the UI cannot lock its operator out of signing in again.
func (h *handler) checkCredentials(r *http.Request) (how string, ok, wrong bool) {
	if scheme, tok, found := strings.Cut(r.Header.Get("Authorization"), " "); found && strings.EqualFold(scheme, "Bearer") {
		if h.rightToken(tok) {
			return "bearer", true, false
		}
		wrong = true
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		switch h.checkSession(c.Value) {
		case sessionValid:
			return "session", true, false
		case sessionForged:
			wrong = true
		}
	}
	return "", false, wrong
}

// rightToken compares tok with the token. Comparing digests keeps the
// comparison constant-time whatever the length of what was sent.
func (h *handler) rightToken(tok string) bool {
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) == 1
}

// endCheck records the outcome of a token check admitted by the limiter,
// and logs once when a failure spends the client's budget.
func (h *handler) endCheck(r *http.Request, client string, wrong bool) {
	if h.guesses.End(client, wrong) {
		h.logger.WarnContext(r.Context(), "codec endpoint: token checks limited: too many failures from one address",
			"client", client, "failures", guesslimit.DefaultFailures, "window", guesslimit.DefaultWindow.String())
	}
}

// tooManyFailures answers a client past its budget of failed token checks:
// 429 with Retry-After, whatever it sent, so a guess made then tells it
// nothing.
func (h *handler) tooManyFailures(w http.ResponseWriter, r *http.Request, client string, wait time.Duration) {
	secs := guesslimit.RetryAfter(wait)
	h.logger.InfoContext(r.Context(), "codec endpoint: request refused: too many failed token checks",
		"client", client, "path", r.URL.Path, "retry_after_s", secs)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	http.Error(w, fmt.Sprintf("too many failed token checks from your address; try again in %d s", secs), http.StatusTooManyRequests)
}

// The Web UI cannot send a static bearer token: it sends only its own
// single sign-on token (passAccessToken) or cookies (includeCredentials).
// So an operator signs in once here with the codec token, and the browser
// keeps a session cookie the UI then sends along. The cookie holds an
// expiry and an HMAC under the token, never the token, and dies when the
// token is rotated.

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dunning codec sign-in</title></head>
<body><h1>Dunning codec</h1>
{{if .Done}}<p>Signed in for {{.TTL}}. The Temporal Web UI in this browser can now decode payloads; reload it.</p>
{{else}}<p>Sign in with the codec token to let the Temporal Web UI in this browser show decrypted payloads.</p>
{{if .Failed}}<p><strong>Wrong token.</strong></p>{{end}}
<form method="post"><label>Token <input type="password" name="token" autocomplete="off" required></label>
<button type="submit">Sign in</button></form>{{end}}
</body></html>
`))

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	if len(h.token) == 0 {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'")
	page := struct {
		Done, Failed bool
		TTL          string
	}{TTL: sessionTTL.String()}
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		// The limit comes first: a client past it is refused whatever it
		// sends.
		client := guesslimit.ClientAddress(r)
		if ok, wait := h.guesses.Begin(client); !ok {
			h.tooManyFailures(w, r, client, wait)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		tok := strings.TrimSpace(r.PostFormValue("token"))
		if !h.rightToken(tok) {
			// An empty form guesses nothing (browsers do not send one).
			h.endCheck(r, client, tok != "")
			h.logger.Warn("codec endpoint: sign-in with a wrong token", "remote", r.RemoteAddr)
			page.Failed = true
			w.WriteHeader(http.StatusUnauthorized)
			break
		}
		h.endCheck(r, client, false)
		secure := r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
		cookie := &http.Cookie{
			Name:     sessionCookie,
			Value:    h.newSession(),
			Path:     PathPrefix,
			MaxAge:   int(sessionTTL.Seconds()),
			HttpOnly: true,
			Secure:   secure,
			SameSite: http.SameSiteLaxMode,
		}
		if secure {
			// A UI on another site (e.g. Temporal Cloud's) needs the cookie
			// on cross-site requests; browsers allow that only over HTTPS.
			cookie.SameSite = http.SameSiteNoneMode
		}
		http.SetCookie(w, cookie)
		h.logger.Info("codec endpoint: browser signed in", "remote", r.RemoteAddr)
		page.Done = true
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = loginPage.Execute(w, page)
}

// newSession returns "<unix expiry>.<base64 HMAC-SHA256(token, expiry)>".
func (h *handler) newSession() string {
	exp := strconv.FormatInt(h.now().Add(sessionTTL).Unix(), 10)
	return exp + "." + h.sessionMAC(exp)
}

type sessionState int

const (
	sessionForged  sessionState = iota // not made by us with the current token
	sessionExpired                     // ours, past its expiry
	sessionValid
)

// checkSession says whether v is a session cookie we made with the current
// token, and whether it is still valid. The MAC is checked before the
// expiry, so only a cookie of ours counts as expired.
func (h *handler) checkSession(v string) sessionState {
	exp, mac, ok := strings.Cut(v, ".")
	if !ok {
		return sessionForged
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !hmac.Equal([]byte(mac), []byte(h.sessionMAC(exp))) {
		return sessionForged
	}
	if h.now().Unix() > unix {
		return sessionExpired
	}
	return sessionValid
}

func (h *handler) sessionMAC(exp string) string {
	m := hmac.New(sha256.New, h.token)
	m.Write([]byte("dunning codec session v1\x00" + exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (h *handler) allowedOrigin(origin string) bool {
	n, err := normalizeOrigin(origin)
	return err == nil && slices.Contains(h.origins, n)
}

// sameOrigin reports a request from the endpoint's own pages (the sign-in
// form), which need no CORS.
func (h *handler) sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// normalizeOrigin accepts scheme://host[:port] and lower-cases it, as
// browsers send it.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(strings.TrimSuffix(strings.TrimSpace(o), "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("origin %q: want scheme://host[:port], e.g. https://temporal.example.com", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// statusRecorder remembers the status the wrapped handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Route serves the codec endpoint under PathPrefix and everything else
// from api.
func Route(api, endpoint http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathPrefix || strings.HasPrefix(r.URL.Path, PathPrefix+"/") {
			endpoint.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// MountFromEnv adds the codec endpoint to api when DUNNING_CODEC_TOKEN is
// set (`dunning serve`), with the keys DUNNING_CODEC_KEYS configures and
// the browser origins in DUNNING_CODEC_ORIGINS. Without a token it returns
// api unchanged: an endpoint without auth would decrypt for anyone.
func MountFromEnv(getenv func(string) string, api http.Handler, logger *slog.Logger) (http.Handler, error) {
	token := strings.TrimSpace(getenv(EnvToken))
	if token == "" {
		logger.Info("codec endpoint off: set " + EnvToken + " to let the Web UI and the temporal CLI decode payloads")
		return api, nil
	}
	c, err := FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("%s is set but %s=true: there is nothing to decode", EnvToken, EnvDisabled)
	}
	origins := splitList(getenv(EnvOrigins))
	endpoint, err := NewHandler(c, HandlerOptions{Token: token, Origins: origins, Logger: logger})
	if err != nil {
		return nil, err
	}
	logger.Info("codec endpoint on", "path", PathPrefix, "origins", origins, "key_id", c.KeyID())
	return Route(api, endpoint), nil
}

// NewDevHandler is dev mode's codec endpoint: the embedded Web UI's origin
// (as 127.0.0.1 and as localhost) and DUNNING_CODEC_ORIGINS may call it,
// loopback clients need no token, others need DUNNING_CODEC_TOKEN.
func NewDevHandler(c *Codec, getenv func(string) string, uiOrigin string, logger *slog.Logger) (http.Handler, error) {
	origins := splitList(getenv(EnvOrigins))
	if uiOrigin != "" {
		origins = append(origins, uiOrigin)
		if u, err := url.Parse(uiOrigin); err == nil && u.Hostname() == "127.0.0.1" {
			origins = append(origins, u.Scheme+"://"+net.JoinHostPort("localhost", u.Port()))
		}
	}
	return NewHandler(c, HandlerOptions{
		Token:                strings.TrimSpace(getenv(EnvToken)),
		Origins:              origins,
		LoopbackWithoutToken: true,
		Logger:               logger,
	})
}

func splitList(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

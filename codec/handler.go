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
	return &handler{
		codec:    converter.NewPayloadCodecHTTPHandler(c),
		token:    []byte(opts.Token),
		tokenSum: sha256.Sum256([]byte(opts.Token)),
		origins:  origins,
		loopback: opts.LoopbackWithoutToken,
		logger:   logger,
		now:      time.Now,
	}, nil
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
	how, ok := h.authorize(r)
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

// authorize says whether r may use the codec, and how it proved it.
func (h *handler) authorize(r *http.Request) (string, bool) {
	if h.loopback && isLoopback(r.RemoteAddr) {
		return "loopback", true
	}
	if len(h.token) == 0 {
		return "", false
	}
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		// Comparing digests keeps the comparison constant-time whatever
		// the length of what was sent.
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) == 1 {
			return "bearer", true
		}
	}
	if c, err := r.Cookie(sessionCookie); err == nil && h.validSession(c.Value) {
		return "session", true
	}
	return "", false
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
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		sum := sha256.Sum256([]byte(strings.TrimSpace(r.PostFormValue("token"))))
		if subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) != 1 {
			h.logger.Warn("codec endpoint: sign-in with a wrong token", "remote", r.RemoteAddr)
			page.Failed = true
			w.WriteHeader(http.StatusUnauthorized)
			break
		}
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

func (h *handler) validSession(v string) bool {
	exp, mac, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || h.now().Unix() > unix {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(h.sessionMAC(exp)))
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

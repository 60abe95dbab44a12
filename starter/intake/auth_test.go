package intake

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/apikeys"
	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/starter"
)

// Test keys: the tests' default (acme, read and write), and one for each
// way a key can fall short.
var (
	acmeKey     = apikeys.StaticKey("acme0001", "acmereadwrite")
	acmeReadKey = apikeys.StaticKey("acme0002", "acmereadonly")
	globexKey   = apikeys.StaticKey("globex01", "globexreadwrite")
	adminKey    = apikeys.StaticKey("admin001", "opsadmin")
	revokedKey  = apikeys.StaticKey("acme0003", "acmerevoked")
	expiredKey  = apikeys.StaticKey("acme0004", "acmerotatedaway")
	unknownKey  = apikeys.StaticKey("zzzz9999", "nobodyholdsthis")

	readWrite = []apikeys.Scope{apikeys.ScopeRunsRead, apikeys.ScopeRunsWrite}
)

// testKeyring is a Static set plus the keys a store would refuse as
// revoked or expired, and an outage switch.
type testKeyring struct {
	apikeys.Static
	down bool
}

func (k testKeyring) Authenticate(ctx context.Context, token string) (apikeys.Principal, error) {
	switch {
	case k.down:
		return apikeys.Principal{}, errors.New("connection refused")
	case token == revokedKey:
		return apikeys.Principal{}, apikeys.ErrRevoked
	case token == expiredKey:
		return apikeys.Principal{}, apikeys.ErrExpired
	}
	return k.Static.Authenticate(ctx, token)
}

var testKeys = testKeyring{Static: apikeys.Static{
	acmeKey:     {Tenant: "acme", Scopes: readWrite},
	acmeReadKey: {Tenant: "acme", Scopes: []apikeys.Scope{apikeys.ScopeRunsRead}},
	globexKey:   {Tenant: "globex", Scopes: readWrite},
	adminKey:    {Tenant: "ops", Scopes: []apikeys.Scope{apikeys.ScopeAdmin}},
}}

func withTestKeys() Option { return WithAuthenticator(testKeys) }

// send makes a request with the given Authorization header ("" for none).
func send(t *testing.T, h http.Handler, method, path, auth, body string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec, checkAnswer(t, rec)
}

func bearer(key string) string { return "Bearer " + key }

// TestAuthRefusals: every way a request can fall short of its key is
// answered with its status and a problem, and reaches no run.
func TestAuthRefusals(t *testing.T) {
	globexDecline := reportWith(t, func(m map[string]any) { m["tenant"] = "globex" })
	globexReminder := strings.Replace(preDueBody, `"tenant": "acme"`, `"tenant": "globex"`, 1)
	if globexReminder == preDueBody {
		t.Fatal("preDueBody does not name acme")
	}
	tests := []struct {
		name       string
		method     string
		path       string
		auth       string
		body       string
		down       bool
		wantStatus int
		wantType   string
		wantDetail string
	}{
		{"no key", http.MethodPost, "/v1/runs/acme/inv-1/cancel", "", `{"reason":"x"}`, false, 401, ProblemUnauthorized, "needs an API key"},
		{"no key on a status", http.MethodGet, "/v1/runs/acme/inv-1", "", "", false, 401, ProblemUnauthorized, "needs an API key"},
		{"no key on an unknown path", http.MethodGet, "/v1/nothing", "", "", false, 401, ProblemUnauthorized, "needs an API key"},
		{"basic auth", http.MethodGet, "/v1/runs/acme/inv-1", "Basic YWNtZTpzZWNyZXQ=", "", false, 401, ProblemUnauthorized, `"Bearer <API key>"`},
		{"bearer without a key", http.MethodGet, "/v1/runs/acme/inv-1", "Bearer", "", false, 401, ProblemUnauthorized, `"Bearer <API key>"`},
		{"malformed key", http.MethodGet, "/v1/runs/acme/inv-1", "Bearer sk_live_123", "", false, 401, ProblemUnauthorized, "malformed"},
		{"oversized key", http.MethodGet, "/v1/runs/acme/inv-1", bearer(acmeKey + strings.Repeat("a", 300)), "", false, 401, ProblemUnauthorized, "malformed"},
		{"unknown key", http.MethodPost, "/v1/declines", bearer(unknownKey), validJSON(t), false, 401, ProblemUnauthorized, "not valid"},
		{"revoked key", http.MethodPost, "/v1/declines", bearer(revokedKey), validJSON(t), false, 401, ProblemUnauthorized, "revoked"},
		{"rotated key past its grace", http.MethodPost, "/v1/declines", bearer(expiredKey), validJSON(t), false, 401, ProblemUnauthorized, "use its replacement"},
		{"key store down", http.MethodPost, "/v1/declines", bearer(acmeKey), validJSON(t), true, 503, "about:blank", "cannot be checked"},
		{"read key starts a run", http.MethodPost, "/v1/declines", bearer(acmeReadKey), validJSON(t), false, 403, ProblemForbidden, "runs:write"},
		{"read key cancels", http.MethodPost, "/v1/runs/acme/inv-1/cancel", bearer(acmeReadKey), `{"reason":"x"}`, false, 403, ProblemForbidden, "runs:write"},
		{"read key expedites", http.MethodPost, "/v1/runs/acme/inv-1/expedite", bearer(acmeReadKey), "", false, 403, ProblemForbidden, "runs:write"},
		{"read key cancels reminders", http.MethodDelete, "/v1/reminders/acme/pre-due/inv-1?reason=x", bearer(acmeReadKey), "", false, 403, ProblemForbidden, "runs:write"},
		{"another tenant's status", http.MethodGet, "/v1/runs/globex/inv-1", bearer(acmeKey), "", false, 404, "about:blank", `no dunning run for tenant "globex" invoice "inv-1"`},
		{"another tenant's cancel", http.MethodPost, "/v1/runs/globex/inv-1/cancel", bearer(acmeKey), `{"reason":"x"}`, false, 404, "about:blank", `no dunning run for tenant "globex"`},
		{"another tenant's paid", http.MethodPost, "/v1/runs/globex/inv-1/paid", bearer(acmeKey), "", false, 404, "about:blank", `no dunning run for tenant "globex"`},
		{"another tenant's reminders", http.MethodGet, "/v1/reminders/globex/pre-due/inv-1", bearer(acmeKey), "", false, 404, "about:blank", `no reminder run "reminders/globex/pre-due/inv-1"`},
		{"decline naming another tenant", http.MethodPost, "/v1/declines", bearer(acmeKey), globexDecline, false, 403, ProblemForbidden, `for tenant "acme" and cannot act for tenant "globex"`},
		{"reminders naming another tenant", http.MethodPost, "/v1/reminders", bearer(acmeKey), globexReminder, false, 403, ProblemForbidden, `cannot act for tenant "globex"`},
		{"admin decline without a tenant", http.MethodPost, "/v1/declines", bearer(adminKey), reportWith(t, func(m map[string]any) { delete(m, "tenant") }), false, 422, ProblemInvalid, "tenant: is required"},
		{"list of another tenant", http.MethodGet, "/v1/runs?tenant=globex", bearer(acmeKey), "", false, 403, ProblemForbidden, `cannot act for tenant "globex"`},
		{"list without a tenant", http.MethodGet, "/v1/runs", bearer(adminKey), "", false, 422, ProblemInvalid, "tenant: is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := &fakeReminderRuns{}
			keys := testKeys
			keys.down = tt.down
			h := NewHandler(runs, slog.New(slog.DiscardHandler), WithAuthenticator(keys), WithReadModel(&fakeReadModel{}))
			rec, out := send(t, h, tt.method, tt.path, tt.auth, tt.body)
			if rec.Code != tt.wantStatus || out["type"] != tt.wantType || !strings.Contains(out["detail"].(string), tt.wantDetail) {
				t.Errorf("answer = %d %v, want %d %s with %q", rec.Code, out, tt.wantStatus, tt.wantType, tt.wantDetail)
			}
			if rec.Code == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer realm="dunning"`) {
				t.Errorf("WWW-Authenticate = %q", rec.Header().Get("WWW-Authenticate"))
			}
			if calls := runs.Calls(); len(calls) > 0 {
				t.Errorf("a refused request reached the runs: %+v", calls)
			}
		})
	}
}

// The other tenant's run is answered exactly as a missing one: the body
// tells nothing a 404 of one's own would not.
func TestAnotherTenantsRunLooksMissing(t *testing.T) {
	missing := &fakeRuns{err: starter.ErrRunNotFound}
	_, own := do(t, newTestHandler(missing), http.MethodGet, "/v1/runs/acme/inv-1", "", "")
	runs := &fakeRuns{}
	rec, other := send(t, newTestHandler(runs), http.MethodGet, "/v1/runs/globex/inv-1", bearer(acmeKey), "")
	own["detail"] = strings.Replace(own["detail"].(string), "acme", "globex", 1)
	own["error"] = own["detail"]
	a, _ := json.Marshal(own)
	b, _ := json.Marshal(other)
	if rec.Code != http.StatusNotFound || string(a) != string(b) {
		t.Errorf("another tenant's run = %d %s, a missing one %s", rec.Code, b, a)
	}
}

// What keys may do: their own tenant's runs by scope, any tenant's with
// admin; a body without a tenant takes the key's.
func TestAuthAllows(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		key        string
		body       string
		wantStatus int
		wantCall   string // "Method tenant"
	}{
		{"read key reads", http.MethodGet, "/v1/runs/acme/inv-1", acmeReadKey, "", 200, "Status acme"},
		{"write key starts", http.MethodPost, "/v1/declines", acmeKey, validJSON(t), 202, "Start acme"},
		{"tenant taken from the key", http.MethodPost, "/v1/declines", globexKey, reportWith(t, func(m map[string]any) { delete(m, "tenant") }), 202, "Start globex"},
		{"admin reads another tenant", http.MethodGet, "/v1/runs/globex/inv-1", adminKey, "", 200, "Status globex"},
		{"admin starts for another tenant", http.MethodPost, "/v1/declines", adminKey, validJSON(t), 202, "Start acme"},
		{"admin cancels for another tenant", http.MethodPost, "/v1/runs/globex/inv-1/cancel", adminKey, `{"reason":"x"}`, 202, "Cancel globex"},
		{"scheme in any case", http.MethodGet, "/v1/runs/acme/inv-1", "", "", 200, "Status acme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := &fakeRuns{}
			auth := bearer(tt.key)
			if tt.key == "" {
				auth = "bEaReR " + acmeKey
			}
			rec, out := send(t, newTestHandler(runs), tt.method, tt.path, auth, tt.body)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d %v, want %d", rec.Code, out, tt.wantStatus)
			}
			calls := runs.calls
			if len(calls) != 1 || calls[0].Method+" "+calls[0].Tenant != tt.wantCall {
				t.Errorf("calls = %+v, want %s", calls, tt.wantCall)
			}
		})
	}
}

func TestHealthNeedsNoKey(t *testing.T) {
	for _, h := range []http.Handler{
		NewHandler(&fakeRuns{}, nil),
		NewPrivateHandler(&fakeRuns{}, nil),
		NewPublicHandler(&fakeRuns{}, nil),
	} {
		if rec, _ := send(t, h, http.MethodGet, "/healthz", "", ""); rec.Code != http.StatusOK {
			t.Errorf("healthz = %d", rec.Code)
		}
	}
}

// Without a key store the private API refuses every key: it never runs
// open.
func TestNoAuthenticatorRefusesAll(t *testing.T) {
	runs := &fakeRuns{}
	rec, _ := send(t, NewPrivateHandler(runs, slog.New(slog.DiscardHandler)), http.MethodPost, "/v1/declines", bearer(acmeKey), validJSON(t))
	if rec.Code != http.StatusUnauthorized || len(runs.calls) > 0 {
		t.Errorf("status = %d, calls %v", rec.Code, runs.calls)
	}
}

func TestRateLimitPerKey(t *testing.T) {
	runs := &fakeRuns{}
	h := NewHandler(runs, slog.New(slog.DiscardHandler), withTestKeys(), WithRateLimit(0.5, 2))
	for i := range 2 {
		if rec, out := send(t, h, http.MethodGet, "/v1/runs/acme/inv-1", bearer(acmeKey), ""); rec.Code != http.StatusOK {
			t.Fatalf("request %d within the burst = %d %v", i+1, rec.Code, out)
		}
	}
	rec, out := send(t, h, http.MethodPost, "/v1/runs/acme/inv-1/cancel", bearer(acmeKey), `{"reason":"x"}`)
	retry, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	if rec.Code != http.StatusTooManyRequests || out["type"] != ProblemRateLimited || err != nil || retry < 1 || retry > 2 {
		t.Errorf("over the limit = %d (Retry-After %q) %v", rec.Code, rec.Header().Get("Retry-After"), out)
	}
	if len(runs.calls) != 2 {
		t.Errorf("the refused request reached the runs: %+v", runs.calls)
	}
	// Another key has its own bucket.
	if rec, _ := send(t, h, http.MethodGet, "/v1/runs/globex/inv-1", bearer(globexKey), ""); rec.Code != http.StatusOK {
		t.Errorf("another key = %d", rec.Code)
	}
	// Off means off.
	h = NewHandler(runs, slog.New(slog.DiscardHandler), withTestKeys(), WithRateLimit(0, 0))
	for range 3 * DefaultBurst {
		if rec, _ := send(t, h, http.MethodGet, "/v1/runs/acme/inv-1", bearer(acmeKey), ""); rec.Code != http.StatusOK {
			t.Fatalf("without a limit = %d", rec.Code)
		}
	}
}

func TestLimiterRefillsAndForgets(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLimiter(1, 1)
	l.now = func() time.Time { return now }
	if ok, _ := l.allow("k"); !ok {
		t.Fatal("first request refused")
	}
	ok, wait := l.allow("k")
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("second = %v, wait %v", ok, wait)
	}
	now = now.Add(time.Second)
	if ok, _ := l.allow("k"); !ok {
		t.Error("refused after the refill")
	}
	now = now.Add(2 * time.Minute)
	l.allow("other")
	if _, kept := l.buckets["k"]; kept {
		t.Error("an idle, refilled bucket is still held")
	}
}

// TestSurfaces: each listener serves only its own paths; a public path on
// the private listener, or a private one on the public listener, is 404
// whatever the request carries.
func TestSurfaces(t *testing.T) {
	signer := &cardlink.Signer{Secret: []byte(strings.Repeat("s", cardlink.MinSecretLen)), BaseURL: "https://pay.example.com/card", TTL: time.Hour}
	opts := []Option{withTestKeys(), WithCardLinks(signer), WithSendGridEvents("", &fakePreferences{}), WithTwilioInbound("token", "https://hooks.example.com/sms", &fakePreferences{})}
	runs := &fakeRuns{}
	private := NewPrivateHandler(runs, slog.New(slog.DiscardHandler), opts...)
	public := NewPublicHandler(runs, slog.New(slog.DiscardHandler), opts...)
	tests := []struct {
		name       string
		h          http.Handler
		method     string
		path       string
		wantStatus int
	}{
		{"card link on private", private, http.MethodGet, "/v1/card-links/abc", 404},
		{"twilio on private", private, http.MethodPost, "/v1/webhooks/twilio/sms", 404},
		{"sendgrid on private", private, http.MethodPost, "/v1/webhooks/sendgrid/events", 404},
		{"stripe on private", private, http.MethodPost, "/v1/webhooks/stripe/acme", 404},
		{"codec on private", private, http.MethodPost, "/codec/decode", 404},
		{"card page on private", private, http.MethodGet, "/card", 404},
		{"status on public", public, http.MethodGet, "/v1/runs/acme/inv-1", 404},
		{"decline on public", public, http.MethodPost, "/v1/declines", 404},
		{"list on public", public, http.MethodGet, "/v1/runs?tenant=acme", 404},
		{"reminders on public", public, http.MethodGet, "/v1/reminders/acme/pre-due/inv-1", 404},
		{"status on private", private, http.MethodGet, "/v1/runs/acme/inv-1", 200},
		{"card link on public", public, http.MethodGet, "/v1/card-links/abc", 400},    // not a token: the route answered
		{"twilio on public", public, http.MethodPost, "/v1/webhooks/twilio/sms", 403}, // unsigned: the route answered
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, auth := range []string{"", bearer(acmeKey)} {
				if tt.wantStatus == 200 && auth == "" {
					continue
				}
				rec, out := send(t, tt.h, tt.method, tt.path, auth, "")
				if rec.Code != tt.wantStatus {
					t.Errorf("with auth %q: %d %v, want %d", auth, rec.Code, out, tt.wantStatus)
				}
			}
		})
	}
	if len(runs.calls) != 1 {
		t.Errorf("calls = %+v, want the one status on the private listener", runs.calls)
	}
}

func TestIsPublicPath(t *testing.T) {
	for path, want := range map[string]bool{
		"/v1/webhooks/stripe/acme": true, "/v1/card-links/x": true, "/codec": true, "/codec/decode": true, "/card": true,
		"/v1/runs/acme/x": false, "/v1/declines": false, "/cards": false, "/codecs": false, "/healthz": false, "/v1/webhooks": false,
	} {
		if got := IsPublicPath(path); got != want {
			t.Errorf("IsPublicPath(%q) = %v", path, got)
		}
	}
}

func TestRateLimitFromEnv(t *testing.T) {
	tests := []struct {
		env       map[string]string
		wantRate  float64 // -1: no option; 0: off
		wantBurst int
		wantErr   string
	}{
		{map[string]string{}, -1, 0, ""},
		{map[string]string{"DUNNING_API_RATE": "10"}, 10, 20, ""},
		{map[string]string{"DUNNING_API_RATE": "0.5"}, 0.5, 1, ""},
		{map[string]string{"DUNNING_API_BURST": "7"}, DefaultRate, 7, ""},
		{map[string]string{"DUNNING_API_RATE": "5", "DUNNING_API_BURST": "9"}, 5, 9, ""},
		{map[string]string{"DUNNING_API_RATE": "0"}, 0, 0, ""},
		{map[string]string{"DUNNING_API_RATE": "fast"}, 0, 0, "DUNNING_API_RATE"},
		{map[string]string{"DUNNING_API_RATE": "-1"}, 0, 0, "DUNNING_API_RATE"},
		{map[string]string{"DUNNING_API_BURST": "0"}, 0, 0, "DUNNING_API_BURST"},
	}
	for _, tt := range tests {
		opts, err := OptionsFromEnv(func(k string) string { return tt.env[k] }, nil)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: error %v, want one naming %s", tt.env, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tt.env, err)
		}
		h := &handler{limiter: newLimiter(DefaultRate, DefaultBurst)}
		for _, o := range opts {
			o(h)
		}
		switch {
		case tt.wantRate < 0:
			if h.limiter == nil || float64(h.limiter.rate) != DefaultRate || h.limiter.burst != DefaultBurst {
				t.Errorf("%v: limiter %+v, want the default", tt.env, h.limiter)
			}
		case tt.wantRate == 0:
			if h.limiter != nil {
				t.Errorf("%v: limiter %+v, want none", tt.env, h.limiter)
			}
		case h.limiter == nil || float64(h.limiter.rate) != tt.wantRate || h.limiter.burst != tt.wantBurst:
			t.Errorf("%v: limiter %+v, want %v/s burst %d", tt.env, h.limiter, tt.wantRate, tt.wantBurst)
		}
	}
}

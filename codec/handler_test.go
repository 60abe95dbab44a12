package codec

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

const (
	testToken  = "s3cret-codec-token-0123456789"
	testOrigin = "https://temporal.example.com"
)

// wirePayload is a payload as the Web UI sends and reads it: bytes in
// base64, per Temporal's remote codec protocol.
type wirePayload struct {
	Metadata map[string][]byte `json:"metadata"`
	Data     []byte            `json:"data"`
}

type wireBody struct {
	Payloads []wirePayload `json:"payloads"`
}

func toWire(ps ...*commonpb.Payload) string {
	var b wireBody
	for _, p := range ps {
		b.Payloads = append(b.Payloads, wirePayload{Metadata: p.Metadata, Data: p.Data})
	}
	raw, _ := json.Marshal(b)
	return string(raw)
}

func newTestHandler(t *testing.T, c *Codec) http.Handler {
	t.Helper()
	h, err := NewHandler(c, HandlerOptions{Token: testToken, Origins: []string{testOrigin}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// uiRequest is what the Web UI's fetch sends to <endpoint>/decode.
func uiRequest(path, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path+"?preserveStorageRefs=true", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Namespace", "default")
	r.Header.Set("Origin", testOrigin)
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestHandlerDecodesTheUIsRequest(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	h := newTestHandler(t, c)
	sealed := encodeOne(t, c, plainPayload(t, ada))
	old := plainPayload(t, "recorded before the codec")

	r := uiRequest("/codec/decode", toWire(sealed, old))
	r.Header.Set("Authorization", "Bearer "+testToken)
	w := serve(h, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != testOrigin {
		t.Errorf("Access-Control-Allow-Origin = %q", got)
	}
	if got := w.Header().Get("Access-Control-Allow-Credentials"); got != "true" {
		t.Errorf("Access-Control-Allow-Credentials = %q", got)
	}
	var out wireBody
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer is not the protocol's JSON: %v\n%s", err, w.Body)
	}
	if len(out.Payloads) != 2 {
		t.Fatalf("%d payloads back", len(out.Payloads))
	}
	if enc := string(out.Payloads[0].Metadata["encoding"]); enc != "json/plain" {
		t.Errorf("encoding %q, want json/plain", enc)
	}
	var got customer
	if err := json.Unmarshal(out.Payloads[0].Data, &got); err != nil || got != ada {
		t.Errorf("decoded %+v (%v)", got, err)
	}
	if string(out.Payloads[1].Data) != `"recorded before the codec"` {
		t.Errorf("plain payload came back as %q", out.Payloads[1].Data)
	}
	// The raw answer is what the UI parses: base64 in "data".
	if !strings.Contains(w.Body.String(), `"data":"`+base64.StdEncoding.EncodeToString(out.Payloads[1].Data)+`"`) {
		t.Errorf("answer does not carry base64 data: %s", w.Body)
	}
}

func TestHandlerEncodes(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	h := newTestHandler(t, c)
	plain := plainPayload(t, ada)
	r := uiRequest("/codec/encode", toWire(plain))
	r.Header.Set("Authorization", "Bearer "+testToken)
	w := serve(h, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var out wireBody
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || len(out.Payloads) != 1 {
		t.Fatalf("%v %s", err, w.Body)
	}
	if strings.Contains(w.Body.String(), base64.StdEncoding.EncodeToString(plain.Data)) {
		t.Error("encode answered the plain data")
	}
	opened, err := decodeOne(c, &commonpb.Payload{Metadata: out.Payloads[0].Metadata, Data: out.Payloads[0].Data})
	if err != nil || !proto.Equal(opened, plain) {
		t.Errorf("decode of the endpoint's encoding: %v %v", opened, err)
	}
}

// The temporal CLI (--codec-endpoint, --codec-auth) and Go programs call the
// endpoint through the SDK's remote codec.
func TestHandlerServesTheSDKRemoteCodec(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	srv := httptest.NewServer(Route(http.NotFoundHandler(), newTestHandler(t, c)))
	defer srv.Close()
	remote := converter.NewRemotePayloadCodec(converter.RemotePayloadCodecOptions{
		Endpoint: srv.URL + PathPrefix,
		ModifyRequest: func(r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+testToken)
			return nil
		},
	})
	plain := plainPayload(t, ada)
	sealed, err := remote.Encode([]*commonpb.Payload{plain})
	if err != nil {
		t.Fatal(err)
	}
	if string(sealed[0].Metadata[MetadataKeyID]) != "k1" {
		t.Errorf("remote encode: %v", sealed[0].Metadata)
	}
	opened, err := remote.Decode(sealed)
	if err != nil || !proto.Equal(opened[0], plain) {
		t.Errorf("remote decode: %v %v", opened, err)
	}
}

func TestHandlerRefusesWithoutAuth(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	h := newTestHandler(t, c)
	body := toWire(encodeOne(t, c, plainPayload(t, ada)))
	for _, tt := range []struct{ name, auth string }{
		{"no header", ""},
		{"wrong token", "Bearer not-the-token-at-all-000000"},
		{"token prefix", "Bearer " + testToken[:len(testToken)-1]},
		{"token as basic", "Basic " + testToken},
		{"bare token", testToken},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := uiRequest("/codec/decode", body)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			w := serve(h, r)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", w.Code)
			}
			if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", w.Header().Get("WWW-Authenticate"))
			}
			if strings.Contains(w.Body.String(), ada.Email) {
				t.Error("refusal carries customer data")
			}
			// The UI must still be able to read the refusal.
			if w.Header().Get("Access-Control-Allow-Origin") != testOrigin {
				t.Error("refusal without CORS headers: the UI cannot tell why")
			}
		})
	}
}

func TestHandlerPreflight(t *testing.T) {
	h := newTestHandler(t, mustCodec(t, mustKey(t, "k1")))
	preflight := func(origin string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodOptions, "/codec/decode?preserveStorageRefs=true", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("Access-Control-Request-Headers", "content-type,x-namespace")
		return serve(h, r)
	}
	w := preflight(testOrigin)
	if w.Code != http.StatusNoContent {
		t.Fatalf("preflight status %d, want 204 without a token", w.Code)
	}
	hdr := w.Header()
	if hdr.Get("Access-Control-Allow-Origin") != testOrigin || hdr.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("origin headers %v", hdr)
	}
	if !strings.Contains(hdr.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("Allow-Methods %q", hdr.Get("Access-Control-Allow-Methods"))
	}
	for _, want := range []string{"Content-Type", "X-Namespace", "Authorization"} {
		if !strings.Contains(hdr.Get("Access-Control-Allow-Headers"), want) {
			t.Errorf("Allow-Headers %q lacks %s", hdr.Get("Access-Control-Allow-Headers"), want)
		}
	}
	// Origins compare as browsers send them.
	if w := preflight("HTTPS://Temporal.Example.com"); w.Code != http.StatusNoContent {
		t.Errorf("upper-case origin: %d", w.Code)
	}

	w = preflight("https://evil.example")
	if w.Code != http.StatusForbidden || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("unknown origin: %d %v", w.Code, w.Header())
	}
}

func TestHandlerRefusesUnknownOriginsEvenWithTheToken(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	h := newTestHandler(t, c)
	r := uiRequest("/codec/decode", toWire(encodeOne(t, c, plainPayload(t, ada))))
	r.Header.Set("Origin", "https://evil.example")
	r.Header.Set("Authorization", "Bearer "+testToken)
	if w := serve(h, r); w.Code != http.StatusForbidden || strings.Contains(w.Body.String(), ada.Email) {
		t.Errorf("status %d body %s", w.Code, w.Body)
	}
}

func TestHandlerRequestChecks(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	h := newTestHandler(t, c)
	authed := func(method, path, contentType, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+testToken)
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		return serve(h, r)
	}
	unknown := encodeOne(t, mustCodec(t, mustKey(t, "gone")), plainPayload(t, ada))
	for _, tt := range []struct {
		name, method, path, contentType, body string
		want                                  int
		wantBody                              string
	}{
		{"no Origin (CLI)", http.MethodPost, "/codec/decode", "application/json", `{"payloads":[]}`, http.StatusOK, ""},
		{"charset", http.MethodPost, "/codec/decode", "application/json; charset=utf-8", `{"payloads":[]}`, http.StatusOK, ""},
		{"form post", http.MethodPost, "/codec/decode", "text/plain", `{"payloads":[]}`, http.StatusUnsupportedMediaType, ""},
		{"GET", http.MethodGet, "/codec/decode", "", "", http.StatusMethodNotAllowed, ""},
		{"other path", http.MethodPost, "/codec/download", "application/json", `{"payloads":[]}`, http.StatusNotFound, ""},
		{"prefix only", http.MethodPost, "/codec", "application/json", `{}`, http.StatusNotFound, ""},
		{"not JSON", http.MethodPost, "/codec/decode", "application/json", `{"payloads":`, http.StatusBadRequest, ""},
		{"unknown key", http.MethodPost, "/codec/decode", "application/json", toWire(unknown), http.StatusBadRequest, `"gone"`},
		{"too large", http.MethodPost, "/codec/decode", "application/json", `{"payloads":[{"data":"` + strings.Repeat("A", maxBodyBytes) + `"}]}`, http.StatusBadRequest, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := authed(tt.method, tt.path, tt.contentType, tt.body)
			if w.Code != tt.want || !strings.Contains(w.Body.String(), tt.wantBody) {
				t.Errorf("status %d body %.200s, want %d with %q", w.Code, w.Body, tt.want, tt.wantBody)
			}
		})
	}
}

// The Web UI cannot send our bearer token; a browser signs in once and the
// UI (with includeCredentials) sends the session cookie.
func TestHandlerBrowserSession(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	h := newTestHandler(t, c).(*handler)
	clock := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return clock }
	body := toWire(encodeOne(t, c, plainPayload(t, ada)))

	if w := serve(h, httptest.NewRequest(http.MethodGet, "/codec/login", nil)); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `type="password"`) {
		t.Fatalf("login page: %d %s", w.Code, w.Body)
	}
	login := func(token string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "https://codec.example.com/codec/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", "https://codec.example.com") // the form's own page
		return serve(h, r)
	}
	if w := login("wrong-token-wrong-token"); w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 {
		t.Fatalf("wrong token: %d cookies %v", w.Code, w.Result().Cookies())
	}
	w := login(testToken)
	cookies := w.Result().Cookies()
	if w.Code != http.StatusOK || len(cookies) != 1 {
		t.Fatalf("sign-in: %d cookies %v", w.Code, cookies)
	}
	session := cookies[0]
	if !session.HttpOnly || session.Path != PathPrefix || strings.Contains(session.Value, testToken) {
		t.Errorf("cookie %+v", session)
	}
	if !session.Secure || session.SameSite != http.SameSiteNoneMode {
		t.Errorf("over HTTPS the cookie must be Secure and SameSite=None for a UI on another site: %+v", session)
	}

	decode := func(cookie *http.Cookie) int {
		r := uiRequest("/codec/decode", body)
		r.AddCookie(cookie)
		return serve(h, r).Code
	}
	if code := decode(session); code != http.StatusOK {
		t.Errorf("decode with the session: %d", code)
	}
	forged := *session
	forged.Value = session.Value[:len(session.Value)-2] + "xx"
	if code := decode(&forged); code != http.StatusUnauthorized {
		t.Errorf("forged session: %d", code)
	}
	extended := *session
	exp, mac, _ := strings.Cut(session.Value, ".")
	extended.Value = exp + "9." + mac
	if code := decode(&extended); code != http.StatusUnauthorized {
		t.Errorf("session with a changed expiry: %d", code)
	}
	clock = clock.Add(sessionTTL + time.Minute)
	if code := decode(session); code != http.StatusUnauthorized {
		t.Errorf("expired session: %d", code)
	}

	// A session made with a rotated-out token is worthless.
	h2 := newTestHandler(t, c).(*handler)
	h2.token = []byte("another-token-another-token")
	h2.now = h.now
	clock = clock.Add(-sessionTTL)
	r := uiRequest("/codec/decode", body)
	r.AddCookie(session)
	if code := serve(h2, r).Code; code != http.StatusUnauthorized {
		t.Errorf("session after token rotation: %d", code)
	}
}

func TestDevHandlerLetsLoopbackThrough(t *testing.T) {
	c := mustCodec(t, mustKey(t, "dev-1"))
	h, err := NewDevHandler(c, envOf(nil), "http://127.0.0.1:8233", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	body := toWire(encodeOne(t, c, plainPayload(t, ada)))
	req := func(remote, origin string) *httptest.ResponseRecorder {
		r := uiRequest("/codec/decode", body)
		r.RemoteAddr = remote
		r.Header.Set("Origin", origin)
		return serve(h, r)
	}
	for _, origin := range []string{"http://127.0.0.1:8233", "http://localhost:8233"} {
		if w := req("127.0.0.1:50000", origin); w.Code != http.StatusOK || w.Header().Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("embedded UI at %s: %d %v", origin, w.Code, w.Header())
		}
	}
	if w := req("[::1]:50000", "http://127.0.0.1:8233"); w.Code != http.StatusOK {
		t.Errorf("IPv6 loopback: %d", w.Code)
	}
	if w := req("192.0.2.7:50000", "http://127.0.0.1:8233"); w.Code != http.StatusUnauthorized {
		t.Errorf("from the network without a token: %d", w.Code)
	}
	if w := req("127.0.0.1:50000", "http://127.0.0.1:9999"); w.Code != http.StatusForbidden {
		t.Errorf("another local page: %d", w.Code)
	}
	if w := serve(h, httptest.NewRequest(http.MethodGet, "/codec/login", nil)); w.Code != http.StatusNotFound {
		t.Errorf("login without a token configured: %d", w.Code)
	}

	// With DUNNING_CODEC_TOKEN set, others may come in with it.
	h, err = NewDevHandler(c, envOf(map[string]string{EnvToken: testToken}), "http://127.0.0.1:8233", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := uiRequest("/codec/decode", body)
	r.RemoteAddr = "192.0.2.7:50000"
	r.Header.Del("Origin")
	r.Header.Set("Authorization", "Bearer "+testToken)
	if w := serve(h, r); w.Code != http.StatusOK {
		t.Errorf("with the token from the network: %d", w.Code)
	}
}

func TestNewHandlerRefusesWeakSetups(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	for _, tt := range []struct {
		name string
		opts HandlerOptions
		want string
	}{
		{"no token", HandlerOptions{}, EnvToken + " is required"},
		{"short token", HandlerOptions{Token: "short"}, "at least 16"},
		{"origin with a path", HandlerOptions{Token: testToken, Origins: []string{"https://ui.example.com/app"}}, "scheme://host"},
		{"wildcard origin", HandlerOptions{Token: testToken, Origins: []string{"*"}}, "scheme://host"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewHandler(c, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := NewHandler(nil, HandlerOptions{Token: testToken}); err == nil {
		t.Error("no codec accepted")
	}
}

func TestMountFromEnv(t *testing.T) {
	k := mustKey(t, "k1")
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api") })
	logger := slog.New(slog.DiscardHandler)

	t.Run("no token: API only", func(t *testing.T) {
		h, err := MountFromEnv(envOf(map[string]string{EnvKeys: keySpec(k)}), api, logger)
		if err != nil {
			t.Fatal(err)
		}
		r := uiRequest("/codec/decode", `{"payloads":[]}`)
		if w := serve(h, r); w.Body.String() != "api" {
			t.Errorf("codec endpoint mounted without a token: %d %s", w.Code, w.Body)
		}
	})
	t.Run("token and keys", func(t *testing.T) {
		h, err := MountFromEnv(envOf(map[string]string{EnvKeys: keySpec(k), EnvToken: testToken, EnvOrigins: testOrigin + ", http://localhost:8233"}), api, logger)
		if err != nil {
			t.Fatal(err)
		}
		r := uiRequest("/codec/decode", toWire(encodeOne(t, mustCodec(t, k), plainPayload(t, ada))))
		r.Header.Set("Authorization", "Bearer "+testToken)
		if w := serve(h, r); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "payloads") {
			t.Errorf("decode: %d %s", w.Code, w.Body)
		}
		if w := serve(h, httptest.NewRequest(http.MethodGet, "/v1/runs/acme/inv-1", nil)); w.Body.String() != "api" {
			t.Errorf("API route: %s", w.Body)
		}
		if w := serve(h, httptest.NewRequest(http.MethodGet, "/codecs", nil)); w.Body.String() != "api" {
			t.Errorf("/codecs went to the codec endpoint")
		}
	})
	t.Run("token without keys", func(t *testing.T) {
		if _, err := MountFromEnv(envOf(map[string]string{EnvToken: testToken}), api, logger); !errors.Is(err, ErrNoKeys) {
			t.Errorf("err = %v, want ErrNoKeys", err)
		}
	})
	t.Run("token with encryption disabled", func(t *testing.T) {
		if _, err := MountFromEnv(envOf(map[string]string{EnvToken: testToken, EnvDisabled: "true"}), api, logger); err == nil {
			t.Error("accepted")
		}
	})
	t.Run("bad origin", func(t *testing.T) {
		if _, err := MountFromEnv(envOf(map[string]string{EnvKeys: keySpec(k), EnvToken: testToken, EnvOrigins: "temporal.example.com"}), api, logger); err == nil || !strings.Contains(err.Error(), EnvOrigins) {
			t.Errorf("err = %v", err)
		}
	})
}

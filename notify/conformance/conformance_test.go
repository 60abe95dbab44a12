//go:build unix

package conformance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/notify/sendgrid"
	"github.com/dunningco/dunning/notify/twilio"
)

const (
	// prismStartTimeout bounds the wait for Prism to load a spec and answer.
	prismStartTimeout = 60 * time.Second
	prismInstallHint  = "npm install --prefix /root/.cache/dunning-ci/prism @stoplight/prism-cli@5, " +
		"then PRISM_BIN=/root/.cache/dunning-ci/prism/node_modules/.bin/prism"

	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "f00dfeedcafebabe5eed0fbadc0ffee1"
	serviceSID = "MG0123456789abcdef0123456789abcdef"
)

// specPath returns the path of a vendor spec, or skips the test when the
// specs are not there.
func specPath(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("VENDOR_SPECS_DIR")
	if dir == "" {
		// The package directory is notify/conformance; the specs live next
		// to the project root.
		dir = filepath.Join("..", "..", "..", "shared", "vendor-specs")
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("vendor specs not found at %s; conformance needs ../shared/vendor-specs (or VENDOR_SPECS_DIR)", path)
	}
	return path
}

// prismBinary returns Prism's executable. Without one the test skips, or
// fails when CI=true.
func prismBinary(t *testing.T) string {
	t.Helper()
	name := os.Getenv("PRISM_BIN")
	if name == "" {
		name = "prism"
	}
	bin, err := exec.LookPath(name)
	if err == nil {
		return bin
	}
	msg := "Stoplight Prism not found (" + err.Error() + "); install it: " + prismInstallHint
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// startPrism serves spec with a validating Prism mock on a free local port
// and returns its base URL. Prism stops with the test.
func startPrism(t *testing.T, bin, spec string) string {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(bin, "mock", "-h", "127.0.0.1", "-p", port, "--errors", spec)
	// Prism runs under node; a group of its own lets cleanup stop all of it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var output lockedBuffer
	cmd.Stdout, cmd.Stderr = &output, &output

	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prism: %v", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})

	base := "http://127.0.0.1:" + port
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-done:
			t.Fatalf("prism exited before it answered (%v):\n%s", waitErr, output.String())
		default:
		}
		// Any answer means Prism is serving; it says 404 for "/".
		if resp, err := client.Get(base + "/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Since(start) > prismStartTimeout {
			t.Fatalf("prism did not answer on %s within %s:\n%s", base, prismStartTimeout, output.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("prism mock for %s ready on %s after %s", filepath.Base(spec), base, time.Since(start).Round(10*time.Millisecond))
	return base
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// exchange is one request a notifier sent and Prism's answer to it.
type exchange struct {
	Method, Path string
	Header       http.Header
	Body         []byte
	Status       int
	// Violations is Prism's sl-violations header: what in the request
	// broke the spec.
	Violations string
}

// tamper edits a request on its way to Prism and returns its new body.
type tamper func(h http.Header, body []byte) []byte

// recorder is a reverse proxy in front of Prism that keeps every exchange.
type recorder struct {
	*httptest.Server
	target string
	strip  string

	mu        sync.Mutex
	tamper    tamper
	exchanges []exchange
}

// newRecorder proxies to target, removing strip from the front of every
// request path.
func newRecorder(t *testing.T, target, strip string) *recorder {
	t.Helper()
	r := &recorder{target: target, strip: strip}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	header := req.Header.Clone()
	r.mu.Lock()
	edit := r.tamper
	r.mu.Unlock()
	sent := body
	if edit != nil {
		sent = edit(header, bytes.Clone(body))
	}

	target := r.target + strings.TrimPrefix(req.URL.Path, r.strip)
	if req.URL.RawQuery != "" {
		target += "?" + req.URL.RawQuery
	}
	out, err := http.NewRequestWithContext(req.Context(), req.Method, target, bytes.NewReader(sent))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = header
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}

	r.mu.Lock()
	r.exchanges = append(r.exchanges, exchange{
		Method: req.Method, Path: req.URL.Path, Header: req.Header.Clone(), Body: body,
		Status: resp.StatusCode, Violations: resp.Header.Get("sl-violations"),
	})
	r.mu.Unlock()

	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(respBody)
}

// setTamper edits the requests that follow; nil forwards them unchanged.
func (r *recorder) setTamper(f tamper) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tamper = f
}

// last returns the latest exchange.
func (r *recorder) last(t *testing.T) exchange {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.exchanges) == 0 {
		t.Fatal("no request reached the proxy")
	}
	return r.exchanges[len(r.exchanges)-1]
}

func withoutCredentials(h http.Header, body []byte) []byte {
	h.Del("Authorization")
	return body
}

func withoutFormField(name string) tamper {
	return func(h http.Header, body []byte) []byte {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return body
		}
		form.Del(name)
		return []byte(form.Encode())
	}
}

func sampleData() notify.Data {
	return notify.Data{
		CustomerID:    "cus_42",
		InvoiceID:     "INV-2026-0042",
		Amount:        "49.90",
		Currency:      "EUR",
		NextRetryAt:   time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC),
		TimeZone:      "Europe/Warsaw",
		Attempt:       2,
		CardUpdateURL: "https://billing.example.com/card/cus_42?sig=abc",
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// mailSend is the part of a Mail Send request body the tests look at.
type mailSend struct {
	Personalizations []struct {
		To []struct {
			Email string `json:"email"`
		} `json:"to"`
		CustomArgs map[string]string `json:"custom_args"`
	} `json:"personalizations"`
	From    struct{ Email, Name string } `json:"from"`
	ReplyTo *struct{ Email string }      `json:"reply_to"`
	Subject string                       `json:"subject"`
	Content []struct {
		Type, Value string
	} `json:"content"`
	Categories []string `json:"categories"`
}

func TestSendGridConformance(t *testing.T) {
	t.Parallel()
	spec := specPath(t, "sendgrid-v3.json")
	prism := startPrism(t, prismBinary(t), spec)
	// The spec's server is http://api.sendgrid.com/v3; the proxy plays the
	// /v3 part, which Prism does not match.
	proxy := newRecorder(t, prism, "/v3")

	n, err := sendgrid.New(sendgrid.Config{
		APIKey:     "SG.conformance-test-key",
		BaseURL:    proxy.URL,
		FromEmail:  "billing@example.com",
		FromName:   "Acme Billing",
		ReplyTo:    "help@example.com",
		Categories: []string{"dunning"},
		Logger:     discard(),
	})
	if err != nil {
		t.Fatalf("sendgrid.New: %v", err)
	}
	ctx := context.Background()

	for _, kind := range notify.Kinds() {
		for _, locale := range notify.Locales() {
			t.Run(kind+"/"+locale, func(t *testing.T) {
				r, err := notify.Render(kind, "email", locale, sampleData())
				if err != nil {
					t.Fatalf("Render: %v", err)
				}
				m := notify.Message{
					IdempotencyKey: "dunning/acme/inv-42/" + kind + "/email",
					Kind:           kind,
					Channel:        "email",
					To:             "jane.doe@example.com",
					Locale:         locale,
					Subject:        r.Subject,
					Body:           r.Text,
					HTML:           r.HTML,
					WorkflowID:     "dunning/acme/inv-42",
					Step:           kind + "/email",
				}
				receipt, err := n.Send(ctx, m)
				ex := proxy.last(t)
				if err != nil {
					t.Fatalf("Send: %v (Prism: HTTP %d, violations %s)", err, ex.Status, ex.Violations)
				}
				if ex.Status != http.StatusAccepted || ex.Violations != "" {
					t.Errorf("Prism: HTTP %d, violations %s; want 202 and none", ex.Status, ex.Violations)
				}
				if receipt.Provider != "sendgrid" {
					t.Errorf("receipt = %+v", receipt)
				}
				if ex.Method != http.MethodPost || ex.Path != "/v3/mail/send" {
					t.Errorf("request = %s %s, want POST /v3/mail/send", ex.Method, ex.Path)
				}

				var body mailSend
				if err := json.Unmarshal(ex.Body, &body); err != nil {
					t.Fatalf("decode request body: %v", err)
				}
				if len(body.Personalizations) != 1 || len(body.Personalizations[0].To) != 1 ||
					body.Personalizations[0].To[0].Email != m.To {
					t.Fatalf("personalizations = %+v, want one to the recipient", body.Personalizations)
				}
				wantArgs := map[string]string{"workflow_id": m.WorkflowID, "step": m.Step, "idempotency_key": m.IdempotencyKey}
				if got := body.Personalizations[0].CustomArgs; !reflect.DeepEqual(got, wantArgs) {
					t.Errorf("custom_args = %v, want %v", got, wantArgs)
				}
				if want := []string{"dunning", kind}; !reflect.DeepEqual(body.Categories, want) {
					t.Errorf("categories = %q, want %q", body.Categories, want)
				}
				if body.Subject != r.Subject || body.From.Email != "billing@example.com" ||
					body.ReplyTo == nil || body.ReplyTo.Email != "help@example.com" {
					t.Errorf("subject %q, from %+v, reply_to %+v", body.Subject, body.From, body.ReplyTo)
				}
				wantTypes := []string{"text/plain"}
				if r.HTML != "" {
					wantTypes = append(wantTypes, "text/html")
				}
				var types []string
				for _, c := range body.Content {
					types = append(types, c.Type)
				}
				if !reflect.DeepEqual(types, wantTypes) {
					t.Errorf("content types = %q, want %q", types, wantTypes)
				}
			})
		}
	}

	t.Run("refused", func(t *testing.T) {
		valid := notify.Message{
			IdempotencyKey: "dunning/acme/inv-42/refused/email", Kind: "payment_failed", Channel: "email",
			To: "jane.doe@example.com", Locale: "en", Subject: "Subject", Body: "Body",
			WorkflowID: "dunning/acme/inv-42", Step: "refused/email",
		}
		tests := []struct {
			name       string
			edit       func(*notify.Message)
			tamper     tamper
			wantStatus int
		}{
			{"invalid recipient address", func(m *notify.Message) { m.To = "jane.doe-at-example.com" }, nil, http.StatusBadRequest},
			{"empty subject", func(m *notify.Message) { m.Subject = "" }, nil, http.StatusBadRequest},
			{"credentials refused", func(*notify.Message) {}, withoutCredentials, http.StatusUnauthorized},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				proxy.setTamper(tt.tamper)
				defer proxy.setTamper(nil)
				m := valid
				tt.edit(&m)
				_, err := n.Send(ctx, m)
				ex := proxy.last(t)
				if ex.Status != tt.wantStatus {
					t.Errorf("Prism: HTTP %d (violations %s), want %d", ex.Status, ex.Violations, tt.wantStatus)
				}
				if !errors.Is(err, notify.ErrRejected) {
					t.Errorf("Send: %v, want notify.ErrRejected", err)
				}
			})
		}
	})
}

func TestTwilioConformance(t *testing.T) {
	t.Parallel()
	spec := specPath(t, "twilio-api-v2010.json")
	prism := startPrism(t, prismBinary(t), spec)
	proxy := newRecorder(t, prism, "")

	const callback = "https://hooks.example.com/twilio/status"
	newNotifier := func(t *testing.T, cfg twilio.Config) *twilio.Notifier {
		t.Helper()
		cfg.AccountSID, cfg.AuthToken, cfg.BaseURL, cfg.Logger = accountSID, authToken, proxy.URL, discard()
		n, err := twilio.New(cfg)
		if err != nil {
			t.Fatalf("twilio.New: %v", err)
		}
		return n
	}
	viaService := newNotifier(t, twilio.Config{MessagingServiceSID: serviceSID, StatusCallbackURL: callback})
	viaNumber := newNotifier(t, twilio.Config{From: "+15557654321"})
	messagePath := "/2010-04-01/Accounts/" + accountSID + "/Messages.json"
	sidPattern := regexp.MustCompile(`^SM[0-9a-fA-F]{32}$`)
	ctx := context.Background()

	send := func(t *testing.T, n *twilio.Notifier, m notify.Message, wantForm url.Values) {
		t.Helper()
		receipt, err := n.Send(ctx, m)
		ex := proxy.last(t)
		if err != nil {
			t.Fatalf("Send: %v (Prism: HTTP %d, violations %s)", err, ex.Status, ex.Violations)
		}
		if ex.Status != http.StatusCreated || ex.Violations != "" {
			t.Errorf("Prism: HTTP %d, violations %s; want 201 and none", ex.Status, ex.Violations)
		}
		if receipt.Provider != "twilio" || !sidPattern.MatchString(receipt.Ref) {
			t.Errorf("receipt = %+v, want provider twilio and a message SID", receipt)
		}
		if ex.Method != http.MethodPost || ex.Path != messagePath {
			t.Errorf("request = %s %s, want POST %s", ex.Method, ex.Path, messagePath)
		}
		if user, _, ok := (&http.Request{Header: ex.Header}).BasicAuth(); !ok || user != accountSID {
			t.Errorf("basic auth user %q (present %v), want the account SID", user, ok)
		}
		form, err := url.ParseQuery(string(ex.Body))
		if err != nil {
			t.Fatalf("parse form %q: %v", ex.Body, err)
		}
		if !reflect.DeepEqual(form, wantForm) {
			t.Errorf("form = %v, want %v", form, wantForm)
		}
	}

	for _, kind := range notify.Kinds() {
		for _, locale := range notify.Locales() {
			t.Run(kind+"/"+locale, func(t *testing.T) {
				r, err := notify.Render(kind, "sms", locale, sampleData())
				if err != nil {
					t.Fatalf("Render: %v", err)
				}
				m := notify.Message{
					IdempotencyKey: "dunning/acme/inv-42/" + kind + "/sms", Kind: kind, Channel: "sms",
					To: "+15551234567", Locale: locale, Body: r.Text,
					WorkflowID: "dunning/acme/inv-42", Step: kind + "/sms",
				}
				send(t, viaService, m, url.Values{
					"To": {m.To}, "Body": {r.Text}, "MessagingServiceSid": {serviceSID}, "StatusCallback": {callback},
				})
			})
		}
	}

	valid := notify.Message{
		IdempotencyKey: "dunning/acme/inv-42/payment_failed/sms", Kind: "payment_failed", Channel: "sms",
		To: "+15551234567", Locale: "en", Body: "Your payment did not go through.",
		WorkflowID: "dunning/acme/inv-42", Step: "payment_failed/sms",
	}
	t.Run("from number", func(t *testing.T) {
		send(t, viaNumber, valid, url.Values{"To": {valid.To}, "Body": {valid.Body}, "From": {"+15557654321"}})
	})

	t.Run("refused", func(t *testing.T) {
		tests := []struct {
			name       string
			tamper     tamper
			wantStatus int
		}{
			{"credentials refused", withoutCredentials, http.StatusUnauthorized},
			{"missing To", withoutFormField("To"), http.StatusUnprocessableEntity},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				proxy.setTamper(tt.tamper)
				defer proxy.setTamper(nil)
				_, err := viaService.Send(ctx, valid)
				ex := proxy.last(t)
				if ex.Status != tt.wantStatus {
					t.Errorf("Prism: HTTP %d (violations %s), want %d", ex.Status, ex.Violations, tt.wantStatus)
				}
				if !errors.Is(err, notify.ErrRejected) {
					t.Errorf("Send: %v, want notify.ErrRejected", err)
				}
			})
		}
	})
}

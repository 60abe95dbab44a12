package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/devserver"
	"github.com/dunningco/dunning/gateway/stripe/stripetest"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/notify/prismtest"
	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/starter/intake"
	"github.com/dunningco/dunning/worker"
	"github.com/dunningco/dunning/workflows"
)

// Provider settings of the stack; the mocks accept any well-formed values.
const (
	provTenant        = "globex"
	provStripeKey     = "sk_test_123"
	provTwilioSID     = "AC00112233445566778899aabbccddeeff"
	provTwilioToken   = "c0ffee0ddba11f00dcafe5eedfacade5"
	provTwilioFrom    = "+15005550006"
	provEmailFrom     = "billing@example.com"
	provCardUpdateURL = "http://127.0.0.1/update-card"
	provCardSecret    = "card-link-secret-for-the-provider-tests-0123456789"
	// provOutage is how long a provider stays down after it refused the
	// first request: shorter than the activities' first retry interval
	// (5 s), so the step costs exactly one retry.
	provOutage = 2500 * time.Millisecond
)

// providerStack is the platform with the real provider clients: Stripe
// against stripe-mock, SendGrid and Twilio against Prism serving their
// OpenAPI descriptions.
type providerStack struct {
	api      *httptest.Server
	temporal client.Client
	store    *ledger.Store
	stripe   *stripetest.Mock
	sendgrid *prismtest.Mock
	twilio   *prismtest.Mock
	apiKey   string // for provTenant
}

// smsAnytime is fast() without the SMS window, so texts go out at any hour
// the test runs.
func smsAnytime() policy.Policy {
	p := fast()
	p.Name = "it-fast-sms-anytime"
	p.SMSWindow = policy.Window{}
	return p
}

// startWithProviders starts the mocks first (they skip the test when a tool
// or the vendor specs are missing), then the stack, with the providers built
// the way the worker binary builds them.
func startWithProviders(t *testing.T) *providerStack {
	t.Helper()
	began := time.Now()
	s := &providerStack{
		stripe:   stripetest.StartMock(t),
		sendgrid: prismtest.Start(t, "sendgrid-v3.json"),
		twilio:   prismtest.Start(t, "twilio-api-v2010.json"),
	}
	t.Logf("stripe-mock and Prism ready after %s", time.Since(began).Round(10*time.Millisecond))

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("INTEGRATION_VERBOSE") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv, err := devserver.Start(devserver.Options{SearchAttributes: workflows.SearchAttributeTypes(), LogLevel: "error"})
	if err != nil {
		t.Fatalf("start Temporal: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	c, err := client.Dial(client.Options{HostPort: srv.HostPort(), Namespace: srv.Namespace(), Logger: tlog.NewStructuredLogger(logger)})
	if err != nil {
		t.Fatalf("dial Temporal: %v", err)
	}
	t.Cleanup(c.Close)
	s.temporal = c
	s.store = ledgertest.NewStore(t)

	billingSystem := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Idempotency-Key") == "" {
			http.Error(w, "missing Idempotency-Key", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(billingSystem.Close)

	deps, err := worker.Build(s.store, worker.Config{TaskQueue: workflows.TaskQueue, BillingCallbackURL: billingSystem.URL}, worker.Providers{
		StripeAPIKey:     provStripeKey,
		StripeBaseURL:    s.stripe.URL(),
		SendGridAPIKey:   "SG.test",
		SendGridBaseURL:  s.sendgrid.URL(),
		EmailFrom:        provEmailFrom,
		TwilioAccountSID: provTwilioSID,
		TwilioAuthToken:  provTwilioToken,
		TwilioFrom:       provTwilioFrom,
		TwilioBaseURL:    s.twilio.URL(),
		CardUpdateURL:    provCardUpdateURL,
		CardLinkSecret:   provCardSecret,
		CardLinkTTL:      24 * time.Hour,
	}, logger)
	if err != nil {
		t.Fatalf("build providers: %v", err)
	}
	w := sdkworker.New(c, workflows.TaskQueue, sdkworker.Options{})
	worker.Register(w, deps)
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(w.Stop)

	catalog, err := policy.NewCatalog(policy.Default(), fast(), smsAnytime())
	if err != nil {
		t.Fatal(err)
	}
	keys := newKeyStore(t, s.store)
	s.apiKey = issueKey(t, keys, provTenant)
	s.api = httptest.NewServer(intake.NewHandler(starter.NewClient(c, starter.Options{Policies: catalog}), logger, intake.WithPolicies(catalog),
		intake.WithAuthenticator(keys)))
	t.Cleanup(s.api.Close)
	t.Logf("stack ready after %s", time.Since(began).Round(10*time.Millisecond))
	return s
}

// TestProvidersEndToEnd runs dunning through the real Stripe, SendGrid and
// Twilio clients against the providers' mocks, and through provider outages.
// The runs go one after another: an outage must hit only the run under test.
func TestProvidersEndToEnd(t *testing.T) {
	s := startWithProviders(t)
	t.Run("recovers through Stripe and writes in French", s.testRecoversInFrench)
	t.Run("SendGrid outage costs one retry and one email", s.testSendGridOutage)
	t.Run("Stripe outage retries the pay call with the same key", s.testStripeOutage)
	t.Run("texts go through Twilio", s.testTextsThroughTwilio)
}

// declineFor is a decline for a Stripe invoice in fr-FR: stripe-mock's
// invoice fixture is for 10.00 USD.
func declineFor(invoice, gatewayName, paymentMethod, policyName string) string {
	return fmt.Sprintf(`{"tenant":%q,"invoice_id":%q,
		"customer":{"id":"cus-%s","email":"camille.martin@example.com","phone":"+33612345678","locale":"fr-FR","time_zone":"Europe/Paris"},
		"amount":"10.00","currency":"USD","payment_method":%q,"decline":{"gateway":%q,"code":"card_declined"},"policy":%q}`,
		provTenant, invoice, invoice, paymentMethod, gatewayName, policyName)
}

func (s *providerStack) startRun(t *testing.T, body string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.api.URL+"/v1/declines", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/declines: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		WorkflowID string `json:"workflow_id"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(raw, &out) != nil || out.WorkflowID == "" {
		t.Fatalf("start: HTTP %d %s", resp.StatusCode, raw)
	}
	return out.WorkflowID
}

func (s *providerStack) result(t *testing.T, workflowID string) workflows.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	var res workflows.Result
	if err := s.temporal.GetWorkflow(ctx, workflowID, "").Get(ctx, &res); err != nil {
		t.Fatalf("run %s: %v", workflowID, err)
	}
	return res
}

func (s *providerStack) messages(t *testing.T, workflowID string) []ledger.Message {
	t.Helper()
	msgs, err := s.store.Messages(context.Background(), workflowID)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// checkOneSucceededAttempt asserts the ledger holds exactly one attempt, the
// first, succeeded at Stripe under the run's first key.
func (s *providerStack) checkOneSucceededAttempt(t *testing.T, workflowID, invoice string) {
	t.Helper()
	attempts, err := s.store.Attempts(context.Background(), workflowID)
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != 1 {
		t.Fatalf("ledger attempts = %+v, want exactly one", attempts)
	}
	a := attempts[0]
	if a.IdempotencyKey != workflowID+"/attempt-1" || a.Status != "succeeded" || a.Gateway != "stripe" || a.GatewayRef != invoice {
		t.Errorf("ledger attempt = key %s, status %s, gateway %s, ref %s; want %s/attempt-1 succeeded at stripe for %s",
			a.IdempotencyKey, a.Status, a.Gateway, a.GatewayRef, workflowID, invoice)
	}
}

// checkPays asserts every pay call for the invoice carried key and the API
// key, and that stripe-mock paid the invoice exactly once.
func (s *providerStack) checkPays(t *testing.T, invoice, key string) (refused int) {
	t.Helper()
	_, pays := s.stripe.InvoiceRequests(invoice)
	for _, p := range pays {
		if got := p.IdempotencyKey(); got != key {
			t.Errorf("pay call with Idempotency-Key %q, want %q", got, key)
		}
		if got := p.Header.Get("Authorization"); got != "Bearer "+provStripeKey {
			t.Errorf("pay call does not carry the configured API key")
		}
		if p.Form.Get("off_session") != "true" {
			t.Errorf("pay call form = %v, want off_session=true", p.Form)
		}
		if p.Refused {
			refused++
		}
	}
	if n := s.stripe.Pays(invoice); n != 1 || !s.stripe.Paid(invoice) {
		t.Errorf("stripe-mock paid %s %d times (paid: %v), want exactly once", invoice, n, s.stripe.Paid(invoice))
	}
	return refused
}

// mailSend is the part of a Mail Send request the tests read.
type mailSend struct {
	Personalizations []struct {
		To []struct {
			Email string `json:"email"`
		} `json:"to"`
		CustomArgs map[string]string `json:"custom_args"`
	} `json:"personalizations"`
	From    struct{ Email string } `json:"from"`
	Subject string                 `json:"subject"`
	Content []struct {
		Type, Value string
	} `json:"content"`
}

func (m mailSend) arg(name string) string {
	if len(m.Personalizations) == 0 {
		return ""
	}
	return m.Personalizations[0].CustomArgs[name]
}

func (m mailSend) text() string {
	for _, c := range m.Content {
		if c.Type == "text/plain" {
			return c.Value
		}
	}
	return ""
}

// sentMail is one Mail Send request SendGrid's mock received.
type sentMail struct {
	prismtest.Request
	mail mailSend
}

// mails returns the Mail Send requests for the run, refused ones included.
func (s *providerStack) mails(t *testing.T, workflowID string) []sentMail {
	t.Helper()
	var out []sentMail
	for _, r := range s.sendgrid.Requests() {
		var m mailSend
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatalf("SendGrid request %s %s: body is not JSON: %v", r.Method, r.Path, err)
		}
		if m.arg("workflow_id") == workflowID {
			out = append(out, sentMail{Request: r, mail: m})
		}
	}
	return out
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var cardLinkPattern = regexp.MustCompile(regexp.QuoteMeta(provCardUpdateURL) + `\?token=[A-Za-z0-9_.-]+`)

func (s *providerStack) testRecoversInFrench(t *testing.T) {
	began := time.Now()
	const invoice = "in_open_prov_fr_recover"
	wf := s.startRun(t, declineFor(invoice, "stripe", "pm_card_visa", "it-fast"))
	if wf != workflows.WorkflowID(provTenant, invoice) {
		t.Fatalf("workflow ID = %s", wf)
	}
	res := s.result(t, wf)
	if res.Outcome != policy.Recovered || res.Attempts != 1 {
		t.Fatalf("result = %+v, want recovered on attempt 1", res)
	}
	s.checkOneSucceededAttempt(t, wf, invoice)
	if refused := s.checkPays(t, invoice, wf+"/attempt-1"); refused != 0 {
		t.Errorf("%d pay calls refused without an outage", refused)
	}

	// The ledger: both emails sent through SendGrid, in French.
	msgs := s.messages(t, wf)
	var kinds []string
	byKey := map[string]ledger.Message{}
	for _, m := range msgs {
		kinds = append(kinds, m.Kind+"/"+m.Channel)
		byKey[m.IdempotencyKey] = m
		if m.Status != "sent" || m.Provider != "sendgrid" || m.Locale != "fr-FR" || m.Recipient != "camille.martin@example.com" {
			t.Errorf("ledger message %s: status %s, provider %s, locale %s, recipient %s; want sent by sendgrid in fr-FR to the customer",
				m.IdempotencyKey, m.Status, m.Provider, m.Locale, m.Recipient)
		}
	}
	if strings.Join(kinds, ",") != "payment_failed/email,payment_recovered/email" {
		t.Fatalf("ledger messages = %v, want payment_failed and payment_recovered emails", kinds)
	}

	// SendGrid's mock: one conforming request per message, as recorded.
	wantSubjects := map[string]string{
		"payment_failed":    "Échec du paiement de la facture " + invoice,
		"payment_recovered": "Paiement reçu pour la facture " + invoice + ", merci",
	}
	mails := s.mails(t, wf)
	if len(mails) != 2 {
		t.Fatalf("SendGrid received %d requests for the run, want 2", len(mails))
	}
	for _, sm := range mails {
		key := sm.mail.arg("idempotency_key")
		row, ok := byKey[key]
		if !ok {
			t.Errorf("SendGrid request for %q, which the ledger does not hold", key)
			continue
		}
		if sm.Refused || sm.Status != http.StatusAccepted || sm.Violations != "" {
			t.Errorf("%s: Prism answered HTTP %d, violations %q; want 202 and none", row.Kind, sm.Status, sm.Violations)
		}
		if sm.Method != http.MethodPost || sm.Path != "/v3/mail/send" {
			t.Errorf("%s: request %s %s, want POST /v3/mail/send", row.Kind, sm.Method, sm.Path)
		}
		if got := sm.mail.Subject; got != wantSubjects[row.Kind] || got != row.Subject {
			t.Errorf("%s: subject %q (ledger %q), want %q", row.Kind, got, row.Subject, wantSubjects[row.Kind])
		}
		if sm.mail.text() != row.Body || !strings.Contains(row.Body, "10,00") {
			t.Errorf("%s: text part differs from the ledger's body or lacks the French amount 10,00:\n%s", row.Kind, sm.mail.text())
		}
		if sm.mail.From.Email != provEmailFrom || len(sm.mail.Personalizations) != 1 ||
			len(sm.mail.Personalizations[0].To) != 1 || sm.mail.Personalizations[0].To[0].Email != row.Recipient {
			t.Errorf("%s: from %s, personalizations %+v", row.Kind, sm.mail.From.Email, sm.mail.Personalizations)
		}

		link := cardLinkPattern.FindString(sm.mail.text())
		if row.Kind == "payment_recovered" {
			if link != "" || strings.Contains(sm.mail.text(), provCardUpdateURL) {
				t.Errorf("payment_recovered carries a card-update link: %s", link)
			}
			continue
		}
		if link == "" {
			t.Fatalf("payment_failed has no card-update link:\n%s", sm.mail.text())
		}
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		signer := cardlink.Signer{Secret: []byte(provCardSecret), BaseURL: provCardUpdateURL, TTL: 24 * time.Hour}
		claims, err := signer.Verify(u.Query().Get("token"), time.Now())
		if err != nil || claims.RunID != wf || claims.CustomerID != "cus-"+invoice {
			t.Errorf("card-update link %s: claims %+v, %v; want run %s, customer cus-%s", link, claims, err, wf, invoice)
		}
	}
	t.Logf("recovered in %s", time.Since(began).Round(10*time.Millisecond))
}

func (s *providerStack) testSendGridOutage(t *testing.T) {
	began := time.Now()
	const invoice = "in_open_prov_mail_outage"
	wf := workflows.WorkflowID(provTenant, invoice)
	// SendGrid is down when the run starts, so its first message fails.
	s.sendgrid.SetDown(true)
	defer s.sendgrid.SetDown(false)
	s.startRun(t, declineFor(invoice, "stripe", "pm_card_visa", "it-fast"))
	var key string
	eventually(t, 15*time.Second, "SendGrid refused the first message", func() bool {
		for _, sm := range s.mails(t, wf) {
			if sm.Refused {
				key = sm.mail.arg("idempotency_key")
				return true
			}
		}
		return false
	})
	time.Sleep(provOutage)
	s.sendgrid.SetDown(false)
	t.Logf("SendGrid down for %s", time.Since(began).Round(10*time.Millisecond))

	res := s.result(t, wf)
	if res.Outcome != policy.Recovered || res.Attempts != 1 {
		t.Fatalf("result = %+v, want recovered on attempt 1", res)
	}
	var refused, delivered int
	for _, sm := range s.mails(t, wf) {
		if sm.mail.arg("idempotency_key") != key {
			continue
		}
		switch {
		case sm.Refused:
			refused++
		case sm.Status == http.StatusAccepted && sm.Violations == "":
			delivered++
		default:
			t.Errorf("%s: Prism answered HTTP %d, violations %q", key, sm.Status, sm.Violations)
		}
	}
	if refused < 1 || delivered != 1 {
		t.Errorf("SendGrid saw %s refused %d times and accepted it %d times; want at least 1 refusal, then exactly 1 send",
			key, refused, delivered)
	}
	var rows []ledger.Message
	for _, m := range s.messages(t, wf) {
		if m.IdempotencyKey == key {
			rows = append(rows, m)
		}
	}
	if len(rows) != 1 || rows[0].Kind != "payment_failed" || rows[0].Status != "sent" || rows[0].Provider != "sendgrid" {
		t.Fatalf("ledger rows for %s = %+v, want one payment_failed row sent by sendgrid", key, rows)
	}
	s.checkOneSucceededAttempt(t, wf, invoice)
	t.Logf("recovered in %s after %d refused send(s)", time.Since(began).Round(10*time.Millisecond), refused)
}

func (s *providerStack) testStripeOutage(t *testing.T) {
	began := time.Now()
	const invoice = "in_open_prov_pay_outage"
	wf := workflows.WorkflowID(provTenant, invoice)
	key := wf + "/attempt-1"
	// Stripe answers 503 to pay calls: the invoice is read, the pay call
	// fails, and the activity retries the whole charge with the same key.
	s.stripe.SetPaysDown(true)
	defer s.stripe.SetPaysDown(false)
	s.startRun(t, declineFor(invoice, "stripe", "pm_card_visa", "it-fast"))
	var outageFrom time.Time
	eventually(t, 20*time.Second, "Stripe refused the pay call", func() bool {
		_, pays := s.stripe.InvoiceRequests(invoice)
		if len(pays) > 0 {
			outageFrom = time.Now()
		}
		return len(pays) > 0
	})
	time.Sleep(provOutage)
	s.stripe.SetPaysDown(false)
	t.Logf("Stripe pay calls down for %s after the first one", time.Since(outageFrom).Round(10*time.Millisecond))

	res := s.result(t, wf)
	if res.Outcome != policy.Recovered || res.Attempts != 1 {
		t.Fatalf("result = %+v, want recovered on attempt 1", res)
	}
	reads, pays := s.stripe.InvoiceRequests(invoice)
	refused := s.checkPays(t, invoice, key)
	if refused < 1 || len(pays) < 2 || len(pays)-refused != 1 {
		t.Errorf("pay calls: %d, %d refused; want at least one refused, then exactly one that reached stripe-mock", len(pays), refused)
	}
	if len(reads) < 2 || slices.ContainsFunc(reads, func(r stripetest.Request) bool { return r.Refused || r.Status != http.StatusOK }) {
		t.Errorf("invoice reads: %d, want one per charge try, all answered by stripe-mock", len(reads))
	}
	s.checkOneSucceededAttempt(t, wf, invoice)
	// The emails around the charge went out normally.
	var kinds []string
	for _, m := range s.messages(t, wf) {
		if m.Status != "sent" {
			t.Errorf("ledger message %s: %s", m.IdempotencyKey, m.Status)
		}
		kinds = append(kinds, m.Kind)
	}
	if strings.Join(kinds, ",") != "payment_failed,payment_recovered" {
		t.Errorf("ledger messages = %v", kinds)
	}
	t.Logf("recovered in %s after %d refused pay call(s)", time.Since(began).Round(10*time.Millisecond), refused)
}

var messageSIDPattern = regexp.MustCompile(`^SM[0-9a-fA-F]{32}$`)

func (s *providerStack) testTextsThroughTwilio(t *testing.T) {
	began := time.Now()
	// The simulator declines every retry, so the run pauses and suspends
	// service, which the customer is also told by text.
	const invoice = "inv-prov-sms"
	wf := s.startRun(t, declineFor(invoice, "simulator", "sim:decline;code=insufficient_funds", "it-fast-sms-anytime"))
	res := s.result(t, wf)
	if res.Outcome != policy.Exhausted || res.Attempts != 3 {
		t.Fatalf("result = %+v, want exhausted after 3 attempts", res)
	}
	var texts []ledger.Message
	for _, m := range s.messages(t, wf) {
		if m.Status != "sent" {
			t.Errorf("ledger message %s: status %s (%s)", m.IdempotencyKey, m.Status, m.Detail)
		}
		if m.Channel == "sms" {
			texts = append(texts, m)
		}
	}
	var kinds []string
	for _, m := range texts {
		kinds = append(kinds, m.Kind)
		if m.Provider != "twilio" || !messageSIDPattern.MatchString(m.ProviderRef) || m.Recipient != "+33612345678" {
			t.Errorf("ledger text %s: provider %s, ref %s, recipient %s; want twilio with a message SID",
				m.IdempotencyKey, m.Provider, m.ProviderRef, m.Recipient)
		}
	}
	if strings.Join(kinds, ",") != "service_paused,service_suspended" {
		t.Fatalf("ledger texts = %v, want service_paused and service_suspended", kinds)
	}

	messagesPath := "/2010-04-01/Accounts/" + provTwilioSID + "/Messages.json"
	var bodies []string
	for _, r := range s.twilio.Requests() {
		form, err := url.ParseQuery(string(r.Body))
		if err != nil || form.Get("To") != "+33612345678" {
			continue
		}
		if r.Refused || r.Status != http.StatusCreated || r.Violations != "" {
			t.Errorf("Twilio answered HTTP %d, violations %q; want 201 and none", r.Status, r.Violations)
		}
		if r.Method != http.MethodPost || r.Path != messagesPath || form.Get("From") != provTwilioFrom {
			t.Errorf("request %s %s from %q, want POST %s from %s", r.Method, r.Path, form.Get("From"), messagesPath, provTwilioFrom)
		}
		if user, _, ok := (&http.Request{Header: r.Header}).BasicAuth(); !ok || user != provTwilioSID {
			t.Errorf("basic auth user %q (present %v), want the account SID", user, ok)
		}
		bodies = append(bodies, form.Get("Body"))
	}
	if len(bodies) != len(texts) {
		t.Fatalf("Twilio received %d texts, the ledger holds %d", len(bodies), len(texts))
	}
	for i, m := range texts {
		if bodies[i] != m.Body {
			t.Errorf("text %d: Twilio got %q, the ledger holds %q", i, bodies[i], m.Body)
		}
	}
	t.Logf("exhausted in %s with %d texts", time.Since(began).Round(10*time.Millisecond), len(texts))
}

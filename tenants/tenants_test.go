package tenants_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/tenants"
)

const (
	secret       = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	stripeSecret = "whsec_1234567890abcdefABCDEF"
)

const yamlFile = `# ops-managed
tenants:
  acme:
    event_url: https://billing.acme.example/dunning/events
    signing_secret: ` + secret + `
    stripe_webhook_secret: ` + stripeSecret + `
  internal:
    event_url: http://billing.internal:8080/events
    signing_secret: ` + secret + `
    allow_private_network: true
  quiet:
    stripe_webhook_secret: ` + stripeSecret + `
`

func write(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadYAMLAndJSON(t *testing.T) {
	jsonFile := fmt.Sprintf(`{"tenants": {
		"acme": {"event_url": "https://billing.acme.example/dunning/events", "signing_secret": %q, "stripe_webhook_secret": %q},
		"internal": {"event_url": "http://billing.internal:8080/events", "signing_secret": %q, "allow_private_network": true},
		"quiet": {"stripe_webhook_secret": %q}
	}}`, secret, stripeSecret, secret, stripeSecret)
	for name, content := range map[string]string{"tenants.yaml": yamlFile, "tenants.yml": yamlFile, "tenants.json": jsonFile} {
		t.Run(name, func(t *testing.T) {
			c, err := tenants.Load(write(t, name, content))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := c.IDs(); strings.Join(got, ",") != "acme,internal,quiet" {
				t.Errorf("IDs = %v", got)
			}
			ep, ok := c.EventEndpoint("acme")
			if want := (billing.Endpoint{URL: "https://billing.acme.example/dunning/events", Secret: secret}); !ok || ep != want {
				t.Errorf("acme endpoint = %+v, %v", ep, ok)
			}
			if ep, ok := c.EventEndpoint("internal"); !ok || !ep.AllowPrivateNetwork {
				t.Errorf("internal endpoint = %+v, %v; want private networks allowed", ep, ok)
			}
			if _, ok := c.EventEndpoint("quiet"); ok {
				t.Error("a tenant without event_url has an endpoint")
			}
			if _, ok := c.EventEndpoint("unknown"); ok {
				t.Error("an unknown tenant has an endpoint")
			}
			if q, ok := c.Tenant("quiet"); !ok || string(q.StripeWebhookSecret) != stripeSecret {
				t.Errorf("quiet = %+v, %v; want its Stripe secret", q, ok)
			}
			if c.IsFallback() {
				t.Error("a file is not the fallback")
			}
		})
	}
}

func TestLoadRefuses(t *testing.T) {
	tenant := func(body string) string { return "tenants:\n  acme:\n" + body }
	tests := []struct {
		name, file, content, want string
	}{
		{"http without private network", "t.yaml", tenant("    event_url: http://billing.acme.example/events\n    signing_secret: " + secret + "\n"), "must use https"},
		{"loopback literal", "t.yaml", tenant("    event_url: https://127.0.0.1/events\n    signing_secret: " + secret + "\n"), "loopback"},
		{"private literal", "t.yaml", tenant("    event_url: https://192.168.1.10/events\n    signing_secret: " + secret + "\n"), "RFC 1918"},
		{"metadata even when private allowed", "t.yaml", tenant("    event_url: http://169.254.169.254/latest\n    signing_secret: " + secret + "\n    allow_private_network: true\n"), "link-local"},
		{"relative URL", "t.yaml", tenant("    event_url: /events\n    signing_secret: " + secret + "\n"), "absolute"},
		{"credentials in URL", "t.yaml", tenant("    event_url: https://u:p@billing.acme.example/\n    signing_secret: " + secret + "\n"), "credentials"},
		{"no secret", "t.yaml", tenant("    event_url: https://billing.acme.example/events\n"), "signing_secret is required"},
		{"secret without prefix", "t.yaml", tenant("    event_url: https://billing.acme.example/events\n    signing_secret: MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"), `must start with "whsec_"`},
		{"secret not base64", "t.yaml", tenant("    event_url: https://billing.acme.example/events\n    signing_secret: whsec_not-base64!\n"), "standard base64"},
		{"secret too short", "t.yaml", tenant("    event_url: https://billing.acme.example/events\n    signing_secret: whsec_c2hvcnQ=\n"), "decodes to 5 bytes"},
		{"secret without URL", "t.yaml", tenant("    signing_secret: " + secret + "\n"), "without event_url"},
		{"bad Stripe secret", "t.yaml", tenant("    stripe_webhook_secret: sk_live_oops\n"), "stripe_webhook_secret"},
		{"misspelt field", "t.yaml", tenant("    allow_private_networks: true\n"), "allow_private_networks"},
		{"unknown top-level field", "t.yaml", "tenant:\n  acme: {}\n", "tenant"},
		{"bad tenant ID", "t.yaml", "tenants:\n  \"ac me\": {}\n", "the ID must be"},
		{"empty file", "t.yaml", "", "empty"},
		{"JSON unknown field", "t.json", `{"tenants": {"acme": {"url": "https://x.example"}}}`, "unknown field"},
		{"JSON trailing data", "t.json", `{"tenants": {}} {}`, "after the top-level"},
		{"other extension", "t.toml", "", "not a .yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tenants.Load(write(t, tt.file, tt.content))
			if !errors.Is(err, tenants.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want ErrInvalid mentioning %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") || strings.Contains(err.Error(), "sk_live_oops") {
				t.Errorf("error %q repeats a secret", err)
			}
		})
	}
	if _, err := tenants.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("Load of a missing file: want an error")
	}
}

// A secret written under the wrong key must not end up in the error text.
func TestLoadErrorsDoNotEchoValues(t *testing.T) {
	_, err := tenants.Load(write(t, "t.yaml", "tenants:\n  acme:\n    allow_private_network: "+secret+"\n"))
	if err == nil || strings.Contains(err.Error(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") {
		t.Errorf("Load = %v, want an error without the value", err)
	}
}

func TestNewInCode(t *testing.T) {
	c, err := tenants.New(map[string]tenants.Tenant{
		"dev": {EventURL: "http://127.0.0.1:9000/events", SigningSecret: secret, AllowPrivateNetwork: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ep, ok := c.EventEndpoint("dev"); !ok || ep.URL != "http://127.0.0.1:9000/events" {
		t.Errorf("dev endpoint = %+v, %v", ep, ok)
	}
	if _, err := tenants.New(map[string]tenants.Tenant{"dev": {EventURL: "http://127.0.0.1:9000/events", SigningSecret: secret}}); err == nil {
		t.Error("New with a loopback URL and no allow_private_network: want an error")
	}
	var none *tenants.Config
	if _, ok := none.EventEndpoint("dev"); ok || none.IDs() != nil {
		t.Error("a nil Config configures something")
	}
}

func TestFallback(t *testing.T) {
	c, err := tenants.Fallback("https://billing.example.com/dunning", secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"acme", "globex"} {
		if ep, ok := c.EventEndpoint(tenant); !ok || ep.URL != "https://billing.example.com/dunning" || ep.AllowPrivateNetwork {
			t.Errorf("%s endpoint = %+v, %v; want the fallback, public only", tenant, ep, ok)
		}
	}
	if _, ok := c.EventEndpoint(""); ok {
		t.Error("an event without a tenant has an endpoint")
	}
	if !c.IsFallback() {
		t.Error("IsFallback = false")
	}
	for _, tt := range []struct{ url, secret, want string }{
		{"http://billing.example.com/dunning", secret, "https"},
		{"https://10.0.0.7/dunning", secret, "RFC 1918"},
		{"https://billing.example.com/dunning", "whsec_prod", "decodes to"},
		{"https://billing.example.com/dunning", "", "signing_secret is required"},
		{"", secret, "empty"},
	} {
		if _, err := tenants.Fallback(tt.url, tt.secret); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Fallback(%q) = %v, want an error mentioning %q", tt.url, err, tt.want)
		}
	}
}

func TestSecretsStayOutOfLogs(t *testing.T) {
	tn := tenants.Tenant{EventURL: "https://billing.example.com/", SigningSecret: secret, StripeWebhookSecret: stripeSecret}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("tenant", "tenant", tn, "secret", tn.SigningSecret)
	for _, s := range []string{fmt.Sprintf("%v", tn), fmt.Sprintf("%+v", tn), logged.String()} {
		if strings.Contains(s, "whsec_") {
			t.Errorf("%q shows a secret", s)
		}
	}
}

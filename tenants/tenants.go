// Package tenants is the per-tenant configuration ops manage: where each
// tenant's billing events go, the secret they are signed with, whether
// that endpoint may be inside our own network, and the tenant's Stripe
// webhook endpoint secret.
//
// The configuration is a file (DUNNING_TENANTS_FILE, YAML or JSON), never
// a request: a URL the platform POSTs to must not be something a caller can
// name, or any caller could make the workers send requests into our own
// network (server-side request forgery). Dev mode and tests build a Config
// in code with New.
//
//	tenants:
//	  acme:
//	    event_url: https://billing.acme.example/dunning/events
//	    signing_secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
//	    allow_private_network: false      # the default
//	    stripe_webhook_secret: whsec_...  # optional
package tenants

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/egress"
)

// EnvFile names the environment variable holding the configuration file's
// path.
const EnvFile = "DUNNING_TENANTS_FILE"

// ErrInvalid marks a configuration that does not load.
var ErrInvalid = errors.New("invalid tenant configuration")

// Secret is a secret from the configuration. It prints as "[redacted]", so
// a Tenant logged or formatted by mistake does not leak it; use string(s)
// where the value is needed.
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// LogValue keeps the secret out of structured logs too.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Tenant is one tenant's configuration.
type Tenant struct {
	// EventURL receives the tenant's billing events (Standard Webhooks).
	// Empty means the tenant gets none: its events are recorded and marked
	// skipped.
	EventURL string `json:"event_url,omitempty" yaml:"event_url"`
	// SigningSecret signs the events: "whsec_" and the base64 of 24 to 64
	// random bytes. Required with EventURL.
	SigningSecret Secret `json:"signing_secret,omitempty" yaml:"signing_secret"`
	// AllowPrivateNetwork lets EventURL be (or resolve to) a loopback or
	// private address, and be plain http: for a billing system inside our
	// own network. Off by default.
	AllowPrivateNetwork bool `json:"allow_private_network,omitempty" yaml:"allow_private_network"`
	// StripeWebhookSecret is the signing secret of the tenant's Stripe
	// webhook endpoint ("whsec_..." as Stripe shows it), for the webhook
	// receiver that checks Stripe's events.
	StripeWebhookSecret Secret `json:"stripe_webhook_secret,omitempty" yaml:"stripe_webhook_secret"`
}

// Config is a validated tenant configuration. The zero value (and nil)
// configures no tenant.
type Config struct {
	tenants map[string]Tenant
	// fallback serves every tenant without an entry: the deprecated
	// BILLING_CALLBACK_URL of single-tenant deployments.
	fallback *Tenant
}

// file is the configuration file's shape.
type file struct {
	Tenants map[string]Tenant `json:"tenants" yaml:"tenants"`
}

// tenantID is the tenant ID the intake accepts (validation.MaxTenantLen,
// the same characters).
var tenantID = regexp.MustCompile(`^[A-Za-z0-9._:@-]{1,64}$`)

// New validates tenants and returns their configuration.
func New(tenants map[string]Tenant) (*Config, error) {
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(tenants)) {
		if err := validate(id, tenants[id]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return &Config{tenants: maps.Clone(tenants)}, nil
}

func validate(id string, t Tenant) error {
	if !tenantID.MatchString(id) {
		return fmt.Errorf("tenant %q: the ID must be 1-64 letters, digits and . _ : @ -", id)
	}
	var errs []error
	switch {
	case t.EventURL != "":
		if _, err := egress.CheckURL(t.EventURL, t.AllowPrivateNetwork); err != nil {
			errs = append(errs, fmt.Errorf("event_url: %w", err))
		}
		if t.SigningSecret == "" {
			errs = append(errs, errors.New("signing_secret is required with event_url"))
		} else if err := CheckSigningSecret(string(t.SigningSecret)); err != nil {
			errs = append(errs, fmt.Errorf("signing_secret: %w", err))
		}
	case t.SigningSecret != "":
		errs = append(errs, errors.New("signing_secret without event_url: set both, or neither"))
	}
	if s := string(t.StripeWebhookSecret); s != "" && (!strings.HasPrefix(s, "whsec_") || len(s) <= len("whsec_") || strings.ContainsFunc(s, isSpaceOrControl)) {
		errs = append(errs, errors.New(`stripe_webhook_secret: must be the endpoint's signing secret as Stripe shows it ("whsec_...")`))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("tenant %s: %w", id, joinLine(err))
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// joinLine puts a joined error on one line.
func joinLine(err error) error {
	return errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
}

// CheckSigningSecret checks a Standard Webhooks signing secret: "whsec_"
// followed by the standard base64 of 24 to 64 bytes. The error never
// repeats the secret.
func CheckSigningSecret(s string) error {
	raw, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return errors.New(`must start with "whsec_"`)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return errors.New(`must be "whsec_" followed by standard base64`)
	}
	if len(key) < 24 || len(key) > 64 {
		return fmt.Errorf("decodes to %d bytes; a signing secret is 24 to 64 random bytes", len(key))
	}
	return nil
}

// Parse reads a configuration file's contents: YAML (.yaml, .yml) or JSON
// (.json), by name's extension. Unknown fields are errors, so a misspelt
// allow_private_network cannot silently stay false or a misspelt key go
// unnoticed.
func Parse(name string, data []byte) (*Config, error) {
	var f file
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml":
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%s: %w: the file is empty", name, ErrInvalid)
			}
			return nil, fmt.Errorf("%s: %w: %s", name, ErrInvalid, redactYAML(err))
		}
	case ".json":
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("%s: %w: %s", name, ErrInvalid, strings.TrimPrefix(err.Error(), "json: "))
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %w: data after the top-level object", name, ErrInvalid)
		}
	default:
		return nil, fmt.Errorf("%s: %w: not a .yaml, .yml or .json file", name, ErrInvalid)
	}
	c, err := New(f.Tenants)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// yamlValue is a value yaml.v3 quotes in its errors: it could be a secret
// written under the wrong key.
var yamlValue = regexp.MustCompile("`[^`]*`")

func redactYAML(err error) string {
	return strings.ReplaceAll(yamlValue.ReplaceAllString(err.Error(), "a value"), "\n", "; ")
}

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tenant configuration: %w", err)
	}
	return Parse(path, data)
}

// Fallback is the configuration of a single-tenant deployment that still
// sets the deprecated BILLING_CALLBACK_URL and BILLING_CALLBACK_SECRET:
// every tenant's events go to url, signed with secret. The rules are a
// configured tenant's, private networks not allowed: url must be https and
// public, and secret a "whsec_" signing secret.
func Fallback(url, secret string) (*Config, error) {
	t := Tenant{EventURL: url, SigningSecret: Secret(secret)}
	if url == "" {
		return nil, fmt.Errorf("%w: BILLING_CALLBACK_URL is empty", ErrInvalid)
	}
	if err := validate("BILLING_CALLBACK_URL", t); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return &Config{fallback: &t}, nil
}

// Tenant returns the configuration of tenant id.
func (c *Config) Tenant(id string) (Tenant, bool) {
	if c == nil {
		return Tenant{}, false
	}
	if t, ok := c.tenants[id]; ok {
		return t, true
	}
	if c.fallback != nil && id != "" {
		return *c.fallback, true
	}
	return Tenant{}, false
}

// EventEndpoint returns where tenant's events go; false when nowhere.
func (c *Config) EventEndpoint(tenant string) (billing.Endpoint, bool) {
	t, ok := c.Tenant(tenant)
	if !ok || t.EventURL == "" {
		return billing.Endpoint{}, false
	}
	return billing.Endpoint{URL: t.EventURL, Secret: string(t.SigningSecret), AllowPrivateNetwork: t.AllowPrivateNetwork}, true
}

// IDs lists the configured tenants, sorted.
func (c *Config) IDs() []string {
	if c == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(c.tenants))
}

// IsFallback reports whether this is the deprecated single-tenant
// configuration from BILLING_CALLBACK_URL.
func (c *Config) IsFallback() bool { return c != nil && c.fallback != nil }

package worker

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/outbox"
	"github.com/dunningco/dunning/tenants"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

var quiet = slog.New(slog.DiscardHandler)

func TestNewDispatcher(t *testing.T) {
	store := ledgertest.NewStore(t)
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	if err := os.WriteFile(file, []byte("tenants:\n  acme:\n    event_url: https://billing.acme.example/events\n    signing_secret: "+testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := NewDispatcher(store, Config{TenantsFile: file}, quiet)
	if err != nil {
		t.Fatalf("NewDispatcher: %v", err)
	}
	if d.Ledger != store {
		t.Errorf("dispatcher ledger = %v, want the worker's store", d.Ledger)
	}
	if ep, ok := d.Endpoints.EventEndpoint("acme"); !ok || ep.URL != "https://billing.acme.example/events" || ep.Secret != testSecret {
		t.Errorf("acme endpoint = %v, %v; want the file's", ep, ok)
	}
	if d.Interval != outbox.DefaultInterval || d.Callback == nil {
		t.Errorf("interval = %s, callback %v", d.Interval, d.Callback)
	}
	if n, err := d.DispatchOnce(t.Context()); n != 0 || err != nil {
		t.Errorf("DispatchOnce on an empty outbox = %d, %v", n, err)
	}
}

func TestLoadTenants(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	for path, content := range map[string]string{
		good: "tenants:\n  acme:\n    event_url: https://billing.acme.example/events\n    signing_secret: " + testSecret + "\n",
		bad:  "tenants:\n  acme:\n    event_url: http://10.0.0.8/events\n    signing_secret: " + testSecret + "\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	inCode, err := tenants.New(map[string]tenants.Tenant{"dev": {EventURL: "http://127.0.0.1:9/", SigningSecret: testSecret, AllowPrivateNetwork: true}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		cfg        Config
		wantErr    string
		wantTenant string // a tenant that must have an endpoint
		wantNone   bool   // no configuration at all
	}{
		{name: "file", cfg: Config{TenantsFile: good}, wantTenant: "acme"},
		{name: "in code wins", cfg: Config{Tenants: inCode, TenantsFile: bad}, wantTenant: "dev"},
		{name: "invalid file", cfg: Config{TenantsFile: bad}, wantErr: "must use https"},
		{name: "missing file", cfg: Config{TenantsFile: filepath.Join(dir, "missing.yaml")}, wantErr: "no such file"},
		{name: "deprecated fallback", cfg: Config{BillingCallbackURL: "https://billing.example.com/dunning", BillingCallbackSecret: testSecret}, wantTenant: "any-tenant"},
		{name: "fallback to loopback", cfg: Config{BillingCallbackURL: "http://127.0.0.1:9000/hook", BillingCallbackSecret: testSecret}, wantErr: "BILLING_CALLBACK_URL"},
		{name: "fallback with an old secret", cfg: Config{BillingCallbackURL: "https://billing.example.com/dunning", BillingCallbackSecret: "whsec_prod"}, wantErr: "decodes to"},
		{name: "both", cfg: Config{TenantsFile: good, BillingCallbackURL: "https://billing.example.com/dunning"}, wantErr: "both set"},
		{name: "nothing", cfg: Config{}, wantNone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cfg.LoadTenants(quiet)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadTenants = %v, want an error mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantNone {
				if c != nil {
					t.Errorf("LoadTenants = %v, want none", c)
				}
				return
			}
			if _, ok := c.EventEndpoint(tt.wantTenant); !ok {
				t.Errorf("%s has no endpoint", tt.wantTenant)
			}
		})
	}
}

func TestConfigFromEnvReadsTenantsFile(t *testing.T) {
	t.Setenv(tenants.EnvFile, " /etc/dunning/tenants.yaml ")
	t.Setenv("BILLING_CALLBACK_URL", "")
	if got := ConfigFromEnv().TenantsFile; got != "/etc/dunning/tenants.yaml" {
		t.Errorf("TenantsFile = %q", got)
	}
}

package worker

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/dunningco/dunning/notify"
)

func gatewayNames(d Deps) []string {
	var names []string
	for _, g := range d.Gateways {
		names = append(names, g.Name())
	}
	return names
}

func TestBuildProviders(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	tests := []struct {
		name         string
		env          map[string]string
		wantGateways []string
		wantDryEmail bool
		wantDrySMS   bool
		wantLinks    bool
		wantErr      string
	}{
		{name: "no keys: simulator and dry-run", wantGateways: []string{"simulator"}, wantDryEmail: true, wantDrySMS: true},
		{name: "stripe and http gateways", env: map[string]string{
			"STRIPE_API_KEY": "sk_test_123", "HTTP_GATEWAY_URL": "https://billing.example.com/charge", "HTTP_GATEWAY_SECRET": "s3cret",
		}, wantGateways: []string{"simulator", "stripe", "http"}, wantDryEmail: true, wantDrySMS: true},
		{name: "real email and SMS", env: map[string]string{
			"SENDGRID_API_KEY": "SG.key", "EMAIL_FROM": "billing@example.com",
			"TWILIO_ACCOUNT_SID": "AC" + strings.Repeat("0", 32), "TWILIO_AUTH_TOKEN": "token123", "TWILIO_FROM": "+15005550006",
		}, wantGateways: []string{"simulator"}},
		{name: "card links", env: map[string]string{
			"CARD_UPDATE_URL": "https://billing.example.com/update-card", "CARD_LINK_SECRET": strings.Repeat("k", 32),
		}, wantGateways: []string{"simulator"}, wantDryEmail: true, wantDrySMS: true, wantLinks: true},
		{name: "short card link secret", env: map[string]string{"CARD_UPDATE_URL": "https://billing.example.com/u", "CARD_LINK_SECRET": "short"}, wantErr: "card-update links"},
		{name: "http gateway without secret", env: map[string]string{"HTTP_GATEWAY_URL": "https://billing.example.com/charge"}, wantErr: "http gateway"},
		{name: "sendgrid without sender", env: map[string]string{"SENDGRID_API_KEY": "SG.key"}, wantErr: "sendgrid"},
		{name: "twilio with a bad SID", env: map[string]string{"TWILIO_ACCOUNT_SID": "XY1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": "+15005550006"}, wantErr: "twilio"},
		{name: "bad template list", env: map[string]string{"SENDGRID_TEMPLATE_IDS": "payment_failed"}, wantErr: "SENDGRID_TEMPLATE_IDS"},
		{name: "bad link TTL", env: map[string]string{"CARD_LINK_TTL": "soon"}, wantErr: "CARD_LINK_TTL"},
		{name: "bad Visa limit", env: map[string]string{"VISA_MAX_REATTEMPTS": "0"}, wantErr: "VISA_MAX_REATTEMPTS"},
	}
	vars := []string{"STRIPE_API_KEY", "STRIPE_API_BASE", "HTTP_GATEWAY_URL", "HTTP_GATEWAY_SECRET", "SENDGRID_API_KEY", "SENDGRID_API_BASE",
		"EMAIL_FROM", "EMAIL_FROM_NAME", "EMAIL_REPLY_TO", "SENDGRID_CATEGORIES", "SENDGRID_TEMPLATE_IDS", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN",
		"TWILIO_MESSAGING_SERVICE_SID", "TWILIO_FROM", "TWILIO_STATUS_CALLBACK_URL", "TWILIO_API_BASE", "CARD_UPDATE_URL", "CARD_LINK_SECRET", "CARD_LINK_TTL", "VISA_MAX_REATTEMPTS"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, v := range vars {
				t.Setenv(v, tt.env[v])
			}
			p, err := ProvidersFromEnv()
			var d Deps
			if err == nil {
				d, err = Build(nil, Config{}, p, logger)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one about %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := gatewayNames(d); !slices.Equal(got, tt.wantGateways) {
				t.Errorf("gateways = %v, want %v", got, tt.wantGateways)
			}
			if _, dry := d.Email.(notify.DryRun); dry != tt.wantDryEmail {
				t.Errorf("email dry-run = %v, want %v", dry, tt.wantDryEmail)
			}
			if _, dry := d.SMS.(notify.DryRun); dry != tt.wantDrySMS {
				t.Errorf("SMS dry-run = %v, want %v", dry, tt.wantDrySMS)
			}
			if (d.CardLinks != nil) != tt.wantLinks {
				t.Errorf("card links = %v, want %v", d.CardLinks != nil, tt.wantLinks)
			}
		})
	}
}

package intake

import (
	"strings"
	"testing"
)

func TestOptionsFromEnv(t *testing.T) {
	secret := strings.Repeat("k", 32)
	tests := []struct {
		name     string
		env      map[string]string
		wantOpts int
		wantErr  string
	}{
		{name: "nothing configured"},
		// Card links used to fail here for want of a TTL, which verifying
		// does not need but the signer's check does.
		{name: "card links", env: map[string]string{"CARD_UPDATE_URL": "https://billing.example.com/update-card", "CARD_LINK_SECRET": secret}, wantOpts: 1},
		{name: "card links with a TTL", env: map[string]string{"CARD_UPDATE_URL": "http://127.0.0.1:8080/card", "CARD_LINK_SECRET": secret, "CARD_LINK_TTL": "1h"}, wantOpts: 1},
		{name: "card links with a bad TTL", env: map[string]string{"CARD_UPDATE_URL": "https://billing.example.com/u", "CARD_LINK_SECRET": secret, "CARD_LINK_TTL": "soon"}, wantErr: "CARD_LINK_TTL"},
		{name: "card links with a short secret", env: map[string]string{"CARD_UPDATE_URL": "https://billing.example.com/u", "CARD_LINK_SECRET": "short"}, wantErr: "card-update links"},
		{name: "status timeout", env: map[string]string{"DUNNING_STATUS_TIMEOUT": "500ms"}, wantOpts: 1},
		{name: "bad status timeout", env: map[string]string{"DUNNING_STATUS_TIMEOUT": "-1s"}, wantErr: "DUNNING_STATUS_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, err := OptionsFromEnv(func(k string) string { return tt.env[k] }, nil)
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want it to mention %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatalf("OptionsFromEnv: %v", err)
			case len(opts) != tt.wantOpts:
				t.Errorf("%d options, want %d", len(opts), tt.wantOpts)
			}
		})
	}
}

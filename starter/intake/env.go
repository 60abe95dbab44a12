package intake

import (
	"fmt"

	"github.com/dunningco/dunning/cardlink"
)

// Stores is what the webhooks record into; *ledger.Store is one.
type Stores interface {
	ConsentStore
	SuppressionStore
}

// WebhooksConfigured reports whether the environment turns on a webhook
// that records into the ledger (so the caller must open it).
func WebhooksConfigured(getenv func(string) string) bool {
	return getenv("TWILIO_INBOUND_URL") != "" || getenv("SENDGRID_WEBHOOK_KEY") != ""
}

// OptionsFromEnv turns on what the environment configures:
//
//	TWILIO_INBOUND_URL + TWILIO_AUTH_TOKEN  POST /v1/webhooks/twilio/sms
//	SENDGRID_WEBHOOK_KEY                    POST /v1/webhooks/sendgrid/events
//	CARD_UPDATE_URL + CARD_LINK_SECRET      GET  /v1/card-links/{token}
//
// store may be nil when WebhooksConfigured is false.
func OptionsFromEnv(getenv func(string) string, store Stores) ([]Option, error) {
	var opts []Option
	if url := getenv("TWILIO_INBOUND_URL"); url != "" {
		if store == nil {
			return nil, fmt.Errorf("the Twilio inbound webhook needs the ledger")
		}
		opts = append(opts, WithTwilioInbound(getenv("TWILIO_AUTH_TOKEN"), url, store))
	}
	if key := getenv("SENDGRID_WEBHOOK_KEY"); key != "" {
		if store == nil {
			return nil, fmt.Errorf("the SendGrid event webhook needs the ledger")
		}
		opts = append(opts, WithSendGridEvents(key, store))
	}
	if base := getenv("CARD_UPDATE_URL"); base != "" {
		s := &cardlink.Signer{Secret: []byte(getenv("CARD_LINK_SECRET")), BaseURL: base}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("card-update links: %w", err)
		}
		opts = append(opts, WithCardLinks(s))
	}
	return opts, nil
}

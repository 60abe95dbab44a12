package intake

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/stripehooks"
)

// DefaultCardLinkTTL is how long a card-update link stays valid when
// CARD_LINK_TTL is unset: 14 days, the workers' default.
const DefaultCardLinkTTL = 14 * 24 * time.Hour

// Stores is what the webhooks record into; *ledger.Store is one.
type Stores interface {
	ConsentStore
	SuppressionStore
	stripehooks.Store
}

// WebhooksConfigured reports whether the environment turns on a webhook
// that records into the ledger (so the caller must open it).
func WebhooksConfigured(getenv func(string) string) bool {
	return getenv("TWILIO_INBOUND_URL") != "" || getenv("SENDGRID_WEBHOOK_KEY") != "" || stripeWebhooksConfigured(getenv)
}

// OptionsFromEnv turns on what the environment configures:
//
//	TWILIO_INBOUND_URL + TWILIO_AUTH_TOKEN  POST /v1/webhooks/twilio/sms
//	SENDGRID_WEBHOOK_KEY                    POST /v1/webhooks/sendgrid/events
//	CARD_UPDATE_URL + CARD_LINK_SECRET      GET  /v1/card-links/{token}
//	  (+ CARD_LINK_TTL, default 336h, as the workers have it)
//	DUNNING_STATUS_TIMEOUT                  how long the status waits for the
//	                                        live query (WithStatusTimeout)
//	DUNNING_API_RATE, DUNNING_API_BURST     each API key's rate limit
//	                                        (WithRateLimit; 0 turns it off)
//	DUNNING_TENANTS_FILE with a tenant's    POST /v1/webhooks/stripe/{tenant}
//	  stripe_webhook_secret                 (WithStripeWebhooks)
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
		// Verifying needs only the secret, but Validate checks the whole
		// signer, TTL included, as the workers configure it.
		ttl := DefaultCardLinkTTL
		if v := getenv("CARD_LINK_TTL"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("CARD_LINK_TTL %q is not a positive duration such as 336h", v)
			}
			ttl = d
		}
		s := &cardlink.Signer{Secret: []byte(getenv("CARD_LINK_SECRET")), BaseURL: base, TTL: ttl}
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("card-update links: %w", err)
		}
		opts = append(opts, WithCardLinks(s))
	}
	if v := getenv("DUNNING_STATUS_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("DUNNING_STATUS_TIMEOUT %q is not a positive duration such as 2s", v)
		}
		opts = append(opts, WithStatusTimeout(d))
	}
	if rateText, burstText := getenv("DUNNING_API_RATE"), getenv("DUNNING_API_BURST"); rateText != "" || burstText != "" {
		perSecond, burst := float64(DefaultRate), DefaultBurst
		if rateText != "" {
			v, err := strconv.ParseFloat(rateText, 64)
			if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				return nil, fmt.Errorf("DUNNING_API_RATE %q is not a number of requests a second such as 50 (0 turns the limit off)", rateText)
			}
			perSecond = v
		}
		if burstText != "" {
			v, err := strconv.Atoi(burstText)
			if err != nil || v < 1 {
				return nil, fmt.Errorf("DUNNING_API_BURST %q is not a whole number of requests, at least 1", burstText)
			}
			burst = v
		} else if rateText != "" {
			burst = max(1, int(math.Ceil(2*perSecond)))
		}
		opts = append(opts, WithRateLimit(perSecond, burst))
	}
	stripeOpt, err := stripeOptionFromEnv(getenv, store)
	if err != nil {
		return nil, err
	}
	if stripeOpt != nil {
		opts = append(opts, stripeOpt)
	}
	return opts, nil
}

package worker

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/gateway/httpgw"
	stripegw "github.com/dunningco/dunning/gateway/stripe"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/notify/sendgrid"
	"github.com/dunningco/dunning/notify/twilio"
)

// Providers is the provider configuration, read from the environment by
// ProvidersFromEnv. A provider without its key stays off (gateways) or in
// dry-run mode (email, SMS).
type Providers struct {
	StripeAPIKey, StripeBaseURL string

	HTTPGatewayURL, HTTPGatewaySecret string

	SendGridAPIKey, SendGridBaseURL string
	EmailFrom, EmailFromName        string
	EmailReplyTo                    string
	SendGridCategories              []string
	SendGridTemplateIDs             map[string]string
	// SendGridEmailActivity: the account has the Email Activity API, so a
	// send whose outcome is unknown is looked up before it is repeated
	// (SENDGRID_EMAIL_ACTIVITY); SendGridActivitySettle is how long after
	// a send the lookup is trusted (SENDGRID_EMAIL_ACTIVITY_SETTLE).
	SendGridEmailActivity  bool
	SendGridActivitySettle time.Duration

	TwilioAccountSID, TwilioAuthToken string
	TwilioMessagingServiceSID         string
	TwilioFrom                        string
	TwilioStatusCallbackURL           string
	TwilioBaseURL                     string

	CardUpdateURL  string
	CardLinkSecret string
	CardLinkTTL    time.Duration

	// Limits are the card-network retry limits (VISA_MAX_REATTEMPTS: 15 by
	// default, 20 under the newer reading of Visa's rules).
	Limits ledger.Limits
}

// ProvidersFromEnv reads the provider variables listed in README.
func ProvidersFromEnv() (Providers, error) {
	p := Providers{
		StripeAPIKey:              os.Getenv("STRIPE_API_KEY"),
		StripeBaseURL:             os.Getenv("STRIPE_API_BASE"),
		HTTPGatewayURL:            os.Getenv("HTTP_GATEWAY_URL"),
		HTTPGatewaySecret:         os.Getenv("HTTP_GATEWAY_SECRET"),
		SendGridAPIKey:            os.Getenv("SENDGRID_API_KEY"),
		SendGridBaseURL:           os.Getenv("SENDGRID_API_BASE"),
		EmailFrom:                 os.Getenv("EMAIL_FROM"),
		EmailFromName:             os.Getenv("EMAIL_FROM_NAME"),
		EmailReplyTo:              os.Getenv("EMAIL_REPLY_TO"),
		SendGridCategories:        splitList(os.Getenv("SENDGRID_CATEGORIES")),
		TwilioAccountSID:          os.Getenv("TWILIO_ACCOUNT_SID"),
		TwilioAuthToken:           os.Getenv("TWILIO_AUTH_TOKEN"),
		TwilioMessagingServiceSID: os.Getenv("TWILIO_MESSAGING_SERVICE_SID"),
		TwilioFrom:                os.Getenv("TWILIO_FROM"),
		TwilioStatusCallbackURL:   os.Getenv("TWILIO_STATUS_CALLBACK_URL"),
		TwilioBaseURL:             os.Getenv("TWILIO_API_BASE"),
		CardUpdateURL:             os.Getenv("CARD_UPDATE_URL"),
		CardLinkSecret:            os.Getenv("CARD_LINK_SECRET"),
		CardLinkTTL:               14 * 24 * time.Hour,
	}
	p.Limits = ledger.DefaultLimits()
	if v := os.Getenv("VISA_MAX_REATTEMPTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, fmt.Errorf("VISA_MAX_REATTEMPTS %q is not a positive whole number", v)
		}
		p.Limits.VisaMaxReattempts = n
	}
	if v := os.Getenv("CARD_LINK_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return p, fmt.Errorf("CARD_LINK_TTL %q is not a positive duration such as 336h", v)
		}
		p.CardLinkTTL = d
	}
	if v := os.Getenv("SENDGRID_EMAIL_ACTIVITY"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return p, fmt.Errorf("SENDGRID_EMAIL_ACTIVITY %q is not true or false", v)
		}
		p.SendGridEmailActivity = on
	}
	if v := os.Getenv("SENDGRID_EMAIL_ACTIVITY_SETTLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return p, fmt.Errorf("SENDGRID_EMAIL_ACTIVITY_SETTLE %q is not a positive duration such as 2m", v)
		}
		p.SendGridActivitySettle = d
	}
	if v := os.Getenv("SENDGRID_TEMPLATE_IDS"); v != "" {
		p.SendGridTemplateIDs = map[string]string{}
		for _, pair := range splitList(v) {
			kind, id, ok := strings.Cut(pair, "=")
			if !ok || kind == "" || id == "" {
				return p, fmt.Errorf("SENDGRID_TEMPLATE_IDS entry %q is not kind=template-id", pair)
			}
			p.SendGridTemplateIDs[kind] = id
		}
	}
	return p, nil
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Build wires the activities' dependencies: the simulator gateway always,
// Stripe and the HTTP gateway when configured, SendGrid and Twilio when
// their keys are set (dry-run otherwise, and said so in the log).
func Build(ledger activities.Ledger, cfg Config, p Providers, logger *slog.Logger) (Deps, error) {
	d := Deps{
		Ledger:   ledger,
		Gateways: []gateway.Gateway{gateway.NewSimulator()},
		Limits:   p.Limits,
		Logger:   logger,
	}
	if p.StripeAPIKey != "" {
		g, err := stripegw.New(stripegw.Config{APIKey: p.StripeAPIKey, BaseURL: p.StripeBaseURL, Logger: logger})
		if err != nil {
			return d, fmt.Errorf("stripe gateway: %w", err)
		}
		d.Gateways = append(d.Gateways, g)
	}
	if p.HTTPGatewayURL != "" {
		g, err := httpgw.New(httpgw.Config{URL: p.HTTPGatewayURL, Secret: p.HTTPGatewaySecret})
		if err != nil {
			return d, fmt.Errorf("http gateway: %w", err)
		}
		d.Gateways = append(d.Gateways, g)
	}
	if p.SendGridAPIKey != "" {
		n, err := sendgrid.New(sendgrid.Config{
			APIKey: p.SendGridAPIKey, BaseURL: p.SendGridBaseURL, FromEmail: p.EmailFrom, FromName: p.EmailFromName,
			ReplyTo: p.EmailReplyTo, Categories: p.SendGridCategories, TemplateIDs: p.SendGridTemplateIDs,
			EmailActivity: p.SendGridEmailActivity, Settle: p.SendGridActivitySettle, Logger: logger,
		})
		if err != nil {
			return d, fmt.Errorf("sendgrid: %w", err)
		}
		d.Email = n
		if !p.SendGridEmailActivity {
			logger.Warn("email sends whose outcome is unknown are sent again without a lookup (SENDGRID_EMAIL_ACTIVITY unset): a lost SendGrid answer can duplicate one email")
		}
	} else {
		logger.Warn("email in dry-run mode (SENDGRID_API_KEY unset): messages are rendered, recorded in the ledger and logged, not sent")
		d.Email = notify.DryRun{Logger: logger}
	}
	if p.TwilioAccountSID != "" || p.TwilioAuthToken != "" {
		n, err := twilio.New(twilio.Config{
			AccountSID: p.TwilioAccountSID, AuthToken: p.TwilioAuthToken, MessagingServiceSID: p.TwilioMessagingServiceSID,
			From: p.TwilioFrom, StatusCallbackURL: p.TwilioStatusCallbackURL, BaseURL: p.TwilioBaseURL, Logger: logger,
		})
		if err != nil {
			return d, fmt.Errorf("twilio: %w", err)
		}
		d.SMS = n
	} else {
		logger.Warn("SMS in dry-run mode (TWILIO_ACCOUNT_SID unset): messages are rendered, recorded in the ledger and logged, not sent")
		d.SMS = notify.DryRun{Logger: logger}
	}
	if p.CardUpdateURL != "" {
		s := &cardlink.Signer{Secret: []byte(p.CardLinkSecret), BaseURL: p.CardUpdateURL, TTL: p.CardLinkTTL}
		if err := s.Validate(); err != nil {
			return d, fmt.Errorf("card-update links: %w", err)
		}
		d.CardLinks = s
	}
	return d, nil
}

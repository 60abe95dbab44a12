package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/stripehooks"
	"github.com/dunningco/dunning/tenants"
)

// stripeWebhook configures the Stripe webhook receiver; the receiver itself
// is built with the handler's runs and logger.
type stripeWebhook struct {
	tenants stripehooks.Tenants
	store   stripehooks.Store
	opts    []stripehooks.Option
}

// WithStripeWebhooks serves POST /v1/webhooks/stripe/{tenant}, the URL to
// give each tenant's Stripe webhook endpoint. Events are verified with the
// tenant's stripe_webhook_secret from cfg, recorded in store so each is
// processed once, and acted on through the handler's runs (package
// stripehooks has the mapping).
func WithStripeWebhooks(cfg stripehooks.Tenants, store stripehooks.Store, opts ...stripehooks.Option) Option {
	return func(h *handler) { h.webhooks.stripe = &stripeWebhook{tenants: cfg, store: store, opts: opts} }
}

// registerStripeWebhook adds the Stripe endpoint when it is configured.
func (h *handler) registerStripeWebhook(route func(method, path string, fn http.HandlerFunc)) {
	cfg := h.webhooks.stripe
	if cfg == nil {
		return
	}
	opts := append([]stripehooks.Option{stripehooks.WithLogger(h.logger)}, cfg.opts...)
	receiver := stripehooks.New(h.runs, cfg.tenants, cfg.store, opts...)
	route(http.MethodPost, "/v1/webhooks/stripe/{tenant}", h.stripeWebhookHandler(receiver))
}

// stripeWebhookHandler answers Stripe the way its retries need: 2xx only
// once the event is processed (or needs nothing), 503 with Retry-After
// when it could not be processed now, so Stripe delivers it again.
func (h *handler) stripeWebhookHandler(receiver *stripehooks.Receiver) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenant := r.PathValue("tenant")
		// The signature covers the exact bytes received, so they are read
		// whole before anything is decoded.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, stripehooks.MaxPayloadBytes))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the event exceeds %d bytes", stripehooks.MaxPayloadBytes))
				return
			}
			writeError(w, http.StatusBadRequest, "could not read the request body")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
		defer cancel()
		signature := r.Header.Get(stripehooks.SignatureHeader)
		out, err := receiver.Handle(ctx, tenant, body, signature)
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, out)
		case errors.Is(err, stripehooks.ErrUnknownTenant):
			writeError(w, http.StatusNotFound, fmt.Sprintf("no Stripe webhook endpoint for tenant %.64q", tenant))
		case errors.Is(err, stripehooks.ErrSignature):
			h.logger.WarnContext(r.Context(), "refused Stripe webhook with a missing or invalid signature",
				"tenant", tenant, "remote_addr", r.RemoteAddr, "signed", signature != "", "error", err)
			writeError(w, http.StatusBadRequest, err.Error())
		case errors.Is(err, stripehooks.ErrMalformed):
			h.logger.WarnContext(r.Context(), "refused a signed Stripe webhook that is not a readable event", "tenant", tenant, "error", err)
			writeError(w, http.StatusBadRequest, err.Error())
		case errors.Is(err, stripehooks.ErrBusy):
			w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter/time.Second)))
			writeError(w, http.StatusConflict, err.Error())
		case errors.Is(err, starter.ErrInvalid):
			// Stripe retries, and the tenant sees the refusal on its
			// endpoint; a configuration fix (e.g. the stripe gateway
			// turned on) lets a retry through.
			h.logger.WarnContext(r.Context(), "Stripe event refused by the intake rules", "tenant", tenant, "error", err)
			writeInvalid(w, err)
		case errors.Is(err, starter.ErrConflict):
			h.logger.WarnContext(r.Context(), "Stripe event conflicts with the open run", "tenant", tenant, "error", err)
			writeError(w, http.StatusConflict, err.Error())
		default:
			h.logger.WarnContext(r.Context(), "Stripe event not processed now; Stripe will deliver it again", "tenant", tenant, "error", err)
			writeRetryable(w, http.StatusServiceUnavailable, "the event cannot be processed right now (Temporal or the ledger unavailable); it was not recorded, deliver it again")
		}
	}
}

// stripeWebhooksConfigured reports whether the tenant configuration file
// gives any tenant a Stripe webhook secret. A file that does not load
// counts, so that OptionsFromEnv reports why.
func stripeWebhooksConfigured(getenv func(string) string) bool {
	path := getenv(tenants.EnvFile)
	if path == "" {
		return false
	}
	cfg, err := tenants.Load(path)
	return err != nil || hasStripeSecret(cfg)
}

func hasStripeSecret(cfg *tenants.Config) bool {
	for _, id := range cfg.IDs() {
		if t, _ := cfg.Tenant(id); t.StripeWebhookSecret != "" {
			return true
		}
	}
	return false
}

// stripeOptionFromEnv turns the Stripe webhook on when the tenant
// configuration file (DUNNING_TENANTS_FILE, the workers' file) gives a
// tenant a stripe_webhook_secret; nil when none does.
func stripeOptionFromEnv(getenv func(string) string, store Stores) (Option, error) {
	path := getenv(tenants.EnvFile)
	if path == "" {
		return nil, nil
	}
	cfg, err := tenants.Load(path)
	if err != nil {
		return nil, err
	}
	if !hasStripeSecret(cfg) {
		return nil, nil
	}
	if store == nil {
		return nil, errors.New("the Stripe webhook needs the ledger")
	}
	return WithStripeWebhooks(cfg, store), nil
}

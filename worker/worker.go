// Package worker assembles the Temporal worker: configuration from the
// environment, the activities' dependencies, registration, and the search
// attributes the workflow writes.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/outbox"
	"github.com/dunningco/dunning/workflows"
)

// Config is the worker's configuration; ConfigFromEnv documents each
// variable.
type Config struct {
	TaskQueue             string
	DatabaseURL           string
	BillingCallbackURL    string
	BillingCallbackSecret string
}

// ConfigFromEnv reads DUNNING_TASK_QUEUE, DATABASE_URL, BILLING_CALLBACK_URL
// and BILLING_CALLBACK_SECRET, with local defaults.
func ConfigFromEnv() Config {
	return Config{
		TaskQueue:             envOr("DUNNING_TASK_QUEUE", workflows.TaskQueue),
		DatabaseURL:           envOr("DATABASE_URL", ledger.DefaultURL),
		BillingCallbackURL:    os.Getenv("BILLING_CALLBACK_URL"),
		BillingCallbackSecret: os.Getenv("BILLING_CALLBACK_SECRET"),
	}
}

func envOr(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}

// Deps are the activities' dependencies.
type Deps struct {
	Ledger     activities.Ledger
	Gateways   []gateway.Gateway
	Email, SMS notify.Notifier
	// DefaultCallbackURL is where billing events go when a run names no
	// callback URL. The activities only enqueue them; the outbox dispatcher
	// (NewDispatcher) delivers them.
	DefaultCallbackURL string
	// Limits are the card-network retry limits; zero means the defaults.
	Limits ledger.Limits
	// CardLinks signs card-update links for messages; nil leaves them out.
	CardLinks *cardlink.Signer
	Logger    *slog.Logger
}

// Register adds the workflow and every activity to r.
func Register(r sdkworker.Registry, d Deps) {
	r.RegisterWorkflowWithOptions(workflows.DunningWorkflow, workflow.RegisterOptions{Name: workflows.WorkflowName})
	r.RegisterWorkflowWithOptions(workflows.ReminderWorkflow, workflow.RegisterOptions{Name: workflows.ReminderWorkflowName})
	gws := make(map[string]gateway.Gateway, len(d.Gateways))
	for _, g := range d.Gateways {
		gws[g.Name()] = g
	}
	r.RegisterActivity(&activities.Charges{Gateways: gws, Ledger: d.Ledger, Logger: d.Logger, Limits: d.Limits})
	r.RegisterActivity(&activities.Notifications{Email: d.Email, SMS: d.SMS, Ledger: d.Ledger, CardLinks: d.CardLinks, Logger: d.Logger})
	r.RegisterActivity(&activities.ServiceActions{Ledger: d.Ledger, DefaultCallbackURL: d.DefaultCallbackURL})
	r.RegisterActivity(&activities.NetworkLimits{Ledger: d.Ledger, Limits: d.Limits})
	r.RegisterActivity(&activities.Runs{Ledger: d.Ledger, DefaultCallbackURL: d.DefaultCallbackURL})
}

// NewDispatcher builds the outbox dispatcher that delivers the billing
// events the activities enqueue, signed with BILLING_CALLBACK_SECRET when it
// is set. Run it next to every worker (Run(ctx) in a goroutine): replicas
// share the work through the ledger, so each event goes to one of them at a
// time.
func NewDispatcher(store outbox.Ledger, cfg Config, logger *slog.Logger) *outbox.Dispatcher {
	return &outbox.Dispatcher{
		Ledger:   store,
		Callback: billing.Callback{Secret: cfg.BillingCallbackSecret},
		Logger:   logger.With("component", "outbox"),
		Interval: outbox.DefaultInterval,
	}
}

// StickyCacheSize is how many runs a worker keeps in memory between
// workflow tasks. Dunning runs sleep for days between steps, so a cached
// run is rarely used again before it would be evicted, and a run evicted
// from the cache costs one replay of a short history (about a hundred
// events) on its next step. The SDK's default (10,000) would hold every
// sleeping run instead: about 90 KB each. Measured with
// BenchmarkOpenRunMemory (README, "Cost per run").
const StickyCacheSize = 1024

var setStickyCache sync.Once

// New builds a worker polling taskQueue with everything registered.
func New(c client.Client, taskQueue string, d Deps) sdkworker.Worker {
	// Process-wide in the SDK, and only honoured before the first worker.
	setStickyCache.Do(func() { sdkworker.SetStickyWorkflowCacheSize(StickyCacheSize) })
	w := sdkworker.New(c, taskQueue, sdkworker.Options{})
	Register(w, d)
	return w
}

// EnsureSearchAttributes registers the workflow's custom search attributes
// on namespace if they are missing. It needs operator rights; production
// clusters usually register them once at setup instead (see README).
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	ops := c.OperatorService()
	have, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes: %w", err)
	}
	missing := workflows.SearchAttributeTypes()
	for name := range have.GetCustomAttributes() {
		delete(missing, name)
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        namespace,
		SearchAttributes: missing,
	}); err != nil {
		return fmt.Errorf("add search attributes: %w", err)
	}
	return nil
}

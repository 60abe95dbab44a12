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
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/dunningco/dunning/activities"
	"github.com/dunningco/dunning/billing"
	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/outbox"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/sweeper"
	"github.com/dunningco/dunning/tenants"
	"github.com/dunningco/dunning/workflows"
)

// Config is the worker's configuration; ConfigFromEnv documents each
// variable.
type Config struct {
	TaskQueue   string
	DatabaseURL string
	// TenantsFile is the tenant configuration file: where each tenant's
	// billing events go and how they are signed (package tenants).
	TenantsFile string
	// BillingCallbackURL and BillingCallbackSecret are deprecated: with no
	// TenantsFile they send every tenant's events to one endpoint, under
	// the rules of a configured tenant (https, a public address, a whsec_
	// secret).
	BillingCallbackURL    string
	BillingCallbackSecret string
	// Tenants, when set, is used instead of TenantsFile: dev mode and tests
	// build their configuration in code.
	Tenants *tenants.Config
}

// ConfigFromEnv reads DUNNING_TASK_QUEUE, DATABASE_URL, DUNNING_TENANTS_FILE,
// and the deprecated BILLING_CALLBACK_URL and BILLING_CALLBACK_SECRET, with
// local defaults.
func ConfigFromEnv() Config {
	return Config{
		TaskQueue:             envOr("DUNNING_TASK_QUEUE", workflows.TaskQueue),
		DatabaseURL:           envOr("DATABASE_URL", ledger.DefaultURL),
		TenantsFile:           strings.TrimSpace(os.Getenv(tenants.EnvFile)),
		BillingCallbackURL:    strings.TrimSpace(os.Getenv("BILLING_CALLBACK_URL")),
		BillingCallbackSecret: os.Getenv("BILLING_CALLBACK_SECRET"),
	}
}

// LoadTenants returns the tenant configuration cfg names: Tenants, else
// TenantsFile, else the deprecated BILLING_CALLBACK_URL for every tenant,
// else none (every event is recorded and skipped). A configuration that
// does not validate is an error, so a worker never starts sending events
// somewhere it should not.
func (cfg Config) LoadTenants(logger *slog.Logger) (*tenants.Config, error) {
	switch {
	case cfg.Tenants != nil:
		return cfg.Tenants, nil
	case cfg.TenantsFile != "" && cfg.BillingCallbackURL != "":
		return nil, fmt.Errorf("%s and BILLING_CALLBACK_URL are both set; move the callback into the tenant file and unset BILLING_CALLBACK_URL", tenants.EnvFile)
	case cfg.TenantsFile != "":
		c, err := tenants.Load(cfg.TenantsFile)
		if err != nil {
			return nil, err
		}
		logger.Info("tenant configuration loaded", "file", cfg.TenantsFile, "tenants", len(c.IDs()))
		return c, nil
	case cfg.BillingCallbackURL != "":
		c, err := tenants.Fallback(cfg.BillingCallbackURL, cfg.BillingCallbackSecret)
		if err != nil {
			return nil, fmt.Errorf("BILLING_CALLBACK_URL (deprecated): %w", err)
		}
		logger.Warn("BILLING_CALLBACK_URL is deprecated: every tenant's billing events go to it; configure endpoints per tenant in " + tenants.EnvFile)
		return c, nil
	default:
		logger.Info("no tenant configuration (" + tenants.EnvFile + "): billing events are recorded in the outbox and skipped")
		return nil, nil
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
	// Limits are the card-network retry limits; zero means the defaults.
	Limits ledger.Limits
	// CardLinks signs card-update links for messages; nil leaves them out.
	CardLinks *cardlink.Signer
	Logger    *slog.Logger
	// PendingConsents tells the SMS send path about opt-outs Temporal
	// holds while the ledger was down; New sets it from its client.
	PendingConsents activities.PendingConsents
	// Interceptors wrap every workflow and activity the worker runs
	// (package metrics times activities with one).
	Interceptors []interceptor.WorkerInterceptor
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
	r.RegisterActivity(&activities.Notifications{Email: d.Email, SMS: d.SMS, Ledger: d.Ledger, CardLinks: d.CardLinks, Logger: d.Logger,
		PendingConsents: d.PendingConsents})
	r.RegisterActivity(&activities.ServiceActions{Ledger: d.Ledger})
	r.RegisterActivity(&activities.NetworkLimits{Ledger: d.Ledger, Limits: d.Limits})
	r.RegisterActivity(&activities.Runs{Ledger: d.Ledger})
	registerConsents(r, d)
}

// NewDispatcher builds the outbox dispatcher that delivers the billing
// events the activities enqueue to each tenant's endpoint (LoadTenants),
// signed with the tenant's secret. The activities record events whatever
// the configuration; the endpoint is looked up when an event is sent. Run
// it next to every worker (Run(ctx) in a goroutine): replicas share the
// work through the ledger, so each event goes to one of them at a time.
func NewDispatcher(store outbox.Ledger, cfg Config, logger *slog.Logger) (*outbox.Dispatcher, error) {
	logger = logger.With("component", "outbox")
	tc, err := cfg.LoadTenants(logger)
	if err != nil {
		return nil, err
	}
	d := &outbox.Dispatcher{
		Ledger:   store,
		Callback: &billing.Callback{},
		Logger:   logger,
		Interval: outbox.DefaultInterval,
	}
	if tc != nil {
		d.Endpoints = tc
	}
	return d, nil
}

// StickyCacheSize is how many runs a worker keeps in memory between
// workflow tasks. Dunning runs sleep for days between steps, so a cached
// run is rarely used again before it would be evicted, and a run evicted
// from the cache costs one replay of a short history (about a hundred
// events) on its next step. The SDK's default (10,000) would hold every
// sleeping run instead: about 90 KB each. Measured with
// BenchmarkOpenRunMemory (README, "Cost per run").
const StickyCacheSize = 1024

// WorkerStopTimeout is how long a stopping worker lets in-flight activities
// finish: longer than a gateway or provider call, so a deploy never cuts a
// charge between the gateway's answer and the ledger write.
const WorkerStopTimeout = 2 * time.Minute

var setStickyCache sync.Once

// New builds a worker polling taskQueue with everything registered.
func New(c client.Client, taskQueue string, d Deps) sdkworker.Worker {
	// Process-wide in the SDK, and only honoured before the first worker.
	setStickyCache.Do(func() { sdkworker.SetStickyWorkflowCacheSize(StickyCacheSize) })
	if d.PendingConsents == nil {
		d.PendingConsents = starter.NewClient(c, starter.Options{TaskQueue: taskQueue})
	}
	w := sdkworker.New(c, taskQueue, sdkworker.Options{
		// On SIGTERM, activities in flight (a charge, a send) get this long
		// to finish and record their outcome before the process exits.
		WorkerStopTimeout: WorkerStopTimeout,
		Interceptors:      d.Interceptors,
	})
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

// NewSweeper builds the sweeper that closes, as aborted, runs whose
// workflow ended without closing them (package sweeper). Run it next to
// every worker (Run(ctx) in a goroutine): replicas take turns through a
// PostgreSQL advisory lock, so one sweeps at a time. DUNNING_SWEEP_INTERVAL
// sets how often (default 5m).
func NewSweeper(store *ledger.Store, c client.Client, logger *slog.Logger) (*sweeper.Sweeper, error) {
	interval := sweeper.DefaultInterval
	if v := strings.TrimSpace(os.Getenv("DUNNING_SWEEP_INTERVAL")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("DUNNING_SWEEP_INTERVAL %q is not a positive duration such as 5m", v)
		}
		interval = d
	}
	return &sweeper.Sweeper{
		Ledger: store, Temporal: c, Lock: sweeper.PoolLocker{Pool: store.Pool()},
		Logger: logger.With("component", "sweeper"), Interval: interval,
	}, nil
}

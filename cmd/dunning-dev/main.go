// Command dunning-dev runs the whole platform in one process for local
// development: an embedded Temporal dev server (SQLite file, Web UI), the
// worker and the HTTP intake API, against the PostgreSQL in DATABASE_URL.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/cardlink"
	"github.com/dunningco/dunning/dashboard"
	"github.com/dunningco/dunning/devserver"
	"github.com/dunningco/dunning/idempotency"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/starter/intake"
	"github.com/dunningco/dunning/worker"
	"github.com/dunningco/dunning/workflows"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	slog.SetDefault(logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, logger, os.Args[1:], nil); err != nil {
		logger.Error("dev mode stopped", "error", err)
		os.Exit(1)
	}
}

// endpoints is what run hands its caller once everything is up.
type endpoints struct {
	API    string // the private intake API's address
	Public string // the public surface's address: webhooks, /card, /codec
	Key    string // the dev API key, for tenant acme
}

// run serves until ctx ends. ready, when not nil, receives the addresses
// and the dev API key once everything is up.
func run(ctx context.Context, logger *slog.Logger, args []string, ready chan<- endpoints) error {
	fs := flag.NewFlagSet("dunning-dev", flag.ContinueOnError)
	dbFile := fs.String("db-file", filepath.Join(".dev", "temporal.db"), "SQLite file for Temporal's state (kept across restarts)")
	temporalPort := fs.Int("temporal-port", 7233, "Temporal frontend gRPC port")
	uiPort := fs.Int("ui-port", 8233, "Temporal Web UI port")
	httpAddr := fs.String("http", cmp.Or(os.Getenv("DUNNING_API_ADDR"), "127.0.0.1:8080"), "private intake API address (DUNNING_API_ADDR)")
	publicAddr := fs.String("public", cmp.Or(os.Getenv("DUNNING_PUBLIC_ADDR"), "127.0.0.1:8081"),
		"public address: webhooks, the card page, the codec endpoint (DUNNING_PUBLIC_ADDR)")
	demo := fs.Bool("demo", os.Getenv("DUNNING_DEV_DEMO") == "true",
		"report a few demo declines on start (policy demo, simulator), so the dashboard has data within a minute (DUNNING_DEV_DEMO=true)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := worker.ConfigFromEnv()

	// Listening first: card-update links in dev messages point at the
	// public address, which "-public 127.0.0.1:0" only fixes here.
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("intake API: %w", err)
	}
	defer ln.Close() // api.Serve closes it too; this covers an early return
	publicLn, err := net.Listen("tcp", *publicAddr)
	if err != nil {
		return fmt.Errorf("public endpoints: %w", err)
	}
	defer publicLn.Close()

	store, err := ledger.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("open ledger at DATABASE_URL: %w", err)
	}
	defer store.Close()
	// One registry for the worker's and the API's metrics, served on the
	// private API's GET /metrics (devMetrics, metrics.go).
	m, sdkMetrics, err := devMetrics(store)
	if err != nil {
		return err
	}

	// Customer data in payloads is encrypted in dev mode too, so what a
	// developer sees is what production stores; the UI decodes through the
	// codec endpoint on the public address.
	payloads, err := newDevCodec(os.Getenv, *dbFile, publicLn.Addr())
	if err != nil {
		return err
	}
	srv, err := devserver.Start(devserver.Options{
		FrontendPort:     *temporalPort,
		UIPort:           *uiPort,
		DatabaseFile:     *dbFile,
		SearchAttributes: workflows.SearchAttributeTypes(),
		CodecEndpoint:    payloads.endpoint,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			logger.Warn("temporal dev server stop", "error", err)
		}
	}()

	c, err := client.DialContext(ctx, client.Options{
		HostPort:       srv.HostPort(),
		Namespace:      srv.Namespace(),
		Logger:         tlog.NewStructuredLogger(logger.With("component", "temporal-client")),
		DataConverter:  payloads.dataConverter(),
		MetricsHandler: sdkMetrics,
	})
	if err != nil {
		return fmt.Errorf("connect to dev server: %w", err)
	}
	defer c.Close()
	// The SQLite file may predate a search attribute added since.
	if err := worker.EnsureSearchAttributes(ctx, c, srv.Namespace()); err != nil {
		return err
	}

	providers, err := worker.ProvidersFromEnv()
	if err != nil {
		return err
	}
	// Without card-link settings, links lead to dev mode's own card page.
	cardURL, cardSecret, err := devCardLinks(os.Getenv, publicLn.Addr(), filepath.Dir(*dbFile))
	if err != nil {
		return err
	}
	if cardURL != "" {
		providers.CardUpdateURL, providers.CardLinkSecret = cardURL, cardSecret
	}
	getenv := func(k string) string {
		switch {
		case cardURL == "":
		case k == "CARD_UPDATE_URL":
			return cardURL
		case k == "CARD_LINK_SECRET":
			return cardSecret
		}
		return os.Getenv(k)
	}
	deps, err := worker.Build(store, cfg, providers, logger)
	if err != nil {
		return err
	}
	deps.Interceptors = append(deps.Interceptors, m.Interceptor())
	w := worker.New(c, cfg.TaskQueue, deps)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	defer w.Stop()

	// The activities only enqueue billing events; the dispatcher delivers
	// them. Deferred after w.Stop, so it stops first, after its POSTs in flight.
	dispatcher, err := worker.NewDispatcher(store, cfg, logger)
	if err != nil {
		return err
	}
	dispatchCtx, stopDispatch := context.WithCancel(ctx)
	dispatched := make(chan error, 1)
	go func() { dispatched <- dispatcher.Run(dispatchCtx) }()
	defer func() {
		stopDispatch()
		if err := <-dispatched; err != nil {
			logger.Warn("outbox dispatcher", "error", err)
		}
	}()
	// Runs whose workflow ended without closing them (e.g. terminated in
	// the Web UI) are closed as aborted; it stops with the dispatcher.
	sweep, err := worker.NewSweeper(store, c, logger)
	if err != nil {
		return err
	}
	go func() { _ = sweep.Run(dispatchCtx) }()

	extra, err := intake.OptionsFromEnv(getenv, store)
	if err != nil {
		return err
	}
	policies, err := starter.PoliciesFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	// The gateways Build configured and DUNNING_MAX_AMOUNTS: one set of
	// rules for the API and the client behind it.
	intakeCfg, err := worker.IntakeFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	// The read model answers status while the worker is down (e.g. in a
	// debugger) and lists runs.
	extra = append(extra, intake.WithPolicies(policies), intake.WithRules(intakeCfg.Rules), intake.WithReadModel(store), intake.WithDeclineCounter(m),
		intake.WithAnalytics(analytics.New(store.Pool())), intake.WithAudit(store, ledger.DefaultLimits()))
	runs := starter.NewClient(c, starter.Options{TaskQueue: cfg.TaskQueue, Policies: policies, Rules: intakeCfg.Rules})
	// The private API takes the dev key (and any made with dunning keys).
	keyDir := ""
	if *dbFile != "" {
		keyDir = filepath.Dir(*dbFile)
	}
	keys, err := newDevKeys(ctx, os.Getenv, keyDir, store.Pool(), logger)
	if err != nil {
		return err
	}
	private := intake.NewPrivateHandler(runs, logger, append(extra,
		intake.WithAuthenticator(keys.store), intake.WithIdempotency(idempotency.NewStore(store.Pool())))...)
	// The dashboard shares the private listener and its keys: a browser
	// signs in with the dev key.
	dash, err := dashboard.New(dashboard.Config{Auth: keys.store, Keys: keys.store, Analytics: analytics.New(store.Pool()), Ledger: store,
		SessionSecret: dashboard.SessionSecret(keys.pepper), Logger: logger.With("component", "dashboard")})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", intake.NewPublicHandler(runs, logger, extra...))
	if err := payloads.mount(mux, os.Getenv, srv.UIAddress(), logger); err != nil {
		return err
	}
	cardPageLine := ""
	if providers.CardUpdateURL != "" {
		links := &cardlink.Signer{Secret: []byte(providers.CardLinkSecret), BaseURL: providers.CardUpdateURL, TTL: providers.CardLinkTTL}
		(&cardPage{links: links, runs: runs, logger: logger.With("component", "card-page"), now: time.Now}).register(mux)
		cardPageLine = fmt.Sprintf("    Card-update page %s?token=... (the links in messages)\n", providers.CardUpdateURL)
	}
	api := &http.Server{Handler: m.Mount(dash.Mount(private)), ReadHeaderTimeout: 10 * time.Second}
	public := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	apiErr := make(chan error, 2)
	go func() { apiErr <- api.Serve(ln) }()
	go func() { apiErr <- public.Serve(publicLn) }()
	if ready != nil {
		ready <- endpoints{API: ln.Addr().String(), Public: publicLn.Addr().String(), Key: keys.token}
	}

	fmt.Fprintf(os.Stderr, `
  Dunning platform (dev mode) is up.
    Temporal Web UI  %s/namespaces/%s/workflows
    Temporal gRPC    %s
    Intake API       http://%s (private: needs the API key; GET /metrics for Prometheus)
    API reference    http://%s/docs (and /openapi.json)
    Dashboard        http://%s%s (sign in with the API key below)
    Public endpoints http://%s (webhooks, card page, codec)
%s%s%s    Ledger           %s

  Start a run (policy "demo" runs in seconds instead of days):
    export DUNNING_DEV_KEY=%s
    curl -s -X POST http://%s/v1/declines -H "Authorization: Bearer $DUNNING_DEV_KEY" -H 'Content-Type: application/json' -d '{"tenant":"acme","invoice_id":"inv-1001","customer":{"id":"cus-42","email":"ada@example.com"},"amount":"49.90","currency":"EUR","payment_method":"sim:succeed-on=2","decline":{"gateway":"simulator","code":"insufficient_funds"},"policy":"demo"}'

  Ctrl-C stops everything.

`, srv.UIAddress(), srv.Namespace(), srv.HostPort(), ln.Addr(), ln.Addr(), ln.Addr(), dashboard.Path, publicLn.Addr(), keys.bannerLines(), cardPageLine, payloads.bannerLine(),
		redact(cfg.DatabaseURL), keys.token, ln.Addr())

	if *demo {
		n := startDemoRuns(ctx, runs, logger, time.Now())
		fmt.Fprintf(os.Stderr, "  Started %d demo runs for tenant acme; they settle within about two minutes: http://%s%s\n\n", n, ln.Addr(), dashboard.Path)
	}

	select {
	case <-ctx.Done():
	case err := <-apiErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("intake API: %w", err)
		}
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(api.Shutdown(shutdownCtx), public.Shutdown(shutdownCtx))
}

// redact hides a password in a connection URL before it is printed.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable DATABASE_URL)"
	}
	return u.Redacted()
}

package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dunningco/dunning/analytics"
	"github.com/dunningco/dunning/apikeys"
	"github.com/dunningco/dunning/codec"
	"github.com/dunningco/dunning/dashboard"
	"github.com/dunningco/dunning/idempotency"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/metrics"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/starter/intake"
)

// shutdownGrace is how long in-flight requests may finish after SIGINT or
// SIGTERM.
const shutdownGrace = 30 * time.Second

func (a *app) serve(ctx context.Context, args []string) error {
	fs := a.newFlagSet("serve", "[-addr HOST:PORT] [-public-addr HOST:PORT]")
	defaultAddr := cmp.Or(a.getenv(EnvAPIAddr), a.getenv(EnvHTTPAddr), DefaultAPIAddr)
	addr := fs.String("addr", defaultAddr, "private API address: runs, declines, reminders; needs API keys (default from "+EnvAPIAddr+")")
	publicAddr := fs.String("public-addr", cmp.Or(a.getenv(EnvPublicAddr), DefaultPublicAddr),
		"public address: provider webhooks, card-update links, /codec (default from "+EnvPublicAddr+")")
	if err := parse(fs, args); err != nil {
		return err
	}
	// Two listeners: the private API belongs on an internal address, the
	// public surface is what providers and customers' browsers reach.
	// Listening first makes a wrong address fail before anything connects.
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	defer ln.Close() // Serve closes it too; this covers an early return
	publicLn, err := net.Listen("tcp", *publicAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *publicAddr, err)
	}
	defer publicLn.Close()
	// Without the pepper no key can be verified.
	pepper, err := apikeys.PepperFromEnv(a.getenv)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// serve owns the process, so its logger is everyone's, the Temporal
	// SDK's included.
	logger := slog.New(slog.NewJSONHandler(a.stderr, nil))
	slog.SetDefault(logger)

	// Metrics on the private listener's GET /metrics: declines received,
	// runs needing attention, and the Temporal SDK's client metrics.
	m := metrics.New()
	sdkMetrics, err := m.TemporalHandler()
	if err != nil {
		return err
	}
	tc, err := a.dial(starter.WithMetricsHandler(ctx, sdkMetrics))
	if err != nil {
		return err
	}
	defer tc.Close()

	// The ledger holds the API keys and idempotency records, and serves the
	// webhooks and the read model (GET /v1/runs, and status when no worker
	// answers).
	store, err := ledger.Open(ctx, a.databaseURL())
	if err != nil {
		return fmt.Errorf("open the ledger: %w", err)
	}
	defer store.Close()
	if err := m.WatchPhase(metrics.PhaseNeedsAttention, store.RunsInPhase); err != nil {
		return err
	}
	keys, err := apikeys.NewStore(store.Pool(), pepper, logger)
	if err != nil {
		return err
	}
	extra, err := intake.OptionsFromEnv(a.getenv, store)
	if err != nil {
		return err
	}
	lim, err := a.limits()
	if err != nil {
		return err
	}
	extra = append(extra, intake.WithReadModel(store), intake.WithAuthenticator(keys),
		intake.WithIdempotency(idempotency.NewStore(store.Pool())), intake.WithAnalytics(analytics.New(store.Pool())), intake.WithAudit(store, lim))
	opts, err := a.clientOptions()
	if err != nil {
		return err
	}
	// One set of rules for the API and the client behind it.
	extra = append(extra, intake.WithPolicies(opts.Policies), intake.WithRules(opts.Rules), intake.WithDeclineCounter(m))
	runs := starter.NewClient(tc, opts)
	// The Web UI and the temporal CLI decode payloads at /codec when
	// DUNNING_CODEC_TOKEN is set; /codec has its own token, so it is public.
	public, err := codec.MountFromEnv(a.getenv, intake.NewPublicHandler(runs, logger, extra...), logger)
	if err != nil {
		return err
	}

	// The browser dashboard shares the private listener and its keys; its
	// sessions are signed under a secret derived from the key pepper, so
	// every replica accepts them.
	dash, err := dashboard.New(dashboard.Config{Auth: keys, Keys: keys, Analytics: analytics.New(store.Pool()), Ledger: store, Limits: lim,
		SessionSecret: dashboard.SessionSecret(pepper), Logger: logger.With("component", "dashboard")})
	if err != nil {
		return err
	}
	private := dash.Mount(intake.NewPrivateHandler(runs, logger, extra...))
	servers := []*http.Server{newHTTPServer(m.Mount(private), logger), newHTTPServer(public, logger)}
	listeners := []net.Listener{ln, publicLn}
	serveErr := make(chan error, len(servers))
	for i, srv := range servers {
		go func() {
			if err := srv.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("serve HTTP on %s: %w", listeners[i].Addr(), err)
				return
			}
			serveErr <- nil
		}()
	}
	logger.Info("intake API listening", "addr", ln.Addr().String(), "public_addr", publicLn.Addr().String(),
		"task_queue", opts.TaskQueue, "gateways", opts.Rules.GatewayNames())

	// Either listener failing stops both, as a signal does.
	var errs []error
	received := 0
	select {
	case err := <-serveErr:
		received++
		if err != nil {
			errs = append(errs, err)
		}
	case <-ctx.Done():
	}
	logger.Info("shutting down; finishing in-flight requests", "grace", shutdownGrace.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil {
			errs = append(errs, fmt.Errorf("shut down the intake API: %w", err))
		}
	}
	for range len(servers) - received {
		if err := <-serveErr; err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	logger.Info("intake API stopped")
	return nil
}

// Default listen addresses: the private API on loopback unless configured
// otherwise, so a fresh install does not expose it.
const (
	DefaultAPIAddr    = "127.0.0.1:8080"
	DefaultPublicAddr = ":8081"
)

func newHTTPServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Long enough for a request that waits the handler's full timeout.
		WriteTimeout: intake.DefaultTimeout + 10*time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

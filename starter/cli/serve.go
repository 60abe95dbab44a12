package cli

import (
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

	"github.com/dunningco/dunning/codec"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/starter/intake"
)

// shutdownGrace is how long in-flight requests may finish after SIGINT or
// SIGTERM.
const shutdownGrace = 30 * time.Second

func (a *app) serve(ctx context.Context, args []string) error {
	fs := a.newFlagSet("serve", "[-addr HOST:PORT]")
	defaultAddr := a.getenv(EnvHTTPAddr)
	if defaultAddr == "" {
		defaultAddr = ":8080"
	}
	addr := fs.String("addr", defaultAddr, "listen address (default from "+EnvHTTPAddr+")")
	if err := parse(fs, args); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// serve owns the process, so its logger is everyone's, the Temporal
	// SDK's included.
	logger := slog.New(slog.NewJSONHandler(a.stderr, nil))
	slog.SetDefault(logger)

	tc, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer tc.Close()

	// The ledger serves the webhooks and the read model (GET /v1/runs, and
	// status when no worker answers). Without DATABASE_URL and webhooks the
	// API runs on Temporal alone.
	var store *ledger.Store
	if a.getenv("DATABASE_URL") != "" || intake.WebhooksConfigured(a.getenv) {
		s, err := ledger.Open(ctx, a.databaseURL())
		if err != nil {
			return fmt.Errorf("open the ledger: %w", err)
		}
		defer s.Close()
		store = s
	}
	var stores intake.Stores
	if store != nil {
		stores = store
	}
	extra, err := intake.OptionsFromEnv(a.getenv, stores)
	if err != nil {
		return err
	}
	if store != nil {
		extra = append(extra, intake.WithReadModel(store))
	}
	opts, err := a.clientOptions()
	if err != nil {
		return err
	}
	// One set of rules for the API and the client behind it.
	extra = append(extra, intake.WithPolicies(opts.Policies), intake.WithRules(opts.Rules))
	// The Web UI and the temporal CLI decode payloads at /codec when
	// DUNNING_CODEC_TOKEN is set.
	handler, err := codec.MountFromEnv(a.getenv, intake.NewHandler(starter.NewClient(tc, opts), logger, extra...), logger)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Long enough for a request that waits the handler's full timeout.
		WriteTimeout: intake.DefaultTimeout + 10*time.Second,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("intake API listening", "addr", ln.Addr().String(), "task_queue", opts.TaskQueue, "gateways", opts.Rules.GatewayNames(),
		"read_model", store != nil)

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve HTTP on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	logger.Info("shutting down; finishing in-flight requests", "grace", shutdownGrace.String())
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down the intake API: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP on %s: %w", ln.Addr(), err)
	}
	logger.Info("intake API stopped")
	return nil
}

// Command dunning-worker runs the dunning workflow and its activities
// against an external Temporal cluster. Configuration comes from the
// environment (see README).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dunningco/dunning/codec"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/metrics"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/worker"
)

func main() {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	slog.SetDefault(logger)
	if err := run(logger); err != nil {
		logger.Error("worker stopped", "error", err)
		os.Exit(1)
	}
}

func run(logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := worker.ConfigFromEnv()

	store, err := ledger.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("open ledger: %w", err)
	}
	defer store.Close()

	// Metrics: ours count what the ledger records for the first time; the
	// Temporal SDK's come through the client. Both are served on the
	// health listener's GET /metrics.
	m := metrics.New()
	store.SetObserver(m)
	sdkMetrics, err := m.TemporalHandler()
	if err != nil {
		return err
	}

	c, err := starter.DialFromEnv(starter.WithMetricsHandler(ctx, sdkMetrics))
	if err != nil {
		return fmt.Errorf("connect to Temporal: %w", err)
	}
	defer c.Close()
	opts := starter.ConnectionFromEnv()
	if err := worker.EnsureSearchAttributes(ctx, c, opts.Namespace); err != nil {
		// Cloud namespaces and locked-down clusters register them at setup.
		logger.Warn("could not register search attributes; register them once as README shows", "error", err)
	}

	providers, err := worker.ProvidersFromEnv()
	if err != nil {
		return err
	}
	deps, err := worker.Build(store, cfg, providers, logger)
	if err != nil {
		return err
	}
	deps.Interceptors = append(deps.Interceptors, m.Interceptor())
	w := worker.New(c, cfg.TaskQueue, deps)

	// The activities only enqueue billing events; this delivers them. It
	// stops with ctx, after its POSTs in flight.
	dispatcher, err := worker.NewDispatcher(store, cfg, logger)
	if err != nil {
		return err
	}
	dispatched := make(chan error, 1)
	go func() { dispatched <- dispatcher.Run(ctx) }()
	// Runs whose workflow ended without closing them are closed as aborted
	// and the billing system told; one replica sweeps at a time.
	sweep, err := worker.NewSweeper(store, c, logger)
	if err != nil {
		return err
	}
	swept := make(chan error, 1)
	go func() { swept <- sweep.Run(ctx) }()

	// Probes for the orchestrator: liveness and readiness (Temporal and
	// PostgreSQL answer), and Prometheus's GET /metrics, on an internal
	// address.
	if addr := os.Getenv("DUNNING_WORKER_HEALTH_ADDR"); addr != "-" {
		if addr == "" {
			addr = "127.0.0.1:8082"
		}
		probes := &http.Server{Addr: addr, Handler: m.Mount(worker.HealthHandler(c, store)), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := probes.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("health endpoint stopped", "addr", addr, "error", err)
			}
		}()
		defer probes.Close()
	}

	// DialFromEnv accepted the keys; naming them lets a rotation be checked
	// replica by replica.
	payloadKeys := []string{"none (" + codec.EnvDisabled + ")"}
	if c, err := codec.FromEnv(os.Getenv); err == nil && c != nil {
		payloadKeys = c.KeyIDs()
	}
	logger.Info("worker polling", "task_queue", cfg.TaskQueue, "namespace", opts.Namespace, "temporal", opts.HostPort, "payload_keys", payloadKeys)
	// Run returns after ctx ends and in-flight activities finish (graceful stop).
	err = w.Run(interruptOn(ctx))
	stop() // a worker that stopped on its own takes the dispatcher with it
	return errors.Join(err, <-dispatched, <-swept)
}

// interruptOn adapts a context to the worker's interrupt channel.
func interruptOn(ctx context.Context) <-chan any {
	ch := make(chan any, 1)
	go func() {
		<-ctx.Done()
		ch <- struct{}{}
	}()
	return ch
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

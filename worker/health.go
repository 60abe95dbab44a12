package worker

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"
)

// Pinger is a dependency a readiness check asks (the ledger's Ready).
type Pinger interface {
	Ready(ctx context.Context) error
}

// HealthHandler serves the worker's GET /healthz (the process is up) and
// GET /readyz (Temporal and PostgreSQL answer within two seconds; else 503
// naming what is down), for an orchestrator's probes. It needs no key and
// should listen on an internal address (DUNNING_WORKER_HEALTH_ADDR).
func HealthHandler(c client.Client, ledger Pinger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeHealth(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		checks, status := map[string]string{"temporal": "ok", "postgresql": "ok"}, http.StatusOK
		if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			checks["temporal"], status = "unavailable", http.StatusServiceUnavailable
		}
		if err := ledger.Ready(ctx); err != nil {
			checks["postgresql"], status = "unavailable", http.StatusServiceUnavailable
		}
		if status != http.StatusOK {
			w.Header().Set("Retry-After", "5")
		}
		writeHealth(w, status, map[string]any{"ready": status == http.StatusOK, "checks": checks})
	})
	return mux
}

func writeHealth(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

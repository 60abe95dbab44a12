package worker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.temporal.io/sdk/client"
)

type healthClient struct {
	client.Client
	err error
}

func (c healthClient) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	return &client.CheckHealthResponse{}, c.err
}

type pinger struct{ err error }

func (p pinger) Ready(context.Context) error { return p.err }

func TestWorkerProbes(t *testing.T) {
	down := errors.New("connection refused")
	for _, tt := range []struct {
		name               string
		temporal, postgres error
		want               int
		wantChecks         map[string]string
	}{
		{"both answer", nil, nil, http.StatusOK, map[string]string{"temporal": "ok", "postgresql": "ok"}},
		{"Temporal down", down, nil, http.StatusServiceUnavailable, map[string]string{"temporal": "unavailable", "postgresql": "ok"}},
		{"PostgreSQL down", nil, down, http.StatusServiceUnavailable, map[string]string{"temporal": "ok", "postgresql": "unavailable"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := HealthHandler(healthClient{err: tt.temporal}, pinger{tt.postgres})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			var out struct {
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tt.want || len(out.Checks) != 2 || out.Checks["temporal"] != tt.wantChecks["temporal"] || out.Checks["postgresql"] != tt.wantChecks["postgresql"] {
				t.Errorf("readyz = %d %v, want %d %v", rec.Code, out.Checks, tt.want, tt.wantChecks)
			}
			if tt.want != http.StatusOK && rec.Header().Get("Retry-After") == "" {
				t.Error("no Retry-After on 503")
			}
			live := httptest.NewRecorder()
			h.ServeHTTP(live, httptest.NewRequest(http.MethodGet, "/healthz", nil))
			if live.Code != http.StatusOK {
				t.Errorf("healthz = %d, want 200 whatever the dependencies", live.Code)
			}
		})
	}
}

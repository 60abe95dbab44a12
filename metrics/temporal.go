package metrics

import (
	"fmt"
	"log/slog"

	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
)

// latencyBuckets are the histogram bounds, in seconds, of activity
// durations and the Temporal SDK's latencies.
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// TemporalHandler is a metrics handler for the Temporal SDK (client.Options
// MetricsHandler) that exports the SDK's own metrics (temporal_request_*,
// temporal_workflow_task_*, temporal_activity_execution_latency_*, the
// worker's slots and pollers ...) through this registry, beside ours.
//
// The SDK's OpenTelemetry contrib is used rather than its tally contrib: the
// tally module is not served by our module proxy, OpenTelemetry is the
// SDK's maintained path, and its Prometheus exporter writes into the same
// client_golang registry as our collectors, so one /metrics serves both.
// Scope and target info are left out: they would add labels to every
// series and say nothing a single-service scrape needs.
func (m *Metrics) TemporalHandler() (client.MetricsHandler, error) {
	exporter, err := otelprom.New(otelprom.WithRegisterer(m.reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("metrics: Temporal SDK exporter: %w", err)
	}
	// The SDK's timers are histograms in seconds; OpenTelemetry's default
	// buckets (0 to 10,000) are meant for milliseconds and would put every
	// latency in the first one.
	seconds := sdkmetric.NewView(sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram},
		sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: latencyBuckets}})
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter), sdkmetric.WithView(seconds))
	return temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter: provider.Meter("temporal-sdk-go"),
		// The SDK's counters only grow: exported as Prometheus counters.
		UseMonotonicCounters: true,
		// A metric the SDK cannot record is not worth a crash.
		OnError: func(err error) { slog.Warn("metrics: Temporal SDK metric", "error", err) },
	}), nil
}

package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	tlog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/dunningco/dunning/codec"
	"github.com/dunningco/dunning/devserver"
	"github.com/dunningco/dunning/gateway"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/metrics"
	"github.com/dunningco/dunning/metrics/scrape"
	"github.com/dunningco/dunning/notify"
	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/starter/intake"
	"github.com/dunningco/dunning/worker"
	"github.com/dunningco/dunning/workflows"
)

// TestMetricsAfterRecovery runs one invoice that recovers on its second
// attempt through a worker and an API wired as dunning-worker and dunning
// serve wire them (each with its own registry, Temporal SDK metrics
// included), then scrapes both /metrics endpoints over HTTP and checks the
// counters read exactly what the ledger recorded. The stack is its own, so
// no other scenario's runs are counted.
func TestMetricsAfterRecovery(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := devserver.Start(devserver.Options{SearchAttributes: workflows.SearchAttributeTypes(), LogLevel: "error"})
	if err != nil {
		t.Fatalf("start Temporal: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	dial := func(h client.MetricsHandler) client.Client {
		c, err := client.Dial(client.Options{HostPort: srv.HostPort(), Namespace: srv.Namespace(), Logger: tlog.NewStructuredLogger(logger),
			DataConverter: codec.DataConverter(platformCodec), MetricsHandler: h})
		if err != nil {
			t.Fatalf("dial Temporal: %v", err)
		}
		t.Cleanup(c.Close)
		return c
	}
	// One database, opened by each process as in production.
	dbURL := ledgertest.NewDatabaseURL(t)
	open := func() *ledger.Store {
		s, err := ledger.Open(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}

	// The worker: the ledger's first-time facts, the activity interceptor,
	// the SDK's worker metrics; /metrics beside its probes.
	workerMetrics := metrics.New()
	workerStore := open()
	workerStore.SetObserver(workerMetrics)
	workerSDK, err := workerMetrics.TemporalHandler()
	if err != nil {
		t.Fatal(err)
	}
	wc := dial(workerSDK)
	w := sdkworker.New(wc, workflows.TaskQueue, sdkworker.Options{Interceptors: []interceptor.WorkerInterceptor{workerMetrics.Interceptor()}})
	worker.Register(w, worker.Deps{
		Ledger: workerStore, Gateways: []gateway.Gateway{gateway.NewSimulator()},
		Email: notify.DryRun{Logger: logger}, SMS: notify.DryRun{Logger: logger}, Logger: logger,
	})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(w.Stop)
	probes := httptest.NewServer(workerMetrics.Mount(worker.HealthHandler(wc, workerStore)))
	t.Cleanup(probes.Close)

	// The API: declines it handed to runs, runs needing attention, the
	// SDK's client metrics; /metrics on the private listener.
	apiMetrics := metrics.New()
	apiStore := open()
	if err := apiMetrics.WatchPhase(metrics.PhaseNeedsAttention, apiStore.RunsInPhase); err != nil {
		t.Fatal(err)
	}
	apiSDK, err := apiMetrics.TemporalHandler()
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := policy.NewCatalog(policy.Default(), fast())
	if err != nil {
		t.Fatal(err)
	}
	keys := newKeyStore(t, apiStore)
	apiKey := issueKey(t, keys, "acme")
	runs := starter.NewClient(dial(apiSDK), starter.Options{Policies: catalog})
	api := httptest.NewServer(apiMetrics.Mount(intake.NewPrivateHandler(runs, logger, intake.WithPolicies(catalog), intake.WithDeclineCounter(apiMetrics),
		intake.WithAuthenticator(keys), intake.WithReadModel(apiStore))))
	t.Cleanup(api.Close)

	// Declined once (do_not_honor), charged on the second attempt.
	req, err := http.NewRequest(http.MethodPost, api.URL+"/v1/declines",
		strings.NewReader(decline("inv-metrics", "sim:succeed-on=2;code=do_not_honor", "it-fast")))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("report decline: %s", resp.Status)
	}
	runCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	const wf = "dunning/acme/inv-metrics"
	var res workflows.Result
	if err := wc.GetWorkflow(runCtx, wf, "").Get(runCtx, &res); err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Outcome != policy.Recovered || res.Attempts != 2 {
		t.Fatalf("result = %+v, want recovered on attempt 2", res)
	}
	msgs, err := workerStore.Messages(ctx, wf)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("ledger holds %d messages, want 3 (payment failed, retry failed, recovered)", len(msgs))
	}

	// The worker's counters, as scraped.
	ws, err := scrape.Get(ctx, probes.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		`dunning_attempts_total{category="soft",network="unknown",outcome="declined",reason="scheduled"}`:  1,
		`dunning_attempts_total{category="none",network="unknown",outcome="succeeded",reason="scheduled"}`: 1,
		`dunning_recovered_amount_total{currency="EUR"}`:                                                   49.90,
		`dunning_runs_closed_total{outcome="recovered",policy="it-fast@2",variant="none"}`:                 1,
	}
	// One message series per kind the ledger recorded, each counted once.
	for _, m := range msgs {
		want[fmt.Sprintf(`dunning_messages_total{channel=%q,kind=%q,status=%q}`, m.Channel, m.Kind, m.Status)]++
	}
	for series, v := range want {
		if got, ok := ws[series]; !ok || got != v {
			t.Errorf("worker %s = %v (present %v), want %v", series, got, ok, v)
		}
	}
	for name, v := range map[string]float64{"dunning_attempts_total": 2, "dunning_runs_closed_total": 1, "dunning_messages_total": 3,
		"dunning_card_refusals_total": 0} {
		if got := ws.Sum(name); got != v {
			t.Errorf("worker %s sums to %v, want %v", name, got, v)
		}
	}
	if got := ws[`dunning_activity_duration_seconds_count{activity_type="Attempt",outcome="ok"}`]; got < 2 {
		t.Errorf("Attempt activity timed %v times, want at least 2", got)
	}
	if got := ws.Sum("temporal_workflow_completed_total"); got != 1 {
		t.Errorf("Temporal SDK temporal_workflow_completed_total = %v, want 1; names: %v", got, ws.Names())
	}
	if got := ws.Sum("temporal_workflow_task_schedule_to_start_latency_seconds_count"); got < 1 {
		t.Errorf("Temporal SDK workflow task latency histogram holds %v samples, want some; names: %v", got, ws.Names())
	}

	// The API's.
	as, err := scrape.Get(ctx, api.URL+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if got := as[`dunning_declines_received_total{category="soft",code="insufficient_funds",gateway="simulator"}`]; got != 1 {
		t.Errorf("API declines received = %v, want 1 (names: %v)", got, as.Names())
	}
	if got, ok := as["dunning_runs_needs_attention"]; !ok || got != 0 {
		t.Errorf("API dunning_runs_needs_attention = %v (present %v), want 0", got, ok)
	}
	if got := as.Sum("temporal_request_total"); got < 1 {
		t.Errorf("API Temporal SDK temporal_request_total = %v, want the start request", got)
	}
	// The private API's other routes still need a key; /metrics does not.
	resp, err = http.Get(api.URL + "/v1/runs?tenant=acme")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/runs without a key = %s, want 401", resp.Status)
	}
	t.Logf("worker metrics: %v", ws.Names())

	// A run in an experiment (started as the Go client does, with the
	// variant in its input) closes labelled with its variant.
	fastPolicy := fast()
	in := workflows.Input{Tenant: "acme", InvoiceID: "inv-metrics-b", Customer: workflows.Customer{ID: "cus-b", Email: "bo@example.com"},
		Amount: "12.34", Currency: "EUR", PaymentMethod: "sim:succeed", Policy: &fastPolicy, Experiment: "retry-timing", Variant: "treatment",
		Decline: workflows.Decline{Gateway: "simulator", Code: "insufficient_funds"}}
	run, err := wc.ExecuteWorkflow(runCtx, client.StartWorkflowOptions{ID: workflows.WorkflowID("acme", "inv-metrics-b"), TaskQueue: workflows.TaskQueue,
		TypedSearchAttributes: workflows.InitialSearchAttributes(in, 1234)}, workflows.WorkflowName, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(runCtx, &res); err != nil || res.Outcome != policy.Recovered {
		t.Fatalf("experiment run = %+v, %v; want recovered", res, err)
	}
	if ws, err = scrape.Get(ctx, probes.URL+"/metrics"); err != nil {
		t.Fatal(err)
	}
	treatment := fmt.Sprintf(`dunning_runs_closed_total{outcome="recovered",policy=%q,variant="treatment"}`, metrics.PolicyName(fastPolicy.Ref()))
	if got := ws[treatment]; got != 1 {
		t.Errorf("%s = %v, want 1", treatment, got)
	}
	if got := ws[`dunning_recovered_amount_total{currency="EUR"}`]; got != 62.24 {
		t.Errorf("recovered EUR after both runs = %v, want 62.24 (49.90 + 12.34)", got)
	}
}

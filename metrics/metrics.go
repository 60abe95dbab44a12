// Package metrics is the platform's Prometheus instrumentation: the
// dunning_ metrics that say what the platform recovers and why the rest is
// lost, the Temporal SDK's own metrics, and the /metrics handler that serves
// both from one registry.
//
// Facts are counted where they become durable for the first time: the
// ledger tells its Observer (Metrics implements ledger.Observer) after a
// charge's outcome, a message's status, a run's close or a card-network
// refusal committed, and only when the write was not a repeat. An activity
// that Temporal retries therefore counts once, however often it ran.
//
// Labels stay low-cardinality: no tenant, customer, invoice or workflow ID;
// decline codes outside the taxonomy (package decline) read "other".
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shopspring/decimal"

	"github.com/dunningco/dunning/decline"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/workflows"
)

// Namespace prefixes every metric of ours.
const Namespace = "dunning"

// Label values for what is absent or outside the bounded vocabulary.
const (
	none    = "none"    // no decline (a success), no variant, no code
	other   = "other"   // a code outside the decline taxonomy
	unknown = "unknown" // a card network nobody told us
)

// Metrics holds the platform's collectors in one Prometheus registry. It is
// safe for concurrent use; the zero value is not usable, call New.
type Metrics struct {
	reg *prometheus.Registry

	declines        *prometheus.CounterVec
	attempts        *prometheus.CounterVec
	recovered       *amountCounter
	runsClosed      *prometheus.CounterVec
	messages        *prometheus.CounterVec
	refusals        *prometheus.CounterVec
	activityLatency *prometheus.HistogramVec
}

var _ ledger.Observer = (*Metrics)(nil)

// New builds the registry with the Go runtime and process collectors and
// every dunning_ metric at zero.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		declines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "declines_received_total",
			Help: "Declines reported to the platform (a run's first decline and later ones for an open run), by decline category, code and gateway.",
		}, []string{"category", "code", "gateway"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "attempts_total",
			Help: "Charge attempts with a recorded outcome, by outcome, decline category (none for a success), card network and the attempt's reason.",
		}, []string{"outcome", "category", "network", "reason"}),
		recovered: newAmountCounter(prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "recovered_amount_total"),
			"Amount of runs closed as recovered, by currency, in the currency's major unit (summed exactly, exported as a float).",
			[]string{"currency"}, nil)),
		runsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "runs_closed_total",
			Help: "Runs closed, by outcome (recovered, exhausted, cancelled), policy@version and experiment variant (none outside an experiment).",
		}, []string{"outcome", "policy", "variant"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "messages_total",
			Help: "Customer messages with a final status, by kind, channel and status (sent, dry-run, skipped, failed).",
		}, []string{"kind", "channel", "status"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "card_refusals_total",
			Help: "Charges a card-network rule or card block refused before the gateway was called, by rule and card network.",
		}, []string{"rule", "network"}),
		activityLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "activity_duration_seconds",
			Help:    "Time one activity execution took in the worker, by activity type and outcome (ok, error).",
			Buckets: latencyBuckets,
		}, []string{"activity_type", "outcome"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.declines, m.attempts, m.recovered, m.runsClosed, m.messages, m.refusals, m.activityLatency,
	)
	return m
}

// Registry is where other collectors (the Temporal SDK's, a gauge) join ours.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format. A collector
// that fails (the ledger is down for a gauge) is left out of that scrape;
// the others are still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      slogErrorLog{},
		Registry:      m.reg, // promhttp_metric_handler_* about the scrapes themselves
	})
}

// Mount serves GET /metrics from m and everything else from h, for a
// listener that already serves something (the worker's probes, the API).
func (m *Metrics) Mount(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.Handle("/", h)
	return mux
}

// DeclineReceived counts one decline the platform accepted: a run's first
// decline or a later one delivered to its open run.
func (m *Metrics) DeclineReceived(in decline.Input) {
	d := decline.Classify(in)
	m.declines.WithLabelValues(string(d.Category), Code(in.DeclineCode), labelOr(in.Gateway, unknown)).Inc()
}

// AttemptFinished implements ledger.Observer.
func (m *Metrics) AttemptFinished(_ context.Context, a ledger.Attempt, network string) {
	category := none
	if a.Status == "declined" {
		category = string(decline.Classify(decline.Input{
			Gateway: a.Gateway, DeclineCode: a.DeclineCode, AdviceCode: a.AdviceCode,
			NetworkDeclineCode: a.NetworkDeclineCode, NetworkAdviceCode: a.NetworkAdviceCode,
			Network: network, RequiresAction: a.RequiresAction,
		}).Category)
	}
	m.attempts.WithLabelValues(a.Status, category, labelOr(network, unknown), labelOr(a.Reason, unknown)).Inc()
}

// RunClosed implements ledger.Observer: the close, and for a recovered run
// its amount.
func (m *Metrics) RunClosed(ctx context.Context, r ledger.Run) {
	m.runsClosed.WithLabelValues(r.Status, PolicyName(r.Policy), labelOr(VariantFrom(ctx), none)).Inc()
	if r.Status == "recovered" {
		m.recovered.add(r.Currency, r.Amount)
	}
}

// MessageFinished implements ledger.Observer.
func (m *Metrics) MessageFinished(_ context.Context, msg ledger.Message) {
	m.messages.WithLabelValues(labelOr(msg.Kind, unknown), msg.Channel, msg.Status).Inc()
}

// CardDenied implements ledger.Observer.
func (m *Metrics) CardDenied(_ context.Context, d ledger.CardDenial) {
	m.refusals.WithLabelValues(RuleName(d.Rule), labelOr(d.Network, unknown)).Inc()
}

// observeActivity records one activity execution's duration.
func (m *Metrics) observeActivity(activityType string, took time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.activityLatency.WithLabelValues(activityType, outcome).Observe(took.Seconds())
}

// WatchPhase adds a gauge, dunning_runs_<phase> (e.g. needs_attention), read
// from the ledger's read model at each scrape, so it is right whichever
// process moved the runs. A scrape that cannot read the ledger within two
// seconds leaves the gauge out rather than report a wrong number.
func (m *Metrics) WatchPhase(phase string, count func(ctx context.Context, phase string) (int64, error)) error {
	desc := prometheus.NewDesc(prometheus.BuildFQName(Namespace, "runs", phase),
		fmt.Sprintf("Runs the read model shows in phase %s now.", phase), nil, nil)
	return m.reg.Register(gaugeFunc{desc: desc, read: func(ctx context.Context) (int64, error) { return count(ctx, phase) }})
}

type gaugeFunc struct {
	desc *prometheus.Desc
	read func(context.Context) (int64, error)
}

func (g gaugeFunc) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g gaugeFunc) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := g.read(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(g.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(n))
}

// amountCounter sums amounts per currency as exact decimals; the float a
// Prometheus sample needs is made only when a scrape reads it, so a
// million additions of 0.10 still read 100000.
type amountCounter struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	sums map[string]decimal.Decimal
}

func newAmountCounter(desc *prometheus.Desc) *amountCounter {
	return &amountCounter{desc: desc, sums: map[string]decimal.Decimal{}}
}

func (c *amountCounter) add(currency string, amount decimal.Decimal) {
	if !amount.IsPositive() {
		return // a counter only goes up; the ledger never closes a run for less
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sums[currency] = c.sums[currency].Add(amount)
}

// Sum is the exact total for currency, for tests and reports.
func (c *amountCounter) Sum(currency string) decimal.Decimal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sums[currency]
}

func (c *amountCounter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *amountCounter) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for currency, sum := range c.sums {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, sum.InexactFloat64(), currency)
	}
}

// knownCodes is every code the decline taxonomy maps, the only values the
// code label takes besides "other" and "none".
var knownCodes = sync.OnceValue(func() map[string]bool {
	codes := map[string]bool{}
	for _, e := range decline.Table() {
		codes[strings.ToLower(e.Code)] = true
	}
	return codes
})

// Code is the code label for a reported decline code: the code when the
// taxonomy knows it, "other" when it does not, "none" when there is none.
func Code(code string) string {
	code = strings.ToLower(strings.TrimSpace(code))
	switch {
	case code == "":
		return none
	case knownCodes()[code]:
		return code
	default:
		return other
	}
}

// RuleName is the rule label for a refusal: the ledger's rule text names
// the limit's configured numbers and, for a block, the time it ends; the
// label keeps only which rule it was.
func RuleName(rule string) string {
	switch {
	case strings.Contains(rule, "blocked until"):
		return "card_blocked"
	case strings.HasPrefix(rule, "visa:") && strings.Contains(rule, "reattempts"):
		return "visa_reattempts"
	case strings.HasPrefix(rule, "mastercard:") && strings.Contains(rule, "merchant and amount"):
		return "mastercard_same_amount"
	case strings.HasPrefix(rule, "mastercard:") && strings.Contains(rule, "declines per card"):
		return "mastercard_daily_declines"
	default:
		return other
	}
}

// PolicyName is the policy label for a run's policy reference
// "name@version#hash": name@version. The content hash tells two edits of one
// version apart in the ledger; on a dashboard it would only split the line.
func PolicyName(ref string) string {
	if i := strings.IndexByte(ref, '#'); i >= 0 {
		ref = ref[:i]
	}
	return labelOr(ref, unknown)
}

func labelOr(v, def string) string {
	if v = strings.TrimSpace(v); v == "" {
		return def
	}
	return v
}

// slogErrorLog sends promhttp's errors to the default slog logger.
type slogErrorLog struct{}

func (slogErrorLog) Println(v ...any) {
	slog.Warn("metrics: scrape error", "error", errors.New(strings.TrimSpace(fmt.Sprintln(v...))))
}

// PhaseNeedsAttention is the read model's phase of runs held for our own
// failure; WatchPhase makes it the gauge dunning_runs_needs_attention.
const PhaseNeedsAttention = string(workflows.PhaseNeedsAttention)

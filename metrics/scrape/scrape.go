// Package scrape reads a Prometheus /metrics endpoint over HTTP into
// samples keyed the way PromQL writes a series, for tests and checks.
package scrape

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Samples maps a series, `name{label="value",...}` with labels sorted by
// name (just `name` without labels), to its value. Histograms appear as
// their _count and _sum series.
type Samples map[string]float64

// Get scrapes url (the endpoint, e.g. http://host:port/metrics) in the
// Prometheus text format.
func Get(ctx context.Context, url string) (Samples, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("scrape %s: %s: %s", url, resp.Status, body)
	}
	return Parse(resp.Body)
}

// Parse reads the Prometheus text format.
func Parse(r io.Reader) (Samples, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	s := Samples{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := series(name, m.GetLabel())
			switch {
			case m.Counter != nil:
				s[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				s[key] = m.GetGauge().GetValue()
			case m.Untyped != nil:
				s[key] = m.GetUntyped().GetValue()
			case m.Histogram != nil:
				s[series(name+"_count", m.GetLabel())] = float64(m.GetHistogram().GetSampleCount())
				s[series(name+"_sum", m.GetLabel())] = m.GetHistogram().GetSampleSum()
			case m.Summary != nil:
				s[series(name+"_count", m.GetLabel())] = float64(m.GetSummary().GetSampleCount())
				s[series(name+"_sum", m.GetLabel())] = m.GetSummary().GetSampleSum()
			}
		}
	}
	return s, nil
}

func series(name string, labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return name
	}
	pairs := make([]string, 0, len(labels))
	for _, l := range labels {
		pairs = append(pairs, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	slices.Sort(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// Sum adds every series of the metric name, whatever its labels.
func (s Samples) Sum(name string) float64 {
	var total float64
	for k, v := range s {
		if k == name || strings.HasPrefix(k, name+"{") {
			total += v
		}
	}
	return total
}

// Names lists the metric names present, sorted.
func (s Samples) Names() []string {
	seen := map[string]bool{}
	for k := range s {
		name, _, _ := strings.Cut(k, "{")
		seen[name] = true
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

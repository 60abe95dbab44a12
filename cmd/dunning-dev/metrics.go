package main

import (
	"go.temporal.io/sdk/client"

	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/metrics"
)

// devMetrics builds the one registry dev mode serves: the ledger's facts,
// the runs needing attention, and the Temporal SDK's metrics through the
// handler the client is dialled with.
func devMetrics(store *ledger.Store) (*metrics.Metrics, client.MetricsHandler, error) {
	m := metrics.New()
	store.SetObserver(m)
	if err := m.WatchPhase(metrics.PhaseNeedsAttention, store.RunsInPhase); err != nil {
		return nil, nil, err
	}
	h, err := m.TemporalHandler()
	if err != nil {
		return nil, nil, err
	}
	return m, h, nil
}

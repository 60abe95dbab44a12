package analytics

import (
	"context"
	"errors"
	"time"
)

var errTODO = errors.New("analytics: not implemented yet")

// Summary is the period's headline figures.
func (s *Store) Summary(ctx context.Context, q Query) (Summary, error) {
	return Summary{}, errTODO
}

// Series is recovery by the day, week or month of the decline. Buckets
// without runs are left out.
func (s *Store) Series(ctx context.Context, q Query, interval Granularity) (Series, error) {
	return Series{}, errTODO
}

// Breakdown is recovery grouped by one dimension, largest failed revenue
// first.
func (s *Store) Breakdown(ctx context.Context, q Query, by Dimension) (Breakdown, error) {
	return Breakdown{}, errTODO
}

// Methods is how the period's recovered runs were recovered: by method and
// by the number of the attempt that succeeded.
func (s *Store) Methods(ctx context.Context, q Query) (Methods, error) {
	return Methods{}, errTODO
}

// Aging is the tenant's open runs in currency at the moment at (now when
// zero), by age and by phase.
func (s *Store) Aging(ctx context.Context, tenant, currency string, at time.Time) (Aging, error) {
	return Aging{}, errTODO
}

// Experiments compares the arms of every experiment with runs in the
// period. control names the control arm; when empty, or when an
// experiment has no arm of that name, the arm named "control", else
// "default", else the arm with the most settled runs is the control.
func (s *Store) Experiments(ctx context.Context, q Query, control string) (Experiments, error) {
	return Experiments{}, errTODO
}

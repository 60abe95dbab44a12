package starter

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrTooManyReports means an open run was sent more decline reports than
// it takes in a short time (a flood); the caller should slow down. The
// error carries the wait.
var ErrTooManyReports = errors.New("too many decline reports for this invoice")

// Reports to one open run: a burst of this many, then one a minute. A
// billing system resends a decline a few times; a flood is refused before
// it reaches the run's history.
const (
	reportBurst = 10
	reportEvery = time.Minute
	// reportLimiters bounds the memory the limiters take: the oldest are
	// dropped first (a dropped invoice starts with a fresh burst).
	reportLimiters = 10_000
)

// reportLimits keeps one token bucket per invoice that has an open run.
type reportLimits struct {
	mu    sync.Mutex
	byKey map[string]*rate.Limiter
	order []string
}

// allow takes a token for the run's ID, reporting how long to wait when
// there is none.
func (l *reportLimits) allow(id string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byKey == nil {
		l.byKey = map[string]*rate.Limiter{}
	}
	lim, ok := l.byKey[id]
	if !ok {
		if len(l.order) >= reportLimiters {
			delete(l.byKey, l.order[0])
			l.order = l.order[1:]
		}
		lim = rate.NewLimiter(rate.Every(reportEvery), reportBurst)
		l.byKey[id] = lim
		l.order = append(l.order, id)
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// TooManyReportsError is ErrTooManyReports with the wait before the next
// report is taken.
type TooManyReportsError struct {
	Wait    time.Duration
	Invoice string
}

func (e *TooManyReportsError) Error() string {
	return fmt.Sprintf("%v %q: try again in %s", ErrTooManyReports, e.Invoice, e.Wait.Round(time.Second))
}

func (e *TooManyReportsError) Unwrap() error { return ErrTooManyReports }

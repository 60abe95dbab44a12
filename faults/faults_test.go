package faults

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/gateway/httpgw"
	"github.com/dunningco/dunning/policy"
	"github.com/dunningco/dunning/workflows"
)

// scenario is one fault and what must hold through it.
type scenario struct {
	name string
	// ci puts it in the subset `go test ./faults/` runs; the rest need
	// FAULTS=full.
	ci  bool
	run func(t *testing.T, shared *temporalServer)
}

// TestFaults runs the scenarios in parallel against one shared Temporal dev
// server (a scenario that stops Temporal starts its own). Each scenario has
// its own worker and API processes, task queue, ledger database and fake
// providers.
func TestFaults(t *testing.T) {
	bins := tools(t)
	shared := startTemporal(t, bins)
	for _, sc := range []scenario{
		{"kill -9 the worker while the gateway charges", true, testKillDuringCharge},
		{"kill -9 the worker right after the gateway answered", false, testKillAfterGatewayAnswered},
		{"kill -9 the worker while a message is sent", false, testKillDuringSend},
		{"gateway answers 409 in progress, then the charge", true, gatewayFault(fault{Status: http.StatusConflict, RetryAfter: "1"})},
		{"gateway answers 429 with Retry-After, then the charge", false, gatewayFault(fault{Status: http.StatusTooManyRequests, RetryAfter: "2"})},
		{"gateway answers 503, then the charge", false, gatewayFault(fault{Status: http.StatusServiceUnavailable})},
		{"PostgreSQL down across the retries' moments", true, postgresOutage(false)},
		{"PostgreSQL down while an attempt is at the gateway", false, postgresOutage(true)},
		{"Temporal down: the API answers 503, the runs carry on", true, temporalDown("faults-long")},
		{"Temporal down across the policy window's end", false, temporalDown("faults")},
		{"Temporal server killed and restarted on its file", false, testTemporalRestart},
		{"a flood of decline reports", true, testDeclineFlood},
		{"two workers on one queue, one killed mid-charge", false, testTwoWorkers},
	} {
		t.Run(sc.name, func(t *testing.T) {
			if !sc.ci {
				full(t)
			}
			t.Parallel()
			sc.run(t, shared)
		})
	}
}

// succeedFirst accepts every charge: a run recovers on attempt 1.
func succeedFirst(int) httpgw.Response { return httpgw.Response{Outcome: httpgw.OutcomeSucceeded} }

// wantRecovered fails unless the run recovered after attempts attempts.
func wantRecovered(t *testing.T, res workflows.Result, attempts int) {
	t.Helper()
	if res.Outcome != policy.Recovered || res.Attempts != attempts {
		t.Errorf("run ended %s after %d attempts (%s), want recovered after %d", res.Outcome, res.Attempts, res.Reason, attempts)
	}
}

// onFirst runs fn once, for the first call that match accepts.
func onFirst(match func(call) bool, fn func(call) fault) func(call) fault {
	var once sync.Once
	return func(c call) fault {
		var f fault
		if match(c) {
			once.Do(func() { f = fn(c) })
		}
		return f
	}
}

// testKillDuringCharge: the gateway has the request and is charging when
// the worker dies. The charge goes through; its answer is lost. The retried
// activity, on a new worker, asks again with the same key and gets the
// first answer: one charge, one attempt, recovered.
func testKillDuringCharge(t *testing.T, shared *temporalServer) {
	s := newStack(t, stackOptions{temporal: shared, outcome: succeedFirst})
	arrived, release := make(chan call, 1), make(chan struct{})
	s.gw.setHooks(hooks{Before: onFirst(func(c call) bool { return true }, func(c call) fault {
		arrived <- c
		<-release // the worker dies while we charge
		return fault{}
	})})
	s.decline("inv-kill-charge")
	var c call
	select {
	case c = <-arrived:
	case <-time.After(90 * time.Second):
		t.Fatal("no charge reached the gateway")
	}
	s.killWorkers()
	close(release)
	s.startWorker()

	res := s.result("inv-kill-charge", 5*time.Minute)
	wantRecovered(t, res, 1)
	l := s.checkOnce("inv-kill-charge", 1)
	if n := s.gw.requestsFor(c.Key); n < 2 {
		t.Errorf("gateway saw %s %d times; the retry must ask again with the same key", c.Key, n)
	}
	if len(l.attempts) != 1 || l.attempts[0].Status != "succeeded" || l.run.Status != "recovered" {
		t.Errorf("ledger: run %s, attempts %+v; want recovered with one succeeded attempt", l.run.Status, l.attempts)
	}
}

// testKillAfterGatewayAnswered: the gateway charged and answered; the
// worker dies before (or while) it writes the ledger. Same key on retry,
// one charge.
func testKillAfterGatewayAnswered(t *testing.T, shared *temporalServer) {
	s := newStack(t, stackOptions{temporal: shared, outcome: succeedFirst})
	answered := make(chan call, 1)
	var once sync.Once
	s.gw.setHooks(hooks{After: func(c call) {
		once.Do(func() {
			answered <- c
		})
	}})
	s.decline("inv-kill-answered")
	select {
	case <-answered:
	case <-time.After(90 * time.Second):
		t.Fatal("no charge reached the gateway")
	}
	s.killWorkers()
	s.startWorker()
	res := s.result("inv-kill-answered", 5*time.Minute)
	wantRecovered(t, res, 1)
	l := s.checkOnce("inv-kill-answered", 1)
	if len(l.attempts) != 1 || l.run.Status != "recovered" {
		t.Errorf("ledger: run %s, %d attempts; want recovered with one", l.run.Status, len(l.attempts))
	}
}

// testKillDuringSend: the first email reaches the provider, which accepts
// it while the worker dies. The retry must not send it again.
func testKillDuringSend(t *testing.T, shared *temporalServer) {
	// The long window keeps this about the message: the 30 s one would
	// be spent while the send's timeout runs out.
	s := newStack(t, stackOptions{temporal: shared, outcome: succeedFirst, policy: "faults-long"})
	arrived, release := make(chan call, 1), make(chan struct{})
	s.msgs.setHooks(hooks{Before: onFirst(func(c call) bool { return strings.HasPrefix(c.Key, "email:") }, func(c call) fault {
		arrived <- c
		<-release
		return fault{}
	})})
	s.decline("inv-kill-send")
	select {
	case <-arrived:
	case <-time.After(90 * time.Second):
		t.Fatal("no email reached the provider")
	}
	s.killWorkers()
	close(release)
	s.startWorker()
	res := s.result("inv-kill-send", 5*time.Minute)
	wantRecovered(t, res, 1)
	s.checkOnce("inv-kill-send", 1)
}

// gatewayFault: the gateway answers f twice for attempt 1 before charging.
// The outcome is unknown meanwhile: the same key is asked again (after
// Retry-After when given), attempt 2 never starts, one charge.
func gatewayFault(f fault) func(*testing.T, *temporalServer) {
	return func(t *testing.T, shared *temporalServer) {
		s := newStack(t, stackOptions{temporal: shared, outcome: succeedFirst})
		// Workflow IDs are per invoice on the shared server.
		invoice := fmt.Sprintf("inv-gw-%d", f.Status)
		var mu sync.Mutex
		var times []time.Time
		s.gw.setHooks(hooks{Before: func(c call) fault {
			mu.Lock()
			defer mu.Unlock()
			times = append(times, time.Now())
			if c.Attempt == 1 && c.N <= 2 {
				return f
			}
			return fault{}
		}})
		s.decline(invoice)
		res := s.result(invoice, 3*time.Minute)
		wantRecovered(t, res, 1)
		l := s.checkOnce(invoice, 1)
		key := workflows.WorkflowID("acme", invoice) + "/attempt-1"
		if n := s.gw.requestsFor(key); n != 3 {
			t.Errorf("gateway saw %s %d times, want 3 (two faults, then the charge)", key, n)
		}
		if n := s.gw.requestsFor(workflows.WorkflowID("acme", invoice) + "/attempt-2"); n != 0 {
			t.Errorf("attempt 2 reached the gateway %d times while attempt 1 was unknown", n)
		}
		if len(l.attempts) != 1 || l.attempts[0].Status != "succeeded" {
			t.Errorf("ledger attempts %+v, want one succeeded", l.attempts)
		}
		if f.RetryAfter == "2" {
			mu.Lock()
			defer mu.Unlock()
			for i := 1; i < len(times); i++ {
				if gap := times[i].Sub(times[i-1]); gap < 2*time.Second {
					t.Errorf("request %d came %s after the previous one; Retry-After said 2s", i+1, gap.Round(time.Millisecond))
				}
			}
		}
	}
}

// postgresOutage: attempt 1 declines, and PostgreSQL (a private cluster)
// goes down for 40 s, longer than the whole policy window (30 s). The run
// must not exhaust on our outage: once the ledger is back the late retry
// runs and recovers. midAttempt stops the database while the gateway
// charges attempt 1, so the answer cannot be recorded until it is back;
// otherwise it stops once attempt 1 is recorded and its message sent, so
// the outage spans the moments of retries 2 and 3.
func postgresOutage(midAttempt bool) func(*testing.T, *temporalServer) {
	return func(t *testing.T, shared *temporalServer) { testPostgresOutage(t, shared, midAttempt) }
}

func testPostgresOutage(t *testing.T, shared *temporalServer, midAttempt bool) {
	pg := newPGCluster(t)
	s := newStack(t, stackOptions{temporal: shared, pg: pg})
	invoice := "inv-pg-outage"
	if midAttempt {
		invoice = "inv-pg-mid-attempt"
	}
	var (
		down    time.Time
		stopped = make(chan struct{})
		once    sync.Once
	)
	if midAttempt {
		s.gw.setHooks(hooks{Before: func(c call) fault {
			if c.Attempt == 1 {
				once.Do(func() {
					// Inside the gateway's handler: the attempt is
					// recorded as started, the answer will find no ledger.
					if out, err := pg.cmd("pg_ctl", "-D", pg.data(), "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
						t.Errorf("stop PostgreSQL: %v\n%s", err, out)
					}
					down = time.Now()
					close(stopped)
				})
			}
			return fault{}
		}})
	} else {
		s.msgs.setHooks(hooks{After: func(c call) {
			if strings.HasSuffix(c.Key, "/attempt-1-failed/email") {
				once.Do(func() { close(stopped) })
			}
		}})
	}
	s.decline(invoice)
	select {
	case <-stopped:
	case <-time.After(90 * time.Second):
		t.Fatal("attempt 1 never got that far")
	}
	if !midAttempt {
		pg.stop()
		down = time.Now()
	}
	time.Sleep(40*time.Second - time.Since(down))
	pg.start()
	t.Logf("PostgreSQL was down %s", time.Since(down).Round(time.Second))

	res := s.result(invoice, 5*time.Minute)
	wantRecovered(t, res, 2)
	l := s.checkOnce(invoice, 1)
	if len(l.attempts) != 2 || l.run.Status != "recovered" {
		t.Errorf("ledger: run %s, %d attempts; want recovered on attempt 2", l.run.Status, len(l.attempts))
	}
}

// temporalDown: with the Temporal server killed, the API answers 503 with
// Retry-After (never 500) for a new decline and never 500 for a status;
// once the server is back on its file, the open run carries on and a new
// decline is taken. The outage (about 20 s) spans the open run's retry
// moments (3 and 6 s); under faults-long it ends inside the policy's
// window, under faults (a 30 s window) the run wakes after the window's end
// and must still not be exhausted by our downtime.
func temporalDown(policyName string) func(*testing.T, *temporalServer) {
	return func(t *testing.T, _ *temporalServer) { testTemporalDown(t, policyName) }
}

func testTemporalDown(t *testing.T, policyName string) {
	own := startTemporal(t, tools(t))
	s := newStack(t, stackOptions{temporal: own, policy: policyName})
	s.decline("inv-before-outage")
	waitFor(t, 60*time.Second, "the run's first email", func() (bool, error) {
		msgs, err := s.store.Messages(context.Background(), workflows.WorkflowID("acme", "inv-before-outage"))
		return len(msgs) > 0, err
	})
	own.kill()
	down := time.Now()

	start := time.Now()
	code, header, body, err := s.post("/v1/declines", s.declineBody("inv-during-outage", "dec-1", "declined"))
	took := time.Since(start)
	if err != nil {
		t.Fatalf("POST during the outage: %v", err)
	}
	if code != http.StatusServiceUnavailable || header.Get("Retry-After") == "" {
		t.Errorf("POST /v1/declines with Temporal down: %d Retry-After %q %v (after %s), want 503 with Retry-After",
			code, header.Get("Retry-After"), body, took.Round(time.Millisecond))
	} else {
		t.Logf("POST /v1/declines with Temporal down: 503, Retry-After %s, after %s", header.Get("Retry-After"), took.Round(time.Millisecond))
	}
	code, header, body, err = httpJSON(http.MethodGet, s.apiURL+"/v1/runs/acme/inv-before-outage", s.apiKey, nil, nil)
	if err != nil || code >= 500 && (code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout || header.Get("Retry-After") == "") {
		t.Errorf("GET status with Temporal down: %d Retry-After %q %v %v; want an answer from the read model, or 503/504 with Retry-After",
			code, header.Get("Retry-After"), body, err)
	} else {
		t.Logf("GET status with Temporal down: %d", code)
	}

	// Past the open run's retry moments (3s, 6s), then back.
	time.Sleep(max(0, 8*time.Second-time.Since(down)))
	own.start()
	t.Logf("Temporal was down %s", time.Since(down).Round(time.Second))
	waitFor(t, 60*time.Second, "the API taking declines again", func() (bool, error) {
		code, _, body, err := s.post("/v1/declines", s.declineBody("inv-during-outage", "dec-1", "declined"))
		if err != nil {
			return false, err
		}
		// 503 and 504 with Retry-After are honest while the server warms up.
		if code >= 500 && code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout {
			t.Errorf("POST while Temporal comes back: %d %v", code, body)
		}
		return code == http.StatusAccepted, fmt.Errorf("%d %v", code, body)
	})
	wantRecovered(t, s.result("inv-before-outage", 3*time.Minute), 2)
	wantRecovered(t, s.result("inv-during-outage", 3*time.Minute), 2)
	s.checkOnce("inv-before-outage", 2)
}

// testTemporalRestart: the server dies between attempt 1 and 2 and comes
// back on its file: the run resumes where it was, one charge.
func testTemporalRestart(t *testing.T, _ *temporalServer) {
	own := startTemporal(t, tools(t))
	// The outage with the server's restart ends inside the long window;
	// "Temporal down across the policy window's end" covers the other case.
	s := newStack(t, stackOptions{temporal: own, policy: "faults-long"})
	declined := make(chan call, 1)
	var once sync.Once
	s.gw.setHooks(hooks{After: func(c call) {
		if c.Attempt == 1 {
			once.Do(func() { declined <- c })
		}
	}})
	s.decline("inv-temporal-restart")
	select {
	case <-declined:
	case <-time.After(90 * time.Second):
		t.Fatal("attempt 1 never reached the gateway")
	}
	own.kill()
	time.Sleep(10 * time.Second)
	own.start()
	res := s.result("inv-temporal-restart", 3*time.Minute)
	wantRecovered(t, res, 2)
	s.checkOnce("inv-temporal-restart", 1)
}

// testDeclineFlood: 50 reports with distinct IDs and a few of 100 KB and
// 1 MB arrive for one open run. Oversized ones are refused with a 4xx, the rest
// beyond the per-invoice burst with 429 and Retry-After; none is a 5xx,
// and the run recovers as scheduled.
func testDeclineFlood(t *testing.T, shared *temporalServer) {
	s := newStack(t, stackOptions{temporal: shared})
	s.decline("inv-flood")
	statuses := map[int]int{}
	// Three bodies over the API's 1 MiB limit, three under it whose
	// decline message alone is 100 KB: the field's bound refuses those.
	for i, size := range []int{1 << 20, 1 << 20, 1 << 20, 100 << 10, 100 << 10, 100 << 10} {
		code, _, body, err := s.post("/v1/declines", s.declineBody("inv-flood", fmt.Sprintf("big-%d", i), strings.Repeat("x", size)))
		if err != nil && code == 0 {
			t.Fatalf("oversized report: %v", err)
		}
		if code < 400 || code >= 500 {
			t.Errorf("oversized report %d: %d %v, want a 4xx", i, code, body)
		}
		statuses[code]++
	}
	accepted := 0
	for i := range 50 {
		code, header, body, err := s.post("/v1/declines", s.declineBody("inv-flood", fmt.Sprintf("flood-%d", i), "declined again"))
		if err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
		statuses[code]++
		switch code {
		case http.StatusAccepted, http.StatusOK:
			accepted++
		case http.StatusTooManyRequests:
			if header.Get("Retry-After") == "" {
				t.Errorf("report %d: 429 without Retry-After", i)
			}
		default:
			t.Errorf("report %d: %d %v, want 202 or 429", i, code, body)
		}
	}
	t.Logf("flood answers by status: %v", statuses)
	if accepted > 11 {
		t.Errorf("%d of 50 flood reports reached the run; the per-invoice bound allows a burst of 10", accepted)
	}
	res := s.result("inv-flood", 3*time.Minute)
	wantRecovered(t, res, 2)
	l := s.checkOnce("inv-flood", 1)
	if l.run.Status != "recovered" {
		t.Errorf("ledger run %s, want recovered", l.run.Status)
	}
}

// testTwoWorkers: two workers poll one task queue, three runs charge at
// once, and one worker is killed while a charge is at the gateway. Every
// run recovers with exactly one charge.
func testTwoWorkers(t *testing.T, shared *temporalServer) {
	s := newStack(t, stackOptions{temporal: shared, outcome: succeedFirst, workers: 2})
	arrived, release := make(chan call, 1), make(chan struct{})
	s.gw.setHooks(hooks{Before: onFirst(func(call) bool { return true }, func(c call) fault {
		arrived <- c
		<-release
		return fault{}
	})})
	invoices := []string{"inv-two-1", "inv-two-2", "inv-two-3"}
	for _, inv := range invoices {
		s.decline(inv)
	}
	select {
	case <-arrived:
	case <-time.After(90 * time.Second):
		t.Fatal("no charge reached the gateway")
	}
	s.mu.Lock()
	victim := s.workers[0]
	s.workers = s.workers[1:]
	s.mu.Unlock()
	victim.kill()
	close(release)
	for _, inv := range invoices {
		wantRecovered(t, s.result(inv, 5*time.Minute), 1)
	}
	if _, succeeded := s.gw.charges(); succeeded != len(invoices) {
		t.Errorf("gateway executed %d successful charges, want %d", succeeded, len(invoices))
	}
	for k, n := range s.msgs.counts() {
		if n > 1 {
			t.Errorf("provider received %s %d times", k, n)
		}
	}
}

package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/dunningco/dunning/devserver"
	"github.com/dunningco/dunning/ledger"
	"github.com/dunningco/dunning/ledger/ledgertest"
	"github.com/dunningco/dunning/starter"
	"github.com/dunningco/dunning/workflows"
)

// BenchmarkOpenRunMemory measures what open runs cost a worker: it starts
// the dunning-worker binary as its own process against an embedded
// Temporal server, opens MEMORY_RUNS runs (default 1,000) on the default
// policy, waits until every run has sent its first message and parked on
// its 3-day timer, and reads the worker's resident set size:
//
//	MEMORY_RUNS=10000 go test -run '^$' -bench OpenRunMemory -benchtime 1x -timeout 30m ./integration/
func BenchmarkOpenRunMemory(b *testing.B) {
	runs := 1000
	if v := os.Getenv("MEMORY_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("MEMORY_RUNS=%q is not a positive number", v)
		}
		runs = n
	}
	srv, err := devserver.Start(devserver.Options{SearchAttributes: workflows.SearchAttributeTypes(), LogLevel: "error"})
	if err != nil {
		b.Fatalf("start Temporal: %v", err)
	}
	b.Cleanup(func() { _ = srv.Stop() })
	dbURL := ledgertest.NewDatabaseURL(b)
	ctx := context.Background()
	store, err := ledger.Open(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(store.Close)

	bin := filepath.Join(b.TempDir(), "dunning-worker")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/dunning-worker").CombinedOutput(); err != nil {
		b.Fatalf("build worker: %v\n%s", err, out)
	}
	worker := exec.Command(bin)
	worker.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+srv.HostPort(), "TEMPORAL_NAMESPACE="+srv.Namespace(),
		"DATABASE_URL="+dbURL, "LOG_LEVEL=error")
	if err := worker.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = worker.Process.Kill(); _ = worker.Wait() })

	c, err := client.Dial(client.Options{HostPort: srv.HostPort(), Namespace: srv.Namespace()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	st := starter.NewClient(c, starter.Options{})

	for b.Loop() {
		baseline := rss(b, worker.Process.Pid)
		var started atomic.Int64
		var wg sync.WaitGroup
		next := make(chan int)
		for range 16 {
			wg.Go(func() {
				for i := range next {
					in := workflows.Input{Tenant: "acme", InvoiceID: fmt.Sprintf("mem-%d", i),
						Customer: workflows.Customer{ID: fmt.Sprintf("cus-%d", i), Email: "ada@example.com", TimeZone: "Europe/Warsaw"},
						Amount:   "49.90", Currency: "EUR", PaymentMethod: "sim:decline;code=insufficient_funds",
						Decline: workflows.Decline{Gateway: "simulator", Code: "insufficient_funds"}}
					if _, err := st.Start(ctx, in); err != nil {
						b.Errorf("start %d: %v", i, err)
						return
					}
					started.Add(1)
				}
			})
		}
		for i := range runs {
			next <- i
		}
		close(next)
		wg.Wait()
		// Every run has parked once its first message is in the ledger.
		deadline := time.Now().Add(20 * time.Minute)
		for {
			var sent int
			if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM messages WHERE status <> 'pending'`).Scan(&sent); err != nil {
				b.Fatal(err)
			}
			if sent >= runs {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d runs parked in time", sent, runs)
			}
			time.Sleep(2 * time.Second)
		}
		time.Sleep(5 * time.Second) // let the last workflow tasks finish
		got := rss(b, worker.Process.Pid)
		b.ReportMetric(float64(got)/(1<<20), "worker-MB")
		b.ReportMetric(float64(got-baseline)/float64(runs)/1024, "KB/open-run")
		b.Logf("%d open runs: worker RSS %d MB (idle %d MB)", started.Load(), got>>20, baseline>>20)
	}
}

// rss is a process's resident set size in bytes, from /proc.
func rss(tb testing.TB, pid int) int64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb * 1024
		}
	}
	tb.Fatalf("no VmRSS for process %d", pid)
	return 0
}

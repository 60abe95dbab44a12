package stripe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"go/build"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/gateway"
)

// stripeMockInstall is how CI installs the stripe-mock this test runs against.
const stripeMockInstall = "go install github.com/stripe/stripe-mock@v0.203.0"

// findStripeMock looks for the stripe-mock binary: $STRIPE_MOCK_BIN, then
// PATH, then $(go env GOBIN) and $(go env GOPATH)/bin.
func findStripeMock(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STRIPE_MOCK_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("STRIPE_MOCK_BIN: %v", err)
		}
		return p
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p
	}
	name := "stripe-mock"
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) == 2 {
			if gobin := strings.TrimSpace(lines[0]); gobin != "" {
				dirs = append(dirs, gobin)
			}
			for _, p := range filepath.SplitList(strings.TrimSpace(lines[1])) {
				dirs = append(dirs, filepath.Join(p, "bin"))
			}
		}
	}
	for _, p := range filepath.SplitList(build.Default.GOPATH) {
		dirs = append(dirs, filepath.Join(p, "bin"))
	}
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// startStripeMock runs stripe-mock on free loopback ports until the test
// ends and returns its HTTP base URL.
func startStripeMock(t *testing.T) string {
	t.Helper()
	bin := findStripeMock(t)
	if bin == "" {
		msg := "stripe-mock not found: set STRIPE_MOCK_BIN, put it on PATH, or run `" + stripeMockInstall + "`"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: this test must run in CI)")
		}
		t.Skip(msg)
	}
	// Port 0 lets the system choose; stripe-mock prints the address it got.
	// Both listeners are set so it does not also bind HTTPS on the default
	// port 12112.
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}

	var (
		mu     sync.Mutex
		output strings.Builder
	)
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			output.WriteString(line + "\n")
			mu.Unlock()
			if addr, ok := strings.CutPrefix(line, "Listening for HTTP at address: "); ok {
				select {
				case addrc <- strings.TrimSpace(addr):
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	exited := make(chan error, 1)
	go func() {
		exited <- cmd.Wait()
		pw.Close()
	}()
	t.Cleanup(func() {
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("kill stripe-mock: %v", err)
		}
		<-exited
	})
	logs := func() string {
		mu.Lock()
		defer mu.Unlock()
		return output.String()
	}

	var addr string
	select {
	case addr = <-addrc:
	case err := <-exited:
		t.Fatalf("stripe-mock exited: %v\n%s", err, logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("stripe-mock did not report its address within 30s:\n%s", logs())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stripe-mock at %s does not accept connections: %v\n%s", addr, err, logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr
}

// invoiceLifecycle sits between the gateway and stripe-mock. stripe-mock
// validates every request against Stripe's OpenAPI spec and answers with its
// fixtures, but it is stateless and its invoice fixture is always a draft.
// For invoice IDs starting with "in_open" the proxy changes only the status
// and amounts in stripe-mock's answers, the way a real invoice moves: open
// until a pay call succeeds, paid afterwards. Other invoices pass through
// unchanged.
type invoiceLifecycle struct {
	mu       sync.Mutex
	paid     map[string]bool
	reqs     []seen
	fromMock int // answers that carried stripe-mock's version header
}

func (l *invoiceLifecycle) proxy(t *testing.T, mockURL string) *httptest.Server {
	target, err := url.Parse(mockURL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	direct := rp.Director
	rp.Director = func(r *http.Request) {
		direct(r)
		r.Header.Del("Accept-Encoding") // keep answers readable for ModifyResponse
	}
	rp.ModifyResponse = l.rewrite
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		form, _ := url.ParseQuery(string(body))
		r.Body = io.NopCloser(bytes.NewReader(body))
		l.mu.Lock()
		l.reqs = append(l.reqs, seen{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), form: form})
		l.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (l *invoiceLifecycle) rewrite(resp *http.Response) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if resp.Header.Get("Stripe-Mock-Version") != "" {
		l.fromMock++
	}
	rest, ok := strings.CutPrefix(resp.Request.URL.Path, "/v1/invoices/")
	if !ok || resp.StatusCode != http.StatusOK {
		return nil
	}
	id, isPay := strings.CutSuffix(rest, "/pay")
	if !strings.HasPrefix(id, "in_open") || strings.Contains(id, "/") {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	var inv map[string]any
	if err := json.Unmarshal(body, &inv); err != nil {
		return err
	}
	if isPay {
		l.paid[id] = true
	}
	if l.paid[id] {
		inv["status"], inv["amount_paid"], inv["amount_remaining"] = "paid", inv["amount_due"], 0
	} else {
		inv["status"], inv["amount_paid"], inv["amount_remaining"] = "open", 0, inv["amount_due"]
	}
	if body, err = json.Marshal(inv); err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

func (l *invoiceLifecycle) requests(invoiceID string) (gets, pays []seen) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.reqs {
		switch {
		case s.method == http.MethodGet && s.path == "/v1/invoices/"+invoiceID:
			gets = append(gets, s)
		case s.method == http.MethodPost && s.path == "/v1/invoices/"+invoiceID+"/pay":
			pays = append(pays, s)
		}
	}
	return gets, pays
}

func TestStripeMock(t *testing.T) {
	mockURL := startStripeMock(t)
	lc := &invoiceLifecycle{paid: map[string]bool{}}
	srv := lc.proxy(t, mockURL)
	g, _ := newTestGatewayAt(t, srv.URL)

	// stripe-mock's invoice fixture is for 1000 USD.
	request := func(invoiceID string, amount int64) gateway.ChargeRequest {
		return gateway.ChargeRequest{
			IdempotencyKey: "dunning/acme/" + invoiceID + "/attempt-1",
			Attempt:        1,
			Tenant:         "acme",
			InvoiceID:      invoiceID,
			CustomerID:     "cus_QXg1o8vcGmoR32",
			PaymentMethod:  "pm_card_visa",
			AmountMinor:    amount,
			Currency:       "USD",
		}
	}

	t.Run("pays an open invoice; a repeated key gets the same result", func(t *testing.T) {
		req := request("in_open_mock0001", 1000)
		first, err := g.Charge(context.Background(), req)
		if err != nil {
			t.Fatalf("Charge: %v", err)
		}
		if first.Outcome != gateway.Succeeded || first.Ref != req.InvoiceID || first.DeclineCode != "" {
			t.Errorf("Charge = %+v, want succeeded with Ref %s", first, req.InvoiceID)
		}
		again, err := g.Charge(context.Background(), req)
		if err != nil {
			t.Fatalf("repeated Charge: %v", err)
		}
		if again != first {
			t.Errorf("repeated key = %+v, first = %+v", again, first)
		}
		gets, pays := lc.requests(req.InvoiceID)
		if len(gets) != 2 || len(pays) != 2 {
			t.Fatalf("requests: %d reads, %d pays; want 2 of each", len(gets), len(pays))
		}
		for _, p := range pays {
			checkPayRequest(t, p, req)
		}
	})

	t.Run("stripe-mock's draft invoice is refused before paying", func(t *testing.T) {
		req := request("in_draft_mock0001", 1000)
		_, err := g.Charge(context.Background(), req)
		if !errors.Is(err, gateway.ErrPermanent) || !strings.Contains(err.Error(), "is draft") {
			t.Fatalf("Charge error = %v, want a permanent error for a draft", err)
		}
		if _, pays := lc.requests(req.InvoiceID); len(pays) != 0 {
			t.Errorf("pay calls = %d, want none", len(pays))
		}
	})

	t.Run("amount mismatch is refused before paying", func(t *testing.T) {
		req := request("in_open_mock0002", 1200)
		_, err := g.Charge(context.Background(), req)
		if !errors.Is(err, gateway.ErrPermanent) || !strings.Contains(err.Error(), "has 1000 USD remaining, the request is for 1200 USD") {
			t.Fatalf("Charge error = %v, want a permanent amount mismatch", err)
		}
		if _, pays := lc.requests(req.InvoiceID); len(pays) != 0 {
			t.Errorf("pay calls = %d, want none", len(pays))
		}
	})

	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.fromMock == 0 {
		t.Error("no answer came from stripe-mock")
	}
}

// Package stripetest runs stripe-mock, Stripe's official API mock, for tests
// that drive the Stripe gateway over HTTP, and puts a small recording proxy
// in front of it.
//
// stripe-mock validates every request against Stripe's OpenAPI description
// and answers with its fixtures. It is stateless, and its invoice fixture is
// always a draft for 1000 USD. The proxy adds what a dunning test needs on
// top:
//
//   - Invoice lifecycle. For invoice IDs starting with "in_open" it changes
//     only the status and amounts in stripe-mock's answers, the way a real
//     invoice moves: open until a pay call succeeds, paid afterwards. Other
//     invoices pass through unchanged (so they stay drafts).
//   - A record of every request (method, path, headers, form, the status
//     answered), so tests can check idempotency keys and count pay calls.
//   - Outages. SetDown makes the proxy answer every request with HTTP 503
//     and a Stripe api_error, without passing it on; SetPaysDown does the
//     same for pay calls only, so invoices can still be read.
//
// stripe-mock is found through $STRIPE_MOCK_BIN, then PATH, then
// $(go env GOBIN) and $(go env GOPATH)/bin. Without it StartMock skips the
// test, except when CI=true, where it fails.
package stripetest

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
)

// Install is how CI installs the stripe-mock these tests run against.
const Install = "go install github.com/stripe/stripe-mock@v0.203.0"

// OpenPrefix starts the IDs of invoices the proxy treats as open (then paid).
const OpenPrefix = "in_open"

// Request is one request the proxy received.
type Request struct {
	Method string
	Path   string
	Header http.Header
	// Form is the request's form-encoded body (Stripe's request format).
	Form url.Values
	// Status is the HTTP status the proxy answered with; 0 while the answer
	// is still on its way.
	Status int
	// Refused is true when the proxy answered during an outage and
	// stripe-mock never saw the request.
	Refused bool
}

// IdempotencyKey is the request's Idempotency-Key header.
func (r Request) IdempotencyKey() string { return r.Header.Get("Idempotency-Key") }

// Mock is a running stripe-mock behind the recording proxy. It stops when
// the test ends. Its methods are safe for concurrent use.
type Mock struct {
	proxy   *httptest.Server
	mockURL string

	mu       sync.Mutex
	paid     map[string]bool
	reqs     []Request
	answers  int // answers that carried stripe-mock's version header
	down     bool
	paysDown bool
}

// StartMock starts stripe-mock on free loopback ports and the proxy in
// front of it. Both stop when the test ends.
func StartMock(t testing.TB) *Mock {
	t.Helper()
	m := &Mock{mockURL: startProcess(t), paid: map[string]bool{}}
	target, err := url.Parse(m.mockURL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	direct := rp.Director
	rp.Director = func(r *http.Request) {
		direct(r)
		r.Header.Del("Accept-Encoding") // keep answers readable for ModifyResponse
	}
	rp.ModifyResponse = m.rewrite
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		m.setStatus(r.Context(), http.StatusBadGateway)
		http.Error(w, "stripe-mock: "+err.Error(), http.StatusBadGateway)
	}
	m.proxy = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serve(w, r, rp)
	}))
	t.Cleanup(m.proxy.Close)
	return m
}

// URL is the proxy's base URL: the Stripe gateway's BaseURL.
func (m *Mock) URL() string { return m.proxy.URL }

// MockURL is stripe-mock's own base URL, without the proxy.
func (m *Mock) MockURL() string { return m.mockURL }

// SetDown starts (true) or ends (false) an outage: the proxy answers every
// request with HTTP 503 and a Stripe api_error and does not pass it on.
func (m *Mock) SetDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// SetPaysDown is SetDown for pay calls (POST /v1/invoices/{id}/pay) only;
// other requests still reach stripe-mock.
func (m *Mock) SetPaysDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paysDown = down
}

// Requests returns every request received so far, in arrival order.
func (m *Mock) Requests() []Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Request, len(m.reqs))
	copy(out, m.reqs)
	return out
}

// InvoiceRequests returns the reads (GET /v1/invoices/{id}) and pay calls
// (POST /v1/invoices/{id}/pay) received for an invoice, refused ones
// included.
func (m *Mock) InvoiceRequests(invoiceID string) (reads, pays []Request) {
	for _, r := range m.Requests() {
		switch {
		case r.Method == http.MethodGet && r.Path == "/v1/invoices/"+invoiceID:
			reads = append(reads, r)
		case r.Method == http.MethodPost && r.Path == "/v1/invoices/"+invoiceID+"/pay":
			pays = append(pays, r)
		}
	}
	return reads, pays
}

// Pays returns how many pay calls for the invoice reached stripe-mock and
// were answered with 200 OK.
func (m *Mock) Pays(invoiceID string) int {
	_, pays := m.InvoiceRequests(invoiceID)
	n := 0
	for _, p := range pays {
		if !p.Refused && p.Status == http.StatusOK {
			n++
		}
	}
	return n
}

// Paid reports whether a pay call for an "in_open" invoice succeeded.
func (m *Mock) Paid(invoiceID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.paid[invoiceID]
}

// Answers returns how many answers came from stripe-mock itself (they carry
// its Stripe-Mock-Version header).
func (m *Mock) Answers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.answers
}

type recordKey struct{}

func (m *Mock) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	form, _ := url.ParseQuery(string(body))
	isPay := r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/invoices/") && strings.HasSuffix(r.URL.Path, "/pay")

	m.mu.Lock()
	refuse := m.down || (m.paysDown && isPay)
	rec := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: form, Refused: refuse}
	if refuse {
		rec.Status = http.StatusServiceUnavailable
	}
	m.reqs = append(m.reqs, rec)
	idx := len(m.reqs) - 1
	m.mu.Unlock()

	if refuse {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_outage_"+strconv.Itoa(idx))
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":{"type":"api_error","message":"Stripe is temporarily unavailable (outage in the test proxy)."}}`)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), recordKey{}, idx)))
}

// setStatus records the answer's status before it is written, so a client
// that has its answer always finds it recorded.
func (m *Mock) setStatus(ctx context.Context, status int) {
	idx, ok := ctx.Value(recordKey{}).(int)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reqs[idx].Status = status
}

func (m *Mock) rewrite(resp *http.Response) error {
	defer m.setStatus(resp.Request.Context(), resp.StatusCode)
	m.mu.Lock()
	defer m.mu.Unlock()
	if resp.Header.Get("Stripe-Mock-Version") != "" {
		m.answers++
	}
	rest, ok := strings.CutPrefix(resp.Request.URL.Path, "/v1/invoices/")
	if !ok || resp.StatusCode != http.StatusOK {
		return nil
	}
	id, isPay := strings.CutSuffix(rest, "/pay")
	if !strings.HasPrefix(id, OpenPrefix) || strings.Contains(id, "/") {
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
		m.paid[id] = true
	}
	if m.paid[id] {
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

// find looks for the stripe-mock binary: $STRIPE_MOCK_BIN, then PATH, then
// $(go env GOBIN) and $(go env GOPATH)/bin. It returns "" when there is none.
func find(t testing.TB) string {
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

// startProcess runs stripe-mock on free loopback ports until the test ends
// and returns its HTTP base URL.
func startProcess(t testing.TB) string {
	t.Helper()
	bin := find(t)
	if bin == "" {
		msg := "stripe-mock not found: set STRIPE_MOCK_BIN, put it on PATH, or run `" + Install + "`"
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
		_, _ = io.Copy(io.Discard, pr)
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

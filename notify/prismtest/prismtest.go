// Package prismtest serves a provider's OpenAPI description with Stoplight
// Prism, as a validating mock, for tests that send through the real SendGrid
// and Twilio notifiers, and puts a small recording proxy in front of it.
//
// What it needs:
//
//   - The vendor specs (sendgrid-v3.json, twilio-api-v2010.json), found at
//     ../shared/vendor-specs from the project root, or in the directory named
//     by VENDOR_SPECS_DIR. Without them the test skips.
//   - Prism 5, found through PRISM_BIN or as prism on PATH. Without it the
//     test skips, except when CI=true, where it fails.
//
// Start runs prism mock -h 127.0.0.1 -p PORT --errors SPEC on a free port,
// waits up to StartTimeout for it to answer and stops its process group when
// the test ends.
//
// The proxy between the notifier and Prism:
//
//   - keeps every request and Prism's verdict on it (the sl-violations
//     header), see Requests;
//   - removes the path of the spec's first server URL from request paths.
//     SendGrid's spec has its paths relative to http://api.sendgrid.com/v3,
//     but Prism matches request paths against the paths as written
//     (/mail/send) and answers POST /v3/mail/send with 404 NO_PATH_MATCHED.
//     The notifier is pointed at the proxy as its base URL and sends to
//     /v3/mail/send exactly as it does in production;
//   - can edit requests on their way to Prism (SetTamper), to provoke the
//     provider's refusals;
//   - can play an outage (SetDown): it then answers HTTP 503 without passing
//     the request on.
package prismtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// StartTimeout bounds the wait for Prism to load a spec and answer; it
	// usually takes about five seconds.
	StartTimeout = 60 * time.Second
	// InstallHint is how CI installs Prism outside the project.
	InstallHint = "npm install --prefix /root/.cache/dunning-ci/prism @stoplight/prism-cli@5, " +
		"then PRISM_BIN=/root/.cache/dunning-ci/prism/node_modules/.bin/prism"
)

// Request is one request the proxy received and the answer it got.
type Request struct {
	// Method and Path are as the notifier sent them (before any prefix was
	// removed for Prism).
	Method, Path string
	// Query is the request's query string, parsed.
	Query  url.Values
	Header http.Header
	// Body is the request body as the notifier sent it (before any Tamper).
	Body   []byte
	Status int
	// Violations is Prism's sl-violations header: what in the request broke
	// the spec. Empty when the request conforms.
	Violations string
	// Refused is true when the proxy answered during an outage and Prism
	// never saw the request.
	Refused bool
}

// Tamper edits a request on its way to Prism and returns its new body.
type Tamper func(h http.Header, body []byte) []byte

// Mock is a running Prism behind the recording proxy. It stops when the test
// ends. Its methods are safe for concurrent use.
type Mock struct {
	proxy    *httptest.Server
	prismURL string
	strip    string

	mu       sync.Mutex
	tamper   Tamper
	down     bool
	requests []Request
}

// SpecsDir returns the directory holding the vendor specs: $VENDOR_SPECS_DIR,
// or shared/vendor-specs next to the project root (the directory holding
// go.mod, found from the working directory up). It skips the test when the
// directory is not there.
func SpecsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("VENDOR_SPECS_DIR")
	if dir == "" {
		root, err := projectRoot()
		if err != nil {
			t.Skipf("vendor specs not found: %v; set VENDOR_SPECS_DIR", err)
		}
		dir = filepath.Join(root, "..", "shared", "vendor-specs")
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Skipf("vendor specs not found at %s; these tests need ../shared/vendor-specs from the project root (or VENDOR_SPECS_DIR)", dir)
	}
	return dir
}

func projectRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Binary returns Prism's executable: $PRISM_BIN, or prism on PATH. Without
// one the test skips, or fails when CI=true.
func Binary(t testing.TB) string {
	t.Helper()
	name := os.Getenv("PRISM_BIN")
	if name == "" {
		name = "prism"
	}
	bin, err := exec.LookPath(name)
	if err == nil {
		return bin
	}
	msg := "Stoplight Prism not found (" + err.Error() + "); install it: " + InstallHint
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start serves spec with a validating Prism mock behind the recording proxy.
// spec is a path, or a bare file name looked up in SpecsDir. It skips the
// test when the spec or Prism is missing (see the package documentation).
func Start(t testing.TB, spec string) *Mock {
	t.Helper()
	if !strings.ContainsRune(spec, filepath.Separator) && !strings.ContainsRune(spec, '/') {
		spec = filepath.Join(SpecsDir(t), spec)
	}
	if _, err := os.Stat(spec); err != nil {
		t.Skipf("vendor spec not found: %v; these tests need ../shared/vendor-specs from the project root (or VENDOR_SPECS_DIR)", err)
	}
	strip, err := serverPath(spec)
	if err != nil {
		t.Fatalf("read %s: %v", spec, err)
	}
	m := &Mock{prismURL: startPrism(t, Binary(t), spec), strip: strip}
	m.proxy = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.proxy.Close)
	return m
}

// serverPath returns the path of the spec's first server URL without its
// trailing slash ("/v3" for SendGrid, "" for Twilio). A spec that is not
// JSON, or names no server, has none.
func serverPath(spec string) (string, error) {
	raw, err := os.ReadFile(spec)
	if err != nil {
		return "", err
	}
	var doc struct {
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
	}
	if json.Unmarshal(raw, &doc) != nil || len(doc.Servers) == 0 {
		return "", nil
	}
	u, err := url.Parse(doc.Servers[0].URL)
	if err != nil {
		return "", nil
	}
	return strings.TrimRight(u.Path, "/"), nil
}

// URL is the proxy's base URL: the notifier's BaseURL.
func (m *Mock) URL() string { return m.proxy.URL }

// PrismURL is Prism's own base URL, without the proxy.
func (m *Mock) PrismURL() string { return m.prismURL }

// SetTamper edits the requests that follow; nil forwards them unchanged.
func (m *Mock) SetTamper(f Tamper) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tamper = f
}

// SetDown starts (true) or ends (false) an outage: the proxy answers every
// request with HTTP 503 and does not pass it on to Prism.
func (m *Mock) SetDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// Requests returns every request answered so far, in the order of their
// answers.
func (m *Mock) Requests() []Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Request, len(m.requests))
	copy(out, m.requests)
	return out
}

// Last returns the latest request; the test fails when there is none.
func (m *Mock) Last(t testing.TB) Request {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.requests) == 0 {
		t.Fatal("no request reached the proxy")
	}
	return m.requests[len(m.requests)-1]
}

func (m *Mock) record(r Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests = append(m.requests, r)
}

func (m *Mock) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	header := req.Header.Clone()
	m.mu.Lock()
	edit, down := m.tamper, m.down
	m.mu.Unlock()
	if down {
		m.record(Request{Method: req.Method, Path: req.URL.Path, Query: req.URL.Query(), Header: req.Header.Clone(), Body: body,
			Status: http.StatusServiceUnavailable, Refused: true})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"errors":[{"message":"service unavailable (outage in the test proxy)"}],`+
			`"code":20503,"message":"service unavailable (outage in the test proxy)","status":503}`)
		return
	}
	sent := body
	if edit != nil {
		sent = edit(header, bytes.Clone(body))
	}

	target := m.prismURL + strings.TrimPrefix(req.URL.Path, m.strip)
	if req.URL.RawQuery != "" {
		target += "?" + req.URL.RawQuery
	}
	out, err := http.NewRequestWithContext(req.Context(), req.Method, target, bytes.NewReader(sent))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = header
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}

	m.record(Request{
		Method: req.Method, Path: req.URL.Path, Query: req.URL.Query(), Header: req.Header.Clone(), Body: body,
		Status: resp.StatusCode, Violations: resp.Header.Get("sl-violations"),
	})

	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(respBody)
}

// startPrism serves spec with a validating Prism mock on a free local port
// and returns its base URL. Prism stops with the test.
func startPrism(t testing.TB, bin, spec string) string {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(bin, "mock", "-h", "127.0.0.1", "-p", port, "--errors", spec)
	// Prism runs under node; a group of its own lets cleanup stop all of it.
	ownProcessGroup(cmd)
	var output lockedBuffer
	cmd.Stdout, cmd.Stderr = &output, &output

	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prism: %v", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		terminateGroup(cmd)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			killGroup(cmd)
			<-done
		}
	})

	base := "http://127.0.0.1:" + port
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-done:
			t.Fatalf("prism exited before it answered (%v):\n%s", waitErr, output.String())
		default:
		}
		// Any answer means Prism is serving; it says 404 for "/".
		if resp, err := client.Get(base + "/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Since(start) > StartTimeout {
			t.Fatalf("prism did not answer on %s within %s:\n%s", base, StartTimeout, output.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("prism mock for %s ready on %s after %s", filepath.Base(spec), base, time.Since(start).Round(10*time.Millisecond))
	return base
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

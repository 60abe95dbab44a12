package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/dunningco/dunning/workflows"
)

// envFull runs every scenario when set to "full"; unset, the CI subset runs.
const envFull = "FAULTS"

// full reports whether the whole suite was asked for; scenarios outside the
// CI subset skip otherwise.
func full(t *testing.T) {
	t.Helper()
	if os.Getenv(envFull) != "full" {
		t.Skip("not in the CI subset; run with " + envFull + "=full")
	}
}

// binaries are the programs the suite runs as separate processes.
type binaries struct {
	temporal string // the Temporal CLI (its dev server)
	worker   string // cmd/dunning-worker
	dunning  string // cmd/dunning (serve, keys)
}

var (
	buildOnce sync.Once
	built     binaries
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// missing skips a test for a tool that is not installed, or fails it under
// CI=true, where every tool must be there.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: the fault suite must run; .ci/run installs it)")
	}
	t.Skip(msg)
}

// temporalCLI finds the Temporal CLI: TEMPORAL_CLI_BIN, the CI tool cache,
// then PATH.
func temporalCLI() (string, error) {
	if p := os.Getenv("TEMPORAL_CLI_BIN"); p != "" {
		if !fileExists(p) {
			return "", fmt.Errorf("TEMPORAL_CLI_BIN=%s: no such file", p)
		}
		return p, nil
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache")
		}
	}
	if p := filepath.Join(cache, "dunning-ci", "bin", "temporal"); fileExists(p) {
		return p, nil
	}
	return exec.LookPath("temporal")
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// tools builds the worker and the CLI once per test binary, and finds the
// Temporal CLI.
func tools(t *testing.T) binaries {
	t.Helper()
	temporal, err := temporalCLI()
	if err != nil {
		missing(t, "Temporal CLI not found (%v; looked at TEMPORAL_CLI_BIN, ~/.cache/dunning-ci/bin/temporal, PATH): go install github.com/temporalio/cli/cmd/temporal@v1.5.1", err)
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "dunning-faults-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+string(os.PathSeparator), "./cmd/dunning-worker", "./cmd/dunning")
		cmd.Dir = ".."
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out.String())
			return
		}
		built = binaries{worker: filepath.Join(buildDir, "dunning-worker"), dunning: filepath.Join(buildDir, "dunning")}
	})
	if buildErr != nil {
		t.Fatalf("build the platform's binaries: %v", buildErr)
	}
	b := built
	b.temporal = temporal
	return b
}

// freePort asks the kernel for a free TCP port on loopback. Another process
// could take it before ours binds; on this machine that is rare enough.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is one OS process of the platform, its output kept in a file that
// is printed when the test fails.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *lineLog
	done chan struct{}
	err  error
}

// startProc starts bin with env added to a minimal environment.
func startProc(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, out: &lineLog{file: f}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TZ=UTC"}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// Its own process group, so a kill never reaches the test binary.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s output (last 60 lines) ---\n%s", name, p.out.tail(60))
		}
		_ = f.Close()
	})
	return p
}

// kill is kill -9: no defer, no graceful stop, in-flight work cut.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// stop asks the process to stop (SIGTERM) and kills it after 15 seconds.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.kill()
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// lineLog keeps a process's output in a file and lets tests wait for a
// line.
type lineLog struct {
	mu      sync.Mutex
	file    *os.File
	partial []byte
	lines   []string
	waiters []waiter
}

type waiter struct {
	match func(string) bool
	ch    chan string
}

func (l *lineLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.file.Write(b)
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		l.lines = append(l.lines, line)
		if len(l.lines) > 2000 {
			l.lines = l.lines[1000:]
		}
		l.waiters = slices.DeleteFunc(l.waiters, func(w waiter) bool {
			if w.match(line) {
				w.ch <- line
				return true
			}
			return false
		})
	}
	return len(b), nil
}

// wait returns the first line from now on that match accepts.
func (l *lineLog) wait(match func(string) bool) <-chan string {
	ch := make(chan string, 1)
	l.mu.Lock()
	l.waiters = append(l.waiters, waiter{match: match, ch: ch})
	l.mu.Unlock()
	return ch
}

func (l *lineLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := max(0, len(l.lines)-n)
	return strings.Join(l.lines[from:], "\n")
}

// temporalServer is the Temporal CLI's dev server in its own process, its
// state in a file so that it can be killed and started again.
type temporalServer struct {
	t        *testing.T
	bin      string
	args     []string
	hostPort string
	proc     *proc
}

// startTemporal starts a dev server on free ports with the dunning search
// attributes registered, as a production cluster has them.
func startTemporal(t *testing.T, b binaries) *temporalServer {
	t.Helper()
	port := freePort(t)
	s := &temporalServer{t: t, bin: b.temporal, hostPort: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	s.args = []string{"server", "start-dev", "--headless",
		"--ip", "127.0.0.1", "--port", strconv.Itoa(port),
		"--db-filename", filepath.Join(t.TempDir(), "temporal.db"),
		"--log-level", "error",
	}
	names := make([]string, 0)
	types := workflows.SearchAttributeTypes()
	for name := range types {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		s.args = append(s.args, "--search-attribute", name+"="+searchAttributeType(types[name]))
	}
	s.start()
	return s
}

// searchAttributeType is the CLI's name for a search attribute type.
func searchAttributeType(v enumspb.IndexedValueType) string {
	switch v {
	case enumspb.INDEXED_VALUE_TYPE_KEYWORD:
		return "Keyword"
	case enumspb.INDEXED_VALUE_TYPE_INT:
		return "Int"
	case enumspb.INDEXED_VALUE_TYPE_DATETIME:
		return "Datetime"
	case enumspb.INDEXED_VALUE_TYPE_TEXT:
		return "Text"
	case enumspb.INDEXED_VALUE_TYPE_BOOL:
		return "Bool"
	case enumspb.INDEXED_VALUE_TYPE_DOUBLE:
		return "Double"
	case enumspb.INDEXED_VALUE_TYPE_KEYWORD_LIST:
		return "KeywordList"
	}
	panic("unknown search attribute type " + v.String())
}

// start (re)starts the server on its port and file, and waits until its
// frontend answers.
func (s *temporalServer) start() {
	s.t.Helper()
	s.proc = startProc(s.t, "temporal", s.bin, nil, s.args...)
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, err := client.Dial(client.Options{HostPort: s.hostPort, Logger: quietLogger{}})
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			cancel()
			c.Close()
			if err == nil {
				return
			}
		}
		if s.proc.exited() {
			s.t.Fatalf("Temporal dev server exited: %v\n%s", s.proc.err, s.proc.out.tail(40))
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("Temporal dev server at %s not healthy after 90s: %v", s.hostPort, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// kill stops the server the hard way.
func (s *temporalServer) kill() { s.proc.kill() }

// quietLogger drops the SDK's logs in the test process.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}

// pgCluster is a private PostgreSQL cluster the test owns: it can be
// stopped and started without touching the shared server on 5432.
type pgCluster struct {
	t      *testing.T
	bindir string
	dir    string
	port   int
	asUser []string // runuser prefix when the test runs as root
}

// newPGCluster initialises a cluster in a temporary directory (trust auth,
// user postgres) and starts it on a free port. PostgreSQL refuses to run as
// root, so as root it runs as the postgres user.
func newPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	bindir := pgBindir()
	if bindir == "" {
		missing(t, "PostgreSQL server binaries (initdb, pg_ctl) not found")
	}
	dir, err := os.MkdirTemp("", "dunning-faults-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c := &pgCluster{t: t, bindir: bindir, dir: dir, port: freePort(t)}
	t.Cleanup(func() {
		c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")
		_ = os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("runuser"); err != nil {
			missing(t, "running as root needs runuser to start PostgreSQL as the postgres user")
		}
		if out, err := exec.Command("chown", "postgres:postgres", dir).CombinedOutput(); err != nil {
			missing(t, "no postgres user to run a private cluster as: %v %s", err, out)
		}
		c.asUser = []string{"runuser", "-u", "postgres", "--"}
	}
	if out, err := c.cmd("initdb", "-D", c.data(), "-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.start()
	return c
}

func pgBindir() string {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if p2, err := exec.LookPath("initdb"); err == nil && filepath.Dir(p2) == filepath.Dir(p) {
			return filepath.Dir(p)
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	slices.Sort(matches)
	if len(matches) == 0 {
		return ""
	}
	return filepath.Dir(matches[len(matches)-1])
}

func (c *pgCluster) data() string { return filepath.Join(c.dir, "data") }

func (c *pgCluster) cmd(name string, args ...string) *exec.Cmd {
	full := append(slices.Clone(c.asUser), filepath.Join(c.bindir, name))
	full = append(full, args...)
	return exec.Command(full[0], full[1:]...)
}

func (c *pgCluster) run(name string, args ...string) {
	out, err := c.cmd(name, args...).CombinedOutput()
	if err != nil {
		c.t.Logf("%s %v: %v\n%s", name, args, err, out)
	}
}

// start starts the cluster and waits until it accepts connections.
func (c *pgCluster) start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", c.port, c.dir)
	out, err := c.cmd("pg_ctl", "-D", c.data(), "-o", opts, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start").CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		c.t.Fatalf("start private PostgreSQL: %v\n%s\n%s", err, out, log)
	}
}

// stop is a crash: immediate shutdown, connections cut.
func (c *pgCluster) stop() {
	c.t.Helper()
	if out, err := c.cmd("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop").CombinedOutput(); err != nil {
		c.t.Fatalf("stop private PostgreSQL: %v\n%s", err, out)
	}
}

// adminURL is a URL for the cluster's postgres database.
func (c *pgCluster) adminURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// codecKeys makes a payload key, as production requires one.
func codecKeys(t *testing.T) string {
	t.Helper()
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	return "faults:" + base64.StdEncoding.EncodeToString(k[:])
}

// waitFor polls cond every 200ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, lastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// jsonLine parses one of the platform's JSON log lines.
func jsonLine(line string) map[string]any {
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) != nil {
		return nil
	}
	return m
}

// httpJSON sends a request and decodes a JSON answer when there is one.
func httpJSON(method, url, token string, body io.Reader, header http.Header) (int, http.Header, map[string]any, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return 0, nil, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, resp.Header, nil, err
	}
	var out map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			return resp.StatusCode, resp.Header, nil, fmt.Errorf("answer is not JSON: %.200s", raw)
		}
	}
	return resp.StatusCode, resp.Header, out, nil
}

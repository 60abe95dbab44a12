package ledgertest

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/dunningco/dunning/ledger"
)

// Outage is one of the ways a ledger goes away in production, for tests of
// what a reader answers then.
type Outage struct {
	Name string
	down func(t testing.TB, store *ledger.Store, p *Proxy)
}

// Outages are the ways a ledger goes away: the pool is closed (the process
// is shutting down), the server drops the connections a pool holds, and
// the server cannot be reached at all.
var Outages = []Outage{
	{"pool closed", func(_ testing.TB, store *ledger.Store, _ *Proxy) { store.Close() }},
	{"connections cut", func(t testing.TB, store *ledger.Store, p *Proxy) {
		// An idle connection that worked, then the server went away under
		// it: the next query meets a dead socket.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := store.Pool().Ping(ctx); err != nil {
			t.Fatalf("ledgertest: ping before the cut: %v", err)
		}
		p.Down()
	}},
	{"connection refused", func(_ testing.TB, store *ledger.Store, p *Proxy) {
		p.Down()
		// No idle connection is left: every read dials a closed port.
		store.Pool().Reset()
	}},
}

// NewMigratedDatabaseURL is NewDatabaseURL with the database created and
// migrated, so that ledgers opened on it later need not reach it.
func NewMigratedDatabaseURL(t testing.TB) string {
	t.Helper()
	dbURL := NewDatabaseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := ledger.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("ledgertest: open ledger: %v", err)
	}
	s.Close()
	return dbURL
}

// OpenDown opens a ledger on the migrated database at dbURL through a
// proxy of its own and takes it away as o says; the store is closed when
// the test ends. The server itself is never touched.
func OpenDown(t testing.TB, dbURL string, o Outage) *ledger.Store {
	t.Helper()
	target, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("ledgertest: %v", err)
	}
	p := NewProxy(t, target.Host)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := ledger.Open(ctx, ViaProxy(t, dbURL, p.Addr()))
	if err != nil {
		t.Fatalf("ledgertest: open ledger through the proxy: %v", err)
	}
	t.Cleanup(store.Close)
	o.down(t, store, p)
	return store
}

// ViaProxy is dbURL with its host and port replaced by addr, and a short
// connect timeout so a dial to a port nobody answers fails fast.
func ViaProxy(t testing.TB, dbURL, addr string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("ledgertest: %v", err)
	}
	u.Host = addr
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	return u.String()
}

// Proxy forwards TCP connections to a target until it is taken down, so a
// test can take a real PostgreSQL away from one pool without touching the
// server, and bring it back.
type Proxy struct {
	t            testing.TB
	target, addr string
	mu           sync.Mutex
	ln           net.Listener
	conns        []net.Conn
}

// NewProxy listens on a free loopback port and forwards to target
// (host:port) until Down or the end of the test.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("ledgertest: proxy: %v", err)
	}
	p := &Proxy{t: t, target: target, addr: ln.Addr().String(), ln: ln}
	go p.serve(ln)
	t.Cleanup(p.Down)
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.addr }

func (p *Proxy) serve(ln net.Listener) {
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		if p.ln == nil { // taken down meanwhile
			p.mu.Unlock()
			in.Close()
			out.Close()
			return
		}
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(out, in); out.Close() }()
		go func() { _, _ = io.Copy(in, out); in.Close() }()
	}
}

// Down refuses new connections and cuts every open one.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Up listens again on the proxy's address after Down: the outage is over.
func (p *Proxy) Up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("ledgertest: proxy up on %s: %v", p.addr, err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go p.serve(ln)
}

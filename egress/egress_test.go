package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		addr         string
		wantStrict   bool // allowed without allowPrivate
		wantPrivate  bool // allowed with allowPrivate
		wantClassSub string
	}{
		{"93.184.215.14", true, true, ""},
		{"2606:2800:21f:cb07:6820:80da:af6b:8b2c", true, true, ""},
		{"127.0.0.1", false, true, "loopback"},
		{"127.1.2.3", false, true, "loopback"},
		{"::1", false, true, "loopback"},
		{"10.0.0.5", false, true, "RFC 1918"},
		{"172.16.0.1", false, true, "RFC 1918"},
		{"172.31.255.255", false, true, "RFC 1918"},
		{"172.32.0.1", true, true, ""},
		{"192.168.1.1", false, true, "RFC 1918"},
		{"fd12:3456::1", false, true, "RFC 4193"},
		{"100.64.0.1", false, true, "carrier-grade NAT"},
		{"100.127.255.254", false, true, "carrier-grade NAT"},
		{"169.254.169.254", false, false, "link-local"},
		{"fe80::1", false, false, "link-local"},
		{"fe80::1%eth0", false, false, "link-local"},
		{"0.0.0.0", false, false, "unspecified"},
		{"0.1.2.3", false, false, "unspecified"},
		{"::", false, false, "unspecified"},
		{"224.0.0.1", false, false, "multicast"},
		{"ff02::1", false, false, "multicast"},
		{"255.255.255.255", false, false, "broadcast"},
		{"::ffff:127.0.0.1", false, true, "loopback"},
		{"::ffff:169.254.169.254", false, false, "link-local"},
		{"64:ff9b::a00:1", false, true, "RFC 1918"},       // NAT64 of 10.0.0.1
		{"2002:a9fe:a9fe::1", false, false, "link-local"}, // 6to4 of 169.254.169.254
		{"::ffff:93.184.215.14", true, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			addr := netip.MustParseAddr(tt.addr)
			for _, allow := range []bool{false, true} {
				want := tt.wantStrict
				if allow {
					want = tt.wantPrivate
				}
				err := Check(addr, allow)
				if (err == nil) != want {
					t.Errorf("Check(%s, allowPrivate=%v) = %v, want allowed: %v", tt.addr, allow, err, want)
				}
				var refused *RefusedError
				if err != nil && (!errors.As(err, &refused) || !strings.Contains(refused.Class, tt.wantClassSub)) {
					t.Errorf("Check(%s, %v) = %v, want a RefusedError naming %q", tt.addr, allow, err, tt.wantClassSub)
				}
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		raw          string
		allowPrivate bool
		wantErr      string
	}{
		{"https://billing.example.com/dunning/events", false, ""},
		{"https://billing.example.com:8443/events?tenant=acme", false, ""},
		{"http://billing.example.com/events", false, "must use https"},
		{"http://billing.internal:8080/events", true, ""},
		{"https://127.0.0.1/events", false, "loopback"},
		{"http://127.0.0.1:9000/events", true, ""},
		{"https://[::1]/events", false, "loopback"},
		{"https://10.1.2.3/events", false, "RFC 1918"},
		{"https://169.254.169.254/latest/meta-data", true, "link-local"},
		{"https://user:pw@billing.example.com/events", false, "credentials"},
		{"https://billing.example.com/events#frag", false, "fragment"},
		{"billing.example.com/events", false, "absolute"},
		{"/events", false, "absolute"},
		{"ftp://billing.example.com/events", true, "scheme"},
		{"https://billing.example.com:99999/events", false, "port"},
		{"https://:443/events", false, "host"},
		{"https://bad host/\x7f", false, "not a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			_, err := CheckURL(tt.raw, tt.allowPrivate)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("CheckURL = %v, want it accepted", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("CheckURL = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// victim is a server on loopback that counts every request reaching it.
func victim(t *testing.T) (*atomic.Int64, *httptest.Server) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return &hits, srv
}

// fixedResolver answers every name with its addresses: a public-looking
// name can point anywhere.
type fixedResolver []netip.Addr

func (r fixedResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return r, nil
}

func post(t *testing.T, c *http.Client, target string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, target, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if resp != nil {
		t.Cleanup(func() { resp.Body.Close() })
	}
	return resp, err
}

func TestClientRefusesLoopbackUnlessAllowed(t *testing.T) {
	hits, srv := victim(t)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	for _, target := range []string{
		srv.URL,                          // 127.0.0.1 literally
		"http://localhost:" + port + "/", // a name that resolves to loopback
		"http://billing.example.com:" + port + "/", // a public-looking name that resolves there
	} {
		c := NewClient(Options{Resolver: fixedResolver{netip.MustParseAddr("127.0.0.1")}})
		if strings.Contains(target, "localhost") {
			c = NewClient(Options{}) // the system's own resolver
		}
		_, err := post(t, c, target)
		var refused *RefusedError
		if !errors.As(err, &refused) {
			t.Errorf("POST %s = %v, want a RefusedError", target, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("victim got %d requests, want 0", n)
	}

	allowed := NewClient(Options{AllowPrivateNetwork: true, Resolver: fixedResolver{netip.MustParseAddr("127.0.0.1")}})
	resp, err := post(t, allowed, "http://billing.internal:"+port+"/")
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST with private networks allowed = %v, %v; want 204", resp, err)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("victim got %d requests, want 1 once private networks are allowed", n)
	}
}

func TestClientFollowsNoRedirect(t *testing.T) {
	hits, target := victim(t)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)

	// Even with private networks allowed (both servers are on loopback), the
	// redirect comes back as the answer and is not followed.
	c := NewClient(Options{AllowPrivateNetwork: true})
	resp, err := post(t, c, redirector.URL)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	if !IsRedirect(resp) || resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("answer = %d, want the 307 itself", resp.StatusCode)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("redirect target got %d requests, want 0", n)
	}
}

func TestClientIgnoresProxyEnvironment(t *testing.T) {
	hits, proxy := victim(t)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("HTTPS_PROXY", proxy.URL)
	c := NewClient(Options{Resolver: fixedResolver{netip.MustParseAddr("10.0.0.1")}})
	if _, err := post(t, c, "http://billing.example.com/"); err == nil {
		t.Fatal("POST through a proxy to a private address succeeded")
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("proxy got %d requests, want 0", n)
	}
}

// The Control hook is the check that DNS rebinding cannot pass: it sees the
// address the socket is about to connect to, whatever resolved it.
func TestDialControlRefusesAtConnect(t *testing.T) {
	if tr := NewClient(Options{}).Transport.(*http.Transport); tr.Proxy != nil {
		t.Error("transport uses a proxy")
	}
	for _, tt := range []struct {
		address string
		allow   bool
		wantErr bool
	}{
		{"127.0.0.1:443", false, true},
		{"[::1]:443", false, true},
		{"10.0.0.1:443", false, true},
		{"169.254.169.254:80", true, true},
		{"127.0.0.1:443", true, false},
		{"93.184.215.14:443", false, false},
		{"not-an-address", false, true},
	} {
		err := control(tt.allow)(context.Background(), "tcp4", tt.address, nil)
		if (err != nil) != tt.wantErr {
			t.Errorf("Control(%s, allowPrivate=%v) = %v, want error: %v", tt.address, tt.allow, err, tt.wantErr)
		}
	}
}

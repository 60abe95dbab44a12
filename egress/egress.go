// Package egress is the HTTP client for requests to URLs we do not control
// the far end of, such as a tenant's event endpoint: it refuses to connect
// to addresses inside our own network (server-side request forgery).
//
// The address is checked where it cannot be dodged: on the socket, in the
// dialer's Control function, after name resolution and right before
// connect. A host name that resolved to a public address when the endpoint
// was configured and to 127.0.0.1 now (DNS rebinding) is refused just the
// same. The client follows no redirects (a redirect could send a request
// we checked to a place we did not), ignores HTTP proxy settings (the proxy
// would connect on our behalf, past the check), and bounds every phase of
// the exchange with a timeout.
package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// Defaults for an Options' zero fields.
const (
	DefaultTimeout               = 15 * time.Second
	DefaultDialTimeout           = 5 * time.Second
	DefaultTLSHandshakeTimeout   = 5 * time.Second
	DefaultResponseHeaderTimeout = 10 * time.Second
	// MaxResponseHeaderBytes bounds the answer's headers; callers bound the
	// body themselves (see LimitBody).
	MaxResponseHeaderBytes = 16 << 10
)

// RefusedError is a connection refused before it was made, because the
// address belongs to a network the request may not reach.
type RefusedError struct {
	Addr netip.Addr
	// Class names the kind of address, e.g. "loopback" or "private (RFC 1918)".
	Class string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("address %s refused: %s", e.Addr, e.Class)
}

// Blocked ranges that netip.Addr has no predicate for. Each is a network
// that no billing system on the internet is reached through.
var (
	cgnat          = netip.MustParsePrefix("100.64.0.0/10")  // RFC 6598 carrier-grade NAT, often internal in clouds
	thisNetwork    = netip.MustParsePrefix("0.0.0.0/8")      // RFC 1122 "this network"; Linux dials 0.x as local
	ietfProtocol   = netip.MustParsePrefix("192.0.0.0/24")   // RFC 6890 protocol assignments
	benchmarking   = netip.MustParsePrefix("198.18.0.0/15")  // RFC 2544 device benchmarking
	reserved       = netip.MustParsePrefix("240.0.0.0/4")    // RFC 1112 reserved, and the broadcast address
	siteLocal      = netip.MustParsePrefix("fec0::/10")      // RFC 3879 deprecated site-local, still routed internally
	nat64          = netip.MustParsePrefix("64:ff9b::/96")   // RFC 6052: carries an IPv4 address, checked as such
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48") // RFC 8215 local-use NAT64
	sixToFour      = netip.MustParsePrefix("2002::/16")      // RFC 3056 6to4: carries an IPv4 address, checked as such
	privateClasses = []struct {
		prefix netip.Prefix
		class  string
	}{
		{cgnat, "carrier-grade NAT (RFC 6598)"},
		{ietfProtocol, "IETF protocol assignments (RFC 6890)"},
		{benchmarking, "benchmarking (RFC 2544)"},
		{siteLocal, "site-local (RFC 3879)"},
		{nat64Local, "local-use NAT64 (RFC 8215)"},
	}
)

// Check reports whether a connection to addr is allowed, as a *RefusedError
// when it is not.
//
// Never allowed: unspecified, multicast, broadcast and reserved addresses,
// and link-local ones (169.254.0.0/16 holds the cloud metadata service,
// the classic target of request forgery): no billing system is reached
// there. Allowed only with allowPrivate: loopback, RFC 1918 and RFC 4193
// private networks, carrier-grade NAT and the other non-public ranges, for
// a billing system that runs inside our own network (and tests). Addresses
// that embed an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by it.
func Check(addr netip.Addr, allowPrivate bool) error {
	if !addr.IsValid() {
		return &RefusedError{Addr: addr, Class: "not an IP address"}
	}
	addr = addr.WithZone("")
	if v4, ok := embeddedIPv4(addr); ok {
		if err := Check(v4, allowPrivate); err != nil {
			return &RefusedError{Addr: addr, Class: "embeds " + v4.String() + ", " + err.(*RefusedError).Class}
		}
		return nil
	}
	refuse := func(class string) error { return &RefusedError{Addr: addr, Class: class} }
	switch {
	case addr.IsUnspecified() || thisNetwork.Contains(addr):
		return refuse("unspecified")
	case addr.IsMulticast():
		return refuse("multicast")
	case reserved.Contains(addr):
		return refuse("reserved or broadcast")
	case addr.IsLinkLocalUnicast():
		return refuse("link-local (cloud metadata lives here)")
	}
	if allowPrivate {
		return nil
	}
	switch {
	case addr.IsLoopback():
		return refuse("loopback")
	case addr.IsPrivate():
		if addr.Is4() {
			return refuse("private (RFC 1918)")
		}
		return refuse("private (RFC 4193)")
	}
	for _, p := range privateClasses {
		if p.prefix.Contains(addr) {
			return refuse(p.class)
		}
	}
	return nil
}

// embeddedIPv4 returns the IPv4 address an IPv6 address carries, if any.
func embeddedIPv4(addr netip.Addr) (netip.Addr, bool) {
	switch {
	case addr.Is4In6():
		return addr.Unmap(), true
	case nat64.Contains(addr):
		b := addr.As16()
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(addr):
		b := addr.As16()
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// CheckURL checks an endpoint URL when it is configured, so a mistake shows
// at start-up rather than at the first delivery: absolute, https (http only
// with allowPrivate, for a billing system inside our network), no
// credentials or fragment, and, when the host is an IP address, an address
// Check allows. A host name is checked when it is dialed: what it resolves
// to can change.
func CheckURL(raw string, allowPrivate bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %w", err)
	}
	switch {
	case !u.IsAbs() || u.Host == "" || u.Opaque != "":
		return nil, errors.New("must be an absolute URL such as https://billing.example.com/dunning/events")
	case u.Scheme == "http" && !allowPrivate:
		return nil, errors.New("must use https (http only with allow_private_network, for an endpoint inside our own network)")
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("scheme %q: must be https", u.Scheme)
	case u.User != nil:
		return nil, errors.New("must not carry credentials; events are signed instead")
	case u.Fragment != "":
		return nil, errors.New("must not have a fragment")
	case u.Hostname() == "":
		return nil, errors.New("has no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %q is not a TCP port", p)
		}
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
		if err := Check(ip, allowPrivate); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// Resolver looks host names up; *net.Resolver is one. Tests use their own
// to point a public-looking name at a local address.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configure NewClient. The zero value is a client for public
// endpoints with the default timeouts.
type Options struct {
	// AllowPrivateNetwork lets the client reach loopback and private
	// networks (see Check); never link-local, multicast or unspecified.
	AllowPrivateNetwork bool
	// Resolver resolves host names; net.DefaultResolver when nil.
	Resolver Resolver
	// Timeout bounds a whole exchange (DefaultTimeout when zero).
	Timeout time.Duration
	// DialTimeout, TLSHandshakeTimeout and ResponseHeaderTimeout bound each
	// phase (the Default... values when zero).
	DialTimeout, TLSHandshakeTimeout, ResponseHeaderTimeout time.Duration
	// TLSConfig overrides the TLS settings (tests trust their own CA).
	TLSConfig *tls.Config
}

// NewClient returns an HTTP client that connects only to addresses Check
// allows, never uses a proxy and follows no redirect: a 3xx answer comes
// back as the response (see IsRedirect), for the caller to record as a
// failure.
func NewClient(o Options) *http.Client {
	d := &dialer{
		allowPrivate: o.AllowPrivateNetwork,
		resolver:     o.Resolver,
		net:          net.Dialer{Timeout: or(o.DialTimeout, DefaultDialTimeout), KeepAlive: 30 * time.Second},
	}
	if d.resolver == nil {
		d.resolver = net.DefaultResolver
	}
	// The last word: whatever dials, this sees the address being connected.
	d.net.ControlContext = control(o.AllowPrivateNetwork)
	tr := &http.Transport{
		Proxy:                  nil, // a proxy would connect for us, past the check
		DialContext:            d.dial,
		TLSClientConfig:        o.TLSConfig,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    or(o.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout),
		ResponseHeaderTimeout:  or(o.ResponseHeaderTimeout, DefaultResponseHeaderTimeout),
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
		MaxIdleConns:           32,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        60 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   or(o.Timeout, DefaultTimeout),
		// Return the 3xx itself: the caller records it as a failure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// IsRedirect reports whether an answer is a redirect the client did not
// follow.
func IsRedirect(resp *http.Response) bool {
	return resp.StatusCode >= 300 && resp.StatusCode < 400
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// control is the dialer's Control hook: it runs on the socket right before
// connect, with the numeric address, so it holds whatever resolved the name.
func control(allowPrivate bool) func(context.Context, string, string, syscall.RawConn) error {
	return func(_ context.Context, _, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &RefusedError{Class: fmt.Sprintf("unparseable address %q", address)}
		}
		return Check(ap.Addr(), allowPrivate)
	}
}

type dialer struct {
	allowPrivate bool
	resolver     Resolver
	net          net.Dialer
}

// dial resolves the host itself and connects to the first allowed address
// that answers. Refused addresses are never dialed (no packet leaves for
// them); the Control check then holds the connection to the address that
// was checked.
func (d *dialer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		if addrs, err = d.resolver.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
	}
	var refused, dialErr error
	for _, ip := range addrs {
		if err := Check(ip, d.allowPrivate); err != nil {
			refused = cmpFirst(refused, err)
			continue
		}
		conn, err := d.net.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return conn, nil
		}
		dialErr = err
		if ctx.Err() != nil {
			break
		}
	}
	// A refusal is reported only when no allowed address was there to try:
	// otherwise the failure is the connection's, and may pass.
	if dialErr != nil {
		return nil, dialErr
	}
	return nil, refused
}

func cmpFirst(have, next error) error {
	if have != nil {
		return have
	}
	return next
}

package cardlink_test

import (
	"encoding/base64"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/cardlink"
)

var (
	testNow = time.Date(2026, 3, 5, 8, 0, 0, 500_000_000, time.UTC)
	b64     = base64.RawURLEncoding
)

func testSigner() cardlink.Signer {
	return cardlink.Signer{
		Secret:  []byte("0123456789abcdef0123456789abcdef"),
		BaseURL: "https://billing.example.com/update-card",
		TTL:     72 * time.Hour,
	}
}

func mustToken(t *testing.T, s cardlink.Signer, runID, customerID string) string {
	t.Helper()
	token, err := s.Token(runID, customerID, testNow)
	if err != nil {
		t.Fatalf("Token(%q, %q): %v", runID, customerID, err)
	}
	return token
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name, runID, customerID string
	}{
		{"typical", "dunning/acme/INV-2026-0042", "cus_NffrFeUfNV2Hib"},
		{"short", "r", "c"},
		{"URL characters", "dunning/a&b/inv?x=1#y", "cus 42/%"},
		{"unicode", "dunning/société/fakturę-7", "klient-żółw"},
		{"longest", strings.Repeat("r", cardlink.MaxIDLen), strings.Repeat("c", cardlink.MaxIDLen)},
	}
	s := testSigner()
	wantExpires := time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := mustToken(t, s, tt.runID, tt.customerID)
			got, err := s.Verify(token, testNow)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := cardlink.Claims{RunID: tt.runID, CustomerID: tt.customerID, Expires: wantExpires}
			if got != want {
				t.Errorf("Verify = %+v, want %+v", got, want)
			}
		})
	}
}

func TestExpiryBoundary(t *testing.T) {
	s := testSigner()
	token := mustToken(t, s, "dunning/acme/inv-1", "cus_1")
	// Issued at 08:00:00.5 for 72 hours: the expiry is rounded down to the
	// second, so a link never outlives its TTL.
	expires := time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		at      time.Time
		wantErr error
	}{
		{"at issue", testNow, nil},
		{"before issue", testNow.Add(-time.Hour), nil},
		{"last nanosecond", expires.Add(-time.Nanosecond), nil},
		{"at expiry", expires, cardlink.ErrExpired},
		{"a second late", expires.Add(time.Second), cardlink.ErrExpired},
		{"a year late", expires.AddDate(1, 0, 0), cardlink.ErrExpired},
		{"other zone, same instant", expires.In(time.FixedZone("X", 5*3600)), cardlink.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := s.Verify(token, tt.at)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify at %v: err = %v, want %v", tt.at, err, tt.wantErr)
			}
			if err == nil && !c.Expires.Equal(expires) {
				t.Errorf("Expires = %v, want %v", c.Expires, expires)
			}
		})
	}
}

// retamper decodes the payload of token, lets edit change it and returns
// the token with the edited payload and the original signature.
func retamper(t *testing.T, token string, edit func(p []byte)) string {
	t.Helper()
	payloadPart, macPart, _ := strings.Cut(token, ".")
	p, err := b64.DecodeString(payloadPart)
	if err != nil {
		t.Fatal(err)
	}
	edit(p)
	return b64.EncodeToString(p) + "." + macPart
}

func TestTampered(t *testing.T) {
	s := testSigner()
	const runID, customerID = "dunning/acme/inv-1", "cus_1"
	token := mustToken(t, s, runID, customerID)
	other := mustToken(t, s, "dunning/acme/inv-2", customerID)
	payloadPart, macPart, _ := strings.Cut(token, ".")
	_, otherMAC, _ := strings.Cut(other, ".")

	// Changes one byte of the token text, keeping it valid base64url.
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	tests := []struct {
		name    string
		token   string
		wantErr error
	}{
		{"run ID changed", retamper(t, token, func(p []byte) { p[2+len(runID)-1] = '2' }), cardlink.ErrBadSignature},
		{"customer ID changed", retamper(t, token, func(p []byte) { p[len(p)-9] = '2' }), cardlink.ErrBadSignature},
		{"expiry extended", retamper(t, token, func(p []byte) { p[len(p)-4]++ }), cardlink.ErrBadSignature},
		{"payload character changed", flip(payloadPart, len(payloadPart)/2) + "." + macPart, cardlink.ErrBadSignature},
		{"signature character changed", payloadPart + "." + flip(macPart, 10), cardlink.ErrBadSignature},
		{"signature of another token", payloadPart + "." + otherMAC, cardlink.ErrBadSignature},
		{"signature truncated", payloadPart + "." + macPart[:len(macPart)-2], cardlink.ErrMalformed},
		{"signature extended", payloadPart + "." + macPart + "AA", cardlink.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.token == token {
				t.Fatal("the tampered token equals the original")
			}
			c, err := s.Verify(tt.token, testNow)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify = %+v, %v; want %v", c, err, tt.wantErr)
			}
			if c != (cardlink.Claims{}) {
				t.Errorf("Verify returned claims %+v with an error", c)
			}
		})
	}
}

func TestWrongSecret(t *testing.T) {
	s := testSigner()
	token := mustToken(t, s, "dunning/acme/inv-1", "cus_1")
	other := s
	other.Secret = []byte("fedcba9876543210fedcba9876543210")
	if _, err := other.Verify(token, testNow); !errors.Is(err, cardlink.ErrBadSignature) {
		t.Errorf("Verify with another secret: err = %v, want ErrBadSignature", err)
	}
}

func TestMalformed(t *testing.T) {
	s := testSigner()
	valid := mustToken(t, s, "dunning/acme/inv-1", "cus_1")
	payloadPart, macPart, _ := strings.Cut(valid, ".")
	tests := []struct{ name, token string }{
		{"empty", ""},
		{"dot only", "."},
		{"no dot", payloadPart + macPart},
		{"no signature", payloadPart + "."},
		{"no payload", "." + macPart},
		{"three parts", valid + "." + macPart},
		{"bad base64 payload", "!!!!" + "." + macPart},
		{"bad base64 signature", payloadPart + ".***"},
		{"padded", payloadPart + "==." + macPart},
		{"standard base64", strings.NewReplacer("-", "+", "_", "/").Replace(valid) + "+/"},
		{"white space", " " + valid},
		{"line break", payloadPart[:10] + "\r\n" + payloadPart[10:] + "." + macPart},
		{"line break in signature", payloadPart + "." + macPart[:10] + "\n" + macPart[10:]},
		{"huge", strings.Repeat("A", 1<<20) + "." + macPart},
		{"huge signature", payloadPart + "." + strings.Repeat("A", 5000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := s.Verify(tt.token, testNow)
			if !errors.Is(err, cardlink.ErrMalformed) {
				t.Errorf("Verify(%.40q) = %+v, %v; want ErrMalformed", tt.token, c, err)
			}
		})
	}
}

var urlSafe = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)

func TestTokenIsURLSafe(t *testing.T) {
	s := testSigner()
	ids := []string{"dunning/acme/inv-1", "a b+c/d?e=f&g#h", "ünïcödé", "~!@$%^*()", strings.Repeat("ż", cardlink.MaxIDLen/2)}
	for _, runID := range ids {
		for _, customerID := range ids {
			token := mustToken(t, s, runID, customerID)
			if !urlSafe.MatchString(token) {
				t.Errorf("token %q has characters outside base64url and '.'", token)
			}
			if esc := url.QueryEscape(token); esc != token {
				t.Errorf("token %q needs escaping in a query: %q", token, esc)
			}
		}
	}
}

func TestURL(t *testing.T) {
	tests := []struct {
		name, base, wantPrefix, wantSuffix string
	}{
		{"plain", "https://billing.example.com/update-card", "https://billing.example.com/update-card?token=", ""},
		{"keeps query in order", "https://billing.example.com/update-card?src=sms&lang=fr", "https://billing.example.com/update-card?src=sms&lang=fr&token=", ""},
		{"keeps fragment", "https://billing.example.com/update-card?src=email#card", "https://billing.example.com/update-card?src=email&token=", "#card"},
		{"trailing question mark", "https://billing.example.com/update-card?", "https://billing.example.com/update-card?token=", ""},
		{"localhost", "http://localhost:8080/update-card", "http://localhost:8080/update-card?token=", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSigner()
			s.BaseURL = tt.base
			link, err := s.URL("dunning/acme/inv-1", "cus_1", testNow)
			if err != nil {
				t.Fatalf("URL: %v", err)
			}
			if !strings.HasPrefix(link, tt.wantPrefix) || !strings.HasSuffix(link, tt.wantSuffix) {
				t.Errorf("URL = %q, want %q…%q", link, tt.wantPrefix, tt.wantSuffix)
			}
			u, err := url.Parse(link)
			if err != nil {
				t.Fatalf("URL %q does not parse: %v", link, err)
			}
			c, err := s.Verify(u.Query().Get("token"), testNow)
			if err != nil {
				t.Fatalf("Verify of the link's token: %v", err)
			}
			if c.RunID != "dunning/acme/inv-1" || c.CustomerID != "cus_1" {
				t.Errorf("claims = %+v", c)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*cardlink.Signer)
		ok     bool
	}{
		{"valid", func(*cardlink.Signer) {}, true},
		{"http on localhost", func(s *cardlink.Signer) { s.BaseURL = "http://localhost:8080/update-card" }, true},
		{"http on 127.0.0.1", func(s *cardlink.Signer) { s.BaseURL = "http://127.0.0.1:8080/update-card" }, true},
		{"http on ::1", func(s *cardlink.Signer) { s.BaseURL = "http://[::1]:8080/update-card" }, true},
		{"no secret", func(s *cardlink.Signer) { s.Secret = nil }, false},
		{"short secret", func(s *cardlink.Signer) { s.Secret = s.Secret[:31] }, false},
		{"zero TTL", func(s *cardlink.Signer) { s.TTL = 0 }, false},
		{"negative TTL", func(s *cardlink.Signer) { s.TTL = -time.Hour }, false},
		{"no base URL", func(s *cardlink.Signer) { s.BaseURL = "" }, false},
		{"relative URL", func(s *cardlink.Signer) { s.BaseURL = "/update-card" }, false},
		{"no scheme", func(s *cardlink.Signer) { s.BaseURL = "billing.example.com/update-card" }, false},
		{"http elsewhere", func(s *cardlink.Signer) { s.BaseURL = "http://billing.example.com/update-card" }, false},
		{"http on a look-alike host", func(s *cardlink.Signer) { s.BaseURL = "http://localhost.example.com/update-card" }, false},
		{"other scheme", func(s *cardlink.Signer) { s.BaseURL = "ftp://billing.example.com/update-card" }, false},
		{"opaque", func(s *cardlink.Signer) { s.BaseURL = "https:billing.example.com" }, false},
		{"credentials", func(s *cardlink.Signer) { s.BaseURL = "https://user:pw@billing.example.com/update-card" }, false},
		{"token parameter taken", func(s *cardlink.Signer) { s.BaseURL = "https://billing.example.com/update-card?token=x" }, false},
		{"bad query", func(s *cardlink.Signer) { s.BaseURL = "https://billing.example.com/update-card?a=%zz" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSigner()
			tt.mutate(&s)
			errs := map[string]error{"Validate": s.Validate()}
			_, errs["Token"] = s.Token("dunning/acme/inv-1", "cus_1", testNow)
			_, errs["URL"] = s.URL("dunning/acme/inv-1", "cus_1", testNow)
			for op, err := range errs {
				if tt.ok && err != nil {
					t.Errorf("%s: %v", op, err)
				}
				if !tt.ok && !errors.Is(err, cardlink.ErrConfig) {
					t.Errorf("%s: err = %v, want ErrConfig", op, err)
				}
			}
		})
	}
}

func TestVerifyNeedsOnlyTheSecret(t *testing.T) {
	token := mustToken(t, testSigner(), "dunning/acme/inv-1", "cus_1")
	page := cardlink.Signer{Secret: testSigner().Secret}
	if _, err := page.Verify(token, testNow); err != nil {
		t.Errorf("Verify with the secret alone: %v", err)
	}
	page.Secret = page.Secret[:16]
	if _, err := page.Verify(token, testNow); !errors.Is(err, cardlink.ErrConfig) {
		t.Errorf("Verify with a short secret: err = %v, want ErrConfig", err)
	}
}

func TestTokenRejectsBadIDs(t *testing.T) {
	tests := []struct{ name, runID, customerID string }{
		{"no run ID", "", "cus_1"},
		{"no customer ID", "dunning/acme/inv-1", ""},
		{"run ID too long", strings.Repeat("r", cardlink.MaxIDLen+1), "cus_1"},
		{"customer ID too long", "dunning/acme/inv-1", strings.Repeat("c", cardlink.MaxIDLen+1)},
		{"invalid UTF-8", "dunning/\xff", "cus_1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if token, err := testSigner().Token(tt.runID, tt.customerID, testNow); err == nil {
				t.Errorf("Token = %q, want an error", token)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	s := testSigner()
	valid, err := s.Token("dunning/acme/inv-1", "cus_1", testNow)
	if err != nil {
		f.Fatal(err)
	}
	payloadPart, macPart, _ := strings.Cut(valid, ".")
	for _, seed := range []string{
		valid, "", ".", "a.b", payloadPart, payloadPart + ".", "." + macPart,
		payloadPart + "." + macPart[1:], "AQ." + macPart, valid + ".x", "AAAAAAAAAAAA." + macPart,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := s.Verify(token, testNow)
		if err != nil {
			if c != (cardlink.Claims{}) {
				t.Errorf("claims %+v returned with error %v", c, err)
			}
			if !errors.Is(err, cardlink.ErrMalformed) && !errors.Is(err, cardlink.ErrBadSignature) && !errors.Is(err, cardlink.ErrExpired) {
				t.Errorf("Verify(%q): untyped error %v", token, err)
			}
			return
		}
		if c.RunID == "" || c.CustomerID == "" || !testNow.Before(c.Expires) {
			t.Errorf("Verify(%q) accepted implausible claims %+v", token, c)
		}
		// Only this package's own tokens verify; they re-issue identically.
		again, err := s.Token(c.RunID, c.CustomerID, c.Expires.Add(-s.TTL))
		if err != nil || again != token {
			t.Errorf("Verify(%q) accepted a token that does not re-issue as itself (%q, %v)", token, again, err)
		}
	})
}

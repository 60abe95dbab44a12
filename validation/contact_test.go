package validation

import (
	"strings"
	"testing"

	"github.com/dunningco/dunning/workflows"
)

func TestEmail(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"ada@example.com", "ada@example.com", ""},
		{"  ada@example.com ", "ada@example.com", ""},
		{"ada.lovelace+billing@mail.example.co.uk", "ada.lovelace+billing@mail.example.co.uk", ""},
		{"ada@example.com\r\nBcc: eve@example.com", "", "line break"},
		{"ada@example.com\n", "", "line break"},
		{"ada@example.com\r", "", "line break"},
		{"Ada <ada@example.com>", "", "bare address"},
		{"\"Ada\" <ada@example.com>", "", "bare address"},
		{"\"ada lovelace\"@example.com", "", "bare address"},
		{"ada@example.com, eve@example.com", "", "is not an email address"},
		{"(comment) ada@example.com", "", "is not an email address"},
		{"ada", "", "is not an email address"},
		{"@example.com", "", "is not an email address"},
		{"ada@", "", "is not an email address"},
		{"ada@localhost", "", "no fully qualified domain"},
		{"ada@example.", "", "is not an email address"},
		{strings.Repeat("a", 250) + "@example.com", "", "at most 254"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Email(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Email(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Email(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParsePhone(t *testing.T) {
	tests := []struct {
		in, region string
		want       Phone
		wantErr    string
	}{
		{"+48123456789", "", Phone{E164: "+48123456789", Region: "PL", TimeZone: "Europe/Warsaw"}, ""},
		{"+48 601 234 567", "", Phone{E164: "+48601234567", Region: "PL", TimeZone: "Europe/Warsaw"}, ""},
		{"+33 6 12 34 56 78", "", Phone{E164: "+33612345678", Region: "FR", TimeZone: "Europe/Paris"}, ""},
		{"06 12 34 56 78", "FR", Phone{E164: "+33612345678", Region: "FR", TimeZone: "Europe/Paris"}, ""},
		{"+1 (415) 555-2671", "", Phone{E164: "+14155552671", Region: "US", TimeZone: "America/Los_Angeles"}, ""},
		{"+44 20 7946 0958", "", Phone{E164: "+442079460958", Region: "GB", TimeZone: "Europe/London"}, ""},
		// A US toll-free number spans every US zone: no time zone is guessed.
		{"+1 800 555 0199", "", Phone{E164: "+18005550199", Region: "US"}, ""},
		{"0612345678", "", Phone{}, "not an E.164 number"},
		{"0123", "", Phone{}, "not an E.164 number"},
		{"+999999999", "", Phone{}, "not a valid phone number"},
		{"+4812", "", Phone{}, "not a valid phone number"},
		{"+48 123 456 789 123 456", "", Phone{}, "not a valid phone number"},
		{"call me", "PL", Phone{}, "not a valid phone number"},
		{"+48123456789\r\n", "", Phone{}, "control character"},
		{"+" + strings.Repeat("1", 60), "", Phone{}, "at most 40"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePhone(tt.in, tt.region)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePhone(%q) = %+v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParsePhone(%q, %q) = %+v, %v; want %+v", tt.in, tt.region, got, err, tt.want)
			}
		})
	}
}

func TestCustomerNormalizesAndInfers(t *testing.T) {
	tests := []struct {
		name string
		in   workflows.Customer
		want workflows.Customer
	}{
		{"E.164 fills country and zone",
			workflows.Customer{ID: "c1", Phone: "+48 601 234 567"},
			workflows.Customer{ID: "c1", Phone: "+48601234567", Country: "PL", TimeZone: "Europe/Warsaw"}},
		{"given country and zone are kept",
			workflows.Customer{ID: "c1", Phone: "+48601234567", Country: "DE", TimeZone: "Europe/Berlin"},
			workflows.Customer{ID: "c1", Phone: "+48601234567", Country: "DE", TimeZone: "Europe/Berlin"}},
		{"only the missing one is filled",
			workflows.Customer{ID: "c1", Phone: "+33612345678", TimeZone: "Europe/Warsaw"},
			workflows.Customer{ID: "c1", Phone: "+33612345678", Country: "FR", TimeZone: "Europe/Warsaw"}},
		{"national number read in the customer's country",
			workflows.Customer{ID: "c1", Phone: "06 12 34 56 78", Country: "FR"},
			workflows.Customer{ID: "c1", Phone: "+33612345678", Country: "FR", TimeZone: "Europe/Paris"}},
		{"national number read in the locale's region",
			workflows.Customer{ID: "c1", Phone: "601 234 567", Locale: "pl-PL"},
			workflows.Customer{ID: "c1", Phone: "+48601234567", Locale: "pl-PL", Country: "PL", TimeZone: "Europe/Warsaw"}},
		{"several zones: none guessed",
			workflows.Customer{ID: "c1", Phone: "+18005550199"},
			workflows.Customer{ID: "c1", Phone: "+18005550199", Country: "US"}},
		{"email trimmed",
			workflows.Customer{ID: "c1", Email: " ada@example.com "},
			workflows.Customer{ID: "c1", Email: "ada@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Customer(tt.in, "/customer")
			if err != nil || got != tt.want {
				t.Fatalf("Customer(%+v) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestCustomerProblems(t *testing.T) {
	tests := []struct {
		name        string
		in          workflows.Customer
		wantPointer string
	}{
		{"missing id", workflows.Customer{}, "/customer/id"},
		{"id with a space", workflows.Customer{ID: "cus 42"}, "/customer/id"},
		{"id over 128 bytes", workflows.Customer{ID: strings.Repeat("c", 129)}, "/customer/id"},
		{"id of 300 kB", workflows.Customer{ID: strings.Repeat("c", 300_000)}, "/customer/id"},
		{"email with CR/LF", workflows.Customer{ID: "c1", Email: "ada@example.com\r\nBcc: eve@example.com"}, "/customer/email"},
		{"email with a display name", workflows.Customer{ID: "c1", Email: "Ada <ada@example.com>"}, "/customer/email"},
		{"phone not E.164", workflows.Customer{ID: "c1", Phone: "0123"}, "/customer/phone"},
		{"phone not valid", workflows.Customer{ID: "c1", Phone: "+48 12"}, "/customer/phone"},
		{"lower-case country", workflows.Customer{ID: "c1", Country: "pl"}, "/customer/country"},
		{"bad zone", workflows.Customer{ID: "c1", TimeZone: "Mars/Olympus"}, "/customer/time_zone"},
		{"Local zone", workflows.Customer{ID: "c1", TimeZone: "Local"}, "/customer/time_zone"},
		{"bad locale", workflows.Customer{ID: "c1", Locale: "not a locale"}, "/customer/locale"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Customer(tt.in, "/customer")
			assertPointers(t, err, tt.wantPointer)
		})
	}
}

// A refused email or phone number is named masked: errors reach logs and
// API answers.
func TestRefusedContactsAreMasked(t *testing.T) {
	if _, err := Email("ada.lovelace@localhost"); err == nil || strings.Contains(err.Error(), "ada.lovelace") {
		t.Errorf("email error = %v, want the address masked", err)
	}
	if _, err := ParsePhone("+4812345678901234", ""); err == nil || strings.Contains(err.Error(), "12345678901234") {
		t.Errorf("phone error = %v, want the number masked", err)
	}
}

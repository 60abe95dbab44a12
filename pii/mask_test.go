package pii

import "testing"

func TestMask(t *testing.T) {
	tests := []struct{ in, phone, email string }{
		{"+48123456789", "**********89", "***"},
		{"jane@example.com", "**************om", "j***@example.com"},
		{"@example.com", "**********om", "***@example.com"},
		{"7", "*", "***"},
		{"", "", "***"},
	}
	for _, tt := range tests {
		if got := MaskPhone(tt.in); got != tt.phone {
			t.Errorf("MaskPhone(%q) = %q, want %q", tt.in, got, tt.phone)
		}
		if got := MaskEmail(tt.in); got != tt.email {
			t.Errorf("MaskEmail(%q) = %q, want %q", tt.in, got, tt.email)
		}
	}
}

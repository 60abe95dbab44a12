package cardlink

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// Payloads that carry a valid signature but were not produced by Token:
// the parser must still refuse them.
func TestSignedButMalformedPayload(t *testing.T) {
	s := Signer{Secret: []byte("0123456789abcdef0123456789abcdef"), BaseURL: "https://billing.example.com/update-card", TTL: time.Hour}
	now := time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC)
	expiry := binary.BigEndian.AppendUint64(nil, uint64(now.Add(time.Hour).Unix()))
	id := func(s string) []byte { return append(binary.AppendUvarint(nil, uint64(len(s))), s...) }
	join := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name    string
		payload []byte
		wantErr error
	}{
		{"well formed", join([]byte{version}, id("run"), id("cus"), expiry), nil},
		{"empty", nil, ErrMalformed},
		{"unknown version", join([]byte{2}, id("run"), id("cus"), expiry), ErrMalformed},
		{"empty run ID", join([]byte{version}, id(""), id("cus"), expiry), ErrMalformed},
		{"length past the end", join([]byte{version}, []byte{50}, []byte("run")), ErrMalformed},
		{"length over the limit", join([]byte{version}, binary.AppendUvarint(nil, MaxIDLen+1)), ErrMalformed},
		{"overlong varint", join([]byte{version}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), ErrMalformed},
		{"invalid UTF-8", join([]byte{version}, id("\xff\xfe"), id("cus"), expiry), ErrMalformed},
		{"no expiry", join([]byte{version}, id("run"), id("cus")), ErrMalformed},
		{"short expiry", join([]byte{version}, id("run"), id("cus"), expiry[:7]), ErrMalformed},
		{"trailing bytes", join([]byte{version}, id("run"), id("cus"), expiry, []byte{0}), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := b64.EncodeToString(tt.payload) + "." + b64.EncodeToString(s.mac(tt.payload))
			_, err := s.Verify(token, now)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify: err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

package codec

import (
	"bytes"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
)

// FuzzCodec: any payload round-trips exactly, and Decode never panics on
// whatever bytes and metadata it is handed (a tampered or foreign payload
// is an error, never a crash or a silent wrong answer).
func FuzzCodec(f *testing.F) {
	f.Add([]byte(`{"email":"ada@example.com"}`), "json/plain", []byte("binary/encrypted"), "k1")
	f.Add([]byte{}, "binary/null", []byte{}, "")
	f.Add([]byte{0, 1, 2, 3}, "binary/encrypted", []byte("binary/encrypted"), "k9")
	c, err := New(mustKey(f, "k1"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, encoding string, rawEncoding []byte, keyID string) {
		in := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte(encoding)}, Data: data}
		enc, err := c.Encode([]*commonpb.Payload{in})
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		dec, err := c.Decode(enc)
		if err != nil {
			t.Fatalf("Decode of our own payload: %v", err)
		}
		if !bytes.Equal(dec[0].GetData(), data) || string(dec[0].GetMetadata()["encoding"]) != encoding {
			t.Fatalf("round trip changed the payload: %q %q -> %q %q", encoding, data, dec[0].GetMetadata()["encoding"], dec[0].GetData())
		}
		// A foreign payload claiming to be encrypted.
		foreign := &commonpb.Payload{Metadata: map[string][]byte{"encoding": rawEncoding, "encryption-key-id": []byte(keyID)}, Data: data}
		if out, err := c.Decode([]*commonpb.Payload{foreign}); err == nil && string(rawEncoding) == "binary/encrypted" && len(out) == 1 && bytes.Equal(out[0].GetData(), data) && len(data) > 0 {
			t.Fatalf("a forged encrypted payload decoded to itself")
		}
	})
}

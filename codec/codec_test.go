package codec

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// customer is what the codec must hide: the shape of workflows.Customer.
type customer struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Phone string `json:"phone"`
}

var ada = customer{ID: "cus-42", Email: "ada@example.com", Phone: "+48123456789"}

func mustKey(t testing.TB, id string) Key {
	t.Helper()
	k, err := GenerateKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustCodec(t testing.TB, keys ...Key) *Codec {
	t.Helper()
	c, err := New(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// plainPayload is what the SDK's default converter makes of v.
func plainPayload(t testing.TB, v any) *commonpb.Payload {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func encodeOne(t testing.TB, c *Codec, p *commonpb.Payload) *commonpb.Payload {
	t.Helper()
	out, err := c.Encode([]*commonpb.Payload{p})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func decodeOne(c *Codec, p *commonpb.Payload) (*commonpb.Payload, error) {
	out, err := c.Decode([]*commonpb.Payload{p})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

func TestRoundTripHidesTheCustomer(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	plain := plainPayload(t, ada)
	sealed := encodeOne(t, c, plain)

	if got := string(sealed.Metadata[converter.MetadataEncoding]); got != EncodingEncrypted {
		t.Errorf("encoding = %q, want %q", got, EncodingEncrypted)
	}
	if got := string(sealed.Metadata[MetadataKeyID]); got != "k1" {
		t.Errorf("key ID = %q, want k1", got)
	}
	raw, err := proto.Marshal(sealed)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{ada.Email, ada.Phone, "json/plain"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("sealed payload shows %q", secret)
		}
	}

	opened, err := decodeOne(c, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(opened, plain) {
		t.Errorf("decoded %v, want %v", opened, plain)
	}
}

func TestDataConverterRoundTrip(t *testing.T) {
	dc := DataConverter(mustCodec(t, mustKey(t, "k1")))
	payloads, err := dc.ToPayloads(ada, "second", 3)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range payloads.Payloads {
		if string(p.Metadata[converter.MetadataEncoding]) != EncodingEncrypted {
			t.Errorf("payload %d not encrypted: %v", i, p.Metadata)
		}
	}
	var (
		got    customer
		second string
		third  int
	)
	if err := dc.FromPayloads(payloads, &got, &second, &third); err != nil {
		t.Fatal(err)
	}
	if got != ada || second != "second" || third != 3 {
		t.Errorf("got %+v %q %d", got, second, third)
	}
	// Disabled: the SDK's converter as it was.
	if DataConverter(nil) != converter.GetDefaultDataConverter() {
		t.Error("DataConverter(nil) is not the default converter")
	}
}

func TestNoncesDiffer(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	plain := plainPayload(t, ada)
	a, b := encodeOne(t, c, plain), encodeOne(t, c, plain)
	if bytes.Equal(a.Data, b.Data) {
		t.Error("the same payload sealed twice gives the same bytes: the nonce is not fresh")
	}
}

func TestRotation(t *testing.T) {
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	plain := plainPayload(t, ada)
	sealedOld := encodeOne(t, mustCodec(t, k1), plain)

	// k2 is added and becomes the newest; k1 stays for old histories.
	rotated := mustCodec(t, k2, k1)
	if rotated.KeyID() != "k2" || !slices.Equal(rotated.KeyIDs(), []string{"k2", "k1"}) {
		t.Fatalf("key IDs %v, current %s", rotated.KeyIDs(), rotated.KeyID())
	}
	opened, err := decodeOne(rotated, sealedOld)
	if err != nil {
		t.Fatalf("a payload sealed with k1 after rotation: %v", err)
	}
	if !proto.Equal(opened, plain) {
		t.Errorf("decoded %v", opened)
	}
	sealedNew := encodeOne(t, rotated, plain)
	if got := string(sealedNew.Metadata[MetadataKeyID]); got != "k2" {
		t.Errorf("new payloads sealed with %q, want k2", got)
	}
	// A process that only has k1 (not yet rolled out) cannot read it, and
	// says which key it lacks.
	_, err = decodeOne(mustCodec(t, k1), sealedNew)
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `"k2"`) {
		t.Errorf("err = %v, want ErrUnknownKey naming k2", err)
	}
}

func TestUnknownKey(t *testing.T) {
	sealed := encodeOne(t, mustCodec(t, mustKey(t, "retired")), plainPayload(t, ada))
	_, err := decodeOne(mustCodec(t, mustKey(t, "k2"), mustKey(t, "k1")), sealed)
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v, want ErrUnknownKey", err)
	}
	for _, want := range []string{`"retired"`, "k2, k1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestTamperedPayloadsFail(t *testing.T) {
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	c := mustCodec(t, k2, k1)
	plain := plainPayload(t, ada)
	tests := []struct {
		name   string
		tamper func(p *commonpb.Payload)
	}{
		{"flipped ciphertext bit", func(p *commonpb.Payload) { p.Data[len(p.Data)/2] ^= 1 }},
		{"flipped nonce bit", func(p *commonpb.Payload) { p.Data[0] ^= 1 }},
		{"flipped tag bit", func(p *commonpb.Payload) { p.Data[len(p.Data)-1] ^= 1 }},
		{"truncated", func(p *commonpb.Payload) { p.Data = p.Data[:10] }},
		{"empty", func(p *commonpb.Payload) { p.Data = nil }},
		// The key ID is authenticated: relabelling is not a way round it.
		{"relabelled with another known key", func(p *commonpb.Payload) { p.Metadata[MetadataKeyID] = []byte("k1") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed := encodeOne(t, c, plain)
			tt.tamper(sealed)
			if _, err := decodeOne(c, sealed); !errors.Is(err, ErrDecrypt) {
				t.Errorf("err = %v, want ErrDecrypt", err)
			}
		})
	}
	t.Run("missing key ID", func(t *testing.T) {
		sealed := encodeOne(t, c, plain)
		delete(sealed.Metadata, MetadataKeyID)
		if _, err := decodeOne(c, sealed); !errors.Is(err, ErrUnknownKey) {
			t.Errorf("err = %v, want ErrUnknownKey", err)
		}
	})
	t.Run("same ID, other secret", func(t *testing.T) {
		sealed := encodeOne(t, c, plain)
		impostor := mustCodec(t, mustKey(t, "k2"))
		if _, err := decodeOne(impostor, sealed); !errors.Is(err, ErrDecrypt) {
			t.Errorf("err = %v, want ErrDecrypt", err)
		}
	})
}

// Histories written before the codec hold plain payloads: they must read as
// they are, so running workflows and the replay fixtures keep working.
func TestPlainPayloadsPassThrough(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	plain := []*commonpb.Payload{
		plainPayload(t, ada),
		plainPayload(t, nil), // binary/null
		plainPayload(t, []byte{1, 2, 3}),
		{Metadata: map[string][]byte{"encoding": []byte("json/protobuf")}, Data: []byte(`{}`)},
		{}, // no metadata at all
		nil,
	}
	out, err := c.Decode(plain)
	if err != nil {
		t.Fatal(err)
	}
	for i := range plain {
		if out[i] != plain[i] {
			t.Errorf("payload %d was changed: %v", i, out[i])
		}
	}
	// And through the data converter, as a replayed history is read.
	var got customer
	if err := DataConverter(c).FromPayload(plain[0], &got); err != nil || got != ada {
		t.Errorf("FromPayload = %+v, %v", got, err)
	}
}

func TestMixedBatchDecodes(t *testing.T) {
	c := mustCodec(t, mustKey(t, "k1"))
	plain := plainPayload(t, "already plain")
	sealed := encodeOne(t, c, plainPayload(t, ada))
	out, err := c.Decode([]*commonpb.Payload{plain, sealed, nil})
	if err != nil {
		t.Fatal(err)
	}
	if out[0] != plain || out[2] != nil || string(out[1].Metadata[converter.MetadataEncoding]) != "json/plain" {
		t.Errorf("decoded %v", out)
	}
}

func TestNewRefusesBadKeys(t *testing.T) {
	good := mustKey(t, "k1")
	tests := []struct {
		name string
		keys []Key
		want string
	}{
		{"none", nil, "no keys"},
		{"short", []Key{{ID: "k1", Secret: make([]byte, 16)}}, "16 bytes, want 32"},
		{"duplicate ID", []Key{good, {ID: "k1", Secret: make([]byte, 32)}}, "appears twice"},
		{"bad ID", []Key{{ID: "k 1", Secret: make([]byte, 32)}}, "ID"},
		{"empty ID", []Key{{ID: "", Secret: make([]byte, 32)}}, "ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.keys...); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	b64 := func(k Key) string { return base64.StdEncoding.EncodeToString(k.Secret) }
	t.Run("env form, newest first", func(t *testing.T) {
		c, err := Parse("k2:" + b64(k2) + ", k1:" + b64(k1))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(c.KeyIDs(), []string{"k2", "k1"}) {
			t.Errorf("IDs %v", c.KeyIDs())
		}
		// The parsed k1 is the real k1: it opens what k1 sealed.
		sealed := encodeOne(t, mustCodec(t, k1), plainPayload(t, ada))
		if _, err := decodeOne(c, sealed); err != nil {
			t.Error(err)
		}
	})
	t.Run("file form", func(t *testing.T) {
		c, err := Parse("# rotated 2026-05\nk2:" + b64(k2) + "\n\n  k1:" + b64(k1) + "  \n")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(c.KeyIDs(), []string{"k2", "k1"}) {
			t.Errorf("IDs %v", c.KeyIDs())
		}
	})
	secret := b64(k1)
	for _, tt := range []struct{ name, spec, want string }{
		{"empty", "  ", "no keys"},
		{"no ID", secret, "want <id>:<base64 key>"},
		{"not base64", "k1:not base64!", "not standard base64"},
		{"short", "k1:" + base64.StdEncoding.EncodeToString([]byte("short")), "5 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the key: %v", err)
			}
		})
	}
}

func TestKeysStayOutOfPrints(t *testing.T) {
	k := mustKey(t, "k1")
	c := mustCodec(t, k)
	secret := base64.StdEncoding.EncodeToString(k.Secret)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v", c), k.LogValue().String(), c.LogValue().String()} {
		if strings.Contains(s, secret) || strings.Contains(s, string(k.Secret)) {
			t.Errorf("%q shows the secret", s)
		}
	}
}

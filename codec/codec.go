// Package codec encrypts every Temporal payload the platform writes, so the
// customer data in workflow inputs, activity inputs, results and query
// answers (email addresses, phone numbers) is never stored in Temporal, or
// shown by its Web UI, in plain text.
//
// Each payload is sealed whole (data and metadata) with AES-256-GCM under the
// newest key of a key ring and a fresh random nonce; the key's ID travels in
// the sealed payload's metadata, so any older key still in the ring opens
// it. Payloads that are not marked as encrypted (histories recorded before
// the codec existed) pass through untouched.
//
// The Web UI and the temporal CLI decode through the codec endpoint
// (NewHandler), which speaks Temporal's remote codec protocol.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Payload metadata the codec writes.
const (
	// EncodingEncrypted marks a sealed payload in the "encoding" metadata.
	EncodingEncrypted = "binary/encrypted"
	// MetadataKeyID names the key that sealed the payload.
	MetadataKeyID = "encryption-key-id"
)

// KeySize is the size of an AES-256 key in bytes.
const KeySize = 32

var (
	// ErrUnknownKey is returned for a payload sealed with a key this process
	// does not have: add the key back to the ring (as an older key) to read it.
	ErrUnknownKey = errors.New("payload encrypted with an unknown key")
	// ErrDecrypt is returned for a payload that does not open with the key
	// it names: it was altered, or the key under that ID is not the one that
	// sealed it.
	ErrDecrypt = errors.New("payload does not decrypt")
)

// keyIDPattern keeps key IDs readable in payload metadata and logs.
var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Key is one AES-256 key and the ID payloads sealed with it carry.
type Key struct {
	ID     string
	Secret []byte
}

// String never shows the secret, so a key that reaches a log or an error
// message stays secret.
func (k Key) String() string { return "codec key " + k.ID }

// LogValue keeps the secret out of structured logs.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.ID) }

// GenerateKey returns a new random key with the given ID.
func GenerateKey(id string) (Key, error) {
	if !keyIDPattern.MatchString(id) {
		return Key{}, fmt.Errorf("codec: key ID %q: want 1-64 letters, digits, '.', '_' or '-'", id)
	}
	secret := make([]byte, KeySize)
	rand.Read(secret) // never fails: crypto/rand crashes the program instead
	return Key{ID: id, Secret: secret}, nil
}

// Codec is a converter.PayloadCodec that seals payloads with the newest key
// of its ring and opens them with any key in it. It is safe for concurrent
// use.
type Codec struct {
	current string
	ids     []string // newest first
	aeads   map[string]cipher.AEAD
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New builds a codec from keys, newest first: payloads are sealed with
// keys[0] and opened with whichever key they name. Rotating means putting a
// new key first and keeping the old ones for as long as histories sealed
// with them must be read.
func New(keys ...Key) (*Codec, error) {
	if len(keys) == 0 {
		return nil, errors.New("codec: no keys")
	}
	c := &Codec{current: keys[0].ID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for i, k := range keys {
		if !keyIDPattern.MatchString(k.ID) {
			return nil, fmt.Errorf("codec: key %d: ID %q: want 1-64 letters, digits, '.', '_' or '-'", i+1, k.ID)
		}
		if _, dup := c.aeads[k.ID]; dup {
			return nil, fmt.Errorf("codec: key ID %q appears twice", k.ID)
		}
		if len(k.Secret) != KeySize {
			return nil, fmt.Errorf("codec: key %q is %d bytes, want %d (AES-256)", k.ID, len(k.Secret), KeySize)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", k.ID, err)
		}
		// The nonce is drawn from crypto/rand for every payload and stored
		// in front of the ciphertext, so no counter has to survive restarts
		// or be shared between replicas.
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("codec: key %q: %w", k.ID, err)
		}
		c.aeads[k.ID] = aead
		c.ids = append(c.ids, k.ID)
	}
	return c, nil
}

// Parse builds a codec from a key list such as
// "k2:<base64 key>,k1:<base64 key>", newest first. Entries may also be
// separated by newlines; blank lines and lines starting with '#' are
// ignored, so the same text works in an environment variable and a file.
func Parse(spec string) (*Codec, error) {
	var keys []Key
	for line := range strings.Lines(spec) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for entry := range strings.SplitSeq(line, ",") {
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			id, secret, ok := strings.Cut(entry, ":")
			id = strings.TrimSpace(id)
			if !ok {
				// The entry may be a bare key pasted by mistake: never echo it.
				return nil, fmt.Errorf("codec: key %d: want <id>:<base64 key>", len(keys)+1)
			}
			raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(secret))
			if err != nil {
				return nil, fmt.Errorf("codec: key %q: not standard base64 (make one with `openssl rand -base64 32`)", id)
			}
			keys = append(keys, Key{ID: id, Secret: raw})
		}
	}
	return New(keys...)
}

// KeyID is the ID of the key new payloads are sealed with.
func (c *Codec) KeyID() string { return c.current }

// KeyIDs lists the IDs of every key the codec opens payloads with, newest
// first.
func (c *Codec) KeyIDs() []string { return append([]string(nil), c.ids...) }

// String names the keys, never their secrets.
func (c *Codec) String() string {
	return "codec (keys " + strings.Join(c.ids, ", ") + ")"
}

// LogValue keeps key material out of structured logs.
func (c *Codec) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Encode seals each payload, metadata included, with the newest key.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.current]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if p == nil {
			continue
		}
		plain, err := proto.Marshal(p)
		if err != nil {
			return payloads, fmt.Errorf("codec: marshal payload: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:              []byte(c.current),
			},
			// The key ID is the additional data: a payload relabelled
			// with another key's ID fails to open instead of being
			// tried under the wrong key.
			Data: aead.Seal(nil, nil, plain, []byte(c.current)),
		}
	}
	return out, nil
}

// Decode opens every sealed payload and returns the others unchanged, so
// histories written before encryption was turned on still read.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if p == nil || string(p.GetMetadata()[converter.MetadataEncoding]) != EncodingEncrypted {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			return payloads, fmt.Errorf("codec: key %q (this process has %s): %w", id, strings.Join(c.ids, ", "), ErrUnknownKey)
		}
		plain, err := aead.Open(nil, nil, p.GetData(), []byte(id))
		if err != nil {
			return payloads, fmt.Errorf("codec: with key %q: %w", id, ErrDecrypt)
		}
		var orig commonpb.Payload
		if err := proto.Unmarshal(plain, &orig); err != nil {
			return payloads, fmt.Errorf("codec: decrypted payload with key %q does not unmarshal: %w", id, err)
		}
		out[i] = &orig
	}
	return out, nil
}

// DataConverter is the SDK's default data converter with c applied to every
// payload: what Temporal clients and workers are given. A nil c (encryption
// explicitly disabled) gives the default converter unchanged.
func DataConverter(c *Codec) converter.DataConverter {
	if c == nil {
		return converter.GetDefaultDataConverter()
	}
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

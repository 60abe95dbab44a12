package apikeys

import (
	"context"
	"crypto/subtle"
)

// Static is a fixed set of keys held in memory, for tests and embedding: it
// checks keys as the Store does (shape, constant-time comparison) without a
// database. The map is read-only once in use.
type Static map[string]Principal

// StaticKey is a well-formed key for tests: dk_test_<id>_ and a secret
// made of seed, so each test key is distinct and recognisable.
func StaticKey(id, seed string) string {
	secret := make([]byte, 0, secretLen)
	for len(secret) < secretLen {
		for i := 0; i < len(seed) && len(secret) < secretLen; i++ {
			if c := seed[i]; c < 128 && isAlnum(c) {
				secret = append(secret, c)
			}
		}
		if len(seed) == 0 || len(secret) == 0 {
			secret = append(secret, 'x')
		}
	}
	return PrefixTest + "_" + id + "_" + string(secret)
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// Authenticate answers the principal of token, ErrMalformed or ErrUnknown.
func (s Static) Authenticate(_ context.Context, token string) (Principal, error) {
	if _, _, err := ParseToken(token); err != nil {
		return Principal{}, err
	}
	var found Principal
	ok := false
	// Every entry is compared, so the time taken does not depend on which
	// one matched.
	for k, p := range s {
		if subtle.ConstantTimeCompare([]byte(k), []byte(token)) == 1 {
			found, ok = p, true
		}
	}
	if !ok {
		return Principal{}, ErrUnknown
	}
	if found.KeyID == "" {
		_, found.KeyID, _ = ParseToken(token)
	}
	return found, nil
}

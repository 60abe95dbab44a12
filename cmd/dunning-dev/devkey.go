package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dunningco/dunning/apikeys"
)

// Dev mode's API key: for tenant "acme" (README's examples), kept with its
// pepper next to Temporal's SQLite file, so the key a developer exported
// keeps working across restarts.
const (
	devKeyTenant = "acme"
	devKeyFile   = "api-key"
	devPepper    = "key-pepper"
)

// devKeys is dev mode's key store and its key.
type devKeys struct {
	store *apikeys.Store
	// token is the dev key, printed once in the banner.
	token string
	// keyFile is where the key is kept; "" when it is not.
	keyFile string
	// pepperFile is the generated pepper's file, for the CLI's keys
	// commands; "" when the environment sets the pepper.
	pepperFile string
	// pepper is what keys are hashed with; the dashboard derives its
	// session secret from it.
	pepper []byte
}

// newDevKeys opens the key store with the environment's pepper, else one
// kept in dir, and finds the dev key: the one kept in dir while the ledger
// still accepts it, else a new one. dir "" keeps nothing: a new pepper and
// key each start.
func newDevKeys(ctx context.Context, getenv func(string) string, dir string, pool *pgxpool.Pool, logger *slog.Logger) (*devKeys, error) {
	d := &devKeys{}
	pepper, err := apikeys.PepperFromEnv(getenv)
	if errors.Is(err, apikeys.ErrNoPepper) {
		var path string
		if dir != "" {
			path = filepath.Join(dir, devPepper)
			d.pepperFile = path
		}
		var secret string
		secret, err = devFileSecret(path, func() string { return randomHex(32) })
		pepper = []byte(secret)
	}
	if err != nil {
		return nil, fmt.Errorf("dev API key pepper: %w", err)
	}
	d.pepper = pepper
	if d.store, err = apikeys.NewStore(pool, pepper, logger); err != nil {
		return nil, err
	}

	keyPath := ""
	if dir != "" {
		keyPath = filepath.Join(dir, devKeyFile)
		d.keyFile = keyPath
		if b, err := os.ReadFile(keyPath); err == nil {
			token := strings.TrimSpace(string(b))
			p, err := d.store.Authenticate(ctx, token)
			if err == nil && p.Tenant == devKeyTenant {
				d.token = token
				return d, nil
			}
			// A fresh database, another pepper or a revoked key: issue
			// a new one rather than print a key that does not work.
			logger.Info("dev API key no longer valid; issuing a new one", "file", keyPath, "reason", err)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read the dev API key: %w", err)
		}
	}
	issued, err := d.store.Create(ctx, apikeys.NewKey{Tenant: devKeyTenant, Scopes: []apikeys.Scope{apikeys.ScopeRunsRead, apikeys.ScopeRunsWrite},
		Name: "dev mode", Prefix: apikeys.PrefixTest})
	if err != nil {
		return nil, fmt.Errorf("issue the dev API key: %w", err)
	}
	d.token = issued.Token
	if keyPath != "" {
		if err := writeSecretFile(keyPath, d.token); err != nil {
			return nil, fmt.Errorf("write the dev API key: %w", err)
		}
	}
	return d, nil
}

// devFileSecret reads the secret kept at path, creating it with generate on
// first use; path "" generates one that is not kept.
func devFileSecret(path string, generate func() string) (string, error) {
	if path == "" {
		return generate(), nil
	}
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	s := generate()
	return s, writeSecretFile(path, s)
}

// writeSecretFile writes s readable by the owner only.
func writeSecretFile(path, s string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(s+"\n"), 0o600)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// bannerLines say whose the dev key is and where it is kept (the banner's
// curl example prints the key itself, meant to be copied: dev mode only)
// and, when dev mode made the pepper, how the CLI finds it.
func (d *devKeys) bannerLines() string {
	out := fmt.Sprintf("    API key          tenant %s, runs:read and runs:write", devKeyTenant)
	if d.keyFile != "" {
		out += ", kept in " + d.keyFile
	}
	out += "\n"
	if d.pepperFile != "" {
		out += fmt.Sprintf("    CLI keys         export %s=%s (for dunning keys ...)\n", apikeys.EnvPepperFile, d.pepperFile)
	}
	return out
}

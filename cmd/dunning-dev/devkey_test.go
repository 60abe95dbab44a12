package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dunningco/dunning/apikeys"
	"github.com/dunningco/dunning/ledger/ledgertest"
)

// The dev key is made on first start, kept with its pepper next to
// Temporal's file (owner-only), the same on the next start, and replaced
// when the ledger no longer knows it.
func TestDevKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	noEnv := func(string) string { return "" }
	logger := slog.New(slog.DiscardHandler)
	store := ledgertest.NewStore(t)

	first, err := newDevKeys(ctx, noEnv, dir, store.Pool(), logger)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first.token, "dk_test_") || first.pepperFile != filepath.Join(dir, devPepper) {
		t.Fatalf("first start: token %q pepper file %q", first.token, first.pepperFile)
	}
	for _, name := range []string{devKeyFile, devPepper} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", name, info, err)
		}
	}
	p, err := first.store.Authenticate(ctx, first.token)
	if err != nil || p.Tenant != devKeyTenant || !p.Has(apikeys.ScopeRunsWrite) || p.Has(apikeys.ScopeAdmin) {
		t.Errorf("the dev key: %+v %v", p, err)
	}
	if strings.Contains(first.bannerLines(), first.token) || !strings.Contains(first.bannerLines(), apikeys.EnvPepperFile+"="+first.pepperFile) {
		t.Errorf("banner %q", first.bannerLines())
	}

	again, err := newDevKeys(ctx, noEnv, dir, store.Pool(), logger)
	if err != nil || again.token != first.token {
		t.Errorf("restart: token %q (%v), want the first", again.token, err)
	}

	// A fresh ledger (the database was dropped) gets a new key.
	fresh, err := newDevKeys(ctx, noEnv, dir, ledgertest.NewStore(t).Pool(), logger)
	if err != nil || fresh.token == first.token {
		t.Errorf("fresh ledger: token %q (%v)", fresh.token, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, devKeyFile)); strings.TrimSpace(string(b)) != fresh.token {
		t.Errorf("key file holds %q, want the new key", b)
	}

	// The environment's pepper is used as is, and no file is written for it.
	envDir := t.TempDir()
	pepper := strings.Repeat("e", apikeys.MinPepperLen)
	withEnv, err := newDevKeys(ctx, func(k string) string {
		if k == apikeys.EnvPepper {
			return pepper
		}
		return ""
	}, envDir, store.Pool(), logger)
	if err != nil || withEnv.pepperFile != "" {
		t.Fatalf("with DUNNING_KEY_PEPPER: %+v %v", withEnv, err)
	}
	if _, err := os.Stat(filepath.Join(envDir, devPepper)); !os.IsNotExist(err) {
		t.Errorf("a pepper file was written: %v", err)
	}
}

package apikeys

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dunningco/dunning/ledger/ledgertest"
)

var testPepper = []byte(strings.Repeat("pepper-", 6))

// newTestStore is a store on a fresh ledger with a clock the test moves.
func newTestStore(t *testing.T) (*Store, *time.Time) {
	t.Helper()
	ledger := ledgertest.NewStore(t)
	s, err := NewStore(ledger.Pool(), testPepper, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	return s, &now
}

func TestCreateAndAuthenticate(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	issued, err := s.Create(ctx, NewKey{Tenant: "acme", Scopes: []Scope{ScopeRunsWrite, ScopeRunsRead}, Name: "billing-prod"})
	if err != nil {
		t.Fatal(err)
	}
	k := issued.Key
	if !strings.HasPrefix(issued.Token, "dk_live_"+k.ID+"_") || k.Tenant != "acme" || k.Name != "billing-prod" ||
		!slices.Equal(k.Scopes, []Scope{ScopeRunsRead, ScopeRunsWrite}) {
		t.Fatalf("issued %+v, token %q", k, issued.Token)
	}

	// The row holds a 32-byte keyed hash, never the key or its secret.
	var stored []byte
	var rowText string
	if err := s.pool.QueryRow(ctx, `SELECT secret_hash, row_to_json(k)::text FROM api_keys k WHERE id = $1`, k.ID).Scan(&stored, &rowText); err != nil {
		t.Fatal(err)
	}
	secret := issued.Token[strings.LastIndex(issued.Token, "_")+1:]
	if len(stored) != 32 || bytes.Contains(stored, []byte(secret)) || strings.Contains(rowText, secret) || !bytes.Equal(stored, s.hash.sum(issued.Token)) {
		t.Errorf("stored row %s holds the secret, or not its HMAC", rowText)
	}

	p, err := s.Authenticate(ctx, issued.Token)
	if err != nil || p.KeyID != k.ID || p.Tenant != "acme" || !p.Has(ScopeRunsWrite) || p.Has(ScopeAdmin) {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}

	flip := "a"
	if strings.HasSuffix(issued.Token, "a") {
		flip = "b"
	}
	wrongSecret := issued.Token[:len(issued.Token)-1] + flip
	for _, tt := range []struct {
		name  string
		token string
		want  error
	}{
		{"wrong secret", wrongSecret, ErrUnknown},
		{"unknown ID", "dk_live_zzzzzzzz_" + secret, ErrUnknown},
		{"another prefix", strings.Replace(issued.Token, "dk_live", "dk_test", 1), ErrUnknown},
		{"malformed", "dk_live_" + k.ID, ErrMalformed},
	} {
		if _, err := s.Authenticate(ctx, tt.token); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}

	// Another pepper (a misconfigured server) accepts no key.
	other, _ := NewStore(s.pool, []byte(strings.Repeat("other-", 7)), nil)
	if _, err := other.Authenticate(ctx, issued.Token); !errors.Is(err, ErrUnknown) {
		t.Errorf("another pepper: %v", err)
	}
}

func TestCreateRefusesBadKeys(t *testing.T) {
	s, _ := newTestStore(t)
	for _, nk := range []NewKey{
		{Tenant: "", Scopes: []Scope{ScopeRunsRead}},
		{Tenant: "ac me", Scopes: []Scope{ScopeRunsRead}},
		{Tenant: "acme"},
		{Tenant: "acme", Scopes: []Scope{"runs:delete"}},
		{Tenant: "acme", Scopes: []Scope{ScopeRunsRead}, Prefix: "dk_prod"},
		{Tenant: "acme", Scopes: []Scope{ScopeRunsRead}, Name: "billing\nX-Injected: 1"},
		{Tenant: "acme", Scopes: []Scope{ScopeRunsRead}, Name: strings.Repeat("n", MaxNameLen+1)},
	} {
		if _, err := s.Create(context.Background(), nk); !errors.Is(err, ErrInvalid) {
			t.Errorf("Create(%+v) = %v, want ErrInvalid", nk, err)
		}
	}
}

// The last-used time is written on first use and then at most once per
// TouchInterval, so requests in between only read.
func TestLastUsedIsThrottled(t *testing.T) {
	ctx := context.Background()
	s, now := newTestStore(t)
	issued, err := s.Create(ctx, NewKey{Tenant: "acme", Scopes: []Scope{ScopeRunsRead}})
	if err != nil {
		t.Fatal(err)
	}
	lastUsed := func() time.Time {
		t.Helper()
		k, err := s.Get(ctx, issued.Key.ID)
		if err != nil {
			t.Fatal(err)
		}
		return k.LastUsedAt
	}
	if got := lastUsed(); !got.IsZero() {
		t.Fatalf("a new key was used at %v", got)
	}
	first := *now
	if _, err := s.Authenticate(ctx, issued.Token); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(first) {
		t.Fatalf("last used %v, want %v", got, first)
	}
	*now = first.Add(30 * time.Second)
	if _, err := s.Authenticate(ctx, issued.Token); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(first) {
		t.Errorf("written again within the interval: %v", got)
	}
	*now = first.Add(DefaultTouchInterval + time.Second)
	if _, err := s.Authenticate(ctx, issued.Token); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(*now) {
		t.Errorf("last used %v, want %v", got, *now)
	}
}

func TestRotateAndRevoke(t *testing.T) {
	ctx := context.Background()
	s, now := newTestStore(t)
	old, err := s.Create(ctx, NewKey{Tenant: "acme", Scopes: []Scope{ScopeRunsRead, ScopeRunsWrite}, Name: "billing"})
	if err != nil {
		t.Fatal(err)
	}
	*now = now.Add(time.Minute)
	rotated, err := s.Rotate(ctx, old.Key.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.Key.ID == old.Key.ID || rotated.Token == old.Token || rotated.Key.Tenant != "acme" || rotated.Key.Name != "billing" ||
		!slices.Equal(rotated.Key.Scopes, old.Key.Scopes) {
		t.Fatalf("rotated = %+v", rotated.Key)
	}
	// Both work during the grace period; the old one then expires.
	for _, tok := range []string{old.Token, rotated.Token} {
		if _, err := s.Authenticate(ctx, tok); err != nil {
			t.Errorf("within the grace period: %v", err)
		}
	}
	if _, err := s.Rotate(ctx, old.Key.ID, time.Hour); !errors.Is(err, ErrInvalid) {
		t.Errorf("rotating a rotated key: %v", err)
	}
	*now = now.Add(time.Hour)
	if _, err := s.Authenticate(ctx, old.Token); !errors.Is(err, ErrExpired) {
		t.Errorf("after the grace period: %v", err)
	}
	if _, err := s.Authenticate(ctx, rotated.Token); err != nil {
		t.Errorf("the replacement: %v", err)
	}

	// A grace of 0 ends the old key at once.
	next, err := s.Rotate(ctx, rotated.Key.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, rotated.Token); !errors.Is(err, ErrExpired) {
		t.Errorf("rotated with no grace: %v", err)
	}

	k, err := s.Revoke(ctx, next.Key.ID)
	if err != nil || k.State(*now) != "revoked" {
		t.Fatalf("Revoke = %+v, %v", k, err)
	}
	if _, err := s.Authenticate(ctx, next.Token); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked key: %v", err)
	}
	if _, err := s.Rotate(ctx, next.Key.ID, time.Hour); !errors.Is(err, ErrInvalid) {
		t.Errorf("rotating a revoked key: %v", err)
	}
	if _, err := s.Revoke(ctx, "nokey123"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking an unknown key: %v", err)
	}
	if _, err := s.Rotate(ctx, "nokey123", time.Hour); !errors.Is(err, ErrNotFound) {
		t.Errorf("rotating an unknown key: %v", err)
	}

	keys, err := s.List(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, k := range keys {
		states = append(states, k.ID+":"+k.State(*now))
	}
	want := []string{old.Key.ID + ":expired", rotated.Key.ID + ":expired", next.Key.ID + ":revoked"}
	if !slices.Equal(states, want) {
		t.Errorf("list = %v, want %v", states, want)
	}
	if keys, _ := s.List(ctx, "globex"); len(keys) != 0 {
		t.Errorf("another tenant lists %v", keys)
	}
}

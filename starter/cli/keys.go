package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dunningco/dunning/apikeys"
	"github.com/dunningco/dunning/ledger"
)

// DefaultRotateGrace is how long a rotated key keeps working by default:
// long enough to roll the new key out to every client.
const DefaultRotateGrace = 24 * time.Hour

// withKeyStore opens the ledger and runs fn with its key store.
func (a *app) withKeyStore(ctx context.Context, fn func(*apikeys.Store) error) error {
	pepper, err := apikeys.PepperFromEnv(a.getenv)
	if err != nil {
		return err
	}
	store, err := ledger.Open(ctx, a.databaseURL())
	if err != nil {
		return fmt.Errorf("open the ledger at DATABASE_URL: %w", err)
	}
	defer store.Close()
	keys, err := apikeys.NewStore(store.Pool(), pepper, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	return fn(keys)
}

// keyError makes the store's refusals usage errors: the caller's to fix.
func keyError(err error) error {
	if errors.Is(err, apikeys.ErrInvalid) {
		return &usageError{msg: err.Error()}
	}
	return err
}

func (a *app) keysCreate(ctx context.Context, args []string) error {
	fs := a.newFlagSet("keys create", "-tenant T -scopes runs:read,runs:write [-name N] [-test] [-o table|json]")
	tenant := fs.String("tenant", "", "tenant the key acts for (required)")
	scopesFlag := fs.String("scopes", "", "comma-separated scopes (required): runs:read (status, lists), runs:write (declines, reminders, cancel, expedite, card-updated, paid, resume), admin (every tenant's runs)")
	out := fs.addOutput()
	name := fs.String("name", "", "who holds the key, e.g. billing-prod; shown in listings")
	test := fs.Bool("test", false, "issue a dk_test_ key (for test systems) instead of dk_live_")
	if err := parse(fs, args, "tenant", "scopes"); err != nil {
		return err
	}
	scopes, err := apikeys.ParseScopes(*scopesFlag)
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	prefix := apikeys.PrefixLive
	if *test {
		prefix = apikeys.PrefixTest
	}
	return a.withKeyStore(ctx, func(s *apikeys.Store) error {
		issued, err := s.Create(ctx, apikeys.NewKey{Tenant: *tenant, Scopes: scopes, Name: *name, Prefix: prefix})
		if err != nil {
			return keyError(err)
		}
		return a.printIssued(*out, "created", issued)
	})
}

// issuedKey is a new key as -o json prints it; the token is shown once.
type issuedKey struct {
	ID     string          `json:"id"`
	Tenant string          `json:"tenant"`
	Scopes []apikeys.Scope `json:"scopes"`
	Token  string          `json:"token"`
}

// printIssued prints the key alone on stdout, so KEY=$(dunning keys
// create ...) captures it, and what it is on stderr; with -o json, one
// object with the key and what it is.
func (a *app) printIssued(format, what string, issued apikeys.Issued) error {
	k := issued.Key
	if format == formatJSON {
		return a.printJSON(issuedKey{ID: k.ID, Tenant: k.Tenant, Scopes: k.Scopes, Token: issued.Token})
	}
	fmt.Fprintf(a.stderr, "%s key %s for tenant %s (scopes %s); it is shown once, store it now:\n",
		what, k.ID, k.Tenant, joinScopes(k.Scopes))
	fmt.Fprintln(a.stdout, issued.Token)
	return nil
}

func (a *app) keysList(ctx context.Context, args []string) error {
	fs := a.newFlagSet("keys list", "-tenant T [-o table|json]")
	tenant := fs.String("tenant", "", "tenant whose keys are listed (required)")
	out := fs.addOutput()
	if err := parse(fs, args, "tenant"); err != nil {
		return err
	}
	return a.withKeyStore(ctx, func(s *apikeys.Store) error {
		keys, err := s.List(ctx, *tenant)
		if err != nil {
			return err
		}
		now := time.Now()
		if *out == formatJSON {
			enc := json.NewEncoder(a.stdout)
			for _, k := range keys {
				if err := enc.Encode(newListedKey(k, now)); err != nil {
					return fmt.Errorf("write output: %w", err)
				}
			}
			return nil
		}
		if len(keys) == 0 {
			fmt.Fprintf(a.stderr, "tenant %s has no keys; create one with dunning keys create\n", *tenant)
			return nil
		}
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPREFIX\tSCOPES\tSTATE\tNAME\tCREATED\tLAST USED\tNOTE")
		for _, k := range keys {
			note := ""
			switch {
			case !k.RevokedAt.IsZero():
				note = "revoked " + stamp(k.RevokedAt)
			case k.ReplacedBy != "":
				note = fmt.Sprintf("replaced by %s; ends %s", k.ReplacedBy, stamp(k.ExpiresAt))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Prefix, joinScopes(k.Scopes), k.State(now),
				orDash(k.Name), stamp(k.CreatedAt), orDash(stamp(k.LastUsedAt)), note)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
		return nil
	})
}

func (a *app) keysRotate(ctx context.Context, args []string) error {
	fs := a.newFlagSet("keys rotate", "-id ID [-grace 24h] [-o table|json]")
	id := fs.String("id", "", "ID of the key to replace, as keys list shows it (required)")
	grace := fs.Duration("grace", DefaultRotateGrace, "how long the old key keeps working; 0 ends it at once")
	out := fs.addOutput()
	if err := parse(fs, args, "id"); err != nil {
		return err
	}
	if *grace < 0 {
		return usagef("-grace %s is negative", *grace)
	}
	return a.withKeyStore(ctx, func(s *apikeys.Store) error {
		issued, err := s.Rotate(ctx, *id, *grace)
		if err != nil {
			return keyError(err)
		}
		return a.printIssued(*out, fmt.Sprintf("rotated %s: old key works until %s; new", *id, stamp(time.Now().Add(*grace))), issued)
	})
}

func (a *app) keysRevoke(ctx context.Context, args []string) error {
	fs := a.newFlagSet("keys revoke", "-id ID [-o table|json]")
	id := fs.String("id", "", "ID of the key to revoke, as keys list shows it (required)")
	out := fs.addOutput()
	if err := parse(fs, args, "id"); err != nil {
		return err
	}
	return a.withKeyStore(ctx, func(s *apikeys.Store) error {
		k, err := s.Revoke(ctx, *id)
		if err != nil {
			return err
		}
		if *out == formatJSON {
			return a.printJSON(newListedKey(k, time.Now()))
		}
		fmt.Fprintf(a.stdout, "revoked key %s of tenant %s\n", k.ID, k.Tenant)
		return nil
	})
}

// listedKey is a key as -o json lists it: never its secret.
type listedKey struct {
	ID         string          `json:"id"`
	Tenant     string          `json:"tenant"`
	Prefix     string          `json:"prefix"`
	Scopes     []apikeys.Scope `json:"scopes"`
	State      string          `json:"state"`
	Name       string          `json:"name,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	LastUsedAt time.Time       `json:"last_used_at,omitzero"`
	ExpiresAt  time.Time       `json:"expires_at,omitzero"`
	RevokedAt  time.Time       `json:"revoked_at,omitzero"`
	ReplacedBy string          `json:"replaced_by,omitempty"`
}

func newListedKey(k apikeys.Key, now time.Time) listedKey {
	return listedKey{ID: k.ID, Tenant: k.Tenant, Prefix: k.Prefix, Scopes: k.Scopes, State: string(k.State(now)), Name: k.Name,
		CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, ReplacedBy: k.ReplacedBy}
}

func joinScopes(ss []apikeys.Scope) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ",")
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

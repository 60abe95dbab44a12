package cli

import (
	"context"
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

const keysUsage = `Usage: dunning keys <create|list|rotate|revoke> [flags]

  create -tenant T -scopes runs:read,runs:write [-name N] [-test]
         issue a key; the key is printed once, on stdout
  list   -tenant T
         the tenant's keys with their scopes, state and last use
  rotate -id ID [-grace 24h]
         issue a replacement (printed once); the old key works for -grace
  revoke -id ID
         end a key at once

Scopes: runs:read (status, lists), runs:write (declines, reminders, cancel,
expedite, card-updated, paid, resume), admin (every tenant's runs).
Keys are kept hashed with DUNNING_KEY_PEPPER (or DUNNING_KEY_PEPPER_FILE) in
the ledger at DATABASE_URL: use the same values as dunning serve.
`

// keys manages the API keys of the private HTTP API. It needs the ledger
// and the pepper, not Temporal.
func (a *app) keys(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(a.stderr, keysUsage)
		return usagef("name a keys command: create, list, rotate or revoke")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(a.stdout, keysUsage)
		return errHelpShown
	case "create":
		return a.keysCreate(ctx, args[1:])
	case "list":
		return a.keysList(ctx, args[1:])
	case "rotate":
		return a.keysRotate(ctx, args[1:])
	case "revoke":
		return a.keysRevoke(ctx, args[1:])
	}
	return usagef("unknown keys command %q; use create, list, rotate or revoke", args[0])
}

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
	fs := a.newFlagSet("keys create", "-tenant T -scopes runs:read,runs:write [-name N] [-test]")
	tenant := fs.String("tenant", "", "tenant the key acts for (required)")
	scopesFlag := fs.String("scopes", "", "comma-separated scopes: runs:read, runs:write, admin (required)")
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
		a.printIssued("created", issued)
		return nil
	})
}

// printIssued prints the key alone on stdout, so KEY=$(dunning keys
// create ...) captures it, and what it is on stderr.
func (a *app) printIssued(what string, issued apikeys.Issued) {
	k := issued.Key
	fmt.Fprintf(a.stderr, "%s key %s for tenant %s (scopes %s); it is shown once, store it now:\n",
		what, k.ID, k.Tenant, joinScopes(k.Scopes))
	fmt.Fprintln(a.stdout, issued.Token)
}

func (a *app) keysList(ctx context.Context, args []string) error {
	fs := a.newFlagSet("keys list", "-tenant T")
	tenant := fs.String("tenant", "", "tenant whose keys are listed (required)")
	if err := parse(fs, args, "tenant"); err != nil {
		return err
	}
	return a.withKeyStore(ctx, func(s *apikeys.Store) error {
		keys, err := s.List(ctx, *tenant)
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			fmt.Fprintf(a.stderr, "tenant %s has no keys; create one with dunning keys create\n", *tenant)
			return nil
		}
		now := time.Now()
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
	fs := a.newFlagSet("keys rotate", "-id ID [-grace 24h]")
	id := fs.String("id", "", "ID of the key to replace, as keys list shows it (required)")
	grace := fs.Duration("grace", DefaultRotateGrace, "how long the old key keeps working; 0 ends it at once")
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
		a.printIssued(fmt.Sprintf("rotated %s: old key works until %s; new", *id, stamp(time.Now().Add(*grace))), issued)
		return nil
	})
}

func (a *app) keysRevoke(ctx context.Context, args []string) error {
	fs := a.newFlagSet("keys revoke", "-id ID")
	id := fs.String("id", "", "ID of the key to revoke, as keys list shows it (required)")
	if err := parse(fs, args, "id"); err != nil {
		return err
	}
	return a.withKeyStore(ctx, func(s *apikeys.Store) error {
		k, err := s.Revoke(ctx, *id)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "revoked key %s of tenant %s\n", k.ID, k.Tenant)
		return nil
	})
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

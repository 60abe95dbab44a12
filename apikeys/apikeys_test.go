package apikeys

import (
	"bytes"
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseToken(t *testing.T) {
	secret := strings.Repeat("Ab3", 14)[:40]
	tests := []struct {
		token      string
		wantPrefix string
		wantID     string
		wantErr    bool
	}{
		{"dk_live_abcd1234_" + secret, PrefixLive, "abcd1234", false},
		{"dk_test_abcd1234_" + secret, PrefixTest, "abcd1234", false},
		{"dk_live_abcd1234_" + secret[:32], PrefixLive, "abcd1234", false},
		{"dk_live_abcd1234_" + secret[:31], "", "", true},              // secret too short
		{"dk_prod_abcd1234_" + secret, "", "", true},                   // unknown prefix
		{"dk_live_ABCD1234_" + secret, "", "", true},                   // ID is lower case
		{"dk_live_abcd123_" + secret, "", "", true},                    // ID too short
		{"dk_live_abcd1234" + secret, "", "", true},                    // no separator
		{"dk_live_abcd1234_" + secret[:39] + "_", "", "", true},        // "_" in the secret
		{"dk_live_abcd1234_" + strings.Repeat("a", 300), "", "", true}, // over MaxTokenLen
		{"", "", "", true},
		{"Bearer dk_live_abcd1234_" + secret, "", "", true},
	}
	for _, tt := range tests {
		prefix, id, err := ParseToken(tt.token)
		if (err != nil) != tt.wantErr || prefix != tt.wantPrefix || id != tt.wantID {
			t.Errorf("ParseToken(%.30q...) = %q, %q, %v", tt.token, prefix, id, err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("error %v is not ErrMalformed", err)
		}
	}
}

func TestGeneratedTokensParse(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		id := newID()
		tok := newToken(PrefixLive, id)
		prefix, gotID, err := ParseToken(tok)
		if err != nil || prefix != PrefixLive || gotID != id {
			t.Fatalf("generated %q does not parse: %v", tok, err)
		}
		if len(tok) != len("dk_live_")+idLen+1+secretLen {
			t.Errorf("token length %d", len(tok))
		}
		if seen[tok] {
			t.Fatalf("token %q drawn twice", tok)
		}
		seen[tok] = true
	}
}

func TestParseScopes(t *testing.T) {
	tests := []struct {
		in      string
		want    []Scope
		wantErr bool
	}{
		{"runs:read", []Scope{ScopeRunsRead}, false},
		{"runs:write, runs:read", []Scope{ScopeRunsRead, ScopeRunsWrite}, false},
		{"admin,runs:read,admin", []Scope{ScopeRunsRead, ScopeAdmin}, false},
		{"", nil, true},
		{" , ", nil, true},
		{"runs:delete", nil, true},
		{"RUNS:READ", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseScopes(tt.in)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("ParseScopes(%q) = %v, %v", tt.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseScopes(%q): %v is not ErrInvalid", tt.in, err)
		}
	}
}

func TestPrincipal(t *testing.T) {
	reader := Principal{Tenant: "acme", Scopes: []Scope{ScopeRunsRead}}
	admin := Principal{Tenant: "ops", Scopes: []Scope{ScopeAdmin}}
	switch {
	case !reader.Has(ScopeRunsRead), reader.Has(ScopeRunsWrite), reader.Has(ScopeAdmin):
		t.Errorf("reader scopes wrong")
	case !reader.MayActFor("acme"), reader.MayActFor("globex"), reader.MayActFor(""):
		t.Errorf("reader tenants wrong")
	case !admin.Has(ScopeRunsRead), !admin.Has(ScopeRunsWrite), !admin.MayActFor("globex"):
		t.Errorf("admin is not a superset")
	}
}

func TestPepperFromEnv(t *testing.T) {
	good := strings.Repeat("p", MinPepperLen)
	file := filepath.Join(t.TempDir(), "pepper")
	if err := os.WriteFile(file, []byte(good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    string
		wantErr error
	}{
		{"unset", nil, "", ErrNoPepper},
		{"set", map[string]string{EnvPepper: good}, good, nil},
		{"from a file", map[string]string{EnvPepperFile: file}, good, nil},
		{"the variable wins", map[string]string{EnvPepper: good + "x", EnvPepperFile: file}, good + "x", nil},
		{"too short", map[string]string{EnvPepper: "short"}, "", errors.New("at least")},
		{"missing file", map[string]string{EnvPepperFile: file + ".nope"}, "", errors.New("no such file")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PepperFromEnv(func(k string) string { return tt.env[k] })
			switch {
			case tt.wantErr == nil && (err != nil || string(got) != tt.want):
				t.Errorf("= %q, %v", got, err)
			case tt.wantErr != nil && (err == nil || !(errors.Is(err, tt.wantErr) || strings.Contains(err.Error(), tt.wantErr.Error()))):
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// The stored hash is a keyed hash of the whole key: never the key or its
// secret, different under another pepper, and any changed byte fails.
func TestHash(t *testing.T) {
	h, err := newHasher([]byte(strings.Repeat("p", MinPepperLen)))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newHasher([]byte(strings.Repeat("q", MinPepperLen)))
	tok := newToken(PrefixLive, newID())
	secret := tok[strings.LastIndex(tok, "_")+1:]
	sum := h.sum(tok)
	if len(sum) != sha256Size || bytes.Contains(sum, []byte(secret)) || bytes.Equal(sum, []byte(tok)) || string(sum) == secret {
		t.Fatalf("hash %x holds the key", sum)
	}
	if bytes.Equal(sum, other.sum(tok)) {
		t.Error("the pepper does not change the hash")
	}
	if !h.verify(tok, sum) {
		t.Error("the key does not verify against its own hash")
	}
	for _, i := range []int{0, len(sum) / 2, len(sum) - 1} {
		bad := bytes.Clone(sum)
		bad[i] ^= 1
		if h.verify(tok, bad) {
			t.Errorf("a hash with byte %d changed verifies", i)
		}
	}
	if h.verify(tok, sum[:16]) || h.verify(tok, nil) {
		t.Error("a truncated hash verifies")
	}
	if _, err := newHasher([]byte("short")); err == nil {
		t.Error("a short pepper was taken")
	}
}

// Secrets are compared in constant time: the package compares hashes and
// keys with hmac.Equal and subtle.ConstantTimeCompare, never with
// bytes.Equal and the like, whose time depends on the first difference.
func TestComparisonsAreConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var constantTime int
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok {
				switch x.Name + "." + sel.Sel.Name {
				case "hmac.Equal", "subtle.ConstantTimeCompare":
					constantTime++
				case "bytes.Equal", "bytes.Compare", "strings.Compare", "strings.EqualFold":
					t.Errorf("%s: %s.%s compares in variable time", fset.Position(sel.Pos()), x.Name, sel.Sel.Name)
				}
			}
			return true
		})
	}
	if constantTime < 2 {
		t.Errorf("found %d constant-time comparisons, want the store's and Static's", constantTime)
	}
}

func TestStatic(t *testing.T) {
	key := StaticKey("acme0001", "seed")
	s := Static{key: {Tenant: "acme", Scopes: []Scope{ScopeRunsRead}}}
	p, err := s.Authenticate(context.Background(), key)
	if err != nil || p.Tenant != "acme" || p.KeyID != "acme0001" {
		t.Errorf("= %+v, %v", p, err)
	}
	if _, err := s.Authenticate(context.Background(), StaticKey("acme0001", "other")); !errors.Is(err, ErrUnknown) {
		t.Errorf("another secret: %v", err)
	}
	if _, err := s.Authenticate(context.Background(), "nope"); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed: %v", err)
	}
}

package starter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPoliciesFromEnv(t *testing.T) {
	env := func(dir string) func(string) string {
		return func(k string) string {
			if k == EnvPolicyDir {
				return dir
			}
			return ""
		}
	}
	c, err := PoliciesFromEnv(env(""))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Lookup("default"); !ok {
		t.Fatal("built-in default policy missing")
	}

	dir := t.TempDir()
	gentle, err := os.ReadFile(filepath.Join("..", "policy", "policies", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	renamed := strings.Replace(string(gentle), "name: default", "name: gentle", 1)
	if renamed == string(gentle) {
		t.Fatal("default.yaml has no 'name: default' line to rename")
	}
	if err := os.WriteFile(filepath.Join(dir, "gentle.yaml"), []byte(renamed), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = PoliciesFromEnv(env(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Lookup("gentle"); !ok {
		t.Fatal("policy from the directory missing")
	}

	if err := os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("name: broken\nretry_after: [soon]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := PoliciesFromEnv(env(dir)); err == nil || !strings.Contains(err.Error(), "broken.yaml") {
		t.Fatalf("error = %v, want one naming broken.yaml", err)
	}
}

package codec

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func keySpec(keys ...Key) string {
	var parts []string
	for _, k := range keys {
		parts = append(parts, k.ID+":"+base64.StdEncoding.EncodeToString(k.Secret))
	}
	return strings.Join(parts, ",")
}

func TestFromEnv(t *testing.T) {
	k1, k2 := mustKey(t, "k1"), mustKey(t, "k2")
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("# newest first\nk2:"+base64.StdEncoding.EncodeToString(k2.Secret)+"\nk1:"+base64.StdEncoding.EncodeToString(k1.Secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      map[string]string
		wantIDs  []string
		wantNil  bool
		wantErr  string
		wantNone bool
	}{
		{name: "keys", env: map[string]string{EnvKeys: keySpec(k2, k1)}, wantIDs: []string{"k2", "k1"}},
		{name: "keys file", env: map[string]string{EnvKeysFile: file}, wantIDs: []string{"k2", "k1"}},
		{name: "explicitly disabled", env: map[string]string{EnvDisabled: "true"}, wantNil: true},
		{name: "disabled=false still needs keys", env: map[string]string{EnvDisabled: "false"}, wantNone: true},
		{name: "nothing", wantNone: true},
		{name: "both sources", env: map[string]string{EnvKeys: keySpec(k1), EnvKeysFile: file}, wantErr: "keep one"},
		{name: "disabled with keys", env: map[string]string{EnvKeys: keySpec(k1), EnvDisabled: "true"}, wantErr: "remove one"},
		{name: "disabled not a bool", env: map[string]string{EnvDisabled: "yes please"}, wantErr: "want true or false"},
		{name: "bad keys", env: map[string]string{EnvKeys: "k1:AAAA"}, wantErr: EnvKeys + ": codec: key \"k1\" is 3 bytes"},
		{name: "missing file", env: map[string]string{EnvKeysFile: filepath.Join(t.TempDir(), "nope")}, wantErr: EnvKeysFile + ": read keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromEnv(envOf(tt.env))
			switch {
			case tt.wantNone:
				if !errors.Is(err, ErrNoKeys) {
					t.Fatalf("err = %v, want ErrNoKeys", err)
				}
				// The refusal tells the operator both ways out.
				for _, v := range []string{EnvKeys, EnvKeysFile, EnvDisabled + "=true"} {
					if !strings.Contains(err.Error(), v) {
						t.Errorf("%q does not mention %s", err, v)
					}
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case tt.wantNil:
				if c != nil {
					t.Errorf("codec %v, want none", c)
				}
			case !slices.Equal(c.KeyIDs(), tt.wantIDs):
				t.Errorf("IDs %v, want %v", c.KeyIDs(), tt.wantIDs)
			}
		})
	}
}

func TestDevFromEnvKeepsOneKeyPerDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".dev")
	c1, source, err := DevFromEnv(envOf(nil), dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, DevKeysFile)
	if source != path || !strings.HasPrefix(c1.KeyID(), "dev-") {
		t.Errorf("source %q key %q", source, c1.KeyID())
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", info.Mode().Perm())
	}

	// A restart reads the same key: yesterday's history still decodes.
	sealed := encodeOne(t, c1, plainPayload(t, ada))
	c2, _, err := DevFromEnv(envOf(nil), dir)
	if err != nil {
		t.Fatal(err)
	}
	if c2.KeyID() != c1.KeyID() {
		t.Errorf("restart got key %s, want %s", c2.KeyID(), c1.KeyID())
	}
	if _, err := decodeOne(c2, sealed); err != nil {
		t.Errorf("after restart: %v", err)
	}

	// Another data directory has its own key.
	c3, _, err := DevFromEnv(envOf(nil), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeOne(c3, sealed); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("other data dir: err = %v, want ErrUnknownKey", err)
	}
}

func TestDevFromEnvWithoutDataDir(t *testing.T) {
	a, source, err := DevFromEnv(envOf(nil), "")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := DevFromEnv(envOf(nil), "")
	if err != nil {
		t.Fatal(err)
	}
	if a.KeyID() == b.KeyID() || !strings.Contains(source, "process") {
		t.Errorf("keys %s and %s, source %q: want one key per process", a.KeyID(), b.KeyID(), source)
	}
}

func TestDevFromEnvPrefersTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	k := mustKey(t, "shared")
	c, source, err := DevFromEnv(envOf(map[string]string{EnvKeys: keySpec(k)}), dir)
	if err != nil || c.KeyID() != "shared" || source != EnvKeys {
		t.Fatalf("codec %v source %q err %v", c, source, err)
	}
	c, source, err = DevFromEnv(envOf(map[string]string{EnvDisabled: "true"}), dir)
	if err != nil || c != nil || !strings.Contains(source, "plain text") {
		t.Fatalf("disabled: codec %v source %q err %v", c, source, err)
	}
	if _, err := os.Stat(filepath.Join(dir, DevKeysFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key file was written although the environment configures the codec: %v", err)
	}
	if _, _, err := DevFromEnv(envOf(map[string]string{EnvKeys: "broken"}), dir); err == nil {
		t.Error("broken DUNNING_CODEC_KEYS accepted in dev mode")
	}
}

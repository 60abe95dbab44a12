package codec

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Environment variables that configure payload encryption and the codec
// endpoint.
const (
	// EnvKeys lists the keys, newest first: "k2:<base64>,k1:<base64>".
	EnvKeys = "DUNNING_CODEC_KEYS"
	// EnvKeysFile names a file holding the same list (one key a line is
	// fine), for secrets mounted as files.
	EnvKeysFile = "DUNNING_CODEC_KEYS_FILE"
	// EnvDisabled=true runs without encryption. Without keys and without it,
	// production binaries refuse to start.
	EnvDisabled = "DUNNING_CODEC_DISABLED"
	// EnvToken is the bearer token the codec endpoint requires.
	EnvToken = "DUNNING_CODEC_TOKEN"
	// EnvOrigins lists the Web UI origins allowed to call the codec endpoint
	// from a browser, e.g. "https://temporal.example.com".
	EnvOrigins = "DUNNING_CODEC_ORIGINS"
)

// DevKeysFile is the file dev mode keeps its generated key in, inside its
// data directory.
const DevKeysFile = "codec-keys"

// ErrNoKeys is returned when neither keys nor an explicit opt-out are
// configured: customer data must not reach Temporal in plain text by
// accident.
var ErrNoKeys = errors.New("no payload encryption keys: set " + EnvKeys + " or " + EnvKeysFile +
	", or " + EnvDisabled + "=true to keep customer data in Temporal in plain text (see README, \"Payload encryption\")")

// FromEnv returns the codec DUNNING_CODEC_KEYS or DUNNING_CODEC_KEYS_FILE
// configures, nil (and no error) when DUNNING_CODEC_DISABLED=true, and
// ErrNoKeys when there is neither.
func FromEnv(getenv func(string) string) (*Codec, error) {
	c, _, err := fromEnv(getenv)
	return c, err
}

// fromEnv also says where the keys came from, for dev mode's banner.
func fromEnv(getenv func(string) string) (*Codec, string, error) {
	disabled := false
	if v := strings.TrimSpace(getenv(EnvDisabled)); v != "" {
		var err error
		if disabled, err = strconv.ParseBool(v); err != nil {
			return nil, "", fmt.Errorf("%s=%q: want true or false", EnvDisabled, v)
		}
	}
	keys, file := strings.TrimSpace(getenv(EnvKeys)), strings.TrimSpace(getenv(EnvKeysFile))
	switch {
	case keys != "" && file != "":
		return nil, "", fmt.Errorf("both %s and %s are set: keep one", EnvKeys, EnvKeysFile)
	case disabled && (keys != "" || file != ""):
		// Refused rather than guessed: either way one setting is a mistake.
		return nil, "", fmt.Errorf("%s=true and keys are set: remove one", EnvDisabled)
	case disabled:
		return nil, "", nil
	case keys != "":
		c, err := Parse(keys)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", EnvKeys, err)
		}
		return c, EnvKeys, nil
	case file != "":
		c, err := parseFile(file)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", EnvKeysFile, err)
		}
		return c, file, nil
	}
	return nil, "", ErrNoKeys
}

func parseFile(path string) (*Codec, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keys: %w", err)
	}
	c, err := Parse(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// DevFromEnv is dev mode's codec: the environment's keys when configured
// (nil when DUNNING_CODEC_DISABLED=true), else a key generated once per data
// directory and kept there in DevKeysFile, so the dev server's SQLite
// history stays readable across restarts. With no data directory (history
// in memory) the key lives as long as the process. source says where the
// keys came from; it holds no secret.
func DevFromEnv(getenv func(string) string, dataDir string) (c *Codec, source string, err error) {
	c, source, err = fromEnv(getenv)
	if !errors.Is(err, ErrNoKeys) {
		if c == nil && err == nil {
			source = EnvDisabled + "=true: payloads are stored in plain text"
		}
		return c, source, err
	}
	if dataDir == "" {
		k, err := GenerateKey(devKeyID())
		if err != nil {
			return nil, "", err
		}
		c, err := New(k)
		return c, "a key for this process only", err
	}
	path := filepath.Join(dataDir, DevKeysFile)
	if err := writeDevKey(dataDir, path); err != nil {
		return nil, "", err
	}
	c, err = parseFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("dev mode keys (delete the file together with the dev data to start afresh): %w", err)
	}
	return c, path, nil
}

// writeDevKey creates the dev key file unless it exists.
func writeDevKey(dir, path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	k, err := GenerateKey(devKeyID())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dev mode keys: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil // another process made it first; use theirs
	}
	if err != nil {
		return fmt.Errorf("dev mode keys: %w", err)
	}
	_, err = fmt.Fprintf(f, "# Dev mode's payload encryption key (%s format). It opens the\n"+
		"# histories in the dev server's database next to it: delete both or neither.\n%s:%s\n",
		EnvKeys, k.ID, base64.StdEncoding.EncodeToString(k.Secret))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("dev mode keys: write %s: %w", path, err)
	}
	return nil
}

// devKeyID is random so a history sealed in another dev data directory
// fails with "unknown key" rather than a puzzling decryption error.
func devKeyID() string { return "dev-" + strings.ToLower(rand.Text()[:8]) }

package starter

import (
	"fmt"

	"github.com/dunningco/dunning/policy"
)

// EnvPolicyDir names a directory of policy files (and an optional
// selection.yaml) that add to or replace the built-in policies.
const EnvPolicyDir = "DUNNING_POLICY_DIR"

// PoliciesFromEnv is the built-in catalog, with the files in
// $DUNNING_POLICY_DIR over it when set. A file that fails validation stops
// start-up with an error naming the file and field.
func PoliciesFromEnv(getenv func(string) string) (*policy.Catalog, error) {
	dir := getenv(EnvPolicyDir)
	if dir == "" {
		return policy.Builtin(), nil
	}
	c, err := policy.Builtin().WithDir(dir)
	if err != nil {
		return nil, fmt.Errorf("policies in %s=%s: %w", EnvPolicyDir, dir, err)
	}
	return c, nil
}

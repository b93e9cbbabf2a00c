package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accordmesh/accord/internal/cli"
)

// TestPolicyTestStage checks that `policy test` refuses a misspelt stage and
// a spec input for a stage whose variables a spec does not give, as usage
// errors naming what is valid, and still evaluates what fits.
func TestPolicyTestStage(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "p.yaml")
	os.WriteFile(policy, []byte(`policy: guard
version: 1
rules:
  - name: small
    on: admission
    expr: plan.max_cost <= 100000
  - name: eu
    on: placement
    expr: provider.region.startsWith("eu-")
`), 0o644)
	bid := filepath.Join(dir, "bid.json")
	os.WriteFile(bid, []byte(`{"spec": {}, "provider": {"region": "us-east"}}`), 0o644)
	stray := filepath.Join(dir, "stray.json")
	os.WriteFile(stray, []byte(`{"spec": {}, "provder": {"region": "eu-west"}}`), 0o644)
	spec := "../../examples/quickstart.md"

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--stage", "admision", "--input", spec}, cli.ExitUsage, `unknown stage "admision" (want one of: admission, placement, audit)`},
		{[]string{"--stage", "placement", "--input", spec}, cli.ExitUsage, "is a spec, which gives the admission variables; --stage placement wants a JSON object of provider, spec"},
		{[]string{"--stage", "placement", "--input", stray}, cli.ExitUsage, `variable "provder" is not one of the placement stage's: provider, spec`},
		{[]string{"--stage", "placement", "--input", bid}, cli.ExitPolicy, "guard/eu"},
		{[]string{"--input", spec}, 0, "guard/small (admission v1): allow"},
	} {
		r := run(t, "", append([]string{"policy", "test", policy}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stdout+r.stderr, c.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", c.args, r.code, r.stdout, r.stderr, c.code, c.want)
		}
	}
}

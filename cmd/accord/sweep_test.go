package main

import (
	"strings"
	"testing"

	"github.com/accordmesh/accord/internal/cli"
)

// Bad sweep settings are usage errors, found before anything is opened;
// without a Temporal cluster the sweep says how to get one.
func TestLedgerSweepFlags(t *testing.T) {
	for _, args := range [][]string{
		{"ledger", "sweep", "--after", "1s"},
		{"worker", "--sweep-every", "-1h"},
		{"worker", "--sweep-after", "0s"},
	} {
		if r := run(t, "", args...); r.code != cli.ExitUsage {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", args, r.code, r.stderr)
		}
	}
	r := run(t, "", "--json", "ledger", "sweep", "--dry-run")
	if o := r.errorObject(t); r.code != cli.ExitError || !strings.Contains(o.Error.Message, "accord dev") {
		t.Errorf("sweep without Temporal: exit %d, %+v", r.code, o)
	}
}

package main

import (
	"strings"
	"testing"

	"github.com/accordmesh/accord/internal/cli"
)

// TestCounterFlags: a move is exactly one of --price and --accept, refused
// as a usage error before any connection.
func TestCounterFlags(t *testing.T) {
	for _, args := range [][]string{
		{"counter", "job-1"},
		{"counter", "job-1", "--price", "1.00", "--accept", "cheap"},
		{"counter", "--price", "1.00"},
	} {
		r := run(t, "", append(args, "--json")...)
		if r.code != cli.ExitUsage {
			t.Errorf("%v: exit %d, want %d (usage); stdout %s stderr %s", args, r.code, cli.ExitUsage, r.stdout, r.stderr)
		}
	}
	// A well-formed move gets as far as dialling Temporal (nothing listens).
	r := run(t, "", "counter", "job-1", "--accept", "cheap", "--as", "tester", "--json")
	if r.code == 0 || r.code == cli.ExitUsage || !strings.Contains(r.stdout+r.stderr, "127.0.0.1:1") {
		t.Errorf("counter without a server: exit %d, stdout %s stderr %s", r.code, r.stdout, r.stderr)
	}
}

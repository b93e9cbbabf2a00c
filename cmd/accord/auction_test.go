package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
)

func init() { cli.AddGlobalFlags(root) }

// accord runs the CLI in-process and returns its stdout.
func accord(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs(args)
	// Flags keep their values between in-process runs; reset the ones
	// these tests set.
	t.Cleanup(func() {
		for _, f := range []string{"vcg", "threads", "time-limit"} {
			if fl := solveCmd().Flags().Lookup(f); fl != nil {
				fl.Value.Set(fl.DefValue)
			}
		}
		root.PersistentFlags().Lookup("json").Value.Set("false")
	})
	err := root.Execute()
	return out.String(), err
}

func solveCmd() *cobra.Command {
	c, _, _ := root.Find([]string{"auction", "solve"})
	return c
}

// TestAuctionSolveJSON checks the contract of `accord auction solve --json`
// on a small instance with a known answer: bids 0 and 2 win 12 (bid 1 wants
// both goods for 10), bidder a's Clarke payment is 10 - 5 = 5 and b's is
// 10 - 7 = 3.
func TestAuctionSolveJSON(t *testing.T) {
	file := filepath.Join(t.TempDir(), "in.json")
	inst := `{"goods": 2, "bids": [
		{"bidder": "a", "goods": [0], "price": 7},
		{"bidder": "c", "goods": [0, 1], "price": 10},
		{"bidder": "b", "goods": [1], "price": 5}]}`
	if err := os.WriteFile(file, []byte(inst), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, threads := range []string{"1", "2", "0"} {
		out, err := accord(t, "auction", "solve", file, "--json", "--vcg", "--threads", threads)
		if err != nil {
			t.Fatalf("threads %s: %v", threads, err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var got struct {
			Objective float64            `json:"objective"`
			Winners   []int              `json:"winners"`
			Payments  map[string]float64 `json:"payments"`
			Optimal   bool               `json:"optimal"`
			Gap       *float64           `json:"gap"`
			Nodes     *int               `json:"nodes"`
			Seconds   *float64           `json:"seconds"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
			t.Fatalf("threads %s: last line %q: %v", threads, lines[len(lines)-1], err)
		}
		if got.Objective != 12 || len(got.Winners) != 2 || got.Winners[0] != 0 || got.Winners[1] != 2 ||
			!got.Optimal || got.Gap == nil || *got.Gap != 0 || got.Nodes == nil || got.Seconds == nil ||
			len(got.Payments) != 2 || got.Payments["a"] != 5 || got.Payments["b"] != 3 {
			t.Fatalf("threads %s: %s", threads, lines[len(lines)-1])
		}
	}
	if _, err := accord(t, "auction", "solve", file, "--threads", "-1"); err == nil || cli.ExitCode(err) != cli.ExitUsage {
		t.Fatalf("--threads -1: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"goods": 1, "bids": [{"bidder": "a", "goods": [3], "price": 1}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := accord(t, "auction", "solve", bad); err == nil || cli.ExitCode(err) != cli.ExitUsage || !strings.Contains(err.Error(), bad) {
		t.Fatalf("out-of-range good: %v", err)
	}
}

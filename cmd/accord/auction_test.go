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
	if _, err := accord(t, "auction", "solve", bad, "--threads", "1"); err == nil || cli.ExitCode(err) != cli.ExitUsage || !strings.Contains(err.Error(), bad) {
		t.Fatalf("out-of-range good: %v", err)
	}
}

// TestAuctionSolveOddInput runs the binary on inputs a newcomer may feed it:
// an empty object, malformed JSON, an empty file, standard input.
func TestAuctionSolveOddInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		file, want string
	}{
		{write("empty-object.json", "{}"), "no goods or no bids"},
		{write("no-bids.json", `{"goods": 3, "bids": []}`), "no goods or no bids"},
		{write("malformed.json", "{\"goods\": 2,\n  \"bids\": [}\n"), "malformed.json: wdp: invalid instance: 2:12: invalid character '}'"},
		{write("empty.json", ""), "empty input"},
	} {
		r := run(t, "", "auction", "solve", c.file)
		if r.code != cli.ExitUsage || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "EOF") {
			t.Errorf("%s: exit %d, stderr %q; want usage error containing %q", filepath.Base(c.file), r.code, r.stderr, c.want)
		}
	}
	inst := `{"goods": 2, "bids": [
		{"bidder": "alice", "goods": [0], "price": 7},
		{"bidder": "carol", "goods": [0, 1], "price": 10},
		{"bidder": "bob", "goods": [1], "price": 5}]}`
	r := run(t, inst, "auction", "solve", "-", "--vcg")
	if r.code != 0 || !strings.Contains(r.stdout, "objective 12") {
		t.Fatalf("solve -: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"alice            bid 0     goods [0] for 7", "bob              bid 2     goods [1] for 5", "alice pays 5", "bob pays 3"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("solve -: stdout lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := run(t, "", "auction", "solve", "-"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "standard input: wdp: invalid instance: empty input") {
		t.Errorf("solve - with nothing: exit %d, stderr %q", r.code, r.stderr)
	}
}

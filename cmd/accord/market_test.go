package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/market"
)

// resetClearFlags restores `market clear`'s flags after an in-process run.
func resetClearFlags(t *testing.T) {
	t.Cleanup(func() {
		c, _, _ := root.Find([]string{"market", "clear"})
		for _, f := range []string{"jobs", "providers", "time-limit"} {
			fl := c.Flags().Lookup(f)
			fl.Value.Set(fl.DefValue)
		}
	})
}

// TestMarketClear clears a synthetic batch of 30 jobs and 5 providers
// through the CLI and checks that --json reports what market.ClearBatch
// computes on the same files, and the text form its summary.
func TestMarketClear(t *testing.T) {
	resetClearFlags(t)
	jobsDir, provFile, err := market.WriteSynthetic(t.TempDir(), 3, 30, 5)
	if err != nil {
		t.Fatal(err)
	}
	plans, names, err := market.LoadJobs(jobsDir)
	if err != nil {
		t.Fatal(err)
	}
	provs, err := market.LoadProviders(provFile)
	if err != nil {
		t.Fatal(err)
	}
	want, err := market.ClearBatch(context.Background(), plans, names, provs, market.Options{TimeLimit: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	out, err := accord(t, "market", "clear", "--jobs", jobsDir, "--providers", provFile, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got market.Batch
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Objective != want.Objective || got.Bound != want.Bound || len(got.Result.Awards) != len(want.Result.Awards) ||
		!got.Result.Optimal || got.Goods != 35 || got.Timings.WDPSeconds <= 0 {
		t.Fatalf("got objective %v bound %v awards %d optimal %v goods %d, want %v %v %d",
			got.Objective, got.Bound, len(got.Result.Awards), got.Result.Optimal, got.Goods, want.Objective, want.Bound, len(want.Result.Awards))
	}
	for i, a := range got.Result.Awards {
		if w := want.Result.Awards[i]; a.Job != w.Job || a.Provider != w.Provider || a.Price != w.Price {
			t.Errorf("award %d: %+v, want %+v", i, a, w)
		}
	}
	root.PersistentFlags().Lookup("json").Value.Set("false")
	text, err := accord(t, "market", "clear", "--jobs", jobsDir, "--providers", provFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"30 jobs, 5 providers:", "optimal true", "timings: bids", want.Result.Awards[0].Explanation} {
		if !strings.Contains(text, s) {
			t.Errorf("text output lacks %q:\n%s", s, text)
		}
	}
}

// TestMarketClearUsage checks that missing flags and a jobs directory
// without specs are usage errors.
func TestMarketClearUsage(t *testing.T) {
	resetClearFlags(t)
	for _, args := range [][]string{
		{"market", "clear", "--jobs", t.TempDir()},
		{"market", "clear", "--jobs", t.TempDir(), "--providers", "p.yaml"},
	} {
		_, err := accord(t, args...)
		if err == nil || cli.ExitCode(err) != cli.ExitUsage {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

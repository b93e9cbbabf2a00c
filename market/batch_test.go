package market

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// synthetic writes and loads the synthetic batch of jobs × providers.
func synthetic(t *testing.T, jobs, providers int) ([]Provider, string) {
	t.Helper()
	jobsDir, provFile, err := WriteSynthetic(t.TempDir(), 1, jobs, providers)
	if err != nil {
		t.Fatal(err)
	}
	provs, err := LoadProviders(provFile)
	if err != nil {
		t.Fatal(err)
	}
	return provs, jobsDir
}

// TestClearBatchSynthetic clears 60 synthetic jobs against 8 providers and
// checks the allocation's invariants: each provider's capacity goes to at
// most one winning bid, each job is placed at most once, prices lie
// between the asks and the reserves, the objective is the winning bids'
// surplus and the instance it was solved on is the one reported.
func TestClearBatchSynthetic(t *testing.T) {
	provs, jobsDir := synthetic(t, 60, 8)
	plans, names, err := LoadJobs(jobsDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != 60 || names[0] != "job-0000" {
		t.Fatalf("loaded %d jobs, first %q", len(plans), names[0])
	}
	b, err := ClearBatch(context.Background(), plans, names, provs, Options{TimeLimit: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	res := b.Result
	if !res.Optimal || !b.Proven || !b.PricesExact || b.Bound != b.Objective || res.Gap != 0 {
		t.Fatalf("not proven: objective %v bound %v gap %v", b.Objective, b.Bound, res.Gap)
	}
	if b.Goods != 68 || b.Bids != len(res.Bids) || b.Instance == nil || len(b.Instance.Bids) != b.Bids {
		t.Fatalf("instance: goods %d bids %d/%d", b.Goods, b.Bids, len(res.Bids))
	}
	provUsed, jobUsed := map[string]bool{}, map[string]bool{}
	var surplus int64
	for _, w := range res.Winners {
		bid := res.Bids[w]
		surplus += bid.Surplus
		for _, p := range bid.Providers {
			if provUsed[p] {
				t.Errorf("provider %s wins twice", p)
			}
			provUsed[p] = true
		}
		for _, j := range bid.Jobs {
			if jobUsed[j] {
				t.Errorf("job %s placed twice", j)
			}
			jobUsed[j] = true
		}
	}
	if float64(surplus) != b.Objective || surplus != res.Welfare {
		t.Errorf("objective %v, welfare %d, winning surplus %d", b.Objective, res.Welfare, surplus)
	}
	if len(jobUsed) < 8 {
		t.Errorf("only %d jobs placed on 8 providers", len(jobUsed))
	}
	for _, a := range res.Awards {
		if !jobUsed[a.Job] || a.Price < a.Ask || (a.Reserve > 0 && a.Price > a.Reserve) {
			t.Errorf("award %+v", a)
		}
	}
	tm := b.Timings
	if tm.WDP <= 0 || tm.Bids <= 0 || tm.TotalSeconds < tm.WDPSeconds {
		t.Errorf("timings %+v", tm)
	}
	again, err := ClearBatch(context.Background(), plans, names, provs, Options{TimeLimit: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.Result.Winners, res.Winners) || again.Objective != b.Objective {
		t.Errorf("not deterministic: %v then %v", res.Winners, again.Result.Winners)
	}
}

// TestSpreadBids checks that a provider with more offers than its bid cap
// can enumerate bids on many different jobs, not only bundles of its best
// few: with a cap of 8, half go to the 4 best jobs alone and the rest to
// disjoint bundles further down the list.
func TestSpreadBids(t *testing.T) {
	provs, jobsDir := synthetic(t, 40, 1)
	plans, names, err := LoadJobs(jobsDir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ClearBatch(context.Background(), plans, names, provs, Options{MaxBidsPerProvider: 8})
	if err != nil && !errors.Is(err, ErrNoAgreement) {
		t.Fatal(err)
	}
	bidsOf := 0
	jobs := map[string]int{}
	for _, bid := range b.Result.Bids {
		if bid.Bidder != provs[0].(*Static).P.Name {
			continue
		}
		bidsOf++
		for _, j := range bid.Jobs {
			jobs[j]++
		}
	}
	if bidsOf == 0 || bidsOf > 8 {
		t.Fatalf("%d bids for a cap of 8", bidsOf)
	}
	if len(jobs) <= 4 && bidsOf > 4 {
		t.Errorf("bids cover only %d jobs: %v", len(jobs), jobs)
	}
	if n := subsets(40, 3); n != 40+780+9880 {
		t.Errorf("subsets(40, 3) = %d", n)
	}
}

// TestLoadJobs checks what a jobs directory may hold: specs are the *.md
// regular files directly in it; a bad spec fails the batch naming its
// file; an empty directory is invalid.
func TestLoadJobs(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := LoadJobs(dir); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty dir: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.md"), []byte(SyntheticJob(1, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a.md"), []byte(SyntheticJob(1, 0)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a spec"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "base.md"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "a.md"), filepath.Join(dir, "link.md")); err != nil {
		t.Fatal(err)
	}
	plans, names, err := LoadJobs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"a", "b"}) || len(plans) != 2 || plans[0].Name != "synthetic-0" {
		t.Fatalf("names %v", names)
	}
	if err := os.WriteFile(filepath.Join(dir, "c.md"), []byte("---\naccord: v1\n---\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadJobs(dir); err == nil || !strings.HasPrefix(err.Error(), "market: job c.md: ") {
		t.Fatalf("bad spec: %v", err)
	}
}

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/accordmesh/accord/market"
)

// benchClear clears the synthetic batch of jobs × providers drawn with seed
// (market.WriteSynthetic, loaded as `accord market clear` loads it), then
// solves the same winner-determination instance, exported as LP, with each
// peer, and prints times, objectives and gaps. It is
// `make bench-market-clear`.
func benchClear(jobs, providers int, seed uint64, limit time.Duration, dir string, peers []peer) error {
	jobsDir, provFile, err := market.WriteSynthetic(dir, seed, jobs, providers)
	if err != nil {
		return err
	}
	start := time.Now()
	plans, names, err := market.LoadJobs(jobsDir)
	if err != nil {
		return err
	}
	provs, err := market.LoadProviders(provFile)
	if err != nil {
		return err
	}
	load := time.Since(start)
	b, err := market.ClearBatch(context.Background(), plans, names, provs, market.Options{TimeLimit: limit})
	if err != nil {
		return fmt.Errorf("clear: %w", err)
	}
	res := b.Result
	placed := map[string]bool{}
	for _, a := range res.Awards {
		placed[a.Job] = true
	}
	fmt.Printf("batch %d jobs × %d providers (seed %d, specs in %s): loaded and compiled in %.3fs\n", jobs, providers, seed, jobsDir, load.Seconds())
	fmt.Printf("  %d offers, %d bids over %d goods; %d winning bids place %d jobs\n", len(res.Offers), b.Bids, b.Goods, len(res.Winners), len(placed))
	fmt.Printf("  bids %.3fs, winner determination %.3fs, VCG prices %.3fs (%.2fx WDP, exact %v), total %.3fs\n",
		b.Timings.BidsSeconds, b.Timings.WDPSeconds, b.Timings.PricesSeconds, b.Timings.PricesSeconds/b.Timings.WDPSeconds, b.PricesExact, b.Timings.TotalSeconds)
	lp := filepath.Join(dir, "clear.lp")
	if err := writeLP(lp, b.Instance); err != nil {
		return err
	}
	if fi, err := os.Stat(lp); err == nil {
		fmt.Printf("  instance exported as %s (%d bytes) for the peers\n", lp, fi.Size())
	}
	sol := result{"accord", b.Objective, b.Bound, b.Timings.WDPSeconds, b.Proven}
	rs := []result{sol}
	for _, p := range peers {
		rs = append(rs, atLeastLimit(p.run(lp), limit))
	}
	fmt.Printf("\n%-8s %14s %14s %12s %10s %8s\n", "solver", "objective", "bound", "gap", "seconds", "proven")
	for _, r := range rs {
		fmt.Printf("%-8s %14.1f %14.1f %12.1f %10.3f %8v\n", r.solver, r.obj, r.bound, r.bound-r.obj, r.sec, r.proven)
	}
	for _, r := range rs[1:] {
		fmt.Printf("accord/%s time ratio %.3f\n", r.solver, sol.sec/r.sec)
	}
	mark, ok, _ := compare(rs...)
	fmt.Printf("agree: %s\n", mark)
	if !ok {
		return fmt.Errorf("contradictory results (a solution above a proven bound)")
	}
	if !equalObjectives(rs) {
		return fmt.Errorf("proven optima differ")
	}
	return nil
}

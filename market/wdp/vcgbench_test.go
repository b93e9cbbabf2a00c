package wdp

import (
	"context"
	"os"
	"strconv"
	"testing"
)

// BenchmarkVCGCATS200x1000 times winner determination and VCG on the
// benchmark distribution at 200×1000 (seed WDP_SEED, default 2; threads
// WDP_THREADS, default 1), reporting VCG time over WDP time.
func BenchmarkVCGCATS200x1000(b *testing.B) {
	seed, threads := envInt("WDP_SEED", 2), envInt("WDP_THREADS", 1)
	in, err := GenerateCATS(uint64(seed), 200, 1000, BenchmarkCATS())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		opts := Options{Threads: threads}
		sol, err := Solve(context.Background(), in, opts)
		if err != nil {
			b.Fatal(err)
		}
		p, err := VCG(context.Background(), in, sol, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(sol.Seconds, "wdp_s")
		b.ReportMetric(p.Seconds, "vcg_s")
		b.ReportMetric(p.Seconds/sol.Seconds, "vcg/wdp")
		b.ReportMetric(float64(sol.Nodes), "wdp_nodes")
		b.ReportMetric(float64(p.Nodes), "vcg_nodes")
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

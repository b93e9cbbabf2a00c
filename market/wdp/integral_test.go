package wdp

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// integerInstance draws bids with whole prices, many of them tied, so that
// LP bounds often lie a fraction above the optimum: the case where pruning
// by whole units closes nodes that PruneTol would keep open.
func integerInstance(r *rand.Rand, goods, bids int) *Instance {
	in := randomInstance(r, goods, bids)
	for j := range in.Bids {
		in.Bids[j].Price = float64(1 + r.IntN(6))
	}
	return in
}

func TestIntegral(t *testing.T) {
	for _, c := range []struct {
		price []float64
		want  bool
	}{
		{[]float64{1, 2, 30}, true},
		{[]float64{1, 2.5}, false},
		{[]float64{1e15, 1e15, 1e15, 1e15, 1e15, 1e15, 1e15, 1e15, 1e15, 1e15}, false}, // total above 2⁵³
		{nil, true},
	} {
		if got := integral(c.price); got != c.want {
			t.Errorf("integral(%v) = %v, want %v", c.price, got, c.want)
		}
	}
}

// TestSolveIntegralMatchesExhaustive checks pruning by whole units against
// exhaustive search, with one worker and with three.
func TestSolveIntegralMatchesExhaustive(t *testing.T) {
	for seed := uint64(0); seed < 300; seed++ {
		r := rand.New(rand.NewPCG(seed, 11))
		in := integerInstance(r, 2+r.IntN(9), 1+r.IntN(18))
		want := bruteForce(in)
		for _, threads := range []int{1, 3} {
			sol, err := Solve(context.Background(), in, Options{Threads: threads})
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := in.Value(sol.Winners); !ok || v != want || sol.Objective != want || !sol.Optimal || sol.Gap != 0 {
				t.Fatalf("seed %d threads %d: got %v (feasible %v, objective %v, optimal %v, gap %v), want %v",
					seed, threads, v, ok, sol.Objective, sol.Optimal, sol.Gap, want)
			}
		}
	}
}

// TestVCGIntegralMatchesResolves checks VCG on whole prices against one
// exhaustive search per winning bidder.
func TestVCGIntegralMatchesResolves(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(0); seed < 150; seed++ {
		r := rand.New(rand.NewPCG(seed, 13))
		in := integerInstance(r, 3+r.IntN(8), 4+r.IntN(16))
		sol, err := Solve(ctx, in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := VCG(ctx, in, sol, Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		won := map[string]float64{}
		for _, w := range sol.Winners {
			won[in.Bids[w].Bidder] += in.Bids[w].Price
		}
		for b, v := range won {
			want := math.Max(0, bruteForce(without(in, b))-(sol.Objective-v))
			if !p.Exact || p.ByBidder[b] != want {
				t.Fatalf("seed %d: %s pays %v (exact %v), exhaustive re-solve says %v", seed, b, p.ByBidder[b], p.Exact, want)
			}
		}
	}
}

package wdp

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// bruteForce returns the best packing value by enumerating all subsets.
func bruteForce(in *Instance) float64 {
	n := len(in.Bids)
	best := 0.0
	masks := make([]uint64, n)
	for j, b := range in.Bids {
		for _, g := range b.Goods {
			masks[j] |= 1 << g
		}
	}
	var rec func(j int, used uint64, v float64)
	rec = func(j int, used uint64, v float64) {
		if v > best {
			best = v
		}
		for k := j; k < n; k++ {
			if masks[k]&used == 0 {
				rec(k+1, used|masks[k], v+in.Bids[k].Price)
			}
		}
	}
	rec(0, 0, 0)
	return best
}

func randomInstance(r *rand.Rand, goods, bids int) *Instance {
	in := &Instance{Goods: goods}
	for j := 0; j < bids; j++ {
		size := 1 + r.IntN(min(goods, 4))
		perm := r.Perm(goods)[:size]
		price := float64(1+r.IntN(20)) * float64(size) / 2
		if r.IntN(5) == 0 {
			price = math.Round(r.Float64()*1000) / 100
		}
		in.Bids = append(in.Bids, Bid{Bidder: fmt.Sprintf("b%d", r.IntN(bids/2+1)), Goods: perm, Price: price})
	}
	return in
}

func TestSolveMatchesExhaustiveSearch(t *testing.T) {
	for seed := uint64(0); seed < 400; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		in := randomInstance(r, 2+r.IntN(9), 1+r.IntN(16))
		want := bruteForce(in)
		// Cross-check every root LP with gonum's lp.Simplex too.
		sol, err := Solve(context.Background(), in, Options{GonumMaxRows: 40})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		v, ok := in.Value(sol.Winners)
		if !ok {
			t.Fatalf("seed %d: infeasible winners %v", seed, sol.Winners)
		}
		if math.Abs(v-sol.Objective) > 1e-9 || math.Abs(v-want) > 1e-6 || !sol.Optimal || sol.Gap != 0 {
			t.Fatalf("seed %d: got %v (objective %v, optimal %v, gap %v), want %v; instance %+v",
				seed, v, sol.Objective, sol.Optimal, sol.Gap, want, in)
		}
	}
}

func TestSolveCATSSmallMatchesExhaustive(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		in, err := GenerateCATS(seed, 10, 20, DefaultCATS())
		if err != nil {
			t.Fatal(err)
		}
		if in.Goods > 64 {
			t.Fatalf("too many goods %d", in.Goods)
		}
		want := bruteForce(in)
		sol, err := Solve(context.Background(), in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(sol.Objective-want) > 1e-6 || !sol.Optimal {
			t.Fatalf("seed %d: got %v want %v", seed, sol.Objective, want)
		}
	}
}

// TestThreadsAgree solves instances whose trees branch with one and with
// several workers: the optimal values agree, and a parallel search cut
// short by its time limit still reports a bound no lower than the optimum.
func TestThreadsAgree(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(1); seed <= 6; seed++ {
		in, err := GenerateCATS(seed, 40, 200, DefaultCATS())
		if err != nil {
			t.Fatal(err)
		}
		one, err := Solve(ctx, in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !one.Optimal || one.Nodes < 20 {
			t.Fatalf("seed %d: one thread: optimal %v after %d nodes; the test wants a tree", seed, one.Optimal, one.Nodes)
		}
		for _, threads := range []int{2, 4} {
			par, err := Solve(ctx, in, Options{Threads: threads})
			if err != nil {
				t.Fatal(err)
			}
			v, ok := in.Value(par.Winners)
			if !ok || math.Abs(v-par.Objective) > 1e-9 || math.Abs(par.Objective-one.Objective) > 1e-6 || !par.Optimal || par.Gap != 0 {
				t.Fatalf("seed %d threads %d: %+v (value %v, feasible %v), one thread %v", seed, threads, par, v, ok, one.Objective)
			}
			cut, err := Solve(ctx, in, Options{Threads: threads, TimeLimit: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := in.Value(cut.Winners); !ok || cut.Objective > one.Objective+1e-6 || cut.Bound < one.Objective-1e-6 || math.Abs(cut.Gap-(cut.Bound-cut.Objective)) > 1e-9 {
				t.Fatalf("seed %d threads %d, cut short: %+v, optimum %v", seed, threads, cut, one.Objective)
			}
		}
	}
}

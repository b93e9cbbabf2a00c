package wdp

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func TestVCGProperties(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(0); seed < 150; seed++ {
		r := rand.New(rand.NewPCG(seed, 11))
		in := randomInstance(r, 2+r.IntN(7), 1+r.IntN(12))
		sol, err := Solve(ctx, in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := VCG(ctx, in, sol, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Exact {
			t.Fatalf("seed %d: inexact payments", seed)
		}
		won := map[string]float64{}
		for _, w := range sol.Winners {
			won[in.Bids[w].Bidder] += in.Bids[w].Price
		}
		for b, pay := range p.ByBidder {
			if pay < 0 || pay > won[b]+1e-9 {
				t.Fatalf("seed %d: bidder %s pays %v for bids worth %v", seed, b, pay, won[b])
			}
			// Independent check of the Clarke pivot by exhaustive search.
			sub := without(in, b)
			want := bruteForce(sub) - (bruteForce(in) - won[b])
			if math.Abs(pay-math.Max(0, want)) > 1e-6 {
				t.Fatalf("seed %d: bidder %s pays %v, exhaustive says %v", seed, b, pay, want)
			}
		}
		if len(p.ByBidder) != len(won) {
			t.Fatalf("seed %d: payments for %d bidders, %d won", seed, len(p.ByBidder), len(won))
		}
	}
}

// TestVCGSharedTreeMatchesResolves compares the shared-tree payments with
// one independent Solve per winning bidder on mid-sized CATS instances
// (larger than exhaustive search allows; Solve itself is checked against
// exhaustive search above), with 1, 2 and 3 workers so that the re-solves
// are split into different groups.
func TestVCGSharedTreeMatchesResolves(t *testing.T) {
	ctx := context.Background()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for seed := uint64(0); seed < 12; seed++ {
		in, err := GenerateCATS(seed, 12+int(seed), 40+5*int(seed), DefaultCATS())
		if err != nil {
			t.Fatal(err)
		}
		sol, err := Solve(ctx, in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		won := map[string]float64{}
		for _, w := range sol.Winners {
			won[in.Bids[w].Bidder] += in.Bids[w].Price
		}
		want := map[string]float64{}
		for b, v := range won {
			sub := without(in, b)
			s, err := Solve(ctx, sub, Options{})
			if err != nil {
				t.Fatal(err)
			}
			want[b] = math.Max(0, s.Objective-(sol.Objective-v))
		}
		for _, procs := range []int{1, 2, 3} {
			runtime.GOMAXPROCS(procs)
			// The thread count per tree follows procs too, so that the
			// shared tree is also searched by several workers.
			p, err := VCG(ctx, in, sol, Options{Threads: procs})
			if err != nil {
				t.Fatal(err)
			}
			if !p.Exact || len(p.ByBidder) != len(want) {
				t.Fatalf("seed %d procs %d: exact %v, %d payments for %d winners", seed, procs, p.Exact, len(p.ByBidder), len(want))
			}
			for b, w := range want {
				if math.Abs(p.ByBidder[b]-w) > 1e-6 {
					t.Fatalf("seed %d procs %d: %s pays %v, re-solve says %v", seed, procs, b, p.ByBidder[b], w)
				}
			}
		}
	}
}

// TestVCGTruthfulDominant checks on small instances that no bidder gains by
// scaling its bids away from its true values: utility is the true value of
// the bids it wins minus its payment.
func TestVCGTruthfulDominant(t *testing.T) {
	ctx := context.Background()
	factors := []float64{0, 0.5, 0.9, 1.1, 1.5, 3}
	for seed := uint64(0); seed < 40; seed++ {
		r := rand.New(rand.NewPCG(seed, 13))
		truth := randomInstance(r, 2+r.IntN(5), 2+r.IntN(7))
		utility := func(in *Instance, bidder string) float64 {
			sol, err := Solve(ctx, in, Options{})
			if err != nil {
				t.Fatal(err)
			}
			p, err := VCG(ctx, in, sol, Options{})
			if err != nil {
				t.Fatal(err)
			}
			u := -p.ByBidder[bidder]
			for _, w := range sol.Winners {
				if in.Bids[w].Bidder == bidder {
					u += truth.Bids[w].Price
				}
			}
			return u
		}
		for _, bidder := range truth.Bidders() {
			honest := utility(truth, bidder)
			for _, f := range factors {
				lie := &Instance{Goods: truth.Goods, Bids: append([]Bid(nil), truth.Bids...)}
				for j := range lie.Bids {
					if lie.Bids[j].Bidder == bidder {
						lie.Bids[j].Price *= f
					}
				}
				if u := utility(lie, bidder); u > honest+1e-6 {
					t.Fatalf("seed %d: bidder %s gains %v > %v by scaling bids by %v", seed, bidder, u, honest, f)
				}
			}
		}
	}
}

func Example() {
	in := &Instance{Goods: 3, Bids: []Bid{
		{Bidder: "a", Goods: []int{0, 1}, Price: 10},
		{Bidder: "b", Goods: []int{1, 2}, Price: 8},
		{Bidder: "c", Goods: []int{0}, Price: 6},
		{Bidder: "d", Goods: []int{2}, Price: 5},
	}}
	ctx := context.Background()
	sol, err := Solve(ctx, in, Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	pay, err := VCG(ctx, in, sol, Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("objective", sol.Objective, "winners", sol.Winners, "optimal", sol.Optimal)
	fmt.Println("a pays", pay.ByBidder["a"], "d pays", pay.ByBidder["d"])
	// Output:
	// objective 15 winners [0 3] optimal true
	// a pays 9 d pays 4
}

// without returns a copy of in without the bids of bidder.
func without(in *Instance, bidder string) *Instance {
	out := &Instance{Goods: in.Goods}
	for _, b := range in.Bids {
		if b.Bidder != bidder {
			out.Bids = append(out.Bids, b)
		}
	}
	return out
}

// TestVCGReserveKnownAnswers is the market's reserve in winner-determination
// terms: good 0 is the job, good i the capacity of seller i, and seller i's
// bid is worth the buyer's reserve + 1 − its ask (no bid when that is not
// positive). A winner receives reserve + 1 − its VCG payment, capped at the
// reserve: a lone seller receives the reserve, one of two sellers under
// the reserve the other's ask, and a seller over the reserve is no rival.
func TestVCGReserveKnownAnswers(t *testing.T) {
	const reserve = 100
	cases := []struct {
		name     string
		asks     []float64
		winner   string
		receives float64
	}{
		{"lone seller", []float64{30}, "s0", 100},
		{"two sellers under the reserve", []float64{60, 40}, "s1", 60},
		{"one seller over the reserve", []float64{150, 40}, "s1", 100},
	}
	ctx := context.Background()
	for _, c := range cases {
		in := &Instance{Goods: 1 + len(c.asks)}
		for i, a := range c.asks {
			if v := reserve + 1 - a; v > 0 {
				in.Bids = append(in.Bids, Bid{Bidder: fmt.Sprintf("s%d", i), Goods: []int{0, 1 + i}, Price: v})
			}
		}
		sol, err := Solve(ctx, in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		p, err := VCG(ctx, in, sol, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(sol.Winners) != 1 || in.Bids[sol.Winners[0]].Bidder != c.winner {
			t.Fatalf("%s: winners %v", c.name, sol.Winners)
		}
		if got := math.Min(reserve, reserve+1-p.ByBidder[c.winner]); got != c.receives {
			t.Errorf("%s: %s receives %v, want %v", c.name, c.winner, got, c.receives)
		}
	}
}

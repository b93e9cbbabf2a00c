package wdp

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

// TestWithoutMatchesResolves checks Without against one Solve per group on
// random instances whose groups overlap (a bid in several groups, as a
// market bid that uses two providers is), include groups with no winning
// bid and an empty group, with one and several trees and workers.
func TestWithoutMatchesResolves(t *testing.T) {
	ctx := context.Background()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for seed := uint64(0); seed < 40; seed++ {
		r := rand.New(rand.NewPCG(seed, 25))
		in := randomInstance(r, 4+r.IntN(12), 6+r.IntN(40))
		sol, err := Solve(ctx, in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		groups := [][]int{{}}
		for range 1 + r.IntN(6) {
			var g []int
			for j := range in.Bids {
				if r.IntN(4) == 0 {
					g = append(g, j)
				}
			}
			groups = append(groups, g)
		}
		for _, w := range sol.Winners { // every winner in some group
			groups = append(groups, []int{w})
		}
		want := make([]float64, len(groups))
		for k, g := range groups {
			drop := map[int]bool{}
			for _, j := range g {
				drop[j] = true
			}
			sub := &Instance{Goods: in.Goods}
			for j, b := range in.Bids {
				if !drop[j] {
					sub.Bids = append(sub.Bids, b)
				}
			}
			s, err := Solve(ctx, sub, Options{})
			if err != nil {
				t.Fatal(err)
			}
			want[k] = s.Objective
		}
		for _, procs := range []int{1, 2, 3} {
			runtime.GOMAXPROCS(procs)
			got, err := Without(ctx, in, sol, groups, Options{Threads: procs})
			if err != nil {
				t.Fatal(err)
			}
			if !got.Exact {
				t.Fatalf("seed %d procs %d: not exact", seed, procs)
			}
			for k := range groups {
				if math.Abs(got.Objective[k]-want[k]) > 1e-6 {
					t.Fatalf("seed %d procs %d: without group %d %v: %v, re-solve says %v", seed, procs, k, groups[k], got.Objective[k], want[k])
				}
			}
		}
	}
}

// TestWithoutStopsAtW: no re-solve beats W, so one that finds a packing
// worth W stops there, although its LP bound is higher. Bidders x and x2
// offer the same bundle; with y and z they form a triangle whose LP
// relaxation is worth 3 (every bid at ½) while any packing is worth 2.
// Whichever bid wins, another stands in for it: the winner pays its whole
// bid, and the re-solve closes at its root.
func TestWithoutStopsAtW(t *testing.T) {
	in := &Instance{Goods: 3, Bids: []Bid{
		{Bidder: "x", Goods: []int{0, 1}, Price: 2},
		{Bidder: "x2", Goods: []int{0, 1}, Price: 2},
		{Bidder: "y", Goods: []int{1, 2}, Price: 2},
		{Bidder: "z", Goods: []int{0, 2}, Price: 2},
	}}
	ctx := context.Background()
	sol, err := Solve(ctx, in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sol.Objective != 2 || len(sol.Winners) != 1 {
		t.Fatalf("W = %v with winners %v, want one bid worth 2", sol.Objective, sol.Winners)
	}
	p, err := VCG(ctx, in, sol, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := in.Bids[sol.Winners[0]].Bidder
	if !p.Exact || len(p.ByBidder) != 1 || p.ByBidder[b] != 2 {
		t.Fatalf("payments %v (exact %v), want %s pays 2", p.ByBidder, p.Exact, b)
	}
	if p.Nodes > 1 {
		t.Errorf("re-solve took %d nodes, want it closed at the root", p.Nodes)
	}
}

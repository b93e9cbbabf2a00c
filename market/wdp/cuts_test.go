package wdp

import (
	"context"
	"math/rand/v2"
	"testing"
)

// TestCliqueCutsTriangle: three bids pairwise sharing a good, none common
// to all, have an LP optimum of 3/2 (each at ½) and a packing optimum of 1.
// The clique cut closes the whole gap, so it is kept, and the root LP is
// integral.
func TestCliqueCutsTriangle(t *testing.T) {
	in := &Instance{Goods: 3, Bids: []Bid{
		{Bidder: "a", Goods: []int{0, 1}, Price: 1},
		{Bidder: "b", Goods: []int{1, 2}, Price: 1},
		{Bidder: "c", Goods: []int{0, 2}, Price: 1},
	}}
	s := newSearch(context.Background(), in, []int{0, 1, 2}, Options{})
	s.addProblem(nil, nil, 1e9)
	lp := s.addCliqueCuts(newPackLP(s.m, s.cols, s.price))
	if s.cuts != 1 || s.m != 4 {
		t.Fatalf("%d cuts, %d rows; want the one clique cut as a fourth row", s.cuts, s.m)
	}
	if b := lp.dualBound(make([]float64, s.m)); b > 1+1e-9 {
		t.Errorf("root bound with the cut %v, want 1", b)
	}
	sol, err := Solve(context.Background(), in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sol.Objective != 1 || !sol.Optimal || sol.Cuts != 1 || sol.Nodes != 1 {
		t.Errorf("objective %v, optimal %v, %d cuts, %d nodes; want 1, true, 1, 1", sol.Objective, sol.Optimal, sol.Cuts, sol.Nodes)
	}
}

// TestCliqueCutsAreCliques checks on random instances that every cut kept
// is a clique of the conflict graph (its bids pairwise share a real good),
// and that searches with cuts still find the exhaustive optimum, with VCG
// payments equal to exhaustive re-solves. It requires some instances to
// keep cuts, so that the path is exercised.
func TestCliqueCutsAreCliques(t *testing.T) {
	kept := 0
	for seed := uint64(0); seed < 300; seed++ {
		r := rand.New(rand.NewPCG(seed, 17))
		in := integerInstance(r, 4+r.IntN(7), 6+r.IntN(14))
		comp := make([]int, len(in.Bids))
		for j := range comp {
			comp[j] = j
		}
		s := newSearch(context.Background(), in, comp, Options{})
		m0 := s.m
		s.addProblem(nil, nil, 1e18)
		s.addCliqueCuts(newPackLP(s.m, s.cols, s.price))
		for g := m0; g < s.m; g++ {
			var members []int
			for j, c := range s.cols {
				for _, h := range c {
					if h == g {
						members = append(members, j)
					}
				}
			}
			for a := range members {
				for b := range a {
					if !shareGood(s.cols[members[a]], s.cols[members[b]], m0) {
						t.Fatalf("seed %d: cut %d holds bids %d and %d, which share no good", seed, g, members[a], members[b])
					}
				}
			}
		}
		sol, err := Solve(context.Background(), in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if want := bruteForce(in); sol.Objective != want || !sol.Optimal {
			t.Fatalf("seed %d: objective %v (optimal %v), exhaustive %v", seed, sol.Objective, sol.Optimal, want)
		}
		if sol.Cuts > 0 {
			kept++
		}
	}
	if kept == 0 {
		t.Fatal("no instance kept a cut: the cut path went untested")
	}
	t.Logf("%d of 300 instances kept cuts", kept)
}

// shareGood reports whether two sorted goods lists share a good below m0
// (a real good, not a cut).
func shareGood(a, b []int, m0 int) bool {
	for _, g := range a {
		for _, h := range b {
			if g == h && g < m0 {
				return true
			}
		}
	}
	return false
}

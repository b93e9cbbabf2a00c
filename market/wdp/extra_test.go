package wdp

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDecodeRejectsBadInstances(t *testing.T) {
	for name, in := range map[string]string{
		"good out of range": `{"goods": 2, "bids": [{"bidder": "a", "goods": [2], "price": 1}]}`,
		"negative good":     `{"goods": 2, "bids": [{"bidder": "a", "goods": [-1], "price": 1}]}`,
		"duplicate good":    `{"goods": 2, "bids": [{"bidder": "a", "goods": [1, 1], "price": 1}]}`,
		"negative price":    `{"goods": 2, "bids": [{"bidder": "a", "goods": [1], "price": -1}]}`,
		"empty bundle":      `{"goods": 2, "bids": [{"bidder": "a", "goods": [], "price": 1}]}`,
		"no bidder":         `{"goods": 2, "bids": [{"goods": [0], "price": 1}]}`,
		"unknown field":     `{"goods": 2, "bid": []}`,
		"trailing data":     `{"goods": 2, "bids": []} {}`,
		"not json":          `goods: 2`,
		"huge goods":        `{"goods": 100000000000, "bids": []}`,
	} {
		if _, err := Decode(strings.NewReader(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
	in, err := Decode(strings.NewReader(`{"goods": 3, "bids": [{"bidder": "a", "goods": [0, 2], "price": 2.5}]}`))
	if err != nil || len(in.Bids) != 1 || in.Bids[0].Price != 2.5 {
		t.Fatalf("valid instance: %v %+v", err, in)
	}
}

func FuzzDecodeSolve(f *testing.F) {
	f.Add([]byte(`{"goods": 3, "bids": [{"bidder": "a", "goods": [0, 1], "price": 10}, {"bidder": "b", "goods": [1, 2], "price": 8}]}`))
	f.Add([]byte(`{"goods": 0, "bids": []}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := Decode(bytes.NewReader(data))
		if err != nil {
			return
		}
		if in.Goods > 64 || len(in.Bids) > 14 {
			return
		}
		sol, err := Solve(context.Background(), in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		v, ok := in.Value(sol.Winners)
		if !ok || math.Abs(v-bruteForce(in)) > 1e-6*math.Max(1, v) {
			t.Fatalf("solver %v (feasible %v), exhaustive %v", v, ok, bruteForce(in))
		}
	})
}

func TestPresolveAndComponents(t *testing.T) {
	in := &Instance{Goods: 6, Bids: []Bid{
		{Bidder: "a", Goods: []int{0, 1}, Price: 5},
		{Bidder: "b", Goods: []int{0, 1, 2}, Price: 4}, // dominated by a
		{Bidder: "c", Goods: []int{3}, Price: 0},       // worthless
		{Bidder: "d", Goods: []int{4, 5}, Price: 3},
		{Bidder: "e", Goods: []int{4, 5}, Price: 3}, // duplicate of d
		{Bidder: "f", Goods: []int{2}, Price: 1},
	}}
	keep := presolve(in, nil)
	if want := []int{0, 3, 5}; !equalInts(keep, want) {
		t.Fatalf("presolve kept %v, want %v", keep, want)
	}
	comps := components(in, keep)
	if len(comps) != 3 {
		t.Fatalf("components %v", comps)
	}
	sol, err := Solve(context.Background(), in, Options{})
	if err != nil || sol.Objective != 9 || !equalInts(sol.Winners, []int{0, 3, 5}) || sol.Presolved != 3 {
		t.Fatalf("solution %+v %v", sol, err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRevisedSimplexAgreesWithGonum compares the root LP values of the
// warm-started revised simplex (its repaired dual bound) with gonum's
// lp.Simplex on random packing LPs: strong duality makes them equal.
func TestRevisedSimplexAgreesWithGonum(t *testing.T) {
	for seed := uint64(0); seed < 60; seed++ {
		r := rand.New(rand.NewPCG(seed, 3))
		in := randomInstance(r, 3+r.IntN(10), 2+r.IntN(25))
		comp := make([]int, len(in.Bids))
		for j := range comp {
			comp[j] = j
		}
		s := newSearch(context.Background(), in, comp, Options{})
		s.addProblem(nil, nil, math.Inf(1))
		lp := newPackLP(s.m, s.cols, s.price)
		if !lp.solve(1000) {
			t.Fatalf("seed %d: simplex did not finish", seed)
		}
		y := make([]float64, s.m)
		dual := lp.dualBound(y)
		primal := 0.0
		for j := range s.cols {
			primal += s.price[j] * lp.x(j)
		}
		g, err := gonumRelaxation(s.m, s.cols, s.price, lp.alive)
		if err != nil {
			t.Logf("seed %d: gonum failed (%v); the solver falls back to the dual bound", seed, err)
			continue
		}
		if math.Abs(dual-g) > 1e-6*math.Max(1, g) || math.Abs(primal-g) > 1e-6*math.Max(1, g) {
			t.Fatalf("seed %d: revised simplex primal %v dual %v, gonum %v", seed, primal, dual, g)
		}
	}
}

func TestTimeLimitReturnsGap(t *testing.T) {
	in, err := GenerateCATS(7, 100, 500, DefaultCATS())
	if err != nil {
		t.Fatal(err)
	}
	sol, err := Solve(context.Background(), in, Options{TimeLimit: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := in.Value(sol.Winners); !ok {
		t.Fatal("infeasible incumbent")
	}
	if sol.Optimal || sol.Gap <= 0 || sol.Bound < sol.Objective || sol.Objective <= 0 {
		t.Fatalf("want a feasible non-optimal solution with a positive gap: %+v", sol)
	}
}

func TestGenerateCATSDeterministic(t *testing.T) {
	a, _ := GenerateCATS(3, 40, 200, DefaultCATS())
	b, _ := GenerateCATS(3, 40, 200, DefaultCATS())
	if len(a.Bids) != 200 || a.Goods < 40 || a.Goods != b.Goods {
		t.Fatalf("sizes %d bids %d goods", len(a.Bids), a.Goods)
	}
	for i := range a.Bids {
		if a.Bids[i].Price != b.Bids[i].Price || !equalInts(a.Bids[i].Goods, b.Bids[i].Goods) {
			t.Fatalf("bid %d differs between runs", i)
		}
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteLP(&buf, a); err != nil || !strings.Contains(buf.String(), "Binary") {
		t.Fatalf("LP file: %v", err)
	}
}

// TestBenchmarkCATS checks the benchmark distribution's shape: exactly the
// requested bids, a dummy good only for bidders with three or more bids
// (shared by all of them and no one else), and first bundles of about
// 1/(1-0.7) goods against about 1/(1-0.9) for the CATS defaults (later
// bids are larger on average: a bidder's substitutes are as large as its
// first bundle, and larger bundles yield more of them).
func TestBenchmarkCATS(t *testing.T) {
	const goods = 100
	in, err := GenerateCATS(1, goods, 500, BenchmarkCATS())
	if err != nil {
		t.Fatal(err)
	}
	again, _ := GenerateCATS(1, goods, 500, BenchmarkCATS())
	if err := in.Validate(); err != nil || len(in.Bids) != 500 {
		t.Fatalf("%d bids, %v", len(in.Bids), err)
	}
	byBidder := map[string][]Bid{}
	var order []string
	for i, b := range in.Bids {
		if !equalInts(b.Goods, again.Bids[i].Goods) || b.Price != again.Bids[i].Price {
			t.Fatalf("bid %d differs between runs", i)
		}
		if byBidder[b.Bidder] == nil {
			order = append(order, b.Bidder)
		}
		byBidder[b.Bidder] = append(byBidder[b.Bidder], b)
	}
	dummyOwner := map[int]string{}
	for _, name := range order {
		bids := byBidder[name]
		for _, b := range bids {
			var dummies []int
			for _, g := range b.Goods {
				if g >= goods {
					dummies = append(dummies, g)
				}
			}
			switch {
			case len(bids) <= 2 && len(dummies) != 0:
				t.Fatalf("bidder %s with %d bids has dummy goods %v", name, len(bids), dummies)
			case len(bids) > 2 && len(dummies) != 1:
				t.Fatalf("bidder %s with %d bids: want one dummy good per bid, got %v", name, len(bids), dummies)
			case len(bids) > 2:
				if o, ok := dummyOwner[dummies[0]]; ok && o != name {
					t.Fatalf("dummy good %d shared by bidders %s and %s", dummies[0], o, name)
				}
				if !slices.Contains(bids[0].Goods, dummies[0]) {
					t.Fatalf("bidder %s: dummy good %d is not in its first bid %v", name, dummies[0], bids[0].Goods)
				}
				dummyOwner[dummies[0]] = name
			}
		}
		if len(bids) == 2 && !shares(bids[0].Goods, bids[1].Goods) {
			t.Fatalf("bidder %s: two substitutable bids that do not share a good", name)
		}
	}
	if in.Goods != goods+len(dummyOwner) {
		t.Fatalf("goods %d, want %d real + %d dummies", in.Goods, goods, len(dummyOwner))
	}
	mean := meanFirstBundle(in, goods)
	cats, _ := GenerateCATS(1, goods, 500, DefaultCATS())
	catsMean := meanFirstBundle(cats, goods)
	t.Logf("mean first bundle: %.2f goods (benchmark), %.2f (CATS)", mean, catsMean)
	if mean < 2.6 || mean > 4.2 || catsMean < 7 {
		t.Fatalf("mean bundle sizes %.2f (benchmark, want about 3.3) and %.2f (CATS, want about 10)", mean, catsMean)
	}
}

// meanFirstBundle is the mean number of real goods in each bidder's first
// bid.
func meanFirstBundle(in *Instance, goods int) float64 {
	seen := map[string]bool{}
	n, sum := 0, 0
	for _, b := range in.Bids {
		if seen[b.Bidder] {
			continue
		}
		seen[b.Bidder] = true
		n++
		for _, g := range b.Goods {
			if g < goods {
				sum++
			}
		}
	}
	return float64(sum) / float64(n)
}

func BenchmarkSolveCATS100x500(b *testing.B) {
	in, _ := GenerateCATS(1, 100, 500, DefaultCATS())
	for b.Loop() {
		if _, err := Solve(context.Background(), in, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSolveCATS50x250(b *testing.B) {
	in, _ := GenerateCATS(1, 50, 250, DefaultCATS())
	for b.Loop() {
		if _, err := Solve(context.Background(), in, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

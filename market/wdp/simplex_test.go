package wdp

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randomPacking returns a random set-packing LP: m goods, n columns of 1 to
// 4 goods each, prices with ties and odd decimals to provoke degeneracy.
func randomPacking(r *rand.Rand, m, n int) (cols [][]int, price []float64) {
	for j := 0; j < n; j++ {
		size := 1 + r.IntN(min(m, 4))
		cols = append(cols, r.Perm(m)[:size])
		p := float64(1+r.IntN(10)) * float64(size)
		if r.IntN(4) == 0 {
			p = math.Round(r.Float64()*1000) / 100
		}
		price = append(price, p)
	}
	return cols, price
}

// checkLP checks a solved packLP: its primal point must be feasible and
// its value equal to the repaired dual bound, which certifies both optimal;
// with gonum set, both must also equal the optimum of gonum's simplex on
// the same alive columns.
func checkLP(t *testing.T, name string, lp *packLP, gonum bool) {
	t.Helper()
	load := make([]float64, lp.m)
	primal := 0.0
	for j, c := range lp.cols {
		x := lp.x(j)
		if !lp.alive[j] {
			if math.Abs(x) > 1e-9 {
				t.Fatalf("%s: removed column %d has x = %v", name, j, x)
			}
			continue
		}
		if x < -1e-9 || x > 1+1e-9 {
			t.Fatalf("%s: x_%d = %v outside [0, 1]", name, j, x)
		}
		primal += lp.price[j] * x
		for _, g := range c {
			load[g] += x
		}
	}
	for g, l := range load {
		if l > 1+1e-9 {
			t.Fatalf("%s: good %d packed %v times", name, g, l)
		}
	}
	y := make([]float64, lp.m)
	dual := lp.dualBound(y)
	if math.Abs(primal-dual) > 1e-6*math.Max(1, dual) {
		t.Fatalf("%s: primal %v, dual bound %v", name, primal, dual)
	}
	if !gonum {
		return
	}
	want, err := gonumRelaxation(lp.m, lp.cols, lp.price, lp.alive)
	if err != nil {
		t.Logf("%s: gonum failed (%v); checking weak duality only", name, err)
		if primal > dual+1e-6*math.Max(1, dual) {
			t.Fatalf("%s: primal %v above dual bound %v", name, primal, dual)
		}
		return
	}
	tol := 1e-6 * math.Max(1, want)
	if math.Abs(primal-want) > tol || math.Abs(dual-want) > tol {
		t.Fatalf("%s: primal %v, dual bound %v, gonum %v", name, primal, dual, want)
	}
}

// TestPackLPAgreesWithGonum re-solves random packing LPs in the sequence the
// branch-and-bound uses: root; a clone with a column and its conflicts
// removed (x = 1 child); the original with that column removed (x = 0
// child); then all columns revived on the clone.
func TestPackLPAgreesWithGonum(t *testing.T) {
	for seed := uint64(0); seed < 300; seed++ {
		r := rand.New(rand.NewPCG(seed, 11))
		m := 2 + r.IntN(14)
		n := 1 + r.IntN(40)
		if seed%10 == 0 { // a few larger ones, closer to real nodes
			m, n = 20+r.IntN(20), 60+r.IntN(60)
		}
		cols, price := randomPacking(r, m, n)
		// Equal prices, per good or per bid, make the LP heavily dual
		// degenerate. gonum's simplex can cycle on those, so they are
		// checked by their own primal-dual certificate only.
		gonum := seed%3 == 0
		if !gonum {
			for j, c := range cols {
				price[j] = 1
				if seed%3 == 1 {
					price[j] = float64(len(c))
				}
			}
		}
		lp := newPackLP(m, cols, price)
		if !lp.solve(50 * (m + n)) {
			t.Fatalf("seed %d: root did not finish", seed)
		}
		checkLP(t, "root", lp, gonum)
		for depth := 0; depth < 4; depth++ {
			// Branch on the most fractional alive column, or any.
			frac, best := -1, -1.0
			for j := range cols {
				if lp.alive[j] {
					if s := 0.5 - math.Abs(lp.x(j)-0.5); s > best {
						frac, best = j, s
					}
				}
			}
			if frac < 0 {
				break
			}
			one := lp.clone()
			alive := append([]bool(nil), lp.alive...)
			alive[frac] = false
			for k, c := range cols {
				if shares(c, cols[frac]) {
					alive[k] = false
				}
			}
			copy(one.alive, alive)
			one.solve(50 * (m + n))
			checkLP(t, "x=1 child", one, gonum)
			// The x = 0 child reuses the parent's own LP.
			lp.alive[frac] = false
			lp.solve(50 * (m + n))
			checkLP(t, "x=0 child", lp, gonum)
			if depth == 3 {
				// Reviving columns must work too.
				for j := range one.alive {
					one.alive[j] = true
				}
				one.solve(50 * (m + n))
				checkLP(t, "revived", one, gonum)
			}
		}
	}
}

// TestPackLPEarlyStopBound checks that an LP stopped by its iteration limit
// still yields, after repair, a bound no smaller than the LP optimum.
func TestPackLPEarlyStopBound(t *testing.T) {
	for seed := uint64(0); seed < 40; seed++ {
		r := rand.New(rand.NewPCG(seed, 12))
		m, n := 5+r.IntN(20), 10+r.IntN(60)
		cols, price := randomPacking(r, m, n)
		full := newPackLP(m, cols, price)
		full.solve(50 * (m + n))
		y := make([]float64, m)
		opt := full.dualBound(y)
		for _, limit := range []int{0, 1, 3, 7} {
			lp := newPackLP(m, cols, price)
			lp.solve(limit)
			if b := lp.dualBound(y); b < opt-1e-9*math.Max(1, opt) {
				t.Fatalf("seed %d limit %d: bound %v below LP optimum %v", seed, limit, b, opt)
			}
			// A child stopped early after its parent solved.
			child := full.clone()
			child.alive[r.IntN(n)] = false
			child.solve(limit)
			b := child.dualBound(y)
			want, err := gonumRelaxation(m, cols, price, child.alive)
			if err == nil && b < want-1e-6*math.Max(1, want) {
				t.Fatalf("seed %d limit %d: child bound %v below LP optimum %v", seed, limit, b, want)
			}
		}
	}
}

// TestPackLPCutoff checks the cutoff: below the LP optimum it changes
// nothing, and above it solve stops with a repaired bound that is at or
// below the cutoff and still no smaller than the optimum, having pivoted
// no more than a full solve.
func TestPackLPCutoff(t *testing.T) {
	stopped := 0
	for seed := uint64(0); seed < 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 13))
		m, n := 5+r.IntN(25), 10+r.IntN(80)
		cols, price := randomPacking(r, m, n)
		y := make([]float64, m)
		// From the all-slack basis, and as an x = 0 child after its
		// parent solved (the way the search uses it).
		root := newPackLP(m, cols, price)
		root.solve(50 * (m + n))
		drop := r.IntN(n)
		fresh := func() *packLP {
			if seed%2 == 0 {
				return newPackLP(m, cols, price)
			}
			lp := root.clone()
			lp.alive[drop] = false
			return lp
		}
		full := fresh()
		full.solve(50 * (m + n))
		opt := full.dualBound(y)
		for _, cut := range []float64{opt - 1, opt * 0.999, opt + 1e-3, opt * 1.02, opt * 1.2} {
			lp := fresh()
			lp.cutoff = cut
			ok := lp.solve(50 * (m + n))
			b := lp.dualBound(y)
			if b < opt-1e-9*math.Max(1, opt) {
				t.Fatalf("seed %d cutoff %v: bound %v below LP optimum %v", seed, cut, b, opt)
			}
			if lp.pivots > full.pivots {
				t.Fatalf("seed %d cutoff %v: %d pivots, more than the %d of a full solve", seed, cut, lp.pivots, full.pivots)
			}
			if cut < opt-1e-6 {
				if !ok {
					t.Fatalf("seed %d: cutoff %v below the optimum %v stopped the LP", seed, cut, opt)
				}
				checkLP(t, "below cutoff", lp, false)
			} else if !ok {
				stopped++
				if b > cut {
					t.Fatalf("seed %d cutoff %v: stopped with bound %v above it", seed, cut, b)
				}
			}
		}
	}
	if stopped == 0 {
		t.Fatal("no LP stopped at its cutoff")
	}
}

func shares(a, b []int) bool {
	for _, g := range a {
		for _, h := range b {
			if g == h {
				return true
			}
		}
	}
	return false
}

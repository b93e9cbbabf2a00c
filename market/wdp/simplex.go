package wdp

import (
	"math"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
)

// Tolerances of the LP relaxation. They only steer the simplex: every bound
// the branch-and-bound prunes with comes from an explicitly repaired
// dual-feasible vector (see dualBound), so a tolerance can cost nodes but
// never optimality.
const (
	// ReducedCostTol is the reduced cost above which a column may enter.
	ReducedCostTol = 1e-9
	// PivotTol is the smallest pivot element accepted in the ratio test.
	PivotTol = 1e-9
	// IntegralityTol is how far from 0 or 1 an LP value may be and still
	// count as integral.
	IntegralityTol = 1e-6
	// refactorEvery is how many product-form updates of the basis inverse
	// are made before it is recomputed from scratch.
	refactorEvery = 1000
	// blandAfter is how many consecutive degenerate pivots switch pricing
	// from Dantzig's rule to Bland's rule, which cannot cycle.
	blandAfter = 30
)

// packLP is the LP relaxation of a set-packing problem,
//
//	maximise Σ c_j x_j  subject to  Σ_{j: g ∈ S_j} x_j + s_g = 1,  x, s ≥ 0,
//
// solved by a revised primal simplex with an explicit dense basis inverse.
// The all-slack basis is feasible, so there is no phase 1, and a basis that
// was optimal for a parent node stays primal feasible for a child: a child
// only removes columns, which the LP models by giving them cost -big, so
// the child re-optimises from the parent's basis in a few pivots.
type packLP struct {
	m, n   int
	cols   [][]int   // goods of each structural column
	price  []float64 // bid prices
	alive  []bool    // columns not removed at this node
	big    float64   // cost of a removed column is -big
	basis  []int     // variable basic in each row; n+g is the slack of row g
	pos    []int     // row of each basic variable, -1 if nonbasic
	binv   []float64 // m×m basis inverse, row major
	xb     []float64 // values of the basic variables
	y      []float64 // duals c_B B^{-1}
	etas   int
	pivots int
}

func newPackLP(m int, cols [][]int, price []float64) *packLP {
	n := len(cols)
	lp := &packLP{m: m, n: n, cols: cols, price: price,
		alive: make([]bool, n), basis: make([]int, m), pos: make([]int, n+m),
		binv: make([]float64, m*m), xb: make([]float64, m), y: make([]float64, m)}
	sum := 0.0
	for j := range lp.alive {
		lp.alive[j] = true
		sum += price[j]
	}
	lp.big = 1 + 2*sum
	for v := range lp.pos {
		lp.pos[v] = -1
	}
	for g := 0; g < m; g++ {
		lp.basis[g] = n + g
		lp.pos[n+g] = g
		lp.binv[g*m+g] = 1
		lp.xb[g] = 1
	}
	return lp
}

func (lp *packLP) clone() *packLP {
	c := *lp
	c.alive = append([]bool(nil), lp.alive...)
	c.basis = append([]int(nil), lp.basis...)
	c.pos = append([]int(nil), lp.pos...)
	c.binv = append([]float64(nil), lp.binv...)
	c.xb = append([]float64(nil), lp.xb...)
	c.y = append([]float64(nil), lp.y...)
	return &c
}

func (lp *packLP) cost(v int) float64 {
	if v >= lp.n {
		return 0
	}
	if !lp.alive[v] {
		return -lp.big
	}
	return lp.price[v]
}

// computeDuals sets y = c_B B^{-1}.
func (lp *packLP) computeDuals() {
	m := lp.m
	for g := range lp.y {
		lp.y[g] = 0
	}
	for i, v := range lp.basis {
		c := lp.cost(v)
		if c == 0 {
			continue
		}
		floats.AddScaled(lp.y, c, lp.binv[i*m:(i+1)*m])
	}
}

func (lp *packLP) reducedCost(v int) float64 {
	if v >= lp.n {
		return -lp.y[v-lp.n]
	}
	d := lp.cost(v)
	for _, g := range lp.cols[v] {
		d -= lp.y[g]
	}
	return d
}

// refactor recomputes the basis inverse and the basic values from scratch.
func (lp *packLP) refactor() bool {
	m := lp.m
	B := mat.NewDense(m, m, nil)
	for i, v := range lp.basis {
		if v >= lp.n {
			B.Set(v-lp.n, i, 1)
		} else {
			for _, g := range lp.cols[v] {
				B.Set(g, i, 1)
			}
		}
	}
	var inv mat.Dense
	if err := inv.Inverse(B); err != nil {
		return false
	}
	for i := 0; i < m; i++ {
		for g := 0; g < m; g++ {
			lp.binv[i*m+g] = inv.At(i, g)
		}
	}
	for i := 0; i < m; i++ {
		s := 0.0
		for _, b := range lp.binv[i*m : (i+1)*m] {
			s += b
		}
		if s < 0 && s > -1e-9 {
			s = 0
		}
		lp.xb[i] = s
	}
	lp.etas = 0
	return true
}

// reset returns to the all-slack basis, used when a refactorisation fails.
func (lp *packLP) reset() {
	m := lp.m
	for v := range lp.pos {
		lp.pos[v] = -1
	}
	for i := range lp.binv {
		lp.binv[i] = 0
	}
	for g := 0; g < m; g++ {
		lp.basis[g] = lp.n + g
		lp.pos[lp.n+g] = g
		lp.binv[g*m+g] = 1
		lp.xb[g] = 1
	}
	lp.etas = 0
}

// solve re-optimises from the current basis. It returns false if the
// iteration limit was hit, in which case the duals are still usable after
// repair but the primal values are not optimal.
func (lp *packLP) solve(maxPivots int) bool {
	m := lp.m
	alpha := make([]float64, m)
	degenerate := 0
	lp.computeDuals()
	for it := 0; it < maxPivots; it++ {
		bland := degenerate >= blandAfter
		q, best := -1, ReducedCostTol
		for v := 0; v < lp.n+m; v++ {
			if lp.pos[v] >= 0 || (v < lp.n && !lp.alive[v]) {
				continue
			}
			d := lp.reducedCost(v)
			if d > best {
				q, best = v, d
				if bland {
					break
				}
			}
		}
		if q < 0 {
			return true
		}
		// alpha = B^{-1} a_q
		for i := 0; i < m; i++ {
			row := lp.binv[i*m : (i+1)*m]
			if q >= lp.n {
				alpha[i] = row[q-lp.n]
				continue
			}
			s := 0.0
			for _, g := range lp.cols[q] {
				s += row[g]
			}
			alpha[i] = s
		}
		r, theta := -1, math.Inf(1)
		for i, a := range alpha {
			if a <= PivotTol {
				continue
			}
			t := lp.xb[i] / a
			if t < 0 {
				t = 0
			}
			switch {
			case t < theta-1e-12:
				r, theta = i, t
			case t <= theta+1e-12:
				if bland {
					if lp.basis[i] < lp.basis[r] {
						r, theta = i, t
					}
				} else if a > alpha[r] {
					r, theta = i, t
				}
			}
		}
		if r < 0 {
			return false // unbounded cannot happen for a packing LP
		}
		if theta <= 1e-12 {
			degenerate++
		} else {
			degenerate = 0
		}
		for i := range lp.xb {
			lp.xb[i] -= theta * alpha[i]
		}
		lp.xb[r] = theta
		piv := alpha[r]
		prow := lp.binv[r*m : (r+1)*m]
		floats.Scale(1/piv, prow)
		for i := 0; i < m; i++ {
			a := alpha[i]
			if i == r || a == 0 {
				continue
			}
			floats.AddScaled(lp.binv[i*m:(i+1)*m], -a, prow)
		}
		// The duals follow the pivot: y' = y + d_q·(row r of the new
		// inverse) zeroes the entering reduced cost and keeps the others.
		floats.AddScaled(lp.y, best, prow)
		lp.pos[lp.basis[r]] = -1
		lp.basis[r] = q
		lp.pos[q] = r
		lp.pivots++
		lp.etas++
		if lp.etas >= refactorEvery {
			if !lp.refactor() {
				lp.reset()
			}
			lp.computeDuals()
		}
	}
	lp.computeDuals()
	return false
}

// x returns the primal value of structural column j.
func (lp *packLP) x(j int) float64 {
	if i := lp.pos[j]; i >= 0 {
		return lp.xb[i]
	}
	return 0
}

// dualBound turns the current duals into a dual-feasible vector for the
// alive columns and returns Σ y_g, a valid upper bound on any packing of
// alive columns whatever the state of the simplex. y is overwritten with
// the repaired duals; reduced costs p_j - Σ y_g are then ≤ 0.
func (lp *packLP) dualBound(y []float64) float64 {
	used := make([]bool, lp.m)
	for j, ok := range lp.alive {
		if ok {
			for _, g := range lp.cols[j] {
				used[g] = true
			}
		}
	}
	for g := range y {
		if used[g] && lp.y[g] > 0 {
			y[g] = lp.y[g]
		} else {
			y[g] = 0
		}
	}
	for j, ok := range lp.alive {
		if !ok {
			continue
		}
		s := 0.0
		for _, g := range lp.cols[j] {
			s += y[g]
		}
		if d := lp.price[j] - s; d > 0 {
			y[lp.cols[j][0]] += d
		}
	}
	b := 0.0
	for _, v := range y {
		b += v
	}
	return b
}

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
	// ReducedCostTol is the reduced cost beyond which a nonbasic variable
	// counts as dual infeasible at its current bound.
	ReducedCostTol = 1e-9
	// PivotTol is the smallest pivot element accepted in the ratio test.
	PivotTol = 1e-9
	// IntegralityTol is how far from 0 or 1 an LP value may be and still
	// count as integral.
	IntegralityTol = 1e-6
	// primalTol is how far a basic variable may lie outside its bounds and
	// still count as feasible.
	primalTol = 1e-9
	// harrisTol is the dual infeasibility the Harris ratio test may
	// tolerate in exchange for a larger, more stable pivot element.
	harrisTol = 1e-9
	// driftTol is the largest disagreement between the pivot element
	// computed from the pivot row and from the pivot column before the
	// basis inverse is recomputed from scratch.
	driftTol = 1e-7
	// dropTol is the magnitude below which an entry of the pivot row of
	// the basis inverse, or of the pivot column, is taken to be a rounding
	// error and zeroed. The pivot row is the only source of fill-in in the
	// inverse, so this keeps the inverse sparse.
	dropTol = 1e-12
	// minWeight keeps the dual steepest-edge weights, squared norms of
	// rows of the inverse, positive in spite of rounding.
	minWeight = 1e-12
	// refactorEvery is how many updates of the basis inverse are made
	// before it is recomputed from scratch.
	refactorEvery = 1000
	// blandAfter is how many consecutive dual-degenerate pivots switch the
	// choice of leaving and entering variables to Bland's rule, which
	// cannot cycle.
	blandAfter = 30
)

// packLP is the LP relaxation of a set-packing problem in bounded form,
//
//	maximise Σ c_j x_j  subject to  Σ_{j: g ∈ S_j} x_j + s_g = 1,
//	0 ≤ x_j ≤ u_j,  0 ≤ s_g ≤ 1,
//
// with u_j = 1 for an alive column and u_j = 0 for a removed one. The upper
// bounds 1 are implied by the rows, so for alive columns this is the
// packing relaxation itself.
//
// It is solved by a bounded dual simplex with an explicit dense basis
// inverse. Because every variable is boxed, any basis is made dual feasible
// by putting each nonbasic variable at the bound its reduced cost favours,
// so solve needs no phase 1 whatever happened to alive since the last call.
// A child node only removes columns (u_j drops to 0): the parent's optimal
// basis stays dual feasible, only the removed basic columns become primal
// infeasible, and the dual simplex drives them out in a few pivots. Every
// iterate is dual feasible, so an early stop still leaves duals whose
// repaired bound (dualBound) is no worse than the dual objective reached.
type packLP struct {
	m, n   int
	cols   [][]int      // goods of each structural column
	price  []float64    // bid prices
	alive  []bool       // columns not removed at this node
	basis  []int        // variable basic in each row; n+g is the slack of row g
	pos    []int        // row of each basic variable, -1 if nonbasic
	upper  []bool       // a nonbasic variable sits at its upper bound
	binv   []float64    // m×m basis inverse, row major
	xb     []float64    // values of the basic variables
	w      []float64    // squared norms of the rows of binv (dual steepest edge)
	y      []float64    // duals c_B B^{-1}
	d      []float64    // reduced costs c_v - y·a_v, maintained within solve
	row    []float64    // scratch: pivot row entries of the nonbasic variables
	col    []float64    // scratch: pivot column, or a right-hand side
	brk    []breakpoint // scratch: ratio-test candidates
	nz     []int        // scratch: nonzero columns of the pivot row of binv
	fnz    []int        // scratch: nonzero rows of a right-hand side
	byGood [][]int      // structural columns using each good
	// Scratch, rebuilt by each solve: the alive columns of each good
	// g are aliveByGood[abgStart[g]:abgStart[g+1]]; the pivot row's
	// entries are valid in row for the variables in touched, those whose
	// mark equals stamp.
	aliveByGood []int
	abgStart    []int
	mark        []int
	stamp       int
	touched     []int
	etas        int
	pivots      int
	// cutoff stops solve early, once the LP's bound is certainly at or
	// below it (see solve); -Inf: never.
	cutoff float64
	yb     []float64 // scratch: repaired duals of the cutoff test
}

func newPackLP(m int, cols [][]int, price []float64) *packLP {
	n := len(cols)
	lp := &packLP{m: m, n: n, cols: cols, price: price,
		alive: make([]bool, n), basis: make([]int, m), pos: make([]int, n+m),
		upper: make([]bool, n+m), binv: make([]float64, m*m), xb: make([]float64, m),
		w: make([]float64, m),
		y: make([]float64, m), cutoff: math.Inf(-1)}
	lp.byGood = make([][]int, m)
	for j, c := range cols {
		lp.alive[j] = true
		for _, g := range c {
			lp.byGood[g] = append(lp.byGood[g], j)
		}
	}
	lp.reset()
	return lp
}

func (lp *packLP) clone() *packLP {
	c := *lp
	c.alive = append([]bool(nil), lp.alive...)
	c.basis = append([]int(nil), lp.basis...)
	c.pos = append([]int(nil), lp.pos...)
	c.upper = append([]bool(nil), lp.upper...)
	c.binv = append([]float64(nil), lp.binv...)
	c.xb = append([]float64(nil), lp.xb...)
	c.w = append([]float64(nil), lp.w...)
	c.y = append([]float64(nil), lp.y...)
	c.d, c.row, c.col, c.brk, c.nz, c.fnz, c.yb = nil, nil, nil, nil, nil, nil, nil
	c.aliveByGood, c.abgStart, c.mark, c.touched = nil, nil, nil, nil
	return &c
}

// cost is the objective coefficient of variable v (slacks cost nothing).
func (lp *packLP) cost(v int) float64 {
	if v >= lp.n {
		return 0
	}
	return lp.price[v]
}

// ub is the upper bound of variable v.
func (lp *packLP) ub(v int) float64 {
	if v < lp.n && !lp.alive[v] {
		return 0
	}
	return 1
}

// value is the value of nonbasic variable v.
func (lp *packLP) value(v int) float64 {
	if lp.upper[v] {
		return lp.ub(v)
	}
	return 0
}

// computeDuals sets y = c_B B^{-1}.
func (lp *packLP) computeDuals() {
	m := lp.m
	clear(lp.y)
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

// reprice recomputes the duals and reduced costs from the basis inverse and
// moves every nonbasic variable to the bound its reduced cost favours,
// which makes the basis dual feasible; then it recomputes the basic values.
func (lp *packLP) reprice() {
	lp.computeDuals()
	for v := range lp.d {
		if lp.pos[v] >= 0 {
			lp.d[v] = 0
			continue
		}
		d := lp.reducedCost(v)
		lp.d[v] = d
		if d > ReducedCostTol {
			lp.upper[v] = true
		} else if d < -ReducedCostTol {
			lp.upper[v] = false
		}
	}
	lp.computePrimal()
}

// computePrimal sets x_B = B^{-1}(1 - Σ_{nonbasic v} a_v x_v).
func (lp *packLP) computePrimal() {
	m := lp.m
	rhs := lp.col
	for g := range rhs {
		rhs[g] = 1
	}
	for v, up := range lp.upper {
		if !up || lp.pos[v] >= 0 {
			continue
		}
		x := lp.ub(v)
		if x == 0 {
			continue
		}
		if v >= lp.n {
			rhs[v-lp.n] -= x
			continue
		}
		for _, g := range lp.cols[v] {
			rhs[g] -= x
		}
	}
	for i := 0; i < m; i++ {
		lp.xb[i] = floats.Dot(lp.binv[i*m:(i+1)*m], rhs)
	}
}

// refactor recomputes the basis inverse from scratch.
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
		row := lp.binv[i*m : (i+1)*m]
		for g := range row {
			row[g] = inv.At(i, g)
		}
		lp.w[i] = floats.Dot(row, row)
	}
	lp.etas = 0
	return true
}

// reset returns to the all-slack basis, used when a refactorisation fails.
func (lp *packLP) reset() {
	m := lp.m
	for v := range lp.pos {
		lp.pos[v] = -1
		lp.upper[v] = false
	}
	clear(lp.binv)
	for g := 0; g < m; g++ {
		lp.basis[g] = lp.n + g
		lp.pos[lp.n+g] = g
		lp.binv[g*m+g] = 1
		lp.xb[g] = 1
		lp.w[g] = 1
	}
	lp.etas = 0
}

// recover refactorises the basis inverse, falling back to the all-slack
// basis, and reprices.
func (lp *packLP) recover() {
	if !lp.refactor() {
		lp.reset()
	}
	lp.reprice()
}

// solve re-optimises from the current basis after any change of alive. It
// returns false if it stopped at lp.cutoff, hit the iteration limit or the
// LP misbehaved numerically; the duals then belong to a dual-feasible basis
// (up to tolerance) and bound the LP after repair (at or below the cutoff
// when it stopped there), but the primal values are not optimal.
func (lp *packLP) solve(maxPivots int) bool {
	m, n := lp.m, lp.n
	if len(lp.d) != n+m {
		lp.d = make([]float64, n+m)
		lp.row = make([]float64, n+m)
		lp.col = make([]float64, m)
		lp.abgStart = make([]int, m+1)
		lp.mark = make([]int, n+m)
		lp.yb = make([]float64, m)
	}
	lp.indexAlive()
	lp.reprice()
	degenerate := 0
	failures := 0
	nextCheck := 0
	for it := 0; ; it++ {
		bland := degenerate >= blandAfter
		// Leaving variable: the basic variable furthest outside its
		// bounds (Bland: the lowest-numbered one outside them).
		r, worst := -1, 0.0
		for i, v := range lp.basis {
			x := lp.xb[i]
			inf := -x
			if u := lp.ub(v); x > u {
				inf = x - u
			}
			if inf <= primalTol {
				continue
			}
			if bland {
				if r < 0 || v < lp.basis[r] {
					r = i
				}
			} else if sc := inf * inf / lp.w[i]; sc > worst {
				r, worst = i, sc
			}
		}
		if r < 0 {
			lp.computeDuals()
			return true
		}
		if it >= maxPivots {
			break
		}
		// Every iterate is dual feasible, so its dual objective, the
		// primal objective of the basic solution, bounds the LP and only
		// falls. Once it is at or below the cutoff the caller has no use
		// for the optimum: stop, after confirming with the repaired bound
		// that it, too, is below (rounding can make the running value
		// optimistic; then look again a few pivots later).
		if it >= nextCheck && lp.objective() <= lp.cutoff {
			lp.computeDuals()
			if lp.dualBound(lp.yb) <= lp.cutoff {
				return false
			}
			nextCheck = it + 10
		}
		p := lp.basis[r]
		toUpper := lp.xb[r] > lp.ub(p)
		target := 0.0
		if toUpper {
			target = lp.ub(p)
		}
		// Pivot row: alpha_v = (row r of B^{-1})·a_v, computed over the
		// nonzeros of row r, which is sparse, and the alive columns of
		// their goods. Candidates to enter are the nonbasic variables
		// whose move pushes x_p towards its bound: with s = +1 when x_p
		// must fall to its upper bound and -1 when it must rise to 0, a
		// variable at its lower bound with s·alpha_v > 0 or at its upper
		// bound with s·alpha_v < 0.
		rho := lp.binv[r*m : (r+1)*m]
		nz := lp.nz[:0]
		for g, x := range rho {
			if math.Abs(x) >= dropTol {
				nz = append(nz, g)
			} else {
				rho[g] = 0
			}
		}
		lp.nz = nz
		row := lp.row
		lp.stamp++
		touched := lp.touched[:0]
		for _, g := range nz {
			x := rho[g]
			row[n+g] = x
			touched = append(touched, n+g)
			for _, j := range lp.aliveByGood[lp.abgStart[g]:lp.abgStart[g+1]] {
				if lp.mark[j] != lp.stamp {
					lp.mark[j] = lp.stamp
					row[j] = 0
					touched = append(touched, j)
				}
				row[j] += x
			}
		}
		lp.touched = touched
		brk := lp.brk[:0]
		for _, v := range touched {
			if lp.pos[v] >= 0 {
				continue
			}
			a := row[v]
			sa := a
			if !toUpper {
				sa = -a
			}
			// dd ≥ 0 is the distance of d_v from the wrong sign.
			dd := -lp.d[v]
			if lp.upper[v] {
				sa, dd = -sa, -dd
			}
			if sa <= PivotTol {
				continue
			}
			brk = append(brk, breakpoint{v, max(dd, 0) / sa, sa})
		}
		lp.brk = brk
		if len(brk) == 0 {
			// No entering variable means the LP is infeasible, which a
			// packing LP is not: numerical trouble.
			if failures++; failures > 2 {
				break
			}
			lp.recover()
			continue
		}
		q, k := -1, 0
		if bland {
			// Exact ratio, ties to the lowest-numbered variable.
			best := 0.0
			for _, b := range brk {
				if q < 0 || b.t < best-1e-12 || (b.t <= best+1e-12 && b.v < q) {
					q, best = b.v, b.t
				}
			}
		} else {
			// Harris's two passes: among the breakpoints within harrisTol
			// of the first, the largest pivot element is the most stable.
			tmax := math.Inf(1)
			for _, b := range brk {
				tmax = min(tmax, b.t+harrisTol/b.a)
			}
			qi := -1
			for i, b := range brk {
				if b.t <= tmax && (qi < 0 || b.a > brk[qi].a) {
					qi = i
				}
			}
			// Bound flipping: the dual objective keeps falling past a
			// breakpoint as long as flipping that variable to its other
			// bound (a step of |alpha_v|·1 in x_p) leaves x_p outside its
			// bound, so such variables flip instead of entering.
			// Few are passed, so the breakpoints are ordered by
			// selection rather than sorted.
			if slope := math.Abs(lp.xb[r] - target); slope-brk[qi].a > primalTol {
				for ; k < len(brk)-1; k++ {
					lo := k
					for i := k + 1; i < len(brk); i++ {
						if brk[i].t < brk[lo].t {
							lo = i
						}
					}
					brk[k], brk[lo] = brk[lo], brk[k]
					if slope-brk[k].a <= primalTol {
						break
					}
					slope -= brk[k].a
				}
				qi = k
				for i := k + 1; i < len(brk); i++ {
					if brk[i].t <= brk[k].t+harrisTol && brk[i].a > brk[qi].a {
						qi = i
					}
				}
			}
			q = brk[qi].v
			if k > 0 {
				lp.flip(brk[:k])
			}
		}
		arq := row[q]
		thetaD := lp.d[q] / arq
		if math.Abs(thetaD) <= 1e-12 {
			degenerate++
		} else {
			degenerate = 0
		}
		// Update the reduced costs with the pivot row before it is
		// overwritten by the pivot column.
		for _, v := range touched {
			if lp.pos[v] < 0 {
				lp.d[v] -= thetaD * row[v]
			}
		}
		lp.d[q] = 0
		lp.d[p] = -thetaD
		col := lp.column(q)
		piv := col[r]
		if math.Abs(piv-arq) > driftTol*(1+math.Abs(arq)) {
			if failures++; failures > 2 {
				break
			}
			lp.recover()
			continue
		}
		delta := (lp.xb[r] - target) / piv
		xq := lp.value(q)
		for i, a := range col {
			if math.Abs(a) < dropTol {
				col[i] = 0
				continue
			}
			lp.xb[i] -= delta * a
		}
		lp.xb[r] = xq + delta
		// y' = y + theta_d·(row r of B^{-1}) zeroes the entering reduced
		// cost and keeps the other basic ones at zero. The inverse is
		// updated only in the columns where its pivot row is nonzero,
		// together with the squared row norms.
		prow := rho
		wr := 0.0
		for _, g := range nz {
			lp.y[g] += thetaD * prow[g]
			prow[g] /= piv
			wr += prow[g] * prow[g]
		}
		lp.w[r] = wr
		for i, a := range col {
			if i == r || a == 0 {
				continue
			}
			lp.w[i] = max(lp.w[i]+axpyNorm(lp.binv[i*m:(i+1)*m], -a, prow, nz), minWeight)
		}
		lp.pos[p] = -1
		lp.upper[p] = toUpper
		lp.basis[r] = q
		lp.pos[q] = r
		lp.upper[q] = false
		lp.pivots++
		lp.etas++
		if lp.etas >= refactorEvery {
			lp.recover()
		}
	}
	lp.computeDuals()
	return false
}

// objective is the dual objective of the current basis, Σ y plus the
// reduced costs of the variables at their upper bound, from the running
// duals and reduced costs.
func (lp *packLP) objective() float64 {
	z := 0.0
	for _, y := range lp.y {
		z += y
	}
	for v, up := range lp.upper {
		if up && lp.pos[v] < 0 {
			z += lp.d[v] * lp.ub(v)
		}
	}
	return z
}

// indexAlive lists the alive columns of each good.
func (lp *packLP) indexAlive() {
	abg := lp.aliveByGood[:0]
	for g, js := range lp.byGood {
		lp.abgStart[g] = len(abg)
		for _, j := range js {
			if lp.alive[j] {
				abg = append(abg, j)
			}
		}
	}
	lp.abgStart[lp.m] = len(abg)
	lp.aliveByGood = abg
}

// axpyNorm sets b[g] += a·p[g] for g in nz and returns the change in
// Σ b[g]². Two accumulators halve the dependency chain of the sum.
func axpyNorm(b []float64, a float64, p []float64, nz []int) float64 {
	var d0, d1 float64
	k := 0
	for ; k+1 < len(nz); k += 2 {
		g0, g1 := nz[k], nz[k+1]
		o0, o1 := b[g0], b[g1]
		x0, x1 := o0+a*p[g0], o1+a*p[g1]
		b[g0], b[g1] = x0, x1
		d0 += (x0 - o0) * (x0 + o0)
		d1 += (x1 - o1) * (x1 + o1)
	}
	if k < len(nz) {
		g := nz[k]
		o := b[g]
		x := o + a*p[g]
		b[g] = x
		d0 += (x - o) * (x + o)
	}
	return d0 + d1
}

// breakpoint is a candidate of the dual ratio test: variable v, the dual
// step t at which its reduced cost changes sign, and |alpha_v| > 0.
type breakpoint struct {
	v    int
	t, a float64
}

// flip moves the nonbasic variables of bs to their other bound and updates
// the basic values.
func (lp *packLP) flip(bs []breakpoint) {
	m, n := lp.m, lp.n
	delta := lp.col
	clear(delta)
	for _, b := range bs {
		dx := lp.ub(b.v)
		if lp.upper[b.v] {
			dx = -dx
		}
		lp.upper[b.v] = !lp.upper[b.v]
		if b.v >= n {
			delta[b.v-n] += dx
			continue
		}
		for _, g := range lp.cols[b.v] {
			delta[g] += dx
		}
	}
	nz := lp.fnz[:0]
	for g, x := range delta {
		if x != 0 {
			nz = append(nz, g)
		}
	}
	lp.fnz = nz
	for i := 0; i < m; i++ {
		row := lp.binv[i*m : (i+1)*m]
		s := 0.0
		for _, g := range nz {
			s += row[g] * delta[g]
		}
		lp.xb[i] -= s
	}
}

// column returns the pivot column B^{-1} a_q, in scratch storage.
func (lp *packLP) column(q int) []float64 {
	m, n := lp.m, lp.n
	col := lp.col
	for i := 0; i < m; i++ {
		row := lp.binv[i*m : (i+1)*m]
		if q >= n {
			col[i] = row[q-n]
			continue
		}
		s := 0.0
		for _, g := range lp.cols[q] {
			s += row[g]
		}
		col[i] = s
	}
	return col
}

// x returns the primal value of structural column j.
func (lp *packLP) x(j int) float64 {
	if i := lp.pos[j]; i >= 0 {
		return lp.xb[i]
	}
	return lp.value(j)
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

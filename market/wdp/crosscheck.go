package wdp

import (
	"log/slog"
	"math"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize/convex/lp"
)

// gonumRelaxation solves the LP relaxation of a packing problem with gonum's
// dense simplex, starting from the all-slack basis (feasible, so no phase 1).
// The packing LP is always feasible (x = 0) and bounded (x ≤ 1 is implied),
// so an infeasible or unbounded answer is a solver misreport, as in gonum
// issue #1914; it is returned as ErrLP.
func gonumRelaxation(m int, cols [][]int, price []float64, alive []bool) (float64, error) {
	var idx []int
	for j, ok := range alive {
		if ok {
			idx = append(idx, j)
		}
	}
	n := len(idx)
	if n == 0 {
		return 0, nil
	}
	A := mat.NewDense(m, n+m, nil)
	c := make([]float64, n+m)
	b := make([]float64, m)
	basic := make([]int, m)
	for k, j := range idx {
		c[k] = -price[j]
		for _, g := range cols[j] {
			A.Set(g, k, 1)
		}
	}
	for g := 0; g < m; g++ {
		A.Set(g, n+g, 1)
		b[g] = 1
		basic[g] = n + g
	}
	opt, x, err := lp.Simplex(c, A, b, 0, basic)
	if err != nil {
		return math.NaN(), errLP(err)
	}
	// Check primal feasibility of the reported optimum.
	for g := 0; g < m; g++ {
		s := 0.0
		for k := 0; k < n+m; k++ {
			s += A.At(g, k) * x[k]
		}
		if math.Abs(s-1) > 1e-6 {
			return math.NaN(), errLP(nil)
		}
	}
	return -opt, nil
}

func errLP(err error) error {
	if err == nil {
		return ErrLP
	}
	return &lpError{err}
}

type lpError struct{ err error }

func (e *lpError) Error() string   { return ErrLP.Error() + ": " + e.err.Error() }
func (e *lpError) Unwrap() []error { return []error{ErrLP, e.err} }

// crossCheck compares the root bound of the revised simplex with gonum's LP
// value. The bound in use stays the dual bound, which is valid by
// construction; a disagreement is logged, and a gonum failure falls back to
// it silently.
func (s *search) crossCheck(p *packLP, bound float64) {
	v, err := gonumRelaxation(s.m, s.cols, s.price, p.alive)
	if err != nil {
		slog.Debug("wdp: gonum LP failed; using the revised simplex bound", "err", err)
		return
	}
	if v > bound+1e-6*math.Max(1, math.Abs(bound)) {
		// A primal LP value above a dual-feasible bound is impossible:
		// gonum misreported. Keep the certified bound.
		slog.Debug("wdp: gonum LP value exceeds the dual bound", "gonum", v, "dual", bound)
	}
}

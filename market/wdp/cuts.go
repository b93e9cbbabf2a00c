package wdp

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Clique cuts strengthen the root LP relaxation. Bids that pairwise share
// a good form a clique of the conflict graph, and a packing holds at most
// one of them: Σ_{j∈C} x_j ≤ 1. A good's row is such a clique; a clique
// whose bids have no good in common (A on {1,2}, B on {2,3}, C on {1,3})
// cuts off fractional points the rows allow (x = ½ on each). A cut has the
// form of a good's row, so it is added as a virtual good in the cols of its
// bids: the LP, its duals, the bounds, the branching and the greedy
// packings need no other change, and every packing stays feasible.
//
// Each cut is a row of the dense basis inverse, so it slows every pivot.
// The cuts are kept only when they close at least cutKeepGap of the root's
// gap, between the LP bound and the best packing known at the root.
// Measured: on the market's 1,000 jobs × 100 providers batch they close
// 10 % (bound 20,282 → 20,227, optimum 20,199) and the search proves the
// optimum in 47 nodes where it did not in minutes; on CATS 200×1000 they
// close 1.4–2 % and grow the search by 40–80 % in time, so they are
// dropped there.
const (
	// cutViolationTol is how far Σ_{j∈C} x_j must exceed 1 for a clique
	// to be added as a cut.
	cutViolationTol = 1e-3
	// cutRounds bounds the separate-and-resolve rounds at the root.
	cutRounds = 8
	// cutSeeds bounds the fractional bids each round grows a clique from.
	cutSeeds = 400
	// cutKeepGap is the share of the root gap the cuts must close to be
	// kept; a first round that closes less than half of it ends the
	// separation (CATS 200×1000: about 1 %; the market batch: 9 %).
	cutKeepGap = 0.05
)

// maxCuts is the most virtual goods added to a search over m goods.
func maxCuts(m int) int { return m / 2 }

// addCliqueCuts solves the root LP lp, offers a packing rounded from it,
// and separates clique cuts: it adds the violated cliques found greedily as
// virtual goods and resolves, for up to cutRounds rounds. It returns the LP
// to search with: lp itself, solved, when no cut was found or the cuts
// closed too little of the gap (they are then taken out again).
func (s *search) addCliqueCuts(lp *packLP) *packLP {
	m0 := s.m
	root := lp
	root.solve(50 * (s.m + s.n))
	x := make([]float64, s.n)
	best := s.roundRoot(root, x)
	bound0 := root.dualBound(make([]float64, s.m))
	seen := map[string]bool{}
	cnt := make([]int, s.n)
	budget := maxCuts(s.m)
	for round := 0; round < cutRounds && budget > 0; round++ {
		var frac []int
		for j := range x {
			x[j] = lp.x(j)
			if x[j] > IntegralityTol && x[j] < 1-IntegralityTol {
				frac = append(frac, j)
			}
		}
		sort.SliceStable(frac, func(a, b int) bool { return x[frac[a]] > x[frac[b]] })
		var cuts [][]int
		for i, seed := range frac {
			if i >= cutSeeds || len(cuts) >= budget {
				break
			}
			if c := s.clique(seed, frac, x, cnt); c != nil {
				if k := cliqueKey(c); !seen[k] {
					seen[k] = true
					cuts = append(cuts, c)
				}
			}
		}
		if len(cuts) == 0 {
			break
		}
		for _, c := range cuts {
			for _, j := range c {
				s.cols[j] = append(s.cols[j], s.m)
			}
			s.m++
		}
		budget -= len(cuts)
		lp = newPackLP(s.m, s.cols, s.price)
		lp.solve(50 * (s.m + s.n))
		// A first round that closes less than half the share needed is
		// not worth more rounds: the later ones close less.
		if round == 0 && bound0-lp.dualBound(make([]float64, s.m)) < cutKeepGap/2*(bound0-best) {
			break
		}
	}
	if s.m == m0 {
		return root
	}
	bound := lp.dualBound(make([]float64, s.m))
	if bound0-bound < cutKeepGap*(bound0-best) {
		for j, c := range s.cols {
			s.cols[j] = slices.DeleteFunc(c, func(g int) bool { return g >= m0 })
		}
		s.m = m0
		return root
	}
	s.cuts = s.m - m0
	return lp
}

// roundRoot offers the packing that rounds the solved root LP (the bids
// by decreasing x, as worker.round), filling x with the LP's values, and
// returns the better of its value and a greedy packing's by p/√|S|: the
// reference for the root gap, the same whatever bids the search's
// problems exclude (their warm starts are not).
func (s *search) roundRoot(lp *packLP, x []float64) float64 {
	alive := make([]bool, s.n)
	for j := range alive {
		alive[j] = true
		x[j] = lp.x(j)
	}
	w := s.w0
	best := 0.0
	for _, key := range []func(int) float64{
		func(j int) float64 { return x[j] + 1e-3*s.price[j]/math.Sqrt(float64(len(s.cols[j]))) },
		func(j int) float64 { return s.price[j] / math.Sqrt(float64(len(s.cols[j]))) },
	} {
		win := w.pack(w.rank(alive, key), nil, -1)
		s.offer(win)
		v := 0.0
		for _, j := range win {
			v += s.price[j]
		}
		best = math.Max(best, v)
	}
	return best
}

// clique grows a clique of the conflict graph from seed: first by the
// fractional bids in frac (ordered by decreasing x), then, when that is
// violated, by any bid that conflicts with all members, which strengthens
// the cut in the subtrees. It returns the clique when its x sum violates
// the cut, else nil. cnt is scratch of length s.n, left zero.
func (s *search) clique(seed int, frac []int, x []float64, cnt []int) []int {
	c := []int{seed}
	sum := x[seed]
	for _, k := range s.conflict[seed] {
		cnt[k]++
	}
	add := func(k int) {
		c = append(c, k)
		sum += x[k]
		for _, l := range s.conflict[k] {
			cnt[l]++
		}
	}
	for _, k := range frac {
		if cnt[k] == len(c) && !slices.Contains(c, k) {
			add(k)
		}
	}
	if sum > 1+cutViolationTol {
		for _, k := range s.conflict[seed] {
			if cnt[k] == len(c) && !slices.Contains(c, k) {
				add(k)
			}
		}
	}
	for _, k := range c {
		for _, l := range s.conflict[k] {
			cnt[l]--
		}
	}
	if sum <= 1+cutViolationTol {
		return nil
	}
	return c
}

func cliqueKey(c []int) string {
	c = slices.Clone(c)
	slices.Sort(c)
	var b strings.Builder
	for _, j := range c {
		b.WriteString(strconv.Itoa(j))
		b.WriteByte(',')
	}
	return b.String()
}

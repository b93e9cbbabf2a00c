package wdp

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Payments are VCG (Clarke pivot) payments of the winning bidders.
type Payments struct {
	// ByBidder maps each winning bidder to its payment; losers pay 0 and
	// are not listed.
	ByBidder map[string]float64 `json:"payments"`
	// Exact is false when a re-solve stopped at the time limit; payments
	// are then computed from the best solutions found and may be too low.
	Exact   bool    `json:"exact"`
	Nodes   int     `json:"nodes"`
	Seconds float64 `json:"seconds"`
}

// VCG computes Clarke-pivot payments for an optimal solution sol of in:
// bidder i pays W₋ᵢ - (W - vᵢ), the welfare the others lose because i takes
// part, where W is the optimal welfare, vᵢ the price of i's winning bids and
// W₋ᵢ the optimal welfare without i's bids. Since the winners without i are
// feasible for W₋ᵢ, 0 ≤ payment ≤ vᵢ (individual rationality). The
// re-solves are Without's, one group per winning bidder.
func VCG(ctx context.Context, in *Instance, sol *Solution, opts Options) (*Payments, error) {
	if sol == nil {
		return nil, fmt.Errorf("%w: nil solution", ErrInvalid)
	}
	won := map[string]float64{}
	var bidders []string
	for _, w := range sol.Winners {
		if w < 0 || w >= len(in.Bids) {
			return nil, fmt.Errorf("%w: winner %d out of range", ErrInvalid, w)
		}
		b := in.Bids[w].Bidder
		if _, ok := won[b]; !ok {
			bidders = append(bidders, b)
		}
		won[b] += in.Bids[w].Price
	}
	index := make(map[string]int, len(bidders))
	for k, b := range bidders {
		index[b] = k
	}
	groups := make([][]int, len(bidders))
	for j, b := range in.Bids {
		if k, ok := index[b.Bidder]; ok {
			groups[k] = append(groups[k], j)
		}
	}
	r, err := Without(ctx, in, sol, groups, opts)
	if err != nil {
		return nil, err
	}
	p := &Payments{ByBidder: make(map[string]float64, len(won)), Exact: r.Exact, Nodes: r.Nodes, Seconds: r.Seconds}
	for k, b := range bidders {
		v := won[b]
		pay := r.Objective[k] - (sol.Objective - v)
		// Clamp rounding noise into the range the theory guarantees.
		pay = math.Min(math.Max(pay, 0), v)
		if math.Abs(pay) < 1e-9 {
			pay = 0
		}
		p.ByBidder[b] = pay
	}
	return p, nil
}

// Resolves are the optimal objectives of an instance without each of
// several groups of bids.
type Resolves struct {
	// Objective holds, per group, the best objective found without the
	// group's bids: the optimum when Exact.
	Objective []float64 `json:"objective"`
	// Exact is false when sol was not optimal or a re-solve stopped at
	// the time limit; the objectives are then those of the best packings
	// found, so they may be too low.
	Exact   bool    `json:"exact"`
	Nodes   int     `json:"nodes"`
	Seconds float64 `json:"seconds"`
}

// Without re-solves in once per group of bids (indices into in.Bids), each
// time without that group's bids, given a solution sol of in (optimal for
// exact answers): the W₋ᵢ of VCG payments, where a group is a bidder's
// bids, or, in a market, every bid that uses one provider.
//
// The re-solves share work. Presolve runs once, removing a dominated bid
// only when its dominator can stand in for it in every re-solve (every
// group that holds the dominator holds the dominated bid too), and never a
// winner. Only components holding some of a group's winning bids change
// without it, so W₋ₖ = W - Σ_c W_c + Σ_c W_c₋ₖ over those components c,
// where W_c is sol's value in c; a group with no winning bid has W₋ₖ = W.
// When sol is optimal, W_c bounds every re-solve of c (they only lose
// bids), so a re-solve that finds a packing worth W_c stops there. Each
// component's re-solves are searched together in shared branch-and-bound
// trees (split across GOMAXPROCS / opts.Threads trees, each searched by
// opts.Threads workers), each re-solve warm-started with sol minus the
// group: a node is explored while its bound beats the incumbent of some
// re-solve, and every packing found improves every re-solve it is
// feasible for.
func Without(ctx context.Context, in *Instance, sol *Solution, groups [][]int, opts Options) (*Resolves, error) {
	if sol == nil {
		return nil, fmt.Errorf("%w: nil solution", ErrInvalid)
	}
	if _, ok := in.Value(sol.Winners); !ok {
		return nil, fmt.Errorf("%w: solution is not a feasible packing of the instance", ErrInvalid)
	}
	start := time.Now()
	ctx, cancel := withLimit(ctx, opts.TimeLimit)
	defer cancel()
	winner := make([]bool, len(in.Bids))
	for _, w := range sol.Winners {
		winner[w] = true
	}
	// inGroups[j]: the groups holding bid j, ascending, for presolve.
	inGroups := make([][]int, len(in.Bids))
	for k, g := range groups {
		for _, j := range g {
			if j < 0 || j >= len(in.Bids) {
				return nil, fmt.Errorf("%w: group %d names bid %d of %d", ErrInvalid, k, j, len(in.Bids))
			}
			if l := inGroups[j]; len(l) == 0 || l[len(l)-1] != k {
				inGroups[j] = append(inGroups[j], k)
			}
		}
	}
	keep := presolve(in, func(j, k int) bool {
		return !winner[k] && subsetSorted(inGroups[j], inGroups[k])
	})
	// One task per set of re-solves in a component.
	type task struct {
		comp   []int
		groups []int
		wc     float64 // sol's value in the component
		best   []float64
		nodes  int
		done   bool
	}
	var tasks []*task
	// Trees run side by side, each searched by opts.Threads workers: with
	// threads, fewer and larger shared trees, which repeat less work.
	workers := max(1, runtime.GOMAXPROCS(0)/max(1, opts.Threads))
	for _, c := range components(in, keep) {
		wc := 0.0
		var gs []int
		seen := map[int]bool{}
		for _, j := range c {
			if winner[j] {
				wc += in.Bids[j].Price
				for _, k := range inGroups[j] {
					if !seen[k] {
						seen[k] = true
						gs = append(gs, k)
					}
				}
			}
		}
		n := min(workers, len(gs))
		for g := 0; g < n; g++ {
			t := &task{comp: c, wc: wc}
			for k := g; k < len(gs); k += n {
				t.groups = append(t.groups, gs[k])
			}
			tasks = append(tasks, t)
		}
	}
	m := &meter{}
	stop := m.watch("vcg", len(tasks), opts, start)
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for _, t := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s := newSearch(ctx, in, t.comp, opts)
			s.meter = m
			ceiling := math.Inf(1)
			if sol.Optimal {
				ceiling = t.wc
			}
			for _, k := range t.groups {
				var excl, start []int
				for l, j := range t.comp {
					if slices.Contains(inGroups[j], k) {
						excl = append(excl, l)
					} else if winner[j] {
						start = append(start, l)
					}
				}
				s.addProblem(excl, start, ceiling)
			}
			s.run()
			for _, p := range s.probs {
				t.best = append(t.best, p.bestVal)
			}
			t.nodes, t.done = s.nodes, s.complete
			m.done.Add(1)
		}()
	}
	wg.Wait()
	stop()
	// W₋ₖ starts from W and swaps in each changed component's re-solve.
	r := &Resolves{Objective: make([]float64, len(groups)), Exact: sol.Optimal}
	for k := range groups {
		r.Objective[k] = sol.Objective
	}
	for _, t := range tasks {
		for i, k := range t.groups {
			r.Objective[k] += t.best[i] - t.wc
		}
		r.Nodes += t.nodes
		r.Exact = r.Exact && t.done
	}
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}

// subsetSorted reports whether the ascending list a is a subset of the
// ascending list b.
func subsetSorted(a, b []int) bool {
	i := 0
	for _, x := range a {
		for i < len(b) && b[i] < x {
			i++
		}
		if i == len(b) || b[i] != x {
			return false
		}
		i++
	}
	return true
}

// Report is the output of `accord auction solve`: the winner determination
// result and, when asked for, VCG payments. Its JSON form is a contract.
type Report struct {
	Objective float64            `json:"objective"`
	Winners   []int              `json:"winners"`
	Payments  map[string]float64 `json:"payments,omitempty"`
	Optimal   bool               `json:"optimal"`
	Gap       float64            `json:"gap"`
	Nodes     int                `json:"nodes"`
	Seconds   float64            `json:"seconds"`
}

// SolveReport solves in and, if vcg is set, computes payments; Optimal is
// then true only if the payments are exact too. Nodes and Seconds cover
// both, and so does opts.TimeLimit.
func SolveReport(ctx context.Context, in *Instance, vcg bool, opts Options) (*Report, error) {
	start := time.Now()
	ctx, cancel := withLimit(ctx, opts.TimeLimit)
	defer cancel()
	opts.TimeLimit = 0
	sol, err := Solve(ctx, in, opts)
	if err != nil {
		return nil, err
	}
	r := &Report{Objective: tidy(sol.Objective), Winners: sol.Winners, Optimal: sol.Optimal, Gap: sol.Gap, Nodes: sol.Nodes}
	if vcg {
		p, err := VCG(ctx, in, sol, opts)
		if err != nil {
			return nil, err
		}
		r.Payments = make(map[string]float64, len(p.ByBidder))
		for b, v := range p.ByBidder {
			r.Payments[b] = tidy(v)
		}
		r.Optimal = r.Optimal && p.Exact
		r.Nodes += p.Nodes
	}
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}

// tidy rounds v to 12 significant digits, removing the binary noise of
// summing decimal prices (12.5 + 0.1 printing as 12.600000000000001)
// (exact for prices of at most 12 significant digits).
func tidy(v float64) float64 {
	t, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 12, 64), 64)
	if err != nil {
		return v
	}
	return t
}

package wdp

import (
	"context"
	"fmt"
	"math"
	"runtime"
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
// feasible for W₋ᵢ, 0 ≤ payment ≤ vᵢ (individual rationality).
//
// The re-solves share work. Presolve runs once, removing a dominated bid
// only when its dominator can stand in for it in every re-solve (the
// dominator's bidder wins nothing, or is the dominated bid's own bidder),
// and never a winner. Only components holding some of i's winning bids
// change without i, so W₋ᵢ = W - Σ_c W_c + Σ_c W_c₋ᵢ over those components
// c, where W_c is sol's value in c. Each component's re-solves are searched
// together in shared branch-and-bound trees (split across GOMAXPROCS /
// opts.Threads trees, each searched by opts.Threads workers), each re-solve
// warm-started with sol minus i: a node is
// explored while its bound beats the incumbent of some re-solve, and every
// packing found improves every re-solve it is feasible for.
func VCG(ctx context.Context, in *Instance, sol *Solution, opts Options) (*Payments, error) {
	if sol == nil {
		return nil, fmt.Errorf("%w: nil solution", ErrInvalid)
	}
	if _, ok := in.Value(sol.Winners); !ok {
		return nil, fmt.Errorf("%w: solution is not a feasible packing of the instance", ErrInvalid)
	}
	start := time.Now()
	ctx, cancel := withLimit(ctx, opts.TimeLimit)
	defer cancel()
	won := map[string]float64{}
	winner := make([]bool, len(in.Bids))
	for _, w := range sol.Winners {
		won[in.Bids[w].Bidder] += in.Bids[w].Price
		winner[w] = true
	}
	keep := presolve(in, func(j, k int) bool {
		bj, bk := in.Bids[j].Bidder, in.Bids[k].Bidder
		_, wins := won[bj]
		return !winner[k] && (!wins || bj == bk)
	})
	// One task per group of re-solves in a component.
	type task struct {
		comp    []int
		bidders []string
		wc      float64 // sol's value in the component
		best    []float64
		nodes   int
		done    bool
	}
	var tasks []*task
	// Trees run side by side, each searched by opts.Threads workers: with
	// threads, fewer and larger shared trees, which repeat less work.
	workers := max(1, runtime.GOMAXPROCS(0)/max(1, opts.Threads))
	for _, c := range components(in, keep) {
		wc := 0.0
		var bidders []string
		seen := map[string]bool{}
		for _, j := range c {
			if winner[j] {
				wc += in.Bids[j].Price
				if b := in.Bids[j].Bidder; !seen[b] {
					seen[b] = true
					bidders = append(bidders, b)
				}
			}
		}
		groups := min(workers, len(bidders))
		for g := 0; g < groups; g++ {
			t := &task{comp: c, wc: wc}
			for k := g; k < len(bidders); k += groups {
				t.bidders = append(t.bidders, bidders[k])
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
			for _, b := range t.bidders {
				var excl, start []int
				for l, j := range t.comp {
					if in.Bids[j].Bidder == b {
						excl = append(excl, l)
					} else if winner[j] {
						start = append(start, l)
					}
				}
				s.addProblem(excl, start)
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
	// W₋ᵢ starts from W and swaps in each changed component's re-solve.
	without := make(map[string]float64, len(won))
	for b := range won {
		without[b] = sol.Objective
	}
	p := &Payments{ByBidder: make(map[string]float64, len(won)), Exact: sol.Optimal}
	for _, t := range tasks {
		for k, b := range t.bidders {
			without[b] += t.best[k] - t.wc
		}
		p.Nodes += t.nodes
		p.Exact = p.Exact && t.done
	}
	for b, v := range won {
		pay := without[b] - (sol.Objective - v)
		// Clamp rounding noise into the range the theory guarantees.
		pay = math.Min(math.Max(pay, 0), v)
		if math.Abs(pay) < 1e-9 {
			pay = 0
		}
		p.ByBidder[b] = pay
	}
	p.Seconds = time.Since(start).Seconds()
	return p, nil
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

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
// feasible for W₋ᵢ, 0 ≤ payment ≤ vᵢ (individual rationality). Each W₋ᵢ is
// solved in parallel, warm-started with sol minus i's bids.
func VCG(ctx context.Context, in *Instance, sol *Solution, opts Options) (*Payments, error) {
	if sol == nil {
		return nil, fmt.Errorf("%w: nil solution", ErrInvalid)
	}
	if _, ok := in.Value(sol.Winners); !ok {
		return nil, fmt.Errorf("%w: solution is not a feasible packing of the instance", ErrInvalid)
	}
	start := time.Now()
	won := map[string]float64{}
	var order []string
	for _, w := range sol.Winners {
		b := in.Bids[w].Bidder
		if _, ok := won[b]; !ok {
			order = append(order, b)
		}
		won[b] += in.Bids[w].Price
	}
	p := &Payments{ByBidder: make(map[string]float64, len(order)), Exact: sol.Optimal}
	type out struct {
		w     float64
		nodes int
		opt   bool
		err   error
	}
	res := make([]out, len(order))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for k, bidder := range order {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			sub, idx := in.without(bidder)
			back := make(map[int]int, len(idx))
			for n, o := range idx {
				back[o] = n
			}
			o := opts
			o.Incumbent = nil
			for _, w := range sol.Winners {
				if n, ok := back[w]; ok {
					o.Incumbent = append(o.Incumbent, n)
				}
			}
			s, err := Solve(ctx, sub, o)
			if err != nil {
				res[k] = out{err: err}
				return
			}
			res[k] = out{w: s.Objective, nodes: s.Nodes, opt: s.Optimal}
		}()
	}
	wg.Wait()
	for k, bidder := range order {
		r := res[k]
		if r.err != nil {
			return nil, fmt.Errorf("wdp: VCG re-solve without %s: %w", bidder, r.err)
		}
		p.Nodes += r.nodes
		p.Exact = p.Exact && r.opt
		pay := r.w - (sol.Objective - won[bidder])
		// Clamp rounding noise into the range the theory guarantees.
		pay = math.Min(math.Max(pay, 0), won[bidder])
		if math.Abs(pay) < 1e-9 {
			pay = 0
		}
		p.ByBidder[bidder] = pay
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
// both.
func SolveReport(ctx context.Context, in *Instance, vcg bool, opts Options) (*Report, error) {
	start := time.Now()
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

package wdp

import (
	"context"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"
)

// PruneTol is the absolute amount by which a node's upper bound must exceed
// the incumbent for the node to be explored. Prices are finite decimals, so
// an improvement smaller than this is treated as none; the reported gap is
// 0 only when every open node was closed this way.
const PruneTol = 1e-7

// Options tune Solve. The zero value solves to optimality with no limit.
type Options struct {
	// TimeLimit stops the search and returns the best solution found with
	// its gap; 0 means no limit.
	TimeLimit time.Duration
	// Incumbent optionally names a feasible set of bids (indices into the
	// instance) to start from, such as the main solution minus one bidder
	// when computing VCG payments.
	Incumbent []int
	// GonumMaxRows is the largest component (in goods) whose root LP is
	// also solved with gonum's dense lp.Simplex and cross-checked against
	// the bounded dual simplex (disagreements are logged). 0 disables the
	// check: lp.Simplex has no iteration limit and can cycle on degenerate
	// LPs (equal prices), so it is a debugging aid, not a default.
	GonumMaxRows int
}

// Solution is the result of winner determination.
type Solution struct {
	Objective float64 `json:"objective"`
	Winners   []int   `json:"winners"` // indices into Instance.Bids, ascending
	Optimal   bool    `json:"optimal"`
	// Gap is the absolute difference between the best upper bound and the
	// objective: 0 when Optimal.
	Gap        float64 `json:"gap"`
	Bound      float64 `json:"bound"`
	Nodes      int     `json:"nodes"`
	Components int     `json:"components"`
	Presolved  int     `json:"presolved"` // bids removed before the search
	Seconds    float64 `json:"seconds"`
}

// Solve determines the revenue-maximising set of non-conflicting bids.
// It is deterministic: the same instance gives the same winners. Cancelling
// ctx or reaching opts.TimeLimit returns the best solution found, with
// Optimal false and its gap; the error is non-nil only for invalid input.
func Solve(ctx context.Context, in *Instance, opts Options) (*Solution, error) {
	start := time.Now()
	if err := in.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := withLimit(ctx, opts.TimeLimit)
	defer cancel()
	keep := presolve(in, nil)
	sol := &Solution{Presolved: len(in.Bids) - len(keep)}
	comps := components(in, keep)
	sol.Components = len(comps)
	inc := make([]bool, len(in.Bids))
	for _, w := range opts.Incumbent {
		if w >= 0 && w < len(in.Bids) {
			inc[w] = true
		}
	}
	type result struct {
		win   []int
		bound float64
		nodes int
		opt   bool
	}
	res := make([]result, len(comps))
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for ci, c := range comps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s := newSearch(ctx, in, c, opts)
			var start []int // the caller's incumbent within this component
			for l, j := range c {
				if inc[j] {
					start = append(start, l)
				}
			}
			s.addProblem(nil, start)
			s.run()
			best := s.probs[0].best
			win := make([]int, 0, len(best))
			for _, j := range best {
				win = append(win, c[j])
			}
			res[ci] = result{win, s.upper(), s.nodes, s.complete}
		}()
	}
	wg.Wait()
	sol.Optimal = true
	for _, r := range res {
		sol.Winners = append(sol.Winners, r.win...)
		sol.Bound += r.bound
		sol.Nodes += r.nodes
		sol.Optimal = sol.Optimal && r.opt
	}
	sort.Ints(sol.Winners)
	if sol.Winners == nil {
		sol.Winners = []int{}
	}
	for _, w := range sol.Winners {
		sol.Objective += in.Bids[w].Price
	}
	if sol.Optimal {
		sol.Bound = sol.Objective
	} else if sol.Bound < sol.Objective {
		sol.Bound = sol.Objective
	}
	sol.Gap = sol.Bound - sol.Objective
	sol.Seconds = time.Since(start).Seconds()
	return sol, nil
}

// withLimit returns ctx bounded by the time limit d (0: no limit).
func withLimit(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}

type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }
func (b bitset) set(i int)   { b[i/64] |= 1 << (i % 64) }
func (b bitset) subset(of bitset) bool {
	for i, w := range b {
		if w&^of[i] != 0 {
			return false
		}
	}
	return true
}
func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// presolve returns the bids worth searching: positive price, and not
// dominated. Bid k is dominated by bid j when S_j ⊆ S_k and p_j ≥ p_k (ties
// broken by index): any packing using k stays feasible and no worse with j.
// When may is non-nil, k is removed only if may(j, k): VCG's re-solves
// exclude bidders, and j can stand in for k only where it is not excluded.
func presolve(in *Instance, may func(j, k int) bool) []int {
	n := len(in.Bids)
	sets := make([]bitset, n)
	for j, b := range in.Bids {
		sets[j] = newBitset(in.Goods)
		for _, g := range b.Goods {
			sets[j].set(g)
		}
	}
	// Index bids by good so that only bids sharing a good are compared.
	byGood := make([][]int, in.Goods)
	for j, b := range in.Bids {
		if b.Price > 0 {
			for _, g := range b.Goods {
				byGood[g] = append(byGood[g], j)
			}
		}
	}
	var keep []int
	for k, bk := range in.Bids {
		if bk.Price <= 0 {
			continue
		}
		dominated := false
		// A dominating bid shares every good of its own bundle with k, in
		// particular k's rarest good.
		rare := bk.Goods[0]
		for _, g := range bk.Goods {
			if len(byGood[g]) < len(byGood[rare]) {
				rare = g
			}
		}
		for _, j := range byGood[rare] {
			if j == k {
				continue
			}
			bj := in.Bids[j]
			if len(bj.Goods) > len(bk.Goods) || bj.Price < bk.Price {
				continue
			}
			if bj.Price == bk.Price && len(bj.Goods) == len(bk.Goods) && j > k {
				continue // identical: keep the first
			}
			if sets[j].subset(sets[k]) && (may == nil || may(j, k)) {
				dominated = true
				break
			}
		}
		if !dominated {
			keep = append(keep, k)
		}
	}
	return keep
}

// components splits the kept bids into groups that share no good, by
// union-find over goods; each group is solved independently.
func components(in *Instance, keep []int) [][]int {
	parent := make([]int, in.Goods)
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(x int) int {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	for _, j := range keep {
		g0 := find(in.Bids[j].Goods[0])
		for _, g := range in.Bids[j].Goods[1:] {
			if r := find(g); r != g0 {
				parent[r] = g0
			}
		}
	}
	idx := map[int]int{}
	var out [][]int
	for _, j := range keep {
		r := find(in.Bids[j].Goods[0])
		c, ok := idx[r]
		if !ok {
			c = len(out)
			idx[r] = c
			out = append(out, nil)
		}
		out[c] = append(out[c], j)
	}
	// Largest first so that the parallel workers finish together.
	slices.SortStableFunc(out, func(a, b []int) int { return len(b) - len(a) })
	return out
}

// problem is one objective searched in a shared tree: the best packing that
// uses none of the excluded bids. Winner determination has one problem that
// excludes nothing; VCG has one per winning bidder, excluding its bids.
type problem struct {
	excl    []int // local bids this problem may not use
	start   []int // a feasible warm start, local indices (nil: none)
	best    []int // local indices of the incumbent
	bestVal float64
	bound   float64 // this problem's bound at the current node (scratch)
}

// search is the branch-and-bound over one component. It searches for
// several problems at once: a node is explored while its bound exceeds the
// incumbent of some problem still active there, and every packing found is
// offered to each problem that may use it.
type search struct {
	ctx      context.Context
	n, m     int
	cols     [][]int // local goods of each local bid
	price    []float64
	conflict [][]int // bids sharing a good with each bid (excluding itself)
	probs    []*problem
	owner    []int     // the problem excluding each local bid, -1 if none
	open     []float64 // bounds of pending siblings along the DFS path
	nodes    int
	complete bool
	stopped  bool
	opts     Options
	y        []float64
	order    []int
	used     []bool // scratch: goods taken by a packing
	cnt      []int  // scratch: alive bids per good
}

func newSearch(ctx context.Context, in *Instance, comp []int, opts Options) *search {
	local := map[int]int{}
	s := &search{ctx: ctx, n: len(comp), opts: opts}
	for _, j := range comp {
		var c []int
		for _, g := range in.Bids[j].Goods {
			l, ok := local[g]
			if !ok {
				l = len(local)
				local[g] = l
			}
			c = append(c, l)
		}
		sort.Ints(c)
		s.cols = append(s.cols, c)
		s.price = append(s.price, in.Bids[j].Price)
	}
	s.m = len(local)
	byGood := make([][]int, s.m)
	for j, c := range s.cols {
		for _, g := range c {
			byGood[g] = append(byGood[g], j)
		}
	}
	s.conflict = make([][]int, s.n)
	mark := make([]int, s.n)
	for j := range mark {
		mark[j] = -1
	}
	for j, c := range s.cols {
		mark[j] = j
		for _, g := range c {
			for _, k := range byGood[g] {
				if mark[k] != j {
					mark[k] = j
					s.conflict[j] = append(s.conflict[j], k)
				}
			}
		}
	}
	s.y = make([]float64, s.m)
	s.used = make([]bool, s.m)
	s.cnt = make([]int, s.m)
	s.owner = make([]int, s.n)
	for j := range s.owner {
		s.owner[j] = -1
	}
	return s
}

// addProblem adds a problem that may not use the local bids excl, warm
// started from the local packing start when that is feasible and avoids
// excl.
func (s *search) addProblem(excl, start []int) {
	p := &problem{excl: excl}
	k := len(s.probs)
	s.probs = append(s.probs, p)
	for _, j := range excl {
		s.owner[j] = k
	}
	ok := s.feasible(start)
	for _, j := range start {
		ok = ok && s.owner[j] != k
	}
	if ok && start != nil {
		p.start = start
		s.offer(start)
	}
}

func (s *search) feasible(win []int) bool {
	clear(s.used)
	for _, j := range win {
		for _, g := range s.cols[j] {
			if s.used[g] {
				return false
			}
			s.used[g] = true
		}
	}
	return true
}

// offer records the packing win as the incumbent of every problem that may
// use it and that it improves.
func (s *search) offer(win []int) {
	v := 0.0
	for _, j := range win {
		v += s.price[j]
	}
next:
	for k, p := range s.probs {
		if !(v > p.bestVal+PruneTol/2 || (p.best == nil && len(win) > 0 && v >= p.bestVal)) {
			continue
		}
		for _, j := range win {
			if s.owner[j] == k {
				continue next
			}
		}
		p.bestVal = v
		p.best = append([]int(nil), win...)
	}
}

// rank returns the alive bids by descending key.
func (s *search) rank(alive []bool, key func(j int) float64) []int {
	if s.order == nil {
		s.order = make([]int, 0, s.n)
	}
	s.order = s.order[:0]
	for j := 0; j < s.n; j++ {
		if alive[j] {
			s.order = append(s.order, j)
		}
	}
	keys := make([]float64, s.n)
	for _, j := range s.order {
		keys[j] = key(j)
	}
	sort.SliceStable(s.order, func(a, b int) bool { return keys[s.order[a]] > keys[s.order[b]] })
	return s.order
}

// pack completes base greedily in the given order, skipping the bids that
// problem skip excludes (skip < 0: none).
func (s *search) pack(order, base []int, skip int) []int {
	clear(s.used)
	for _, j := range base {
		for _, g := range s.cols[j] {
			s.used[g] = true
		}
	}
	win := append([]int(nil), base...)
next:
	for _, j := range order {
		if skip >= 0 && s.owner[j] == skip {
			continue
		}
		for _, g := range s.cols[j] {
			if s.used[g] {
				continue next
			}
		}
		for _, g := range s.cols[j] {
			s.used[g] = true
		}
		win = append(win, j)
	}
	return win
}

// upper is the bound of the first problem: its incumbent when the search
// completed, else the largest bound of an unexplored subtree.
func (s *search) upper() float64 {
	best := s.probs[0].bestVal
	if s.complete {
		return best
	}
	ub := best
	for _, b := range s.open {
		ub = math.Max(ub, b)
	}
	return ub
}

func (s *search) run() {
	alive := make([]bool, s.n)
	for j := range alive {
		alive[j] = true
	}
	for _, key := range []func(int) float64{
		func(j int) float64 { return s.price[j] / math.Sqrt(float64(len(s.cols[j]))) },
		func(j int) float64 { return s.price[j] / float64(len(s.cols[j])) },
		func(j int) float64 { return s.price[j] },
	} {
		order := s.rank(alive, key)
		for k, p := range s.probs {
			s.offer(s.pack(order, nil, k))
			if p.start != nil {
				// Complete the warm start with the goods it leaves free
				// (in VCG: the goods of the removed bidder).
				s.offer(s.pack(order, p.start, k))
			}
		}
	}
	lp := newPackLP(s.m, s.cols, s.price)
	s.open = nil
	trivial := 0.0 // Σ prices bounds the root before its LP is solved
	for _, p := range s.price {
		trivial += p
	}
	active := make([]int, len(s.probs))
	for k := range active {
		active[k] = k
	}
	s.node(lp, alive, nil, 0, 0, trivial, active)
	s.complete = !s.stopped
}

// threshold is the smallest incumbent among the active problems: a bound
// at or below it closes the node for all of them.
func (s *search) threshold(active []int) float64 {
	t := math.Inf(1)
	for _, k := range active {
		t = math.Min(t, s.probs[k].bestVal)
	}
	return t
}

// problemBounds sets each active problem's bound at a node whose repaired
// duals s.y bound the alive bids by bound: a problem that excludes some
// alive bids need not pay for the goods only those bids use.
func (s *search) problemBounds(alive []bool, active []int, bound float64) {
	if len(active) == 1 && s.probs[active[0]].excl == nil {
		s.probs[active[0]].bound = bound
		return
	}
	clear(s.cnt)
	for j, ok := range alive {
		if ok {
			for _, g := range s.cols[j] {
				s.cnt[g]++
			}
		}
	}
	// Per problem: take its excluded bids out of the counts, subtract y
	// over the goods left unused (once each, marked in s.used), restore.
	clear(s.used)
	for _, k := range active {
		p := s.probs[k]
		p.bound = bound
		for _, j := range p.excl {
			if alive[j] {
				for _, g := range s.cols[j] {
					s.cnt[g]--
				}
			}
		}
		for _, j := range p.excl {
			if alive[j] {
				for _, g := range s.cols[j] {
					if s.cnt[g] == 0 && !s.used[g] {
						s.used[g] = true
						p.bound -= s.y[g]
					}
				}
			}
		}
		for _, j := range p.excl {
			if alive[j] {
				for _, g := range s.cols[j] {
					s.cnt[g]++
					s.used[g] = false
				}
			}
		}
	}
}

// stillOpen returns the active problems whose bound exceeds their incumbent.
func (s *search) stillOpen(active []int) []int {
	out := active[:0:0]
	for _, k := range active {
		if p := s.probs[k]; p.bound > p.bestVal+PruneTol {
			out = append(out, k)
		}
	}
	return out
}

// node explores the subproblem in which the bids in fixed are winners
// (worth fixedVal) and only alive bids may still win, for the active
// problems; lp is owned by it.
//
// inherited is the parent's bound; when the search stops before this node
// is solved, it is recorded in s.open so that the reported gap covers the
// unexplored subtree.
func (s *search) node(lp *packLP, alive []bool, fixed []int, fixedVal float64, depth int, inherited float64, active []int) {
	if !s.stopped && s.nodes&15 == 0 && s.ctx.Err() != nil {
		s.stopped = true
	}
	if s.stopped {
		s.open = append(s.open, inherited)
		return
	}
	if inherited <= s.threshold(active)+PruneTol {
		return // the incumbents improved since the parent was bounded
	}
	s.nodes++
	var bound float64
	for {
		copy(lp.alive, alive)
		lp.solve(50 * (s.m + s.n))
		bound = fixedVal + lp.dualBound(s.y)
		if depth == 0 && len(s.probs) == 1 && s.m <= s.opts.GonumMaxRows {
			s.crossCheck(lp, bound)
		}
		s.problemBounds(alive, active, bound)
		active = s.stillOpen(active)
		if len(active) == 0 {
			return
		}
		// One problem left: its excluded bids leave the subtree.
		killed := false
		if len(active) == 1 {
			for _, j := range s.probs[active[0]].excl {
				if alive[j] {
					if !killed {
						alive = append([]bool(nil), alive...)
						killed = true
					}
					alive[j] = false
				}
			}
		}
		if !killed {
			break
		}
	}
	// Integral LP optimum: it is the best completion of this node.
	frac := -1
	fscore := -1.0
	integral := true
	for j := 0; j < s.n; j++ {
		if !alive[j] {
			continue
		}
		x := lp.x(j)
		if x > IntegralityTol && x < 1-IntegralityTol {
			integral = false
			// Branch on the fractional bid closest to 1/2, preferring
			// valuable ones.
			sc := (0.5 - math.Abs(x-0.5)) * s.price[j]
			if sc > fscore {
				frac, fscore = j, sc
			}
		}
	}
	if integral {
		win := append([]int(nil), fixed...)
		for j := 0; j < s.n; j++ {
			if alive[j] && lp.x(j) > 1-IntegralityTol {
				win = append(win, j)
			}
		}
		if s.feasible(win) {
			s.offer(win)
			// The LP bound equals this value up to tolerance when the
			// duals are exact; otherwise keep searching below.
			if active = s.stillOpen(active); len(active) == 0 {
				return
			}
		}
	}
	// LP-guided rounding for better incumbents.
	order := s.rank(alive, func(j int) float64 { return lp.x(j) + 1e-3*s.price[j]/math.Sqrt(float64(len(s.cols[j]))) })
	if len(active) == 1 {
		s.offer(s.pack(order, fixed, active[0]))
	} else {
		s.offer(s.pack(order, fixed, -1))
		for _, k := range active {
			if s.probs[k].excl != nil {
				s.offer(s.pack(order, fixed, k))
			}
		}
	}
	if active = s.stillOpen(active); len(active) == 0 {
		return
	}
	// Reduced-cost fixing: with dual-feasible y and D = Σ y, any packing
	// using bid j is worth at most fixedVal + D - rc_j, which must beat the
	// incumbent of every active problem that may use j. need1 is the
	// largest margin bound - incumbent over the active problems (of
	// problem top), need2 the largest over the others.
	need1, need2, top := math.Inf(-1), math.Inf(-1), -1
	for _, k := range active {
		p := s.probs[k]
		g := p.bound - p.bestVal - PruneTol
		if g > need1 {
			need1, need2, top = g, need1, k
		} else if g > need2 {
			need2 = g
		}
	}
	alive = append([]bool(nil), alive...)
	for j := 0; j < s.n; j++ {
		if !alive[j] {
			continue
		}
		rc := -s.price[j]
		for _, g := range s.cols[j] {
			rc += s.y[g]
		}
		need := need1
		if s.owner[j] == top {
			need = need2
		}
		if rc >= need {
			alive[j] = false
		}
	}
	if frac < 0 || !alive[frac] {
		frac = -1
		for j := 0; j < s.n; j++ {
			if alive[j] {
				x := lp.x(j)
				sc := (0.5 - math.Abs(x-0.5) + 1e-6) * s.price[j]
				if sc > fscore || frac < 0 {
					frac, fscore = j, sc
				}
			}
		}
		if frac < 0 {
			return // nothing left to add: fixed is this node's only packing
		}
	}
	// Child x_frac = 1 first: a dive that finds incumbents. Problems that
	// exclude frac have no packing there.
	one := append([]bool(nil), alive...)
	one[frac] = false
	for _, k := range s.conflict[frac] {
		one[k] = false
	}
	oneActive := active
	if o := s.owner[frac]; o >= 0 {
		oneActive = make([]int, 0, len(active))
		for _, k := range active {
			if k != o {
				oneActive = append(oneActive, k)
			}
		}
	}
	if len(oneActive) > 0 {
		// Cheap bound before the child's LP: the node's repaired duals
		// stay dual-feasible for the child's bids, so fixing frac is worth
		// at most p_frac plus Σ y over the goods the remaining bids use.
		cheap := fixedVal + s.price[frac]
		clear(s.used)
		for j, ok := range one {
			if ok {
				for _, g := range s.cols[j] {
					if !s.used[g] {
						s.used[g] = true
						cheap += s.y[g]
					}
				}
			}
		}
		s.node(lp.clone(), one, append(fixed[:len(fixed):len(fixed)], frac), fixedVal+s.price[frac], depth+1, math.Min(bound, cheap), oneActive)
		if s.stopped {
			s.open = append(s.open, bound) // the x_frac = 0 child is unexplored
			return
		}
	}
	alive[frac] = false
	s.node(lp, alive, fixed, fixedVal, depth+1, bound, active)
}

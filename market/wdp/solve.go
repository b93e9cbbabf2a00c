package wdp

import (
	"context"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// PruneTol is the absolute amount by which a node's upper bound must exceed
// the incumbent for the node to be explored. Prices are finite decimals, so
// an improvement smaller than this is treated as none; the reported gap is
// 0 only when every open node was closed this way.
const PruneTol = 1e-7

// integralTol is the margin below a whole unit by which a node's bound must
// fall short of the incumbent + 1 to close it when every price is an
// integer (see search.gain). The rounding error of a bound, a sum over
// thousands of rows of duals no larger than the price total T, is about
// rows × T × 2⁻⁵², so the margin also grows by integralRelTol × T.
const (
	integralTol    = 1e-6
	integralRelTol = 1e-11
)

// maxIntegral is the largest price total for which integral prices are
// summed exactly in float64 (2⁵³), and so allow pruning by whole units.
const maxIntegral = 1 << 53

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
	// Threads is how many workers search each component's tree (0 or 1:
	// one). One worker is deterministic: the same instance gives the same
	// winners. Several workers share the tree and find the same optimal
	// value, but when packings tie they may return a different one of
	// them from run to run, and the nodes counted vary.
	Threads int
	// Progress, when set, is called every ProgressEvery (0: every 5 s)
	// while Solve or VCG runs, from a goroutine of its own, and never after
	// they return.
	Progress      func(Progress)
	ProgressEvery time.Duration
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
	Cuts       int     `json:"cuts"`      // clique cuts kept at the roots
	Seconds    float64 `json:"seconds"`
}

// Solve determines the revenue-maximising set of non-conflicting bids.
// With one thread (the default) it is deterministic: the same instance
// gives the same winners. Cancelling ctx or reaching opts.TimeLimit returns
// the best solution found, with Optimal false and its gap; the error is
// non-nil only for invalid input.
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
		cuts  int
		opt   bool
	}
	res := make([]result, len(comps))
	m := &meter{best: make([]atomic.Uint64, len(comps))}
	stop := m.watch("wdp", len(comps), opts, start)
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for ci, c := range comps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			s := newSearch(ctx, in, c, opts)
			s.meter, s.comp = m, ci
			var start []int // the caller's incumbent within this component
			for l, j := range c {
				if inc[j] {
					start = append(start, l)
				}
			}
			s.addProblem(nil, start, math.Inf(1))
			s.run()
			best := s.probs[0].best
			win := make([]int, 0, len(best))
			for _, j := range best {
				win = append(win, c[j])
			}
			res[ci] = result{win, s.upper(), s.nodes, s.cuts, s.complete}
			m.done.Add(1)
		}()
	}
	wg.Wait()
	stop()
	sol.Optimal = true
	for _, r := range res {
		sol.Winners = append(sol.Winners, r.win...)
		sol.Bound += r.bound
		sol.Nodes += r.nodes
		sol.Cuts += r.cuts
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
	excl    []int  // local bids this problem may not use
	banned  []bool // excl as a set over the local bids (nil: none)
	start   []int  // a feasible warm start, local indices (nil: none)
	best    []int  // local indices of the incumbent
	bestVal float64
	// cap is a known upper bound on the problem's optimum (+Inf: none):
	// in VCG, the component's optimal value, which no re-solve exceeds.
	// A problem whose incumbent reaches it is closed.
	cap float64
}

// search is the branch-and-bound over one component. It searches for
// several problems at once: a node is explored while its bound exceeds the
// incumbent of some problem still active there, and every packing found is
// offered to each problem that may use it.
//
// With Options.Threads > 1 several workers explore the tree: a worker that
// branches while another is idle hands it the x = 0 subtree. The workers
// share the incumbents and the open bounds, under mu; everything else they
// touch is their own.
type search struct {
	ctx      context.Context
	n, m     int
	cols     [][]int // local goods of each local bid
	price    []float64
	conflict [][]int // bids sharing a good with each bid (excluding itself)
	probs    []*problem
	owners   [][]int // the problems excluding each local bid
	// gain is how much a node's bound must exceed an incumbent for the
	// node to be explored: PruneTol, or 1 − integralTol when every price
	// is an integer, since every packing is then worth an integer and a
	// bound below incumbent + 1 leaves no better one (CBC's cutoff
	// increment). Market surpluses are integer minor units.
	gain float64
	opts Options
	w0   *worker // the first worker, also used outside the tree

	mu      sync.Mutex
	cond    *sync.Cond
	open    []float64 // bounds of the subtrees left unexplored by a stop (mu)
	tasks   []task    // subtrees waiting for a worker (mu)
	idle    int       // workers waiting for a task (mu)
	workers int
	stopped atomic.Bool

	nodes    int
	cuts     int // virtual goods added by addCliqueCuts
	complete bool

	meter *meter // progress counters shared with the caller
	comp  int    // this search's component, for meter.best
}

// splitBelow is the number of problems still open at a node at or below
// which the node is searched once per problem rather than shared (see
// worker.node). Measured on 200×1000 instances: 8 saves the most pivots.
const splitBelow = 8

// task is a subtree handed from one worker to another; see worker.node.
type task struct {
	lp        *packLP
	alive     []bool
	fixed     []int
	fixedVal  float64
	depth     int
	inherited float64
	active    []int
}

// worker is one thread of the search with its scratch space.
type worker struct {
	*search
	y     []float64
	order []int
	keys  []float64
	used  []bool    // goods taken by a packing
	cnt   []int     // alive bids per good
	bound []float64 // each problem's bound at the current node
	raw   []float64 // ... before its cap, for reduced-cost fixing
	inc   []float64 // a snapshot of the incumbents' values
	nodes int
}

func newSearch(ctx context.Context, in *Instance, comp []int, opts Options) *search {
	local := map[int]int{}
	s := &search{ctx: ctx, n: len(comp), opts: opts, meter: &meter{}}
	s.cond = sync.NewCond(&s.mu)
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
	s.owners = make([][]int, s.n)
	s.gain = PruneTol
	if integral(s.price) {
		total := 0.0
		for _, p := range s.price {
			total += p
		}
		s.gain = max(PruneTol, 1-integralTol-integralRelTol*total)
	}
	s.w0 = s.newWorker()
	return s
}

// integral reports whether every price is a whole number and their total
// is exact in float64.
func integral(price []float64) bool {
	sum := 0.0
	for _, p := range price {
		if p != math.Trunc(p) {
			return false
		}
		sum += math.Abs(p)
	}
	return sum < maxIntegral
}

func (s *search) newWorker() *worker {
	return &worker{search: s, y: make([]float64, s.m), used: make([]bool, s.m),
		cnt: make([]int, s.m), keys: make([]float64, s.n)}
}

// addProblem adds a problem that may not use the local bids excl, warm
// started from the local packing start when that is feasible and avoids
// excl, and whose optimum is known to be at most cap.
func (s *search) addProblem(excl, start []int, cap float64) {
	p := &problem{excl: excl, cap: cap}
	k := len(s.probs)
	s.probs = append(s.probs, p)
	if len(excl) > 0 {
		p.banned = make([]bool, s.n)
		for _, j := range excl {
			if !p.banned[j] {
				p.banned[j] = true
				s.owners[j] = append(s.owners[j], k)
			}
		}
	}
	ok := s.w0.feasible(start)
	for _, j := range start {
		ok = ok && !s.excludes(k, j)
	}
	if ok && start != nil {
		p.start = start
		s.offer(start)
	}
}

// excludes reports whether problem k may not use local bid j.
func (s *search) excludes(k, j int) bool {
	b := s.probs[k].banned
	return b != nil && b[j]
}

func (w *worker) feasible(win []int) bool {
	clear(w.used)
	for _, j := range win {
		for _, g := range w.cols[j] {
			if w.used[g] {
				return false
			}
			w.used[g] = true
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
	s.mu.Lock()
	defer s.mu.Unlock()
next:
	for k, p := range s.probs {
		if !(v > p.bestVal+PruneTol/2 || (p.best == nil && len(win) > 0 && v >= p.bestVal)) {
			continue
		}
		for _, j := range win {
			if s.excludes(k, j) {
				continue next
			}
		}
		p.bestVal = v
		p.best = append([]int(nil), win...)
		if k == 0 && s.comp < len(s.meter.best) {
			s.meter.best[s.comp].Store(math.Float64bits(v))
		}
	}
}

// snap copies the incumbents' values into w.inc.
func (w *worker) snap() {
	w.mu.Lock()
	for k, p := range w.probs {
		w.inc[k] = p.bestVal
	}
	w.mu.Unlock()
}

// rank returns the alive bids by descending key.
func (w *worker) rank(alive []bool, key func(j int) float64) []int {
	w.order = w.order[:0]
	for j := 0; j < w.n; j++ {
		if alive[j] {
			w.order = append(w.order, j)
		}
	}
	for _, j := range w.order {
		w.keys[j] = key(j)
	}
	sort.SliceStable(w.order, func(a, b int) bool { return w.keys[w.order[a]] > w.keys[w.order[b]] })
	return w.order
}

// pack completes base greedily in the given order, skipping the bids that
// problem skip excludes (skip < 0: none).
func (w *worker) pack(order, base []int, skip int) []int {
	clear(w.used)
	for _, j := range base {
		for _, g := range w.cols[j] {
			w.used[g] = true
		}
	}
	win := append([]int(nil), base...)
next:
	for _, j := range order {
		if skip >= 0 && w.excludes(skip, j) {
			continue
		}
		for _, g := range w.cols[j] {
			if w.used[g] {
				continue next
			}
		}
		for _, g := range w.cols[j] {
			w.used[g] = true
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
	w := s.w0
	alive := make([]bool, s.n)
	for j := range alive {
		alive[j] = true
	}
	for _, key := range []func(int) float64{
		func(j int) float64 { return s.price[j] / math.Sqrt(float64(len(s.cols[j]))) },
		func(j int) float64 { return s.price[j] / float64(len(s.cols[j])) },
		func(j int) float64 { return s.price[j] },
	} {
		order := w.rank(alive, key)
		for k, p := range s.probs {
			s.offer(w.pack(order, nil, k))
			if p.start != nil {
				// Complete the warm start with the goods it leaves free
				// (in VCG: the goods of the removed bidder).
				s.offer(w.pack(order, p.start, k))
			}
		}
	}
	lp := s.addCliqueCuts(newPackLP(s.m, s.cols, s.price))
	w.y, w.used, w.cnt = make([]float64, s.m), make([]bool, s.m), make([]int, s.m)
	trivial := 0.0 // Σ prices bounds the root before its LP is solved
	for _, p := range s.price {
		trivial += p
	}
	active := make([]int, len(s.probs))
	for k := range active {
		active[k] = k
	}
	s.workers = max(1, s.opts.Threads)
	s.tasks = []task{{lp: lp, alive: alive, inherited: trivial, active: active}}
	ws := []*worker{w}
	for len(ws) < s.workers {
		ws = append(ws, s.newWorker())
	}
	for _, w := range ws { // the problems are all added by now
		w.inc = make([]float64, len(s.probs))
		w.bound = make([]float64, len(s.probs))
		w.raw = make([]float64, len(s.probs))
	}
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				t, ok := s.take()
				if !ok {
					return
				}
				w.node(t)
			}
		}()
	}
	wg.Wait()
	for _, w := range ws {
		s.nodes += w.nodes
	}
	s.complete = !s.stopped.Load()
}

// take waits for a task; it returns false once the tasks are gone and
// every worker is idle, which ends the search.
func (s *search) take() (task, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idle++
	for len(s.tasks) == 0 && s.idle < s.workers {
		s.cond.Wait()
	}
	if len(s.tasks) == 0 {
		s.cond.Broadcast()
		return task{}, false
	}
	// Oldest first: the shallowest subtree is the largest piece of work.
	t := s.tasks[0]
	s.tasks = s.tasks[1:]
	s.idle--
	return t, true
}

// hungry reports whether a worker waits for a task that is not there.
func (s *search) hungry() bool {
	if s.workers < 2 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idle > len(s.tasks)
}

func (s *search) give(t task) {
	s.mu.Lock()
	s.tasks = append(s.tasks, t)
	s.mu.Unlock()
	s.cond.Signal()
}

func (s *search) leaveOpen(b float64) {
	s.mu.Lock()
	s.open = append(s.open, b)
	s.mu.Unlock()
}

// threshold is the smallest incumbent among the active problems: a bound
// at or below it closes the node for all of them.
func (w *worker) threshold(active []int) float64 {
	w.snap()
	t := math.Inf(1)
	for _, k := range active {
		t = math.Min(t, w.inc[k])
	}
	return t
}

// problemBounds sets each active problem's bound at a node whose repaired
// duals w.y bound the alive bids by bound: a problem that excludes some
// alive bids need not pay for the goods only those bids use.
func (w *worker) problemBounds(alive []bool, active []int, bound float64) {
	if len(active) == 1 && w.probs[active[0]].excl == nil {
		w.raw[active[0]] = bound
		w.bound[active[0]] = math.Min(bound, w.probs[active[0]].cap)
		return
	}
	clear(w.cnt)
	for j, ok := range alive {
		if ok {
			for _, g := range w.cols[j] {
				w.cnt[g]++
			}
		}
	}
	// Per problem: take its excluded bids out of the counts, subtract y
	// over the goods left unused (once each, marked in w.used), restore.
	clear(w.used)
	for _, k := range active {
		p := w.probs[k]
		w.bound[k] = bound
		for _, j := range p.excl {
			if alive[j] {
				for _, g := range w.cols[j] {
					w.cnt[g]--
				}
			}
		}
		for _, j := range p.excl {
			if alive[j] {
				for _, g := range w.cols[j] {
					if w.cnt[g] == 0 && !w.used[g] {
						w.used[g] = true
						w.bound[k] -= w.y[g]
					}
				}
			}
		}
		for _, j := range p.excl {
			if alive[j] {
				for _, g := range w.cols[j] {
					w.cnt[g]++
					w.used[g] = false
				}
			}
		}
		w.raw[k] = w.bound[k]
		w.bound[k] = math.Min(w.bound[k], p.cap)
	}
}

// stillOpen returns the active problems whose bound exceeds their incumbent.
func (w *worker) stillOpen(active []int) []int {
	w.snap()
	out := active[:0:0]
	for _, k := range active {
		if w.bound[k] > w.inc[k]+w.gain {
			out = append(out, k)
		}
	}
	return out
}

// node explores the subproblem t: the bids in t.fixed are winners (worth
// t.fixedVal), only alive bids may still win, for the active problems;
// t.lp is owned by it.
//
// t.inherited is the parent's bound; when the search stops before this
// node is solved, it is recorded in s.open so that the reported gap covers
// the unexplored subtree.
func (w *worker) node(t task) {
	if !w.enter(t) {
		return
	}
	bound, open := w.solveLP(&t)
	if !open {
		return
	}
	// A few problems left: search the subtree once per problem. Each
	// then drops its excluded bids, which tightens its LP, and stops its
	// LPs at its own incumbent; for so few, that saves more than sharing.
	if len(t.active) > 1 && len(t.active) <= splitBelow {
		w.splitProblems(t)
		return
	}
	frac, integral := w.branchCandidate(t)
	if integral && !w.offerIntegral(&t) {
		return
	}
	if !w.round(&t) {
		return
	}
	w.fixByReducedCost(&t)
	if frac < 0 || !t.alive[frac] {
		if frac = w.rebranchCandidate(t); frac < 0 {
			return // nothing left to add: fixed is this node's only packing
		}
	}
	w.branch(t, frac, bound)
}

// enter counts node t, or reports false when the search has stopped (the
// node is left open) or the incumbents improved since its parent was
// bounded (the node is closed).
func (w *worker) enter(t task) bool {
	if !w.stopped.Load() && w.nodes&15 == 0 && w.ctx.Err() != nil {
		w.stopped.Store(true)
	}
	if w.stopped.Load() {
		w.leaveOpen(t.inherited)
		return false
	}
	if t.inherited <= w.threshold(t.active)+w.gain {
		return false
	}
	w.nodes++
	w.meter.nodes.Add(1)
	return true
}

// solveLP bounds node t by its LP relaxation and drops the problems the
// bound closes. With one problem left, the bids it excludes leave the
// subtree and the LP is solved again. It returns the bound, and false when
// no problem is left open.
func (w *worker) solveLP(t *task) (bound float64, open bool) {
	for {
		copy(t.lp.alive, t.alive)
		// The node is closed for every active problem once the LP bound
		// is at or below their smallest incumbent: the LP may stop there.
		t.lp.cutoff = w.threshold(t.active) + w.gain - t.fixedVal
		t.lp.solve(50 * (w.m + w.n))
		bound = t.fixedVal + t.lp.dualBound(w.y)
		if t.depth == 0 && len(w.probs) == 1 && w.m <= w.opts.GonumMaxRows {
			w.crossCheck(t.lp, bound)
		}
		w.problemBounds(t.alive, t.active, bound)
		t.active = w.stillOpen(t.active)
		if len(t.active) == 0 {
			return bound, false
		}
		if !w.dropExcluded(t) {
			return bound, true
		}
	}
}

// dropExcluded takes the bids that t's one active problem excludes out of
// the subtree (on a copy of t.alive), reporting whether there were any.
func (w *worker) dropExcluded(t *task) bool {
	if len(t.active) != 1 {
		return false
	}
	killed := false
	for _, j := range w.probs[t.active[0]].excl {
		if t.alive[j] {
			if !killed {
				t.alive = append([]bool(nil), t.alive...)
				killed = true
			}
			t.alive[j] = false
		}
	}
	return killed
}

// splitProblems searches node t once per active problem, handing all but
// the last to waiting workers when there are some.
func (w *worker) splitProblems(t task) {
	bounds := make([]float64, len(t.active))
	for i, k := range t.active {
		bounds[i] = w.bound[k]
	}
	last := len(t.active) - 1
	for i, k := range t.active {
		sub := t // the last problem takes this node's LP, the others a copy
		sub.inherited, sub.active = bounds[i], []int{k}
		if i < last {
			sub.lp = t.lp.clone()
			if w.hungry() {
				w.give(sub)
				continue
			}
		}
		w.node(sub)
	}
}

// branchCandidate returns the fractional bid to branch on (the one
// closest to 1/2, preferring valuable ones; -1 when none), and whether the
// LP optimum is integral.
func (w *worker) branchCandidate(t task) (frac int, integral bool) {
	frac, integral = -1, true
	fscore := -1.0
	for j := 0; j < w.n; j++ {
		if !t.alive[j] {
			continue
		}
		x := t.lp.x(j)
		if x > IntegralityTol && x < 1-IntegralityTol {
			integral = false
			if sc := (0.5 - math.Abs(x-0.5)) * w.price[j]; sc > fscore {
				frac, fscore = j, sc
			}
		}
	}
	return frac, integral
}

// offerIntegral offers an integral LP optimum, the best completion of
// node t, and reports whether any problem is still open. The LP bound
// equals its value up to tolerance when the duals are exact; otherwise the
// search goes on below.
func (w *worker) offerIntegral(t *task) (open bool) {
	win := append([]int(nil), t.fixed...)
	for j := 0; j < w.n; j++ {
		if t.alive[j] && t.lp.x(j) > 1-IntegralityTol {
			win = append(win, j)
		}
	}
	if !w.feasible(win) {
		return true
	}
	w.offer(win)
	t.active = w.stillOpen(t.active)
	return len(t.active) > 0
}

// round offers packings from LP-guided rounding, for better incumbents,
// and reports whether any problem is still open.
func (w *worker) round(t *task) (open bool) {
	lp := t.lp
	order := w.rank(t.alive, func(j int) float64 { return lp.x(j) + 1e-3*w.price[j]/math.Sqrt(float64(len(w.cols[j]))) })
	if len(t.active) == 1 {
		w.offer(w.pack(order, t.fixed, t.active[0]))
	} else {
		w.offer(w.pack(order, t.fixed, -1))
		for _, k := range t.active {
			if w.probs[k].excl != nil {
				w.offer(w.pack(order, t.fixed, k))
			}
		}
	}
	t.active = w.stillOpen(t.active)
	return len(t.active) > 0
}

// fixByReducedCost takes out of t (on a copy of t.alive) the bids that
// cannot be in a packing better than the incumbents. With dual-feasible y
// and D = Σ y, any packing using bid j is worth at most fixedVal + D - rc_j,
// which must beat the incumbent of every active problem that may use j.
// need1 is the largest margin bound - incumbent over the active problems
// (of problem top), need2 the largest over the others.
func (w *worker) fixByReducedCost(t *task) {
	need1, need2, top := math.Inf(-1), math.Inf(-1), -1
	for _, k := range t.active {
		g := w.raw[k] - w.inc[k] - w.gain
		if g > need1 {
			need1, need2, top = g, need1, k
		} else if g > need2 {
			need2 = g
		}
	}
	t.alive = append([]bool(nil), t.alive...)
	for j := 0; j < w.n; j++ {
		if !t.alive[j] {
			continue
		}
		rc := -w.price[j]
		for _, g := range w.cols[j] {
			rc += w.y[g]
		}
		need := need1
		if top >= 0 && w.excludes(top, j) {
			need = w.needWithout(t.active, j, need2)
		}
		if rc >= need {
			t.alive[j] = false
		}
	}
}

// needWithout is the largest margin bound - incumbent over the active
// problems that may use local bid j (-Inf: none), given need2, the
// largest over all but the one with the largest margin, which excludes j.
// A bid in only one problem's exclusions, the usual case, takes need2.
func (w *worker) needWithout(active []int, j int, need2 float64) float64 {
	if len(w.owners[j]) <= 1 {
		return need2
	}
	need := math.Inf(-1)
	for _, k := range active {
		if !w.excludes(k, j) {
			need = math.Max(need, w.raw[k]-w.inc[k]-w.gain)
		}
	}
	return need
}

// rebranchCandidate picks a bid to branch on when the fractional one was
// fixed: the alive bid closest to 1/2, preferring valuable ones; -1 when
// no bid is alive.
func (w *worker) rebranchCandidate(t task) int {
	frac, fscore := -1, 0.0
	for j := 0; j < w.n; j++ {
		if t.alive[j] {
			sc := (0.5 - math.Abs(t.lp.x(j)-0.5) + 1e-6) * w.price[j]
			if sc > fscore || frac < 0 {
				frac, fscore = j, sc
			}
		}
	}
	return frac
}

// branch searches node t's children on bid frac: x_frac = 1 first, a dive
// that finds incumbents (problems that exclude frac have no packing
// there), then x_frac = 0, which a waiting worker takes when there is one.
// t.alive is this node's own copy.
func (w *worker) branch(t task, frac int, bound float64) {
	one := append([]bool(nil), t.alive...)
	one[frac] = false
	for _, k := range w.conflict[frac] {
		one[k] = false
	}
	oneActive := t.active
	if len(w.owners[frac]) > 0 {
		oneActive = make([]int, 0, len(t.active))
		for _, k := range t.active {
			if !w.excludes(k, frac) {
				oneActive = append(oneActive, k)
			}
		}
	}
	t.alive[frac] = false
	zero := task{t.lp, t.alive, t.fixed, t.fixedVal, t.depth + 1, bound, t.active}
	if len(oneActive) > 0 {
		fixedVal := t.fixedVal + w.price[frac]
		cheap := w.cheapBound(one, fixedVal)
		oneLP := t.lp.clone() // before another worker may take t.lp
		handed := w.hungry()
		if handed {
			w.give(zero)
		}
		w.node(task{oneLP, one, append(t.fixed[:len(t.fixed):len(t.fixed)], frac), fixedVal, t.depth + 1, math.Min(bound, cheap), oneActive})
		if handed {
			return
		}
		if w.stopped.Load() {
			w.leaveOpen(bound) // the x_frac = 0 child is unexplored
			return
		}
	}
	w.node(zero)
}

// cheapBound bounds a child with the bids alive before its LP is solved:
// the node's repaired duals stay dual-feasible for the child's bids, so it
// is worth at most fixedVal plus Σ y over the goods those bids use.
func (w *worker) cheapBound(alive []bool, fixedVal float64) float64 {
	cheap := fixedVal
	clear(w.used)
	for j, ok := range alive {
		if ok {
			for _, g := range w.cols[j] {
				if !w.used[g] {
					w.used[g] = true
					cheap += w.y[g]
				}
			}
		}
	}
	return cheap
}

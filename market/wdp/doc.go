// Package wdp solves the winner-determination problem of a combinatorial
// auction exactly, and computes VCG payments.
//
// # The problem
//
// Given goods G = {0, …, N−1} and bids j = 1…n, each a bundle Sⱼ ⊆ G at a
// price pⱼ ≥ 0, choose bids that share no good with maximum total price:
//
//	maximise   Σⱼ pⱼ xⱼ
//	subject to Σ_{j: g ∈ Sⱼ} xⱼ ≤ 1   for every good g
//	           xⱼ ∈ {0, 1}
//
// a weighted set-packing integer program (NP-hard). Its LP relaxation
// (0 ≤ xⱼ, the bound xⱼ ≤ 1 being implied) has the dual
//
//	minimise Σ_g y_g  subject to  Σ_{g ∈ Sⱼ} y_g ≥ pⱼ,  y ≥ 0,
//
// and by weak duality Σ_g y_g bounds every packing for any dual-feasible y.
//
// # The algorithm
//
// Solve runs a depth-first branch-and-bound:
//
//   - presolve drops bids of price 0 and dominated bids (Sⱼ ⊆ Sₖ and
//     pⱼ ≥ pₖ removes k);
//   - the remaining bids split into connected components of the bid–good
//     graph, solved independently (in parallel);
//   - incumbents come from greedy packings (by p/√|S|, p/|S| and p), from
//     LP-guided rounding at each node, and from Options.Incumbent;
//   - clique cuts at the root: bids that pairwise share a good, though no
//     good is common to all, satisfy Σ_{j∈C} xⱼ ≤ 1, which the rows do not
//     imply (x = ½ on a triangle). Violated cliques are grown greedily from
//     the root LP's fractional bids and added as virtual goods (a cut has
//     a row's form), for up to 8 rounds; they are kept only when they
//     close at least 5 % of the gap between the root bound and the best
//     root packing, since every row slows every pivot;
//   - when every price is an integer (market surpluses in minor units),
//     every packing is worth an integer, so a node closes once its bound
//     is below incumbent + 1 (less integralTol) instead of incumbent +
//     PruneTol;
//   - each node's LP relaxation is re-optimised from its parent's basis by
//     a bounded dual simplex (packLP): a removed bid is a column with upper
//     bound 0 and every nonbasic variable sits at its favoured bound, so any
//     basis is dual feasible and a child starts where its parent stopped.
//     Dual steepest-edge pricing, a Harris ratio test with bound flipping,
//     a dense basis inverse refactorised with gonum every 1000 updates, and
//     Bland's rule after 30 degenerate pivots;
//   - the bound that prunes is Σ y for the simplex duals after an explicit
//     repair to dual feasibility (negative entries zeroed, violated bid
//     rows topped up), so a wrong or early-stopped LP weakens a bound but
//     never cuts off the optimum. A child is first tested against a cheap
//     bound from its parent's duals, before its own LP, and the LP stops
//     as soon as the simplex's dual objective (which only falls) reaches
//     the incumbent and the repaired bound confirms it (packLP.cutoff);
//   - reduced-cost fixing: with D = Σ y, a bid with reduced cost
//     rⱼ = Σ_{g∈Sⱼ} y_g − pⱼ cannot be in a packing better than the
//     incumbent z when D − rⱼ ≤ z, and is removed from the subtree;
//   - branching picks the fractional bid maximising (½ − |xⱼ − ½|)·pⱼ and
//     explores xⱼ = 1 first;
//   - with Options.Threads > 1, several workers search one component's
//     tree: a worker about to branch while another waits hands it the
//     xⱼ = 0 subtree (with the node's LP) and dives into xⱼ = 1 itself. The
//     workers share the incumbents and the bounds left open by a stop; the
//     rest (LP, duals, scratch) is each worker's own. One worker, the
//     default, is deterministic; several find the same optimal value but
//     may break ties between optimal packings differently.
//
// The search stops at Options.TimeLimit or when ctx is done, returning the
// best packing found with Optimal false and Gap = (largest bound of an
// unexplored subtree) − objective. Optimal true means Gap 0: every node was
// closed within PruneTol (within a whole unit for integer prices).
//
// Options.GonumMaxRows additionally solves the root LP of small components
// with gonum's lp.Simplex as a cross-check (tests turn it on). It is off by
// default: lp.Simplex has no iteration limit and can cycle on degenerate
// packing LPs. Its infeasible or unbounded reports on this always feasible
// and bounded LP are known misreports (gonum issue #1914) and are ignored in
// favour of the certified dual bound.
//
// # Payments
//
// VCG computes Clarke-pivot payments: winner i pays W₋ᵢ − (W − vᵢ), the loss
// its presence imposes on the others, where W₋ᵢ is the optimum without i's
// bids. Since the winners without i are feasible there, 0 ≤ payment ≤ vᵢ.
//
// Without generalises the re-solves to any groups of bids, overlapping or
// not (in a market, the bids that use one provider); VCG is one group per
// winning bidder. When the solution is optimal, no re-solve of a component
// exceeds the solution's value W_c there, so each re-solve's bounds are
// capped at W_c and a re-solve that finds a packing worth W_c (a winner
// with a stand-in of equal value) is done.
//
// The re-solves share one presolve and, per component, one search tree: a
// search can carry several problems, each excluding some bids, with its own
// incumbent and bound (the node's repaired duals minus the goods only its
// excluded bids use). A node is explored while some problem's bound beats
// that problem's incumbent, every packing found is offered to every problem
// it is feasible for, and the x = 1 child of an excluded bid drops the
// problem that excludes it. A node where at most splitBelow problems are
// still open is searched once per problem: each then drops its excluded
// bids and stops its LPs at its own incumbent. Only components holding a
// winner of i change without i, so W₋ᵢ = W − Σ_c W_c + Σ_c W_c₋ᵢ over
// those components. The problems of a component are split across
// GOMAXPROCS ÷ Options.Threads trees run in parallel, each problem
// warm-started with the optimal winners minus i's.
//
// # Failure modes
//
// Malformed instances return errors wrapping ErrInvalid. The solver itself
// does not fail on valid input; an LP engine failure is absorbed as ErrLP in
// debug logs and costs only bound strength.
package wdp

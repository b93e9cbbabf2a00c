package market

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/accordmesh/accord/market/wdp"
	"github.com/accordmesh/accord/settlement/sla"
	"github.com/accordmesh/accord/specs"
)

// Protocol names (spec negotiation.protocol).
const (
	ProtocolAuction     = specs.ProtocolAuction
	ProtocolAlternating = specs.ProtocolAlternating
	ProtocolStacked     = specs.ProtocolStacked
)

// Options tune a clearing.
type Options struct {
	// Job names the job in results (default: the plan name).
	Job string
	// TimeLimit bounds winner determination (default 60s), and again the
	// VCG re-solves together; a clearing stopped by it is reported with
	// Optimal false and its gap.
	TimeLimit time.Duration
	// MaxBundle is the most jobs one provider bids for together in batch
	// mode (default 3).
	MaxBundle int
	// MaxBidsPerProvider caps a provider's bundle bids (default 64).
	MaxBidsPerProvider int
	// WholeJobs places every job whole on one provider: no offers for
	// co-location groups alone and no bids splitting a job over
	// providers. The job workflow runs a job's tasks on one provider, so
	// its negotiations set it; batch analysis (accord market clear) may
	// split.
	WholeJobs bool
}

func (o *Options) defaults() {
	if o.TimeLimit <= 0 {
		o.TimeLimit = 60 * time.Second
	}
	if o.MaxBundle <= 0 {
		o.MaxBundle = 3
	}
	if o.MaxBidsPerProvider <= 0 {
		o.MaxBidsPerProvider = 64
	}
}

// Offer is one provider's sealed bid: it will host all tasks of Jobs (or
// only Group of one job, for split placements) on exactly Hardware for Ask.
type Offer struct {
	Provider string     `json:"provider"`
	Jobs     []string   `json:"jobs"`
	Group    []string   `json:"group,omitempty"` // the tasks offered when only part of a job is
	Hardware []Hardware `json:"hardware"`
	Ask      int64      `json:"ask_minor"`
}

// BidRecord is one bid of the winner-determination instance.
type BidRecord struct {
	Index     int      `json:"index"`
	Bidder    string   `json:"bidder"`
	Providers []string `json:"providers"`
	Jobs      []string `json:"jobs"`
	Goods     []int    `json:"goods"`
	Offers    []int    `json:"offers"` // indices into Result.Offers
	Ask       int64    `json:"ask_minor"`
	Surplus   int64    `json:"surplus_minor"` // WDP price: Σ(reserve+1) − ask
}

// Award is a placement: the provider hosts the tasks at Price, set by the
// job's pricing rule; Basis and Explanation say which bound set it.
type Award struct {
	Job      string     `json:"job"`
	Provider string     `json:"provider"`
	Hardware []Hardware `json:"hardware"`
	Ask      int64      `json:"ask_minor"`
	Price    int64      `json:"price_minor"` // what the job pays this provider
	// Reserve is the buyer's reserve for the job (auctions).
	Reserve int64 `json:"reserve_minor,omitempty"`
	// NextBest is the lowest ask for the job by providers other than the
	// winner's, when there is one (auctions).
	NextBest int64 `json:"next_best_minor,omitempty"`
	// Pricing is the rule that set Price: specs.PricingVCG, PricingFirst,
	// PricingSecond, or ProtocolAlternating for a bargained price.
	Pricing string `json:"pricing"`
	// Basis names what bound the price: BasisReserve, BasisNextBest,
	// BasisVCG, BasisAsk or BasisAgreement.
	Basis string `json:"price_basis"`
	// Explanation says the same for people, in major units: "paid 1.00 USD:
	// the buyer's reserve; no competing offer".
	Explanation string `json:"explanation"`
	// SLA are the money terms the provider agreed to for the job: the
	// spec's, with the provider's stake and test-slash flag.
	SLA *sla.Terms `json:"sla,omitempty"`
}

// Result is the whole record of a negotiation, JSON-serialisable; the
// negotiation attestation records it verbatim.
type Result struct {
	Protocol  string      `json:"protocol"`
	Currency  string      `json:"currency"`
	Jobs      []string    `json:"jobs"`
	Providers []string    `json:"providers"`
	Offers    []Offer     `json:"offers"`
	Bids      []BidRecord `json:"bids"`
	Winners   []int       `json:"winners"` // indices into Bids
	Awards    []Award     `json:"awards"`
	Welfare   int64       `json:"welfare_minor"` // Σ surplus of the winning bids
	Optimal   bool        `json:"optimal"`
	Gap       float64     `json:"gap"`
	Nodes     int         `json:"nodes"`
	Rounds    []Round     `json:"rounds,omitempty"`
	// Groups are the job's co-location groups, by index, when the
	// protocol allocates them (stacked alternating offers: Share.Group).
	Groups      [][]string   `json:"groups,omitempty"`
	Diagnostics []Diagnostic `json:"diagnostics"`
}

// Negotiate runs the market for one job: the sealed-bid combinatorial
// auction with VCG prices, alternating offers when the spec asks (a
// multi-task job then bargains as one whole-job bundle per provider), or
// stacked alternating offers (the job's co-location groups allocated to
// providers that bargain together, one Award per provider). It is a pure function of its inputs and the providers'
// profiles, so an activity may retry it; the result to keep is the one the
// workflow records. ErrNoOffers and ErrNoAgreement come with a Result whose
// Diagnostics explain them.
func Negotiate(ctx context.Context, plan *specs.Plan, providers []Provider, opts Options) (*Result, error) {
	b, err := NewBuyer(opts.Job, plan)
	if err != nil {
		return nil, err
	}
	switch b.Protocol {
	case ProtocolAuction:
		return runAuction(ctx, []*Buyer{b}, providers, opts)
	case ProtocolAlternating:
		return bargain(ctx, b, providers)
	case ProtocolStacked:
		if opts.WholeJobs {
			// One provider hosts the whole job: the stack allocates
			// it as one group (a walk-away still re-allocates it).
			b.Groups = [][]string{taskNames(b)}
		}
		return stacked(ctx, b, providers)
	default:
		return nil, fmt.Errorf("%w: unknown negotiation protocol %q", ErrInvalid, b.Protocol)
	}
}

// Clear runs one sealed-bid combinatorial auction for many queued jobs
// against many providers (batch mode), maximising total surplus under the
// providers' capacities. Jobs are named by their plan name unless names is
// given (same length as plans).
func Clear(ctx context.Context, plans []*specs.Plan, names []string, providers []Provider, opts Options) (*Result, error) {
	buyers, err := buyersOf(plans, names)
	if err != nil {
		return nil, err
	}
	return runAuction(ctx, buyers, providers, opts)
}

func profiles(ctx context.Context, providers []Provider) ([]Profile, error) {
	var out []Profile
	seen := map[string]bool{}
	for _, pr := range providers {
		p, err := pr.Profile(ctx)
		if err != nil {
			return nil, fmt.Errorf("market: provider profile: %w", err)
		}
		if err := p.Validate(); err != nil {
			return nil, err
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("%w: two providers named %s", ErrInvalid, p.Name)
		}
		seen[p.Name] = true
		out = append(out, p)
	}
	return out, nil
}

func durations(b *Buyer) map[string]time.Duration {
	d := map[string]time.Duration{}
	for _, t := range b.Tasks {
		d[t.Name] = t.Resources.MaxDuration
	}
	return d
}

func taskNames(b *Buyer) []string {
	var s []string
	for _, t := range b.Tasks {
		s = append(s, t.Name)
	}
	return s
}

// auction is one sealed-bid combinatorial clearing in progress: the jobs
// and providers, the offers and bids gathered so far, and the
// winner-determination instance the bids form.
type auction struct {
	buyers []*Buyer
	profs  []Profile
	opts   Options
	res    *Result
	// whole holds, by provider, its offers for single whole jobs.
	whole [][]jobOffer
	// groups holds, by job and co-location group, the offers for that group alone.
	groups [][][]int
	// The goods are jobs 0..J-1, then one per provider (its capacity is
	// committed through at most one winning bid).
	inst    *wdp.Instance
	provIdx map[string]int
	// sol is the winner determination's solution, once solved.
	sol         *wdp.Solution
	pricesExact bool
	timings     Timings
}

// jobOffer is an offer for one whole job.
type jobOffer struct {
	offer int // index into Result.Offers
	job   int // index into buyers
}

// runAuction clears buyers against providers: offers for whole jobs and for
// co-location groups, bids over them (single jobs, bundles of jobs on one
// provider, and jobs split over providers), winner determination, then VCG
// prices.
func runAuction(ctx context.Context, buyers []*Buyer, providers []Provider, opts Options) (*Result, error) {
	au, err := clearAuction(ctx, buyers, providers, opts)
	if au == nil {
		return nil, err
	}
	return au.res, err
}

// clearAuction is runAuction keeping the auction (its instance and
// timings); it returns a nil auction only with an invalid-input error.
func clearAuction(ctx context.Context, buyers []*Buyer, providers []Provider, opts Options) (*auction, error) {
	opts.defaults()
	start := time.Now()
	profs, err := profiles(ctx, providers)
	if err != nil {
		return nil, err
	}
	au, err := newAuction(buyers, profs, opts)
	if err != nil {
		return nil, err
	}
	for bi, b := range buyers {
		dur := durations(b)
		for pi := range profs {
			if err := au.offer(bi, pi, dur); err != nil {
				return nil, err
			}
		}
	}
	if len(au.res.Offers) == 0 {
		return au, fmt.Errorf("%w: %d provider(s) excluded; see diagnostics", ErrNoOffers, len(profs))
	}
	for pi := range profs {
		au.bundleBids(pi)
	}
	for bi := range buyers {
		if !opts.WholeJobs {
			au.splitBid(bi)
		}
	}
	au.timings.Bids = time.Since(start)
	if len(au.inst.Bids) == 0 {
		return au, fmt.Errorf("%w: no bid fits a budget; see diagnostics", ErrNoAgreement)
	}
	if err := au.solve(ctx); err != nil {
		return nil, err
	}
	au.diagnoseUnplaced()
	if len(au.res.Awards) == 0 {
		return au, fmt.Errorf("%w: no job placed", ErrNoAgreement)
	}
	return au, nil
}

// newAuction starts the result record; jobs must share a currency.
func newAuction(buyers []*Buyer, profs []Profile, opts Options) (*auction, error) {
	res := &Result{Protocol: ProtocolAuction, Offers: []Offer{}, Bids: []BidRecord{}, Winners: []int{}, Awards: []Award{}, Diagnostics: []Diagnostic{}}
	for _, b := range buyers {
		res.Jobs = append(res.Jobs, b.Job)
		if res.Currency == "" {
			res.Currency = b.Currency
		} else if b.Currency != "" && !strings.EqualFold(b.Currency, res.Currency) {
			return nil, fmt.Errorf("%w: jobs in different currencies (%s, %s) cannot clear together", ErrInvalid, res.Currency, b.Currency)
		}
	}
	au := &auction{buyers: buyers, profs: profs, opts: opts, res: res,
		whole: make([][]jobOffer, len(profs)), groups: make([][][]int, len(buyers)),
		inst: &wdp.Instance{Goods: len(buyers) + len(profs)}, provIdx: map[string]int{}}
	for pi, p := range profs {
		res.Providers = append(res.Providers, p.Name)
		au.provIdx[p.Name] = pi
	}
	for bi, b := range buyers {
		au.groups[bi] = make([][]int, len(b.Groups))
	}
	return au, nil
}

// offer records provider pi's offers for job bi: the whole job, and each
// co-location group alone when the job has several.
func (au *auction) offer(bi, pi int, dur map[string]time.Duration) error {
	b, p := au.buyers[bi], &au.profs[pi]
	if d := eligible(b, p); len(d) > 0 {
		au.res.Diagnostics = append(au.res.Diagnostics, d...)
		return nil
	}
	misfit, err := au.offerWhole(bi, pi, dur)
	if err != nil {
		return err
	}
	if len(b.Groups) < 2 || au.opts.WholeJobs {
		au.res.Diagnostics = append(au.res.Diagnostics, misfit...)
		return nil
	}
	return au.offerGroups(bi, pi, dur, len(misfit) > 0)
}

// offerWhole records provider pi's offer for all of job bi, or returns why
// the job does not fit it.
func (au *auction) offerWhole(bi, pi int, dur map[string]time.Duration) (misfit []Diagnostic, err error) {
	b, p := au.buyers[bi], &au.profs[pi]
	free := p.Free.clone()
	hw, misfit := fit(b, p, taskNames(b), &free)
	if len(misfit) > 0 {
		return misfit, nil
	}
	price, err := ask(p, hw, dur)
	if err != nil {
		return nil, err
	}
	if price > b.Budget {
		au.res.Diagnostics = append(au.res.Diagnostics, Diagnostic{Provider: p.Name, Job: b.Job, Constraint: "budget",
			Detail: fmt.Sprintf("ask %d exceeds budget %d %s", price, b.Budget, b.Currency)})
		return nil, nil
	}
	if price > b.Reserve {
		au.res.Diagnostics = append(au.res.Diagnostics, Diagnostic{Provider: p.Name, Job: b.Job, Constraint: "reserve",
			Detail: fmt.Sprintf("ask %d exceeds the buyer's reserve %d %s", price, b.Reserve, b.Currency)})
		return nil, nil
	}
	au.res.Offers = append(au.res.Offers, Offer{Provider: p.Name, Jobs: []string{b.Job}, Hardware: hw, Ask: price})
	au.whole[pi] = append(au.whole[pi], jobOffer{len(au.res.Offers) - 1, bi})
	return nil, nil
}

// offerGroups records provider pi's offers for each co-location group of
// job bi within budget. Groups that do not fit are diagnosed only when
// report says the whole job did not fit either.
func (au *auction) offerGroups(bi, pi int, dur map[string]time.Duration, report bool) error {
	b, p := au.buyers[bi], &au.profs[pi]
	for gi, g := range b.Groups {
		free := p.Free.clone()
		hw, misfit := fit(b, p, g, &free)
		if len(misfit) > 0 {
			if report {
				au.res.Diagnostics = append(au.res.Diagnostics, misfit...)
			}
			continue
		}
		price, err := ask(p, hw, dur)
		if err != nil {
			return err
		}
		if price > b.Reserve {
			continue
		}
		au.res.Offers = append(au.res.Offers, Offer{Provider: p.Name, Jobs: []string{b.Job}, Group: g, Hardware: hw, Ask: price})
		au.groups[bi][gi] = append(au.groups[bi][gi], len(au.res.Offers)-1)
	}
	return nil
}

// addBid adds a bid for jobs on provs at askSum, unless it has no surplus.
// The buyers' value is their reserve plus one minor unit, so that an ask
// exactly at the reserve still trades and one above it never does.
func (au *auction) addBid(bidder string, provs []string, jobs []int, offers []int, askSum int64) {
	var goods []int
	var names []string
	var value int64
	for _, j := range jobs {
		goods = append(goods, j)
		names = append(names, au.buyers[j].Job)
		value += au.buyers[j].Reserve + 1
	}
	for _, p := range provs {
		goods = append(goods, len(au.buyers)+au.provIdx[p])
	}
	sur := value - askSum
	if sur <= 0 {
		return
	}
	au.res.Bids = append(au.res.Bids, BidRecord{Index: len(au.res.Bids), Bidder: bidder, Providers: provs, Jobs: names,
		Goods: goods, Offers: offers, Ask: askSum, Surplus: sur})
	au.inst.Bids = append(au.inst.Bids, wdp.Bid{Bidder: bidder, Goods: goods, Price: float64(sur)})
}

// bundleBids bids provider pi's whole-job offers alone and in bundles of up
// to MaxBundle jobs, jointly fitted and priced, the jobs with the most
// surplus first, at most MaxBidsPerProvider bids. When every bundle fits
// under that cap, all are enumerated (a bundle that does not fit is not
// extended); otherwise, as in a large batch, spreadBids chooses them.
func (au *auction) bundleBids(pi int) {
	p := &au.profs[pi]
	offs := au.whole[pi]
	surplus := func(o jobOffer) int64 { return au.buyers[o.job].Reserve - au.res.Offers[o.offer].Ask }
	sort.SliceStable(offs, func(a, c int) bool { return surplus(offs[a]) > surplus(offs[c]) })
	if subsets(len(offs), au.opts.MaxBundle) > au.opts.MaxBidsPerProvider {
		au.spreadBids(p, offs)
		return
	}
	var rec func(start int, chosen []jobOffer)
	rec = func(start int, chosen []jobOffer) {
		for i := start; i < len(offs); i++ {
			set := append(chosen[:len(chosen):len(chosen)], offs[i])
			switch {
			case len(set) == 1:
				au.single(p, offs[i])
			case !au.bundle(p, set):
				continue
			}
			if len(set) < au.opts.MaxBundle {
				rec(i+1, set)
			}
		}
	}
	rec(0, nil)
}

// subsets counts the non-empty subsets of at most k of n items, capped
// just above 1<<20.
func subsets(n, k int) int {
	total, c := 0, 1
	for i := 1; i <= k && i <= n && total <= 1<<20; i++ {
		c = c * (n - i + 1) / i
		total += c
	}
	return total
}

// spreadBids chooses provider p's bids from its offers offs (by
// descending surplus) when there are too many to enumerate: half the cap
// goes to single jobs, the best first, and the rest to bundles of
// consecutive offers down the same list ({1,2,3}, {4,5,6}, …, then pairs),
// so that the bids cover many jobs rather than every combination of the
// few best, and the winner determination can give each provider different
// jobs.
func (au *auction) spreadBids(p *Profile, offs []jobOffer) {
	limit := au.opts.MaxBidsPerProvider
	count := 0
	for _, o := range offs[:min(len(offs), max(1, limit/2))] {
		au.single(p, o)
		count++
	}
	for k := au.opts.MaxBundle; k >= 2; k-- {
		share := (limit - count) / (k - 1) // what is left, split over the sizes still to come
		for i, made := 0, 0; i+k <= len(offs) && made < share && count < limit; i += k {
			if au.bundle(p, offs[i:i+k]) {
				made++
				count++
			}
		}
	}
}

// single bids offer o alone.
func (au *auction) single(p *Profile, o jobOffer) {
	au.addBid(p.Name, []string{p.Name}, []int{o.job}, []int{o.offer}, au.res.Offers[o.offer].Ask)
}

// bundle offers and bids the jobs of set together on p, reporting false
// when they do not fit together or their joint ask exceeds their reserves.
func (au *auction) bundle(p *Profile, set []jobOffer) bool {
	free := p.Free.clone()
	var hw []Hardware
	dur := map[string]time.Duration{}
	var jobs []int
	var reserve int64
	for _, o := range set {
		b := au.buyers[o.job]
		h, misfit := fit(b, p, taskNames(b), &free)
		if len(misfit) > 0 {
			return false
		}
		for k, v := range durations(b) {
			dur[b.Job+"/"+k] = v
		}
		for _, x := range h {
			x.Task = b.Job + "/" + x.Task
			hw = append(hw, x)
		}
		jobs = append(jobs, o.job)
		reserve += b.Reserve
	}
	price, err := ask(p, hw, dur)
	if err != nil || price > reserve {
		return false
	}
	au.res.Offers = append(au.res.Offers, Offer{Provider: p.Name, Jobs: namesOf(au.buyers, jobs), Hardware: hw, Ask: price})
	au.addBid(p.Name, []string{p.Name}, jobs, []int{len(au.res.Offers) - 1}, price)
	return true
}

// splitBid bids job bi with each co-location group on a different
// provider: the cheapest distinct provider per group, greedily, the group
// with the fewest offers first.
func (au *auction) splitBid(bi int) {
	b, groups := au.buyers[bi], au.groups[bi]
	if len(b.Groups) < 2 {
		return
	}
	order := make([]int, len(b.Groups))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(x, y int) bool { return len(groups[order[x]]) < len(groups[order[y]]) })
	used := map[string]bool{}
	var offers []int
	var provs []string
	var total int64
	for _, gi := range order {
		best := -1
		for _, o := range groups[gi] {
			if used[au.res.Offers[o].Provider] {
				continue
			}
			if best < 0 || au.res.Offers[o].Ask < au.res.Offers[best].Ask {
				best = o
			}
		}
		if best < 0 {
			return
		}
		used[au.res.Offers[best].Provider] = true
		offers = append(offers, best)
		provs = append(provs, au.res.Offers[best].Provider)
		total += au.res.Offers[best].Ask
	}
	if total <= b.Reserve {
		sort.Strings(provs)
		au.addBid("split:"+b.Job, provs, []int{bi}, offers, total)
	}
}

// solve determines the winners, the welfare, each winning provider's VCG
// premium and the awards.
func (au *auction) solve(ctx context.Context) error {
	res := au.res
	start := time.Now()
	sol, err := wdp.Solve(ctx, au.inst, wdp.Options{TimeLimit: au.opts.TimeLimit})
	if err != nil {
		return fmt.Errorf("market: winner determination: %w", err)
	}
	au.sol = sol
	au.timings.WDP = time.Since(start)
	res.Winners = sol.Winners
	res.Optimal, res.Gap, res.Nodes = sol.Optimal, sol.Gap, sol.Nodes
	for _, w := range sol.Winners {
		res.Welfare += res.Bids[w].Surplus
	}
	start = time.Now()
	prices, nodes, exact := providerPrices(ctx, au.inst, res, sol, au.opts)
	au.timings.Prices = time.Since(start)
	res.Nodes += nodes
	au.pricesExact = exact
	res.Optimal = res.Optimal && exact
	res.Awards = awards(res, au.buyers, prices)
	withSLA(res.Awards, au.buyers, au.profs)
	return nil
}

// diagnoseUnplaced explains each job that won nothing.
func (au *auction) diagnoseUnplaced() {
	placed := map[string]bool{}
	for _, a := range au.res.Awards {
		placed[a.Job] = true
	}
	for _, b := range au.buyers {
		if !placed[b.Job] {
			au.res.Diagnostics = append(au.res.Diagnostics, Diagnostic{Job: b.Job, Constraint: "capacity",
				Detail: "outbid: the welfare-maximising allocation gives the offering providers' capacity to other jobs"})
		}
	}
}

func namesOf(buyers []*Buyer, jobs []int) []string {
	var s []string
	for _, j := range jobs {
		s = append(s, buyers[j].Job)
	}
	return s
}

// providerPrices computes each winning provider's Clarke-pivot premium
// W − W₋ₚ (the welfare the market would lose without it), re-solving
// without every bid that uses the provider, with wdp.Without: one shared
// presolve, root cuts and search tree for the re-solves of a component,
// searched by a worker per CPU, each re-solve warm-started with the winners
// minus the provider's bids and stopped once it reaches W.
//
// opts.TimeLimit bounds all the re-solves together, so that a batch with
// many winning providers takes at most twice the limit; a re-solve it
// stops leaves the prices inexact (reported as not optimal).
func providerPrices(ctx context.Context, inst *wdp.Instance, res *Result, sol *wdp.Solution, opts Options) (map[string]int64, int, bool) {
	winners := map[string]bool{}
	for _, w := range sol.Winners {
		for _, p := range res.Bids[w].Providers {
			winners[p] = true
		}
	}
	names := make([]string, 0, len(winners))
	for p := range winners {
		names = append(names, p)
	}
	sort.Strings(names)
	index := make(map[string]int, len(names))
	for i, p := range names {
		index[p] = i
	}
	groups := make([][]int, len(names))
	for j, b := range res.Bids {
		for _, p := range b.Providers {
			if i, ok := index[p]; ok && !slices.Contains(groups[i], j) {
				groups[i] = append(groups[i], j)
			}
		}
	}
	out := make(map[string]int64, len(names))
	r, err := wdp.Without(ctx, inst, sol, groups, wdp.Options{TimeLimit: opts.TimeLimit, Threads: runtime.GOMAXPROCS(0)})
	if err != nil { // sol is the instance's own solution: not expected
		return out, 0, false
	}
	for i, p := range names {
		out[p] = max(0, int64(math.Round(sol.Objective-r.Objective[i])))
	}
	return out, r.Nodes, sol.Optimal && r.Exact
}

func containsExact(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

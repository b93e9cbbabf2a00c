package market

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/accordmesh/accord/market/wdp"
	"github.com/accordmesh/accord/specs"
)

// Batch is the outcome of clearing many queued jobs at once (ClearBatch):
// the negotiation record, the winner-determination instance its bids form
// (for export to other solvers, wdp.WriteLP) and where the time went.
type Batch struct {
	Result *Result `json:"result"`
	// Objective is the winner determination's objective, the welfare of
	// the allocation in minor units (Σ surplus of the winning bids), and
	// Bound its proven upper bound (Objective + Gap; equal when optimal).
	Objective float64 `json:"objective_minor"`
	Bound     float64 `json:"bound_minor"`
	// Proven says winner determination proved the allocation optimal;
	// PricesExact that every VCG re-solve finished too (Result.Optimal is
	// both).
	Proven      bool `json:"wdp_optimal"`
	PricesExact bool `json:"prices_exact"`
	// Goods and Bids size the instance: one good per job and per provider.
	Goods   int     `json:"goods"`
	Bids    int     `json:"bids"`
	Timings Timings `json:"timings"`
	// Instance is the winner-determination instance (nil when no bid was
	// formed).
	Instance *wdp.Instance `json:"-"`
}

// Timings say where a clearing's time went, in seconds.
type Timings struct {
	// Bids is gathering the providers' profiles, their offers and the
	// bids over them.
	Bids time.Duration `json:"-"`
	// WDP is winner determination; Prices the VCG re-solves (one per
	// winning provider).
	WDP    time.Duration `json:"-"`
	Prices time.Duration `json:"-"`

	BidsSeconds   float64 `json:"bids_seconds"`
	WDPSeconds    float64 `json:"wdp_seconds"`
	PricesSeconds float64 `json:"prices_seconds"`
	TotalSeconds  float64 `json:"total_seconds"`
}

// ClearBatch clears plans (queued jobs, named by names when given, else by
// their plan names) against providers in one sealed-bid combinatorial
// auction, as Clear does, and reports the instance, the objective and its
// bound, and the timings. The allocation maximises total surplus: each
// provider's capacity goes to at most one winning bid (a job, a bundle of
// up to opts.MaxBundle jobs, or one co-location group of a split job), and
// each winner is paid by its job's pricing rule (VCG with the buyers'
// reserves by default). opts.TimeLimit bounds winner determination, and
// again the price re-solves together; a clearing stopped by it has Result.Optimal false
// and its gap. ErrNoOffers and ErrNoAgreement come with the Batch, whose
// diagnostics explain them.
func ClearBatch(ctx context.Context, plans []*specs.Plan, names []string, providers []Provider, opts Options) (*Batch, error) {
	buyers, err := buyersOf(plans, names)
	if err != nil {
		return nil, err
	}
	return clearBuyers(ctx, buyers, providers, opts)
}

// BatchJob is one queued job of a clearing (ClearJobs): its name in the
// result, its plan, and the providers it may not use (provider -> why).
type BatchJob struct {
	Name    string
	Plan    *specs.Plan
	Exclude map[string]string
}

// ClearJobs is ClearBatch for jobs that each exclude some providers (the
// periodic clearing's queued jobs, each under its tenant's placement
// policies): an excluded provider makes no offer for that job, and the
// job's diagnostics say why (constraint "policy").
func ClearJobs(ctx context.Context, jobs []BatchJob, providers []Provider, opts Options) (*Batch, error) {
	plans, names := make([]*specs.Plan, len(jobs)), make([]string, len(jobs))
	for i, j := range jobs {
		plans[i], names[i] = j.Plan, j.Name
	}
	buyers, err := buyersOf(plans, names)
	if err != nil {
		return nil, err
	}
	for i, j := range jobs {
		buyers[i].Exclude = j.Exclude
	}
	return clearBuyers(ctx, buyers, providers, opts)
}

func clearBuyers(ctx context.Context, buyers []*Buyer, providers []Provider, opts Options) (*Batch, error) {
	au, err := clearAuction(ctx, buyers, providers, opts)
	if au == nil {
		return nil, err
	}
	b := &Batch{Result: au.res, Goods: au.inst.Goods, Bids: len(au.inst.Bids), Timings: au.timings}
	if len(au.inst.Bids) > 0 {
		b.Instance = au.inst
	}
	if au.sol != nil {
		b.Objective, b.Bound = au.sol.Objective, au.sol.Objective+au.sol.Gap
		b.Proven, b.PricesExact = au.sol.Optimal, au.pricesExact
	}
	t := &b.Timings
	t.BidsSeconds, t.WDPSeconds, t.PricesSeconds = t.Bids.Seconds(), t.WDP.Seconds(), t.Prices.Seconds()
	t.TotalSeconds = (t.Bids + t.WDP + t.Prices).Seconds()
	return b, err
}

// ForJob is the part of a batch's record that concerns one job: every job
// and provider of the clearing, the offers and bids naming the job (indices
// renumbered), the winning ones among them, the job's awards and its
// diagnostics, and the clearing's welfare and optimality. It is the job's
// negotiation record: it shows the job was cleared with the others
// without carrying their offers.
func (r *Result) ForJob(job string) *Result {
	out := &Result{Protocol: r.Protocol, Currency: r.Currency, Jobs: r.Jobs, Providers: r.Providers,
		Offers: []Offer{}, Bids: []BidRecord{}, Winners: []int{}, Awards: []Award{}, Diagnostics: []Diagnostic{},
		Welfare: r.Welfare, Optimal: r.Optimal, Gap: r.Gap, Nodes: r.Nodes}
	offerIdx := map[int]int{}
	keepOffer := func(i int) int {
		if n, ok := offerIdx[i]; ok {
			return n
		}
		offerIdx[i] = len(out.Offers)
		out.Offers = append(out.Offers, r.Offers[i])
		return offerIdx[i]
	}
	for i, o := range r.Offers {
		if containsExact(o.Jobs, job) {
			keepOffer(i)
		}
	}
	bidIdx := map[int]int{}
	for i, b := range r.Bids {
		if !containsExact(b.Jobs, job) {
			continue
		}
		nb := b
		nb.Index = len(out.Bids)
		nb.Offers = make([]int, 0, len(b.Offers))
		for _, o := range b.Offers {
			if o >= 0 && o < len(r.Offers) {
				nb.Offers = append(nb.Offers, keepOffer(o))
			}
		}
		bidIdx[i] = nb.Index
		out.Bids = append(out.Bids, nb)
	}
	for _, w := range r.Winners {
		if n, ok := bidIdx[w]; ok {
			out.Winners = append(out.Winners, n)
		}
	}
	for _, a := range r.Awards {
		if a.Job == job {
			out.Awards = append(out.Awards, a)
		}
	}
	for _, d := range r.Diagnostics {
		if d.Job == job {
			out.Diagnostics = append(out.Diagnostics, d)
		}
	}
	return out
}

// buyersOf builds one buyer per plan, named by names when given.
func buyersOf(plans []*specs.Plan, names []string) ([]*Buyer, error) {
	if names != nil && len(names) != len(plans) {
		return nil, fmt.Errorf("%w: %d names for %d plans", ErrInvalid, len(names), len(plans))
	}
	var buyers []*Buyer
	seen := map[string]bool{}
	for i, p := range plans {
		name := ""
		if names != nil {
			name = names[i]
		}
		b, err := NewBuyer(name, p)
		if err != nil {
			return nil, err
		}
		if seen[b.Job] {
			return nil, fmt.Errorf("%w: job %s listed twice", ErrInvalid, b.Job)
		}
		seen[b.Job] = true
		buyers = append(buyers, b)
	}
	return buyers, nil
}

// MaxBatchJobs bounds how many specs LoadJobs reads from one directory.
const MaxBatchJobs = 10000

// LoadJobs loads and compiles every spec in dir: the regular files named
// *.md directly in it (subdirectories, which may hold the files specs
// extend, and symbolic links are skipped), in name order. Each job is
// named by its file name without .md, unique within dir. A spec that
// fails to load fails the whole batch, naming the file.
func LoadJobs(dir string) (plans []*specs.Plan, names []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("market: read jobs: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".md") {
			continue
		}
		if len(plans) == MaxBatchJobs {
			return nil, nil, fmt.Errorf("%w: %s holds more than %d specs", ErrInvalid, dir, MaxBatchJobs)
		}
		p, err := specs.LoadPlan(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, nil, fmt.Errorf("market: job %s: %w", e.Name(), err)
		}
		plans = append(plans, p)
		names = append(names, strings.TrimSuffix(e.Name(), ".md"))
	}
	if len(plans) == 0 {
		return nil, nil, fmt.Errorf("%w: no *.md specs in %s", ErrInvalid, dir)
	}
	return plans, names, nil
}

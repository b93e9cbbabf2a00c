// Package broker runs one job's negotiation for a worker: it reads the
// sellers, drops those the tenant's placement policies exclude (keeping
// why, as "policy" diagnostics), clears the market among the rest, and
// turns the winning award into what execution needs: the runtime kind that
// runs the provider's tasks and the exact devices the provider gives each
// task.
//
// It is a pure function of the plan, the policies and the providers'
// current profiles, so a retried negotiation is harmless. When no provider
// can or may sell, the error wraps market.ErrNoOffers (or
// market.ErrNoAgreement) with the diagnostics in its message. The broker
// knows nothing of Temporal; activities.MarketNegotiator adapts it.
package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/settlement/sla"
	"github.com/accordmesh/accord/specs"
)

// TaskDevices is the node and GPU instance IDs a provider gives one task.
type TaskDevices struct {
	Task       string
	Node       string
	GPUDevices []string
}

// Award is a negotiation's outcome: the winning provider, the runtime kind
// that runs its tasks, the price, and the market's full record.
type Award struct {
	Provider string
	Runtime  string
	Price    int64
	Currency string
	Result   *market.Result
	// Devices are the exact node and GPUs per task when the provider names
	// them (Nomad pools); empty lets the runtime choose.
	Devices []TaskDevices
	// SLA are the money terms the provider agreed to (the market award's).
	SLA *sla.Terms
	// Tasks are the tasks a part of a split award runs; empty: every task.
	Tasks []string
	// Parts splits the job over several providers (placement.split): one
	// award per provider, in the market's order, each with its Tasks. The
	// fields above are then the first part's, but Price is the parts' sum.
	Parts []Award
}

// Broker negotiates on behalf of a worker.
type Broker struct {
	// Providers returns the sellers at negotiation time.
	Providers func(ctx context.Context) ([]market.Provider, error)
	// Runtime maps a winning provider to the runtime kind that executes its
	// tasks; nil or an unknown provider means DefaultRuntime.
	Runtime        map[string]string
	DefaultRuntime string
	// RuntimeFor, when set, maps providers missing from Runtime (pools
	// attached while the worker runs) to their runtime kind; "" means none.
	RuntimeFor func(provider string) string
	// Placement is the tenant's placement policy for a spec (usually
	// policies.Set.PlacementFilter); nil admits every provider.
	Placement func(spec *specs.Spec) func(policies.ProviderView) (bool, string)
	// Assign names the exact devices a winning provider gives each task
	// (nil, or a nil return, means the runtime chooses).
	Assign func(ctx context.Context, provider string, plan *specs.Plan) ([]TaskDevices, error)
}

// Negotiate clears the market for one job among the providers its
// placement policies allow. No offers or no agreement wraps
// market.ErrNoOffers or market.ErrNoAgreement with the market's
// diagnostics, including the providers the placement policies excluded and
// why.
func (b Broker) Negotiate(ctx context.Context, jobID string, plan *specs.Plan) (Award, error) {
	return b.NegotiateExcluding(ctx, jobID, plan, nil)
}

// NegotiateExcluding is Negotiate without the providers in exclude (a
// failover's lost providers, a spot check's providers that already ran
// the job): they are left out before the market clears, as diagnostics
// with constraint "excluded".
func (b Broker) NegotiateExcluding(ctx context.Context, jobID string, plan *specs.Plan, exclude map[string]string) (Award, error) {
	provs, err := b.Providers(ctx)
	if err != nil {
		return Award{}, fmt.Errorf("broker: providers: %w", err)
	}
	provs, left, err := without(ctx, jobID, provs, exclude)
	if err != nil {
		return Award{}, err
	}
	provs, excluded, err := b.filter(ctx, jobID, plan, provs)
	if err != nil {
		return Award{}, err
	}
	excluded = append(left, excluded...)
	if len(provs) == 0 && len(excluded) > 0 {
		return Award{}, fmt.Errorf("%w: every provider was excluded (placement policy, or by the job itself): %s", market.ErrNoOffers, explain(excluded))
	}
	res, err := market.Negotiate(ctx, plan, provs, market.Options{Job: jobID, WholeJobs: !splits(plan)})
	if res != nil {
		res.Diagnostics = append(res.Diagnostics, excluded...)
	}
	if errors.Is(err, market.ErrNoOffers) || errors.Is(err, market.ErrNoAgreement) {
		why := excluded
		if res != nil {
			why = res.Diagnostics
		}
		return Award{}, fmt.Errorf("%w: %s", err, explain(why))
	}
	if err != nil {
		return Award{}, err
	}
	return b.Awarded(ctx, plan, res)
}

// Awarded turns a market result into the broker's award: the runtime that
// runs each winner's tasks and the devices it gives each. A result with
// several awards is a split award (Parts) when the plan allows splitting
// (placement.split) and its parts run every task exactly once; otherwise
// it is refused.
func (b Broker) Awarded(ctx context.Context, plan *specs.Plan, res *market.Result) (Award, error) {
	if res == nil || len(res.Awards) == 0 {
		return Award{}, fmt.Errorf("%w: the market cleared no award", market.ErrNoOffers)
	}
	if len(res.Awards) > 1 && !splits(plan) {
		// A job runs on one provider unless its spec splits it: a result
		// placing it on several would run every task on the first at the
		// first's share.
		return Award{}, fmt.Errorf("%w: the market split the job over %d providers; a job runs on one provider unless placement.split", market.ErrNoOffers, len(res.Awards))
	}
	parts := make([]Award, len(res.Awards))
	for i, aw := range res.Awards {
		p, err := b.part(ctx, plan, res, aw)
		if err != nil {
			return Award{}, err
		}
		parts[i] = p
	}
	if len(parts) == 1 {
		parts[0].Tasks = nil
		return parts[0], nil
	}
	if err := coverOnce(plan, parts); err != nil {
		return Award{}, err
	}
	out := parts[0]
	out.Tasks, out.Parts, out.Price = nil, parts, 0
	for _, p := range parts {
		out.Price += p.Price
	}
	return out, nil
}

// part is one market award as the broker's: its tasks, runtime and devices.
func (b Broker) part(ctx context.Context, plan *specs.Plan, res *market.Result, aw market.Award) (Award, error) {
	out := Award{Provider: aw.Provider, Runtime: b.runtime(aw.Provider), Price: aw.Price, Currency: res.Currency, Result: res, SLA: aw.SLA}
	for _, h := range aw.Hardware {
		out.Tasks = append(out.Tasks, h.Task)
	}
	if b.Assign != nil {
		devs, err := b.Assign(ctx, aw.Provider, plan)
		if err != nil {
			return Award{}, fmt.Errorf("broker: assign devices on %s: %w", aw.Provider, err)
		}
		for _, d := range devs {
			if slices.Contains(out.Tasks, d.Task) {
				out.Devices = append(out.Devices, d)
			}
		}
	}
	return out, nil
}

// coverOnce checks that a split award's parts run every task of the plan
// exactly once, each part on its own provider.
func coverOnce(plan *specs.Plan, parts []Award) error {
	owner, provs := map[string]string{}, map[string]bool{}
	for _, p := range parts {
		if provs[p.Provider] {
			return fmt.Errorf("broker: split award names provider %s twice", p.Provider)
		}
		provs[p.Provider] = true
		for _, t := range p.Tasks {
			if o, ok := owner[t]; ok {
				return fmt.Errorf("broker: split award gives task %s to both %s and %s", t, o, p.Provider)
			}
			owner[t] = p.Provider
		}
	}
	for _, t := range plan.Tasks {
		if _, ok := owner[t.Name]; !ok {
			return fmt.Errorf("broker: split award runs no provider for task %s", t.Name)
		}
	}
	if len(owner) != len(plan.Tasks) {
		return fmt.Errorf("broker: split award names %d tasks, the plan has %d", len(owner), len(plan.Tasks))
	}
	return nil
}

// splits reports whether the plan's spec lets the market split the job
// over several providers (placement.split).
func splits(plan *specs.Plan) bool {
	return plan != nil && plan.Spec != nil && plan.Spec.Placement.Split
}

// Snapshot takes the sellers of a bargain whose buyer is an agent
// (negotiation.buyer: agent) among the providers the placement policies
// allow; those excluded are diagnostics. No seller wraps
// market.ErrNoOffers with the reasons.
func (b Broker) Snapshot(ctx context.Context, jobID string, plan *specs.Plan) (*market.Sellers, error) {
	provs, err := b.Providers(ctx)
	if err != nil {
		return nil, fmt.Errorf("broker: providers: %w", err)
	}
	provs, excluded, err := b.filter(ctx, jobID, plan, provs)
	if err != nil {
		return nil, err
	}
	s, err := market.Snapshot(ctx, jobID, plan, provs)
	if s != nil {
		s.Diagnostics = append(s.Diagnostics, excluded...)
	}
	if errors.Is(err, market.ErrNoOffers) {
		why := excluded
		if s != nil {
			why = s.Diagnostics
		}
		return nil, fmt.Errorf("%w: %s", err, explain(why))
	}
	return s, err
}

// without drops the providers named in exclude (name -> why).
func without(ctx context.Context, jobID string, provs []market.Provider, exclude map[string]string) ([]market.Provider, []market.Diagnostic, error) {
	if len(exclude) == 0 {
		return provs, nil, nil
	}
	var kept []market.Provider
	var left []market.Diagnostic
	for _, pr := range provs {
		p, err := pr.Profile(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("broker: provider profile: %w", err)
		}
		if why, ok := exclude[p.Name]; ok {
			left = append(left, market.Diagnostic{Provider: p.Name, Job: jobID, Constraint: "excluded", Detail: why})
			continue
		}
		kept = append(kept, &market.Static{P: p})
	}
	return kept, left, nil
}

// runtime is the runtime kind that executes provider's tasks.
func (b Broker) runtime(provider string) string {
	rt := b.Runtime[provider]
	if rt == "" && b.RuntimeFor != nil {
		rt = b.RuntimeFor(provider)
	}
	if rt == "" {
		rt = b.DefaultRuntime
	}
	return rt
}

// filter reads every provider's profile once and keeps those the tenant's
// placement rules allow; the others come back as diagnostics with
// constraint "policy" and the rules' reasons.
func (b Broker) filter(ctx context.Context, jobID string, plan *specs.Plan, provs []market.Provider) ([]market.Provider, []market.Diagnostic, error) {
	if b.Placement == nil || plan.Spec == nil {
		return provs, nil, nil
	}
	allow := b.Placement(plan.Spec)
	var kept []market.Provider
	var excluded []market.Diagnostic
	for _, pr := range provs {
		p, err := pr.Profile(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("broker: provider profile: %w", err)
		}
		if ok, why := allow(ProviderView(p)); !ok {
			excluded = append(excluded, market.Diagnostic{Provider: p.Name, Job: jobID, Constraint: "policy", Detail: why})
			continue
		}
		kept = append(kept, &market.Static{P: p})
	}
	return kept, excluded, nil
}

// ProviderView is what a placement rule sees of a provider's profile.
func ProviderView(p market.Profile) policies.ProviderView {
	v := policies.ProviderView{Name: p.Name, Pool: p.Name, Region: p.Region, Reputation: p.Reputation}
	if len(p.TEE) > 0 {
		v.TEE = p.TEE[0]
	}
	for _, g := range p.Free.GPUs {
		for range g.Count {
			v.GPUs = append(v.GPUs, policies.GPUView{Model: g.Model, MemoryBytes: g.MemoryBytes})
		}
	}
	return v
}

// explain renders diagnostics for an error message: "provider: detail
// (constraint)", joined by "; ".
func explain(ds []market.Diagnostic) string {
	var why []string
	for _, d := range ds {
		why = append(why, fmt.Sprintf("%s: %s (%s)", d.Provider, d.Detail, d.Constraint))
	}
	return strings.Join(why, "; ")
}

// BatchJob is one queued job of a periodic clearing: its ID (its name in
// the market) and its plan.
type BatchJob struct {
	ID   string
	Plan *specs.Plan
}

// Cleared is a periodic clearing's outcome: the whole record, the broker's
// award for each placed job (its Result is the job's part of the record,
// market.Result.ForJob), and why each other job was not placed.
type Cleared struct {
	Batch    *market.Batch
	Awards   map[string]Award
	Unplaced map[string]string
}

// ClearBatch clears queued jobs together in one auction
// (market.ClearJobs): each job among the providers its tenant's placement
// policies allow (the others are its "policy" diagnostics), every
// provider's capacity shared among them. Each placed job's award is made
// as Negotiate makes it (Awarded), from the job's part of the record. Like
// Negotiate it is a pure function of the plans, the policies and the
// providers' profiles at the time, so a retry is harmless. No offers or no
// agreement for every job is not an error: every job is then unplaced,
// with its reasons.
func (b Broker) ClearBatch(ctx context.Context, jobs []BatchJob, opts market.Options) (*Cleared, error) {
	provs, err := b.Providers(ctx)
	if err != nil {
		return nil, fmt.Errorf("broker: providers: %w", err)
	}
	profs, err := snapshot(ctx, provs)
	if err != nil {
		return nil, err
	}
	// Each job runs on one provider: place jobs whole. (A split award
	// would be refused by Awarded and fail the whole clearing.)
	opts.WholeJobs = true
	mjobs := make([]market.BatchJob, len(jobs))
	for i, j := range jobs {
		mjobs[i] = market.BatchJob{Name: j.ID, Plan: j.Plan, Exclude: b.excluded(j.Plan, profs)}
	}
	batch, err := market.ClearJobs(ctx, mjobs, profs, opts)
	if batch == nil {
		return nil, fmt.Errorf("broker: clear %d jobs: %w", len(jobs), err)
	}
	if err != nil && !errors.Is(err, market.ErrNoOffers) && !errors.Is(err, market.ErrNoAgreement) {
		return nil, fmt.Errorf("broker: clear %d jobs: %w", len(jobs), err)
	}
	out := &Cleared{Batch: batch, Awards: map[string]Award{}, Unplaced: map[string]string{}}
	for _, j := range jobs {
		part := batch.Result.ForJob(j.ID)
		if len(part.Awards) == 0 {
			out.Unplaced[j.ID] = unplacedWhy(part.Diagnostics)
			continue
		}
		aw, err := b.Awarded(ctx, j.Plan, part)
		if err != nil {
			return nil, fmt.Errorf("broker: clear: job %s: %w", j.ID, err)
		}
		out.Awards[j.ID] = aw
	}
	return out, nil
}

// snapshot reads every provider's profile once, so that a clearing's jobs
// all see the same market.
func snapshot(ctx context.Context, provs []market.Provider) ([]market.Provider, error) {
	out := make([]market.Provider, 0, len(provs))
	for _, pr := range provs {
		p, err := pr.Profile(ctx)
		if err != nil {
			return nil, fmt.Errorf("broker: provider profile: %w", err)
		}
		out = append(out, &market.Static{P: p})
	}
	return out, nil
}

// excluded is the providers plan's placement policies refuse, with why.
func (b Broker) excluded(plan *specs.Plan, profs []market.Provider) map[string]string {
	if b.Placement == nil || plan == nil || plan.Spec == nil {
		return nil
	}
	allow := b.Placement(plan.Spec)
	out := map[string]string{}
	for _, pr := range profs {
		p := pr.(*market.Static).P
		if ok, why := allow(ProviderView(p)); !ok {
			out[p.Name] = why
		}
	}
	return out
}

// unplacedWhy explains a job the clearing did not place.
func unplacedWhy(ds []market.Diagnostic) string {
	if len(ds) == 0 {
		return "not placed: other jobs' bids won the providers' capacity"
	}
	return "not placed: " + explain(ds)
}

package market

import (
	"fmt"
	"math"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/accordmesh/accord/specs"
)

// Buyer is a job's side of the market, derived from its plan.
type Buyer struct {
	Job    string // job identifier used in results
	Budget int64  // cap on the total price, minor units of Currency
	// Reserve is the buyer's outside option (minor units, ≤ Budget): an
	// auction pays at most this for the job, and offers above it lose.
	Reserve int64
	// Pricing is the auction's pricing rule (specs.PricingVCG, …).
	Pricing     string
	Currency    string
	Deadline    time.Duration // from the start of negotiation; 0 none
	Preference  float64       // 0 cheapest … 1 fastest
	Placement   specs.Placement
	Tasks       []specs.Task
	Groups      [][]string // co-location groups: each is placed on one provider
	Protocol    string
	Negotiation specs.Negotiation
	// CriticalTime is the plan's critical-path duration.
	CriticalTime time.Duration
	// SLA is the service level and money terms the spec asks a provider to
	// be held to (settlement.sla).
	SLA specs.SLA
	// Exclude names providers this buyer may not use (provider -> why),
	// decided outside the market (the tenant's placement policies in a
	// batch clearing): they make no offer for it, diagnosed as "policy".
	Exclude map[string]string
}

// MaxMoney is the largest amount (minor units) the market accepts: the
// winner-determination solver works in float64, which represents every
// integer up to 2⁵³ exactly, and sums of a few such amounts stay exact.
const MaxMoney = 1 << 50

// NewBuyer builds a buyer agent from a compiled plan.
func NewBuyer(job string, plan *specs.Plan) (*Buyer, error) {
	if plan == nil || plan.Spec == nil {
		return nil, fmt.Errorf("%w: plan without its spec", ErrInvalid)
	}
	if len(plan.Tasks) == 0 {
		return nil, fmt.Errorf("%w: plan %s has no tasks", ErrInvalid, plan.Name)
	}
	s := plan.Spec
	if s.Budget.MaxPrice <= 0 {
		return nil, fmt.Errorf("%w: plan %s: budget.max_price must be positive", ErrInvalid, plan.Name)
	}
	if s.Budget.MaxPrice > MaxMoney {
		return nil, fmt.Errorf("%w: plan %s: budget %d above %d minor units, the exact range of the solver", ErrInvalid, plan.Name, s.Budget.MaxPrice, int64(MaxMoney))
	}
	if s.Budget.Preference < 0 || s.Budget.Preference > 1 || math.IsNaN(s.Budget.Preference) {
		return nil, fmt.Errorf("%w: plan %s: preference outside 0..1", ErrInvalid, plan.Name)
	}
	if job == "" {
		job = plan.Name
	}
	// Registry models the tasks use are paid from the same escrow: what
	// is left of the budget is what providers may bid up to.
	budget := plan.ComputeBudget()
	if budget <= 0 {
		return nil, fmt.Errorf("%w: plan %s: the models it uses cost %d of its budget %d, leaving nothing for compute",
			ErrInvalid, plan.Name, plan.ModelFeeTotal(), s.Budget.MaxPrice)
	}
	b := &Buyer{Job: job, Budget: budget, Currency: s.Budget.Currency,
		Deadline: s.Budget.Deadline, Preference: s.Budget.Preference, Placement: s.Placement,
		Protocol: s.Negotiation.Protocol, Negotiation: s.Negotiation, CriticalTime: plan.CriticalTime,
		SLA: s.Settlement.SLA}
	if b.Protocol == "" {
		b.Protocol = ProtocolAuction
	}
	b.Reserve = reserveOf(budget, s.Negotiation.Reserve)
	b.Pricing = s.Negotiation.PricingRule()
	switch b.Pricing {
	case specs.PricingVCG, specs.PricingFirst, specs.PricingSecond:
	default:
		return nil, fmt.Errorf("%w: plan %s: unknown pricing %q", ErrInvalid, plan.Name, b.Pricing)
	}
	for _, t := range plan.Tasks {
		b.Tasks = append(b.Tasks, t.Task)
	}
	b.Groups = groups(b.Tasks, s.Placement.Colocate)
	return b, nil
}

// DefaultReserveShare is the buyer's reserve as a share of its budget when
// the spec sets none: one half. It is the reserve that maximises the
// buyer's expected surplus (value − price) when all it knows of the
// providers' costs is that they lie below its budget, uniformly
// (Myerson's optimal reserve for procurement, r + F(r)/f(r) = value, gives
// r = budget/2 for any number of sellers). It is also where alternating
// offers open by default (DefaultBuyerOpening).
const DefaultReserveShare = 0.5

// reserveOf is the buyer's reserve: the spec's negotiation.reserve, at most
// the budget left for compute, or DefaultReserveShare of that budget
// (rounded up, so that a budget of one minor unit still trades).
func reserveOf(budget, spec int64) int64 {
	if spec > 0 {
		return min(spec, budget)
	}
	return budget - int64(float64(budget)*(1-DefaultReserveShare))
}

// groups partitions tasks into co-location groups: tasks sharing Task.Group
// or listed together in placement.colocate are merged (union-find); other
// tasks are groups of one. Order follows the plan.
func groups(tasks []specs.Task, colocate [][]string) [][]string {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	union := func(a, b string) {
		if _, ok := parent[a]; !ok {
			return
		}
		if _, ok := parent[b]; !ok {
			return
		}
		parent[find(a)] = find(b)
	}
	byGroup := map[string]string{}
	for _, t := range tasks {
		parent[t.Name] = t.Name
	}
	for _, t := range tasks {
		if t.Group != "" {
			if o, ok := byGroup[t.Group]; ok {
				union(t.Name, o)
			} else {
				byGroup[t.Group] = t.Name
			}
		}
	}
	for _, g := range colocate {
		for i := 1; i < len(g); i++ {
			union(g[0], g[i])
		}
	}
	idx := map[string]int{}
	var out [][]string
	for _, t := range tasks {
		r := find(t.Name)
		i, ok := idx[r]
		if !ok {
			i = len(out)
			idx[r] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], t.Name)
	}
	return out
}

// Hardware is the exact hardware a bid offers one task.
type Hardware struct {
	Task           string `json:"task"`
	MilliCPU       int64  `json:"cpu_millis"`
	MemoryBytes    int64  `json:"memory_bytes"`
	DiskBytes      int64  `json:"disk_bytes,omitempty"`
	GPUModel       string `json:"gpu_model,omitempty"`
	GPUMemoryBytes int64  `json:"gpu_memory_bytes,omitempty"`
	GPUs           int    `json:"gpus,omitempty"`
}

// Diagnostic says why a provider could not offer (part of) a job.
type Diagnostic struct {
	Provider   string `json:"provider"`
	Job        string `json:"job"`
	Task       string `json:"task,omitempty"`
	Constraint string `json:"constraint"` // region, residency, allow, deny, tee, attestation, gpu, cpu, memory, disk, currency, deadline, sla, budget, reserve, capacity, walk-away
	Detail     string `json:"detail"`
}

// eligible checks the provider-level constraints of a buyer.
func eligible(b *Buyer, p *Profile) []Diagnostic {
	var d []Diagnostic
	add := func(c, format string, a ...any) {
		d = append(d, Diagnostic{Provider: p.Name, Job: b.Job, Constraint: c, Detail: fmt.Sprintf(format, a...)})
	}
	if why, ok := b.Exclude[p.Name]; ok {
		add("policy", "%s", why)
	}
	pl := b.Placement
	if len(pl.Regions) > 0 && !contains(pl.Regions, p.Region) {
		add("region", "provider region %q not in %v", p.Region, pl.Regions)
	}
	for _, r := range pl.Residency {
		if !contains(p.Jurisdictions, r) {
			add("residency", "provider jurisdictions %v lack %q", p.Jurisdictions, r)
		}
	}
	if len(pl.AllowProviders) > 0 && !contains(pl.AllowProviders, p.Name) {
		add("allow", "provider not in allow list %v", pl.AllowProviders)
	}
	if contains(pl.DenyProviders, p.Name) {
		add("deny", "provider is on the deny list")
	}
	switch pl.TEE {
	case "":
	case "any":
		if len(p.TEE) == 0 {
			add("tee", "no trusted execution environment")
		}
	default:
		if !contains(p.TEE, pl.TEE) {
			add("tee", "TEE %q not offered (has %v)", pl.TEE, p.TEE)
		}
	}
	if pl.RequireAttestation && !p.Attestation {
		add("attestation", "cannot produce remote attestation")
	}
	if b.Currency != "" && !strings.EqualFold(b.Currency, p.Pricing.Currency) {
		add("currency", "prices in %s, budget in %s", p.Pricing.Currency, b.Currency)
	}
	if b.Deadline > 0 && p.StartDelay+b.CriticalTime > b.Deadline {
		add("deadline", "start delay %v + critical path %v exceeds deadline %v", p.StartDelay, b.CriticalTime, b.Deadline)
	}
	return append(d, slaDiagnostics(b, p)...)
}

// fit assigns hardware to tasks on a copy of free capacity, most demanding
// GPU tasks first so that a feasible assignment is not missed by greed. It
// returns the hardware by task and per-task diagnostics for tasks that do not
// fit at all (even alone).
func fit(b *Buyer, p *Profile, tasks []string, free *Capacity) ([]Hardware, []Diagnostic) {
	byName := map[string]specs.Task{}
	for _, t := range b.Tasks {
		byName[t.Name] = t
	}
	order := append([]string(nil), tasks...)
	sort.SliceStable(order, func(i, j int) bool {
		a, c := byName[order[i]].Resources.GPU, byName[order[j]].Resources.GPU
		return a.Count*int(a.MinMemoryBytes>>20+1) > c.Count*int(c.MinMemoryBytes>>20+1)
	})
	var hw []Hardware
	var diag []Diagnostic
	for _, name := range order {
		t := byName[name]
		r := t.Resources
		h := Hardware{Task: name, MilliCPU: r.MilliCPU, MemoryBytes: r.MemoryBytes, DiskBytes: r.DiskBytes}
		miss := func(c, format string, a ...any) {
			diag = append(diag, Diagnostic{Provider: p.Name, Job: b.Job, Task: name, Constraint: c, Detail: fmt.Sprintf(format, a...)})
		}
		ok := true
		if r.MilliCPU > free.MilliCPU {
			miss("cpu", "needs %dm CPU, %dm free", r.MilliCPU, free.MilliCPU)
			ok = false
		}
		if r.MemoryBytes > free.MemoryBytes {
			miss("memory", "needs %d bytes, %d free", r.MemoryBytes, free.MemoryBytes)
			ok = false
		}
		if r.DiskBytes > 0 && r.DiskBytes > free.DiskBytes {
			miss("disk", "needs %d bytes disk, %d free", r.DiskBytes, free.DiskBytes)
			ok = false
		}
		gi := -1
		if r.GPU.Count > 0 {
			// Cheapest GPU pool that satisfies the request.
			for i, g := range free.GPUs {
				if (r.GPU.Model != "" && !strings.EqualFold(r.GPU.Model, g.Model)) || g.MemoryBytes < r.GPU.MinMemoryBytes || g.Count < r.GPU.Count {
					continue
				}
				if gi < 0 || p.Pricing.GPUHour[g.Model] < p.Pricing.GPUHour[free.GPUs[gi].Model] {
					gi = i
				}
			}
			if gi < 0 {
				miss("gpu", "needs %d× %s with ≥%d bytes; free GPUs %s", r.GPU.Count, orAny(r.GPU.Model), r.GPU.MinMemoryBytes, gpuList(free.GPUs))
				ok = false
			}
		}
		if !ok {
			continue
		}
		free.MilliCPU -= r.MilliCPU
		free.MemoryBytes -= r.MemoryBytes
		free.DiskBytes -= r.DiskBytes
		if gi >= 0 {
			free.GPUs[gi].Count -= r.GPU.Count
			g := free.GPUs[gi]
			h.GPUModel, h.GPUMemoryBytes, h.GPUs = g.Model, g.MemoryBytes, r.GPU.Count
		}
		hw = append(hw, h)
	}
	return hw, diag
}

func orAny(s string) string {
	if s == "" {
		return "any GPU"
	}
	return s
}

func gpuList(g []GPUPool) string {
	if len(g) == 0 {
		return "none"
	}
	var s []string
	for _, p := range g {
		s = append(s, fmt.Sprintf("%d× %s/%dB", p.Count, p.Model, p.MemoryBytes))
	}
	return strings.Join(s, ", ")
}

func (c Capacity) clone() Capacity {
	c.GPUs = append([]GPUPool(nil), c.GPUs...)
	return c
}

// hourCost returns ceil(rate · qty · d / (unit · 1h)) in minor units, with
// big-integer arithmetic so that no product overflows; ok is false if the
// result does not fit an int64.
func hourCost(rate, qty, unit int64, d time.Duration) (int64, bool) {
	if rate == 0 || qty == 0 || d <= 0 {
		return 0, true
	}
	num := new(big.Int).Mul(big.NewInt(rate), big.NewInt(qty))
	num.Mul(num, big.NewInt(int64(d)))
	den := new(big.Int).Mul(big.NewInt(unit), big.NewInt(int64(time.Hour)))
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 0, false
	}
	return q.Int64(), true
}

// ask is the provider's reservation price for hosting the hardware: the
// cost by its price list over each task's maximum duration, times the
// surge for the utilisation after placement, times the strategy's markup,
// and at least the reserve price.
func ask(p *Profile, hw []Hardware, dur map[string]time.Duration) (int64, error) {
	const gib = 1 << 30
	var cost int64
	add := func(v int64, ok bool) error {
		if !ok || cost > math.MaxInt64-v {
			return fmt.Errorf("%w: price of a bid by %s overflows int64", ErrInvalid, p.Name)
		}
		cost += v
		return nil
	}
	var used Capacity
	gpus := 0
	for _, h := range hw {
		d := dur[h.Task]
		if min := time.Duration(p.Pricing.MinimumSeconds) * time.Second; d < min {
			d = min
		}
		for _, e := range []error{
			add(hourCost(p.Pricing.CPUHour, h.MilliCPU, 1000, d)),
			add(hourCost(p.Pricing.MemoryGiBHour, h.MemoryBytes, gib, d)),
			add(hourCost(p.Pricing.DiskGiBHour, h.DiskBytes, gib, d)),
			add(hourCost(p.Pricing.GPUHour[h.GPUModel], int64(h.GPUs), 1, d)),
		} {
			if e != nil {
				return 0, e
			}
		}
		used.MilliCPU += h.MilliCPU
		used.MemoryBytes += h.MemoryBytes
		gpus += h.GPUs
	}
	f := 1 + p.Pricing.Surge*sq(utilisation(p, used, gpus))
	if p.Strategy.Name == "markup" {
		f *= 1 + p.Strategy.Markup
	}
	v := math.Ceil(float64(cost) * f)
	if v >= math.MaxInt64/2 {
		return 0, fmt.Errorf("%w: price of a bid by %s overflows", ErrInvalid, p.Name)
	}
	a := int64(v)
	if a < p.Pricing.Reserve {
		a = p.Pricing.Reserve
	}
	return a, nil
}

func sq(x float64) float64 { return x * x }

// utilisation is the largest utilised share of CPU, memory or GPUs of the
// pool after adding used.
func utilisation(p *Profile, used Capacity, gpus int) float64 {
	total := p.Total
	if total.MilliCPU == 0 && total.MemoryBytes == 0 && len(total.GPUs) == 0 {
		total = p.Free
	}
	share := func(free, tot, add int64) float64 {
		if tot <= 0 {
			return 0
		}
		return math.Min(1, float64(tot-free+add)/float64(tot))
	}
	u := math.Max(share(p.Free.MilliCPU, total.MilliCPU, used.MilliCPU), share(p.Free.MemoryBytes, total.MemoryBytes, used.MemoryBytes))
	tg, fg := 0, 0
	for _, g := range total.GPUs {
		tg += g.Count
	}
	for _, g := range p.Free.GPUs {
		fg += g.Count
	}
	return math.Max(u, share(int64(fg), int64(tg), int64(gpus)))
}

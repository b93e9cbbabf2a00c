package pools

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/runtimes/nomad"
)

// Summary is what `accord pool list` and `accord pool attach` report for a
// pool (its JSON shape is the CLI's contract).
type Summary struct {
	Name             string         `json:"name"`
	Kind             string         `json:"kind"`
	Address          string         `json:"address"`
	Region           string         `json:"region,omitempty"`
	NodePool         string         `json:"node_pool,omitempty"`
	Datacenter       string         `json:"datacenter,omitempty"`
	Health           string         `json:"health"` // ok, degraded, unreachable
	Error            string         `json:"error,omitempty"`
	Nodes            int            `json:"nodes"`
	SchedulableNodes int            `json:"schedulable_nodes"`
	GPUs             int            `json:"gpus"`
	HealthyGPUs      int            `json:"healthy_gpus"`
	FreeGPUs         int            `json:"free_gpus"`
	FreeGPUsByModel  map[string]int `json:"free_gpus_by_model"`
	FreeCPUMHz       int64          `json:"free_cpu_mhz"`
	FreeMemoryMB     int64          `json:"free_memory_mb"`
	RunningTasks     int            `json:"running_tasks"`
	Draining         bool           `json:"draining,omitempty"`
	Currency         string         `json:"currency,omitempty"`
	AttachedAt       time.Time      `json:"attached_at"`
}

// Describe contacts the pool and summarises its capacity and health. An
// unreachable pool is reported (Health "unreachable", Error set), not
// returned as an error, so that listing many pools shows them all.
func Describe(ctx context.Context, p Pool) Summary {
	s := Summary{
		Name: p.Name, Kind: p.Kind, Address: p.Options["address"], Region: p.Options["region"],
		NodePool: p.Options["node_pool"], Datacenter: p.Options["datacenter"],
		RunningTasks: len(p.Running), Draining: p.Draining, AttachedAt: p.AttachedAt,
		FreeGPUsByModel: map[string]int{},
	}
	if p.Pricing != nil {
		s.Currency = p.Pricing.Currency
	}
	c, err := Capacity(ctx, p)
	if err != nil {
		s.Health, s.Error = "unreachable", err.Error()
		return s
	}
	fill(&s, c)
	return s
}

func fill(s *Summary, c nomad.Capacity) {
	s.Nodes, s.SchedulableNodes, s.GPUs, s.HealthyGPUs, s.FreeGPUs = c.Totals()
	s.FreeGPUsByModel = c.FreeGPUsByModel()
	for _, n := range c.Nodes {
		s.FreeCPUMHz += n.FreeCPUMHz
		s.FreeMemoryMB += n.FreeMemoryMB
	}
	switch {
	case s.Nodes == 0 || s.SchedulableNodes == 0:
		s.Health, s.Error = "degraded", "no schedulable node in the pool"
	case s.SchedulableNodes < s.Nodes || s.HealthyGPUs < s.GPUs:
		s.Health = "degraded"
		s.Error = fmt.Sprintf("%d of %d nodes schedulable, %d of %d GPUs healthy", s.SchedulableNodes, s.Nodes, s.HealthyGPUs, s.GPUs)
	default:
		s.Health = "ok"
	}
}

// Capacity takes a fresh inventory snapshot of the pool.
func Capacity(ctx context.Context, p Pool) (nomad.Capacity, error) {
	cfg, err := p.NomadConfig()
	if err != nil {
		return nomad.Capacity{}, err
	}
	cl, err := nomad.NewClient(cfg)
	if err != nil {
		return nomad.Capacity{}, err
	}
	return nomad.Snapshot(ctx, cl, cfg)
}

// Attach validates a Nomad cluster — it answers, has a leader, the node pool
// exists and the inventory can be read — and records it as a pool. The
// pricing file, if any, is parsed and stored with the pool. Attaching the
// same configuration again is a no-op (idempotent).
func Attach(ctx context.Context, st *Store, name string, cfg nomad.Config, pricingFile string) (Summary, error) {
	cfg.Pool = name
	cl, err := nomad.NewClient(cfg)
	if err != nil {
		return Summary{}, err
	}
	if err := nomad.Ping(ctx, cl, cfg); err != nil {
		return Summary{}, fmt.Errorf("pools: attach %s: %w", name, err)
	}
	c, err := nomad.Snapshot(ctx, cl, cfg)
	if err != nil {
		return Summary{}, fmt.Errorf("pools: attach %s: %w", name, err)
	}
	p := Pool{Name: name, Kind: KindNomad, Options: cfg.Options(), PricingFile: pricingFile}
	delete(p.Options, "pool")
	if pricingFile != "" {
		if p.Pricing, err = LoadPricing(pricingFile); err != nil {
			return Summary{}, err
		}
	}
	if err := st.Add(p); err != nil {
		return Summary{}, err
	}
	stored, err := st.Get(name)
	if err != nil {
		return Summary{}, err
	}
	s := Describe(ctx, stored)
	if s.Health == "unreachable" {
		fill(&s, c)
	}
	return s, nil
}

// Detach removes a pool. With tasks running there it fails with ErrBusy
// unless drain is set; draining marks the pool so it takes no new tasks,
// then waits (checking each task's state on the cluster every poll) until
// none is left or ctx ends, and then removes it. Detaching an unknown pool
// returns ErrNotFound.
func Detach(ctx context.Context, st *Store, name string, drain bool, poll time.Duration) error {
	p, err := st.Get(name)
	if err != nil {
		return err
	}
	if len(p.Running) > 0 && !drain {
		if n := reconcile(ctx, st, p); n > 0 {
			return fmt.Errorf("%w: %d on %q (%v); use --drain to wait for them", ErrBusy, n, name, p.RunningTasks())
		}
	}
	if drain {
		if err := st.SetDraining(name, true); err != nil {
			return err
		}
		if poll <= 0 {
			poll = 5 * time.Second
		}
		for {
			p, err = st.Get(name)
			if err != nil {
				return err
			}
			if reconcile(ctx, st, p) == 0 {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("pools: draining %s: %d task(s) still running: %w", name, len(p.Running), ctx.Err())
			case <-time.After(poll):
			}
		}
	}
	return st.Remove(name, false)
}

// reconcile asks the cluster about each recorded task, forgets those that
// are terminal or gone, and returns how many still run.
func reconcile(ctx context.Context, st *Store, p Pool) int {
	rt, err := p.Runtime(ctx)
	if err != nil {
		return len(p.Running)
	}
	left := 0
	for _, id := range p.RunningTasks() {
		s, err := rt.Status(ctx, id)
		switch {
		case errors.Is(err, runtimes.ErrNotFound) || (err == nil && s.State.Terminal()):
			if err := st.TaskFinished(p.Name, id); err != nil {
				slog.Warn("pools: forget finished task", "pool", p.Name, "task", id, "err", err)
				left++
			}
		default:
			left++
		}
	}
	return left
}

// Offer is what a pool's provider agent bids for one task: the exact node
// and GPUs, and the price for the duration.
type Offer struct {
	Pool     string        `json:"pool"`
	Choice   nomad.Choice  `json:"choice"`
	Price    int64         `json:"price"` // minor units of Currency
	Currency string        `json:"currency"`
	Duration time.Duration `json:"duration_ns"`
}

// MakeOffer picks a node and GPUs for r in the capacity snapshot c and
// prices them with the pool's pricing for d. It fails with ErrDraining on a
// draining pool, ErrInvalid without pricing, and nomad.ErrNoFit when nothing
// fits. It reads no clock and no cluster, so the same inputs give the same
// offer.
func MakeOffer(p Pool, c nomad.Capacity, r runtimes.Resources, d time.Duration) (Offer, error) {
	if p.Draining {
		return Offer{}, fmt.Errorf("%w: %q takes no new tasks", ErrDraining, p.Name)
	}
	if p.Pricing == nil {
		return Offer{}, fmt.Errorf("%w: pool %q has no pricing (attach with --pricing)", ErrInvalid, p.Name)
	}
	ch, err := c.Pick(r)
	if err != nil {
		return Offer{}, err
	}
	model := ""
	if len(ch.GPUs) > 0 {
		model = ch.GPUs[0].Model
	}
	price, err := p.Pricing.Quote(r, model, d)
	if err != nil {
		return Offer{}, err
	}
	return Offer{Pool: p.Name, Choice: ch, Price: price, Currency: p.Pricing.Currency, Duration: d}, nil
}

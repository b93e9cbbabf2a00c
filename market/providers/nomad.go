package providers

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/broker"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/runtimes/nomad"
	"github.com/accordmesh/accord/runtimes/nomad/pools"
	"github.com/accordmesh/accord/specs"
)

// unmeteredDiskPerNode is the disk a pool's profile offers per schedulable
// node. The Nomad inventory does not track disk, so the market does not
// ration it; Nomad's own job plan refuses a task whose ephemeral disk does
// not fit, which fails the start with nomad.ErrPlacement.
const unmeteredDiskPerNode = 1 << 40

// PoolProvider is an attached Nomad pool as a market provider: its profile
// is the pool's live inventory (free GPUs by model with their memory, free
// CPU and memory of schedulable nodes) priced with the pool's price list.
type PoolProvider struct {
	Pool pools.Pool
}

// Profile takes a fresh inventory snapshot. It reads the cluster only, so a
// retried negotiation just reads it again.
func (p *PoolProvider) Profile(ctx context.Context) (market.Profile, error) {
	c, err := pools.Capacity(ctx, p.Pool)
	if err != nil {
		return market.Profile{}, fmt.Errorf("providers: pool %s inventory: %w", p.Pool.Name, err)
	}
	return poolProfile(p.Pool, c), nil
}

// poolProfile is the market's view of a capacity snapshot. GPUs are listed
// under the price list's key that prices them (the operator's name for the
// model, e.g. "H100" for "NVIDIA H100 80GB HBM3"), or their full model name
// when only the "*" rate applies.
func poolProfile(p pools.Pool, c nomad.Capacity) market.Profile {
	pr := p.Pricing
	region := p.Options["region"]
	if region == "" {
		region = "nomad"
	}
	prof := market.Profile{
		Name: p.Name, Region: region, Reputation: 1, SLA: DefaultSLA(),
		Pricing: market.Pricing{
			Currency: pr.Currency, CPUHour: pr.CPUCoreHour, MemoryGiBHour: pr.MemoryGiBHour,
			Reserve: pr.Minimum, GPUHour: map[string]int64{},
		},
	}
	type group struct {
		model string
		mem   int64
	}
	free, total := map[group]int{}, map[group]int{}
	perCore := c.CPUMHzPerCore
	if perCore <= 0 {
		perCore = 2000
	}
	for _, n := range c.Nodes {
		prof.Total.MilliCPU += n.CPUMHz * 1000 / perCore
		prof.Total.MemoryBytes += n.MemoryMB << 20
		if n.Schedulable {
			prof.Free.MilliCPU += n.FreeCPUMHz * 1000 / perCore
			prof.Free.MemoryBytes += n.FreeMemoryMB << 20
			prof.Free.DiskBytes += unmeteredDiskPerNode
		}
		for _, g := range n.GPUs {
			key, rate, ok := gpuKey(pr, g.Model)
			if !ok {
				continue // not for sale: no rate applies
			}
			prof.Pricing.GPUHour[key] = rate
			k := group{key, g.MemoryMiB << 20}
			total[k]++
			if g.Free {
				free[k]++
			}
		}
	}
	list := func(m map[group]int) []market.GPUPool {
		var out []market.GPUPool
		for k, n := range m {
			out = append(out, market.GPUPool{Model: k.model, MemoryBytes: k.mem, Count: n})
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].Model != out[j].Model {
				return out[i].Model < out[j].Model
			}
			return out[i].MemoryBytes < out[j].MemoryBytes
		})
		return out
	}
	prof.Free.GPUs, prof.Total.GPUs = list(free), list(total)
	return prof
}

// gpuKey is the price list's key for a GPU model (longest contained key,
// as pools.Pricing.GPURate matches) and its rate; the model itself under
// the "*" rate.
func gpuKey(pr *pools.Pricing, model string) (string, int64, bool) {
	best := ""
	m := strings.ToLower(model)
	for k := range pr.GPUHour {
		if k == "*" || !strings.Contains(m, strings.ToLower(k)) {
			continue
		}
		if len(k) > len(best) || (len(k) == len(best) && k < best) {
			best = k
		}
	}
	if best != "" {
		return best, pr.GPUHour[best], true
	}
	if r, ok := pr.GPUHour["*"]; ok {
		return model, r, true
	}
	return "", 0, false
}

// Pools lists the attached pools that can sell: not draining and priced.
// A pool that cannot be read is left out of this negotiation, and one that
// cannot be reached offers nothing instead of failing it.
func Pools(store *pools.Store, log *slog.Logger) []market.Provider {
	ps, err := store.List()
	if err != nil {
		log.Warn("pools unreadable; negotiating without them", "error", err)
		return nil
	}
	var out []market.Provider
	for _, p := range ps {
		if p.Draining || p.Pricing == nil || p.Kind != pools.KindNomad || p.Name == LocalPoolName {
			continue
		}
		out = append(out, &reachable{PoolProvider{Pool: p}, log})
	}
	return out
}

// reachable leaves an unreachable pool out of a negotiation (a profile with
// no capacity) instead of failing it for every provider.
type reachable struct {
	PoolProvider
	log *slog.Logger
}

func (r *reachable) Profile(ctx context.Context) (market.Profile, error) {
	prof, err := r.PoolProvider.Profile(ctx)
	if err != nil {
		r.log.Warn("pool unreachable; it offers nothing", "pool", r.Pool.Name, "error", err)
		return poolProfile(r.Pool, nomad.Capacity{}), nil
	}
	return prof, nil
}

// AssignDevices names, for an award on an attached pool, the node and GPU
// instances each task gets, from a fresh snapshot: tasks are picked in plan
// order and each pick is taken out of the snapshot, so tasks that run at
// the same time never share a GPU. Other providers assign nothing. It has
// broker.Broker's Assign signature.
func AssignDevices(store *pools.Store) func(ctx context.Context, provider string, plan *specs.Plan) ([]broker.TaskDevices, error) {
	return func(ctx context.Context, provider string, plan *specs.Plan) ([]broker.TaskDevices, error) {
		if provider == LocalPoolName {
			return nil, nil
		}
		p, err := store.Get(provider)
		if err != nil {
			return nil, nil // not a pool
		}
		c, err := pools.Capacity(ctx, p)
		if err != nil {
			return nil, err
		}
		var out []broker.TaskDevices
		for _, t := range plan.Tasks {
			r := runtimes.Resources{
				MilliCPU: t.Resources.MilliCPU, MemoryBytes: t.Resources.MemoryBytes, DiskBytes: t.Resources.DiskBytes,
				GPUs: t.Resources.GPU.Count, GPUModel: t.Resources.GPU.Model, GPUMemBytes: t.Resources.GPU.MinMemoryBytes,
				MaxDuration: t.Resources.MaxDuration,
			}
			d := r.MaxDuration
			if d <= 0 {
				d = time.Hour
			}
			off, err := pools.MakeOffer(p, c, r, d)
			if err != nil {
				return nil, fmt.Errorf("task %s: %w", t.Name, err)
			}
			out = append(out, broker.TaskDevices{Task: t.Name, Node: off.Choice.NodeID, GPUDevices: off.Choice.GPUIDs()})
			take(&c, off.Choice)
		}
		return out, nil
	}
}

// take removes a choice from a snapshot (on a copy of the node list).
func take(c *nomad.Capacity, ch nomad.Choice) {
	nodes := append([]nomad.NodeCapacity(nil), c.Nodes...)
	for i := range nodes {
		n := &nodes[i]
		if n.ID != ch.NodeID {
			continue
		}
		n.FreeCPUMHz -= ch.CPUMHz
		n.FreeMemoryMB -= ch.MemoryMB
		n.GPUs = append([]nomad.GPU(nil), n.GPUs...)
		for j := range n.GPUs {
			for _, g := range ch.GPUs {
				if n.GPUs[j].ID == g.ID {
					n.GPUs[j].Free = false
				}
			}
		}
	}
	c.Nodes = nodes
}

package nomad

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/accordmesh/accord/runtimes"
)

// GPU is one device instance as the inventory sees it.
type GPU struct {
	ID                string `json:"id"` // Nomad device instance ID (the GPU UUID with the nvidia plugin)
	Vendor            string `json:"vendor"`
	Type              string `json:"type"`
	Model             string `json:"model"` // Nomad's device name, e.g. "NVIDIA H100 80GB HBM3"
	MemoryMiB         int64  `json:"memory_mib"`
	Healthy           bool   `json:"healthy"`
	HealthDescription string `json:"health_description,omitempty"`
	Free              bool   `json:"free"` // healthy, unallocated and on a schedulable node
}

// NodeCapacity is one node's totals and what is left of them.
type NodeCapacity struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	Datacenter   string   `json:"datacenter"`
	NodePool     string   `json:"node_pool"`
	Status       string   `json:"status"` // ready, down, disconnected, initializing
	Eligible     bool     `json:"eligible"`
	Draining     bool     `json:"draining"`
	Schedulable  bool     `json:"schedulable"` // ready, eligible and not draining
	Drivers      []string `json:"drivers"`     // healthy task drivers
	CPUMHz       int64    `json:"cpu_mhz"`     // total minus reserved
	MemoryMB     int64    `json:"memory_mb"`   // total minus reserved
	FreeCPUMHz   int64    `json:"free_cpu_mhz"`
	FreeMemoryMB int64    `json:"free_memory_mb"`
	GPUs         []GPU    `json:"gpus"`
}

// Capacity is a consistent snapshot of a pool's nodes.
type Capacity struct {
	Pool          string         `json:"pool"`
	Index         uint64         `json:"index"` // Nomad raft index the snapshot reflects
	Taken         time.Time      `json:"taken"`
	CPUMHzPerCore int64          `json:"cpu_mhz_per_core"`
	Nodes         []NodeCapacity `json:"nodes"`
}

// Choice is a feasible node and the exact GPUs to offer for a request.
type Choice struct {
	NodeID     string `json:"node_id"`
	NodeName   string `json:"node_name"`
	Datacenter string `json:"datacenter"`
	GPUs       []GPU  `json:"gpus"`
	CPUMHz     int64  `json:"cpu_mhz"`
	MemoryMB   int64  `json:"memory_mb"`
}

// GPUIDs lists the chosen device instance IDs (for runtimes.Resources.GPUDevices).
func (c Choice) GPUIDs() []string {
	ids := make([]string, len(c.GPUs))
	for i, g := range c.GPUs {
		ids[i] = g.ID
	}
	return ids
}

// FreeGPUsByModel counts free GPUs per model.
func (c Capacity) FreeGPUsByModel() map[string]int {
	out := map[string]int{}
	for _, n := range c.Nodes {
		for _, g := range n.GPUs {
			if g.Free {
				out[g.Model]++
			}
		}
	}
	return out
}

// Totals sums the pool: nodes, schedulable nodes, GPUs, healthy and free GPUs.
func (c Capacity) Totals() (nodes, schedulable, gpus, healthy, free int) {
	for _, n := range c.Nodes {
		nodes++
		if n.Schedulable {
			schedulable++
		}
		for _, g := range n.GPUs {
			gpus++
			if g.Healthy {
				healthy++
			}
			if g.Free {
				free++
			}
		}
	}
	return
}

// Pick chooses a node and GPU set for r: a schedulable node with the free
// CPU and memory, and r.GPUs free healthy GPUs of one device group (Nomad
// grants a device request from one group) whose model contains r.GPUModel
// (case-insensitive) and with at least r.GPUMemBytes each. When r.GPUDevices
// names exact instances, only those are considered. Among feasible nodes it
// prefers the one left with the fewest free GPUs (packing), then the lowest
// ID, so that large requests still find whole nodes later.
func (c Capacity) Pick(r runtimes.Resources) (Choice, error) {
	perCore := c.CPUMHzPerCore
	if perCore == 0 {
		perCore = DefaultCPUMHzPerCore
	}
	cpu, mem := cpuMHz(r.MilliCPU, perCore), taskMemoryMB(r.MemoryBytes)
	var best *Choice
	bestLeft := 0
	for _, n := range c.Nodes {
		if !n.Schedulable || n.FreeCPUMHz < cpu || n.FreeMemoryMB < mem {
			continue
		}
		gpus := pickGPUs(n.GPUs, r)
		if r.GPUs > 0 && gpus == nil {
			continue
		}
		left := 0
		for _, g := range n.GPUs {
			if g.Free {
				left++
			}
		}
		left -= len(gpus)
		if best == nil || left < bestLeft || (left == bestLeft && n.ID < best.NodeID) {
			best = &Choice{NodeID: n.ID, NodeName: n.Name, Datacenter: n.Datacenter, GPUs: gpus, CPUMHz: cpu, MemoryMB: mem}
			bestLeft = left
		}
	}
	if best == nil {
		return Choice{}, fmt.Errorf("%w in pool %q: %s", ErrNoFit, c.Pool, describe(r, perCore))
	}
	return *best, nil
}

func pickGPUs(all []GPU, r runtimes.Resources) []GPU {
	if r.GPUs <= 0 {
		return []GPU{}
	}
	minMiB := memoryMB(r.GPUMemBytes)
	groups := map[string][]GPU{}
	var keys []string
	for _, g := range all {
		if !g.Free || g.Type != "gpu" || g.MemoryMiB < minMiB {
			continue
		}
		if r.GPUModel != "" && !strings.Contains(strings.ToLower(g.Model), strings.ToLower(r.GPUModel)) {
			continue
		}
		if len(r.GPUDevices) > 0 && !containsString(r.GPUDevices, g.ID) {
			continue
		}
		k := g.Vendor + "/" + g.Type + "/" + g.Model
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], g)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if g := groups[k]; len(g) >= r.GPUs {
			sort.Slice(g, func(i, j int) bool { return g[i].ID < g[j].ID })
			return append([]GPU(nil), g[:r.GPUs]...)
		}
	}
	return nil
}

func describe(r runtimes.Resources, perCore int64) string {
	s := fmt.Sprintf("cpu %d MHz, memory %d MB", cpuMHz(r.MilliCPU, perCore), taskMemoryMB(r.MemoryBytes))
	if r.GPUs > 0 {
		s += fmt.Sprintf(", %d GPU", r.GPUs)
		if r.GPUModel != "" {
			s += " model ~" + r.GPUModel
		}
		if r.GPUMemBytes > 0 {
			s += fmt.Sprintf(" with ≥ %d MiB", memoryMB(r.GPUMemBytes))
		}
	}
	return s
}

// Compute derives a Capacity from a node listing (with resources) and an
// allocation listing (with resources). It is pure so that the arithmetic
// can be tested against known answers.
func Compute(cfg Config, nodes []*api.NodeListStub, allocs []*api.AllocationListStub) Capacity {
	perCore := cfg.CPUMHzPerCore
	if perCore == 0 {
		perCore = DefaultCPUMHzPerCore
	}
	type used struct {
		cpu, mem int64
		devs     map[string]bool
	}
	byNode := map[string]*used{}
	for _, a := range allocs {
		if allocTerminal(a.ClientStatus, a.DesiredStatus) || a.AllocatedResources == nil {
			continue
		}
		u := byNode[a.NodeID]
		if u == nil {
			u = &used{devs: map[string]bool{}}
			byNode[a.NodeID] = u
		}
		for _, tr := range a.AllocatedResources.Tasks {
			if tr == nil {
				continue
			}
			u.cpu += tr.Cpu.CpuShares
			u.mem += tr.Memory.MemoryMB
			for _, d := range tr.Devices {
				for _, id := range d.DeviceIDs {
					u.devs[id] = true
				}
			}
		}
	}
	c := Capacity{Pool: cfg.Pool, CPUMHzPerCore: perCore, Taken: time.Now().UTC()}
	for _, n := range nodes {
		if !inScope(cfg, n.NodePool, n.Datacenter) || n.NodeResources == nil {
			continue
		}
		nc := NodeCapacity{
			ID: n.ID, Name: n.Name, Datacenter: n.Datacenter, NodePool: n.NodePool, Status: n.Status,
			Eligible: n.SchedulingEligibility == api.NodeSchedulingEligible, Draining: n.Drain,
			CPUMHz: n.NodeResources.Cpu.CpuShares, MemoryMB: n.NodeResources.Memory.MemoryMB,
		}
		nc.Schedulable = nc.Status == "ready" && nc.Eligible && !nc.Draining
		for name, d := range n.Drivers {
			if d != nil && d.Detected && d.Healthy {
				nc.Drivers = append(nc.Drivers, name)
			}
		}
		sort.Strings(nc.Drivers)
		if rr := n.ReservedResources; rr != nil {
			nc.CPUMHz -= int64(rr.Cpu.CpuShares)
			nc.MemoryMB -= int64(rr.Memory.MemoryMB)
		}
		u := byNode[n.ID]
		if u == nil {
			u = &used{devs: map[string]bool{}}
		}
		nc.FreeCPUMHz = max(0, nc.CPUMHz-u.cpu)
		nc.FreeMemoryMB = max(0, nc.MemoryMB-u.mem)
		if !nc.Schedulable {
			nc.FreeCPUMHz, nc.FreeMemoryMB = 0, 0
		}
		for _, d := range n.NodeResources.Devices {
			if d == nil || d.Type != "gpu" {
				continue
			}
			memMiB := attrMiB(d.Attributes["memory"])
			for _, inst := range d.Instances {
				g := GPU{ID: inst.ID, Vendor: d.Vendor, Type: d.Type, Model: d.Name, MemoryMiB: memMiB,
					Healthy: inst.Healthy, HealthDescription: inst.HealthDescription}
				g.Free = g.Healthy && !u.devs[inst.ID] && nc.Schedulable
				nc.GPUs = append(nc.GPUs, g)
			}
		}
		sort.Slice(nc.GPUs, func(i, j int) bool { return nc.GPUs[i].ID < nc.GPUs[j].ID })
		c.Nodes = append(c.Nodes, nc)
	}
	sort.Slice(c.Nodes, func(i, j int) bool { return c.Nodes[i].ID < c.Nodes[j].ID })
	return c
}

// allocTerminal mirrors Nomad's Allocation.TerminalStatus: terminal
// allocations hold no resources for the scheduler.
func allocTerminal(client, desired string) bool {
	switch desired {
	case api.AllocDesiredStatusStop, api.AllocDesiredStatusEvict:
		return true
	}
	switch client {
	case api.AllocClientStatusComplete, api.AllocClientStatusFailed, api.AllocClientStatusLost:
		return true
	}
	return false
}

func inScope(cfg Config, pool, dc string) bool {
	if p := cfg.nodePool(); p != "all" && pool != p {
		return false
	}
	if len(cfg.Datacenters) == 0 {
		return true
	}
	for _, d := range cfg.Datacenters {
		if d == "*" || d == dc || (strings.HasSuffix(d, "*") && strings.HasPrefix(dc, strings.TrimSuffix(d, "*"))) {
			return true
		}
	}
	return false
}

// attrMiB reads a memory attribute ("81920 MiB" as Int+Unit) in MiB.
func attrMiB(a *api.Attribute) int64 {
	if a == nil {
		return 0
	}
	var v float64
	switch {
	case a.IntVal != nil:
		v = float64(*a.IntVal)
	case a.FloatVal != nil:
		v = *a.FloatVal
	default:
		return 0
	}
	scale := map[string]float64{"": 1 << 20, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[a.Unit]
	if scale == 0 {
		return 0
	}
	return int64(v * scale / (1 << 20))
}

// Snapshot reads the pool's capacity now: one node listing and one
// allocation listing (all namespaces), each with resources.
func Snapshot(ctx context.Context, cl *api.Client, cfg Config) (Capacity, error) {
	q := (&api.QueryOptions{Params: map[string]string{"resources": "true"}}).WithContext(ctx)
	nodes, nm, err := cl.Nodes().List(q)
	if err != nil {
		return Capacity{}, fmt.Errorf("%w: list nodes: %w", runtimes.ErrUnavailable, err)
	}
	aq := (&api.QueryOptions{Namespace: "*", Params: map[string]string{"resources": "true"}}).WithContext(ctx)
	allocs, am, err := cl.Allocations().List(aq)
	if err != nil {
		return Capacity{}, fmt.Errorf("%w: list allocations: %w", runtimes.ErrUnavailable, err)
	}
	c := Compute(cfg, nodes, allocs)
	c.Index = max(nm.LastIndex, am.LastIndex)
	return c, nil
}

// Watch sends a fresh Capacity whenever nodes or allocations change, first
// right away. Changes are learnt from the event stream (topics Node and
// Allocation), falling back to blocking queries on /v1/nodes and
// /v1/allocations when the stream cannot be used (older agents, ACL policy
// without event access). Bursts of changes are coalesced; a slow reader gets
// the latest snapshot, never a stale backlog. The channel closes when ctx
// ends.
func Watch(ctx context.Context, cl *api.Client, cfg Config) <-chan Capacity {
	out := make(chan Capacity, 1)
	go func() {
		defer close(out)
		trigger := make(chan struct{}, 1)
		poke := func() {
			select {
			case trigger <- struct{}{}:
			default:
			}
		}
		var last Capacity
		var have bool
		publish := func() {
			c, err := Snapshot(ctx, cl, cfg)
			if err != nil {
				if ctx.Err() == nil {
					slog.Warn("nomad inventory snapshot failed", "pool", cfg.Pool, "err", err)
				}
				return
			}
			if have && sameCapacity(last, c) {
				return
			}
			last, have = c, true
			select { // replace an unread snapshot with the newer one
			case <-out:
			default:
			}
			out <- c
		}
		publish()
		go watchChanges(ctx, cl, last.Index, poke)
		const settle = 50 * time.Millisecond
		retry := time.NewTicker(30 * time.Second) // recover from missed snapshots
		defer retry.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-retry.C:
				publish()
			case <-trigger:
				select {
				case <-ctx.Done():
					return
				case <-time.After(settle):
				}
				publish()
			}
		}
	}()
	return out
}

func sameCapacity(a, b Capacity) bool {
	a.Taken, b.Taken, a.Index, b.Index = time.Time{}, time.Time{}, 0, 0
	return reflect.DeepEqual(a, b)
}

// watchChanges calls poke on every change it learns of until ctx ends.
func watchChanges(ctx context.Context, cl *api.Client, index uint64, poke func()) {
	topics := map[api.Topic][]string{api.TopicNode: {"*"}, api.TopicAllocation: {"*"}}
	for ctx.Err() == nil {
		q := (&api.QueryOptions{Namespace: "*"}).WithContext(ctx)
		// From the snapshot's own index: at worst one redundant event, never a missed one.
		ch, err := cl.EventStream().Stream(ctx, topics, index, q)
		if err != nil {
			slog.Debug("nomad event stream unavailable, using blocking queries", "err", err)
			blockingChanges(ctx, cl, index, poke)
			return
		}
		for ev := range ch {
			if ev.Err != nil {
				slog.Debug("nomad event stream ended", "err", ev.Err)
				break
			}
			if ev.Index > index {
				index = ev.Index
			}
			poke()
		}
		select { // brief pause before reconnecting
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// blockingChanges long-polls nodes and allocations with their last index.
func blockingChanges(ctx context.Context, cl *api.Client, index uint64, poke func()) {
	loop := func(list func(q *api.QueryOptions) (uint64, error)) {
		idx := index
		for ctx.Err() == nil {
			q := (&api.QueryOptions{WaitIndex: idx, WaitTime: 5 * time.Minute, Namespace: "*"}).WithContext(ctx)
			last, err := list(q)
			if err != nil {
				select {
				case <-ctx.Done():
					return
				case <-time.After(2 * time.Second):
				}
				continue
			}
			if last > idx {
				idx = last
				poke()
			}
		}
	}
	go loop(func(q *api.QueryOptions) (uint64, error) {
		_, m, err := cl.Nodes().List(q)
		if err != nil {
			return 0, err
		}
		return m.LastIndex, nil
	})
	loop(func(q *api.QueryOptions) (uint64, error) {
		_, m, err := cl.Allocations().List(q)
		if err != nil {
			return 0, err
		}
		return m.LastIndex, nil
	})
}

func cpuMHz(milli, perCore int64) int64 {
	if milli <= 0 {
		return 100 // Nomad's default task CPU
	}
	return (milli*perCore + 999) / 1000
}

// taskMemoryMB is the memory a task asks Nomad for (Nomad's default 300 MB when unset).
func taskMemoryMB(b int64) int64 {
	if b <= 0 {
		return 300
	}
	return memoryMB(b)
}

func memoryMB(b int64) int64 {
	if b <= 0 {
		return 0
	}
	return (b + (1 << 20) - 1) >> 20
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

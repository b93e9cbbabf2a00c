package specs

import (
	"container/heap"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"
)

// Reference rates in minor units of the budget currency per hour, used only
// for Plan.ReferenceCost: a market-independent yardstick that tells whether
// a budget is plausibly enough, never a price anyone pays.
const (
	RefPriceCoreHour = 4   // one CPU core for an hour
	RefPriceGiBHour  = 1   // one GiB of memory for an hour
	RefPriceGPUHour  = 250 // one GPU for an hour
)

// Compile turns a loaded spec into a Plan: tasks in topological order (ties
// broken by name), their DAG levels, the critical path by max_duration,
// trust and data-flow annotations, the cost bounds and both digests.
// It does not modify s. A spec that did not come from Load is checked for
// unknown dependencies and cycles; other validation is Load's.
func Compile(s *Spec) (*Plan, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil spec", ErrInvalid)
	}
	contract, err := ContractDigest(s)
	if err != nil {
		return nil, err
	}
	n := len(s.Tasks)
	idx := make(map[string]int, n)
	for i, t := range s.Tasks {
		if _, dup := idx[t.Name]; dup {
			return nil, fmt.Errorf("%w: duplicate task %q", ErrInvalid, t.Name)
		}
		idx[t.Name] = i
	}
	// Edges dep -> task, counted once per distinct dependency.
	indeg := make([]int, n)
	down := make([][]int, n)
	deps := make([][]int, n)
	for i, t := range s.Tasks {
		seen := make(map[int]bool, len(t.DependsOn))
		for _, d := range t.DependsOn {
			j, ok := idx[d]
			if !ok {
				return nil, fmt.Errorf("%w: task %q depends on unknown task %q", ErrInvalid, t.Name, d)
			}
			if seen[j] {
				continue
			}
			seen[j] = true
			indeg[i]++
			down[j] = append(down[j], i)
			deps[i] = append(deps[i], j)
		}
	}
	ready := &nameHeap{tasks: s.Tasks}
	for i := range s.Tasks {
		if indeg[i] == 0 {
			ready.idx = append(ready.idx, i)
		}
	}
	heap.Init(ready)
	order := make([]int, 0, n)
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		order = append(order, i)
		for _, j := range down[i] {
			if indeg[j]--; indeg[j] == 0 {
				heap.Push(ready, j)
			}
		}
	}
	if len(order) != n {
		var stuck []string
		for i := range s.Tasks {
			if indeg[i] > 0 {
				stuck = append(stuck, s.Tasks[i].Name)
			}
		}
		return nil, fmt.Errorf("%w: dependency cycle among %s", ErrInvalid, strings.Join(stuck, ", "))
	}

	// Levels and the longest path by max_duration, in topological order.
	level := make([]int, n)
	finish := make([]time.Duration, n)
	via := make([]int, n)
	levels := 0
	for _, i := range order {
		via[i] = -1
		var start time.Duration
		for _, j := range deps[i] {
			level[i] = max(level[i], level[j]+1)
			if via[i] < 0 || finish[j] > start || (finish[j] == start && s.Tasks[j].Name < s.Tasks[via[i]].Name) {
				start, via[i] = finish[j], j
			}
		}
		finish[i] = satAdd(start, s.Tasks[i].Resources.MaxDuration)
		levels = max(levels, level[i]+1)
	}
	end := -1
	for _, i := range order {
		if end < 0 || finish[i] > finish[end] || (finish[i] == finish[end] && s.Tasks[i].Name < s.Tasks[end].Name) {
			end = i
		}
	}
	critical := make([]bool, n)
	var path []string
	var critTime time.Duration
	if end >= 0 {
		critTime = finish[end]
		for i := end; i >= 0; i = via[i] {
			critical[i] = true
			path = append(path, s.Tasks[i].Name)
		}
		for a, b := 0, len(path)-1; a < b; a, b = a+1, b-1 {
			path[a], path[b] = path[b], path[a]
		}
	}

	p := &Plan{
		Name:           s.Name,
		Version:        s.Version,
		Tenant:         s.Tenant,
		DocumentDigest: s.Source.DocumentDigest,
		ContractDigest: contract,
		Tasks:          make([]PlanTask, 0, n),
		CriticalPath:   path,
		CriticalTime:   critTime,
		MaxCost:        s.Budget.MaxPrice,
		Currency:       s.Budget.Currency,
		Spec:           s,
		Levels:         levels,
		Documents:      s.Source.Documents,
	}
	if p.CriticalPath == nil {
		p.CriticalPath = []string{}
	}
	if p.Documents == nil {
		p.Documents = []Document{}
	}
	for _, i := range order {
		t := s.Tasks[i]
		pt := PlanTask{
			Task:     t,
			Level:    level[i],
			Critical: critical[i],
			Trust:    trust(s, &t),
			Origin:   s.Source.Positions["tasks."+t.Name],
		}
		for _, in := range t.Inputs {
			if in.From != "" {
				pt.Consumes = append(pt.Consumes, in.From)
			}
		}
		p.Tasks = append(p.Tasks, pt)
	}
	p.Envelope, p.ReferenceCost = envelope(s.Tasks)
	return p, nil
}

// trust lists what a task's result can be trusted for: how its image is
// pinned, where it must run, and how each input is pinned.
func trust(s *Spec, t *Task) []string {
	var out []string
	switch {
	case strings.HasPrefix(t.Image, "oci-archive:"):
		out = append(out, "image:local-archive")
	case strings.HasPrefix(t.Image, ArtifactImagePrefix):
		out = append(out, "image:artifact")
	default:
		out = append(out, "image:digest-pinned")
	}
	if s.Placement.TEE != "" {
		out = append(out, "tee:"+s.Placement.TEE)
	}
	if s.Placement.RequireAttestation {
		out = append(out, "attestation:required")
	}
	for _, in := range t.Inputs {
		switch {
		case in.Artifact != "":
			out = append(out, "input:"+in.Name+":artifact")
		case in.SHA256 != "":
			out = append(out, "input:"+in.Name+":sha256")
		case in.From != "":
			out = append(out, "input:"+in.Name+":upstream")
		default:
			out = append(out, "input:"+in.Name+":unpinned")
		}
	}
	for _, o := range t.Outputs {
		if o.SHA256 != "" {
			out = append(out, "output:"+o.Path+":sha256")
		}
	}
	return out
}

// envelope sums every task's worst case (attempts × max_duration) and prices
// it at the reference rates: ceil(Σ attempts × hours × (cores×RefPriceCoreHour
// + GiB×RefPriceGiBHour + GPUs×RefPriceGPUHour)).
func envelope(tasks []Task) (Envelope, int64) {
	var taskNs, cpu, mem, gpu, cost big.Int
	var tmp big.Int
	for _, t := range tasks {
		ns := new(big.Int).Mul(big.NewInt(int64(t.Retry.Attempts)), big.NewInt(int64(t.Resources.MaxDuration)))
		taskNs.Add(&taskNs, ns)
		cpu.Add(&cpu, tmp.Mul(ns, big.NewInt(t.Resources.MilliCPU)))
		mem.Add(&mem, tmp.Mul(ns, big.NewInt(t.Resources.MemoryBytes)))
		gpu.Add(&gpu, tmp.Mul(ns, big.NewInt(int64(t.Resources.GPU.Count))))
	}
	sec := big.NewInt(int64(time.Second))
	hour := big.NewInt(int64(time.Hour))
	gib := big.NewInt(1 << 30)
	env := Envelope{
		TaskSeconds:      ceilSat(&taskNs, sec),
		CPUCoreSeconds:   ceilSat(&cpu, new(big.Int).Mul(sec, big.NewInt(1000))),
		MemoryGiBSeconds: ceilSat(&mem, new(big.Int).Mul(sec, gib)),
		GPUSeconds:       ceilSat(&gpu, sec),
	}
	// cost = cpu_ms_ns*4/(1000*hour) + mem_byte_ns*1/(gib*hour) + gpu_ns*250/hour,
	// over the common denominator 1000*gib*hour.
	den := new(big.Int).Mul(new(big.Int).Mul(big.NewInt(1000), gib), hour)
	cost.Mul(&cpu, new(big.Int).Mul(big.NewInt(RefPriceCoreHour), gib))
	cost.Add(&cost, tmp.Mul(&mem, big.NewInt(RefPriceGiBHour*1000)))
	cost.Add(&cost, tmp.Mul(&gpu, new(big.Int).Mul(big.NewInt(RefPriceGPUHour*1000), gib)))
	return env, ceilSat(&cost, den)
}

func ceilSat(num, den *big.Int) int64 {
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	if r.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return math.MaxInt64
	}
	return q.Int64()
}

func satAdd(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// nameHeap orders task indices by task name.
type nameHeap struct {
	tasks []Task
	idx   []int
}

func (h *nameHeap) Len() int           { return len(h.idx) }
func (h *nameHeap) Less(i, j int) bool { return h.tasks[h.idx[i]].Name < h.tasks[h.idx[j]].Name }
func (h *nameHeap) Swap(i, j int)      { h.idx[i], h.idx[j] = h.idx[j], h.idx[i] }
func (h *nameHeap) Push(x any)         { h.idx = append(h.idx, x.(int)) }
func (h *nameHeap) Pop() any {
	x := h.idx[len(h.idx)-1]
	h.idx = h.idx[:len(h.idx)-1]
	return x
}

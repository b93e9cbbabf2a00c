package market

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Synthetic batches: deterministic job specs and provider profiles for
// benchmarks and tests of batch clearing (`make bench-market-clear`) and of
// the protocols (`make bench-saop`). Jobs
// have one to four tasks (CPU and memory of a typical batch job, a quarter
// of the jobs with one to two GPUs of a given model), half the
// multi-task jobs keep their first two tasks together
// (placement.colocate), so that they split into co-location groups, and each job's budget is
// one to three times its cost at the middle of the providers' price lists.
// Providers have a few hundred cores, half of them a GPU pool of one
// model, and list prices that vary by a factor of about two.

// gpuModels are the synthetic GPU models with their middle price per
// GPU-hour (minor units) and memory (GiB).
var gpuModels = []struct {
	name  string
	price int64
	mem   int64
}{{"H100", 300, 80}, {"A100", 200, 40}, {"L4", 70, 24}}

// Middle list prices per core-hour and GiB-hour, minor units.
const (
	synthCPUHour = 4
	synthMemHour = 1
)

// SyntheticJob returns the spec, as Markdown, of job i of the synthetic
// batch drawn with seed.
func SyntheticJob(seed uint64, i int) string {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	ntasks := []int{1, 1, 1, 1, 2, 2, 2, 3, 3, 4}[r.IntN(10)]
	gpuTask := -1
	if r.IntN(4) == 0 {
		gpuTask = r.IntN(ntasks)
	}
	grouped := ntasks > 1 && r.IntN(2) == 0
	var tasks strings.Builder
	var cost float64
	for t := 0; t < ntasks; t++ {
		cpu := 1 + r.IntN(8)
		mem := 1 + r.IntN(32)
		minutes := 10 + r.IntN(111)
		hours := float64(minutes) / 60
		cost += hours * float64(cpu*synthCPUHour+mem*synthMemHour)
		fmt.Fprintf(&tasks, "t%d:\n  image: oci-archive:images/trainer.tar\n  command: [trainer, train]\n", t)
		fmt.Fprintf(&tasks, "  resources:\n    cpu: %d\n    memory: %dGiB\n    max_duration: %dm\n", cpu, mem, minutes)
		if t == gpuTask {
			g := gpuModels[r.IntN(len(gpuModels))]
			n := 1 + r.IntN(2)
			cost += hours * float64(int64(n)*g.price)
			fmt.Fprintf(&tasks, "    gpu:\n      count: %d\n      model: %s\n", n, g.name)
		}
	}
	budget := max(1, int64(cost*(1+2*r.Float64())))
	placement := ""
	if grouped {
		placement = "## Placement\n\n```yaml\ncolocate: [[t0, t1]]\n```\n\n"
	}
	return fmt.Sprintf(`---
accord: v1
name: synthetic-%d
version: 1.0.0
tenant: synthetic
description: Synthetic batch job %d (seed %d).
---

# Synthetic job

## Tasks

`+"```yaml\n%s```"+`

## Budget

`+"```yaml\nmax_price: %d\ncurrency: USD\n```"+`

%s## Negotiation

`+"```yaml\nprotocol: auction\n```\n", i, i, seed, tasks.String(), budget, placement)
}

// SyntheticProviders returns n provider profiles of the synthetic batch
// drawn with seed.
func SyntheticProviders(seed uint64, n int) []Profile {
	out := make([]Profile, n)
	for i := range out {
		r := rand.New(rand.NewPCG(seed^0x9e3779b97f4a7c15, uint64(i)))
		scale := func(mid int64) int64 { return max(1, int64(float64(mid)*(0.6+0.8*r.Float64())+0.5)) }
		p := Profile{Name: fmt.Sprintf("p%03d", i), Region: "eu-west-1", Reputation: 0.5 + r.Float64()/2,
			Free: Capacity{MilliCPU: int64(32+r.IntN(225)) * 1000, MemoryBytes: int64(128+r.IntN(897)) << 30},
			Pricing: Pricing{Currency: "USD", CPUHour: scale(synthCPUHour), MemoryGiBHour: scale(synthMemHour),
				Surge: r.Float64() / 2}}
		if r.IntN(2) == 0 {
			g := gpuModels[r.IntN(len(gpuModels))]
			p.Free.GPUs = []GPUPool{{Model: g.name, MemoryBytes: g.mem << 30, Count: 4 + r.IntN(5)}}
			p.Pricing.GPUHour = map[string]int64{g.name: scale(g.price)}
		}
		out[i] = p
	}
	return out
}

// WriteSynthetic writes the synthetic batch drawn with seed into dir: jobs
// specs as dir/jobs/job-NNNN.md and the providers as dir/providers.yaml
// (the inputs of `accord market clear`), returning those two paths.
func WriteSynthetic(dir string, seed uint64, jobs, providers int) (jobsDir, provPath string, err error) {
	jobsDir = filepath.Join(dir, "jobs")
	if err := os.MkdirAll(jobsDir, 0o755); err != nil {
		return "", "", fmt.Errorf("market: synthetic batch: %w", err)
	}
	for i := 0; i < jobs; i++ {
		path := filepath.Join(jobsDir, fmt.Sprintf("job-%04d.md", i))
		if err := os.WriteFile(path, []byte(SyntheticJob(seed, i)), 0o644); err != nil {
			return "", "", fmt.Errorf("market: synthetic batch: %w", err)
		}
	}
	b, err := yaml.Marshal(providersFile{Providers: SyntheticProviders(seed, providers)})
	if err != nil {
		return "", "", fmt.Errorf("market: synthetic providers: %w", err)
	}
	provPath = filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(provPath, b, 0o644); err != nil {
		return "", "", fmt.Errorf("market: synthetic batch: %w", err)
	}
	return jobsDir, provPath, nil
}

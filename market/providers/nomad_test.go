package providers

import (
	"testing"

	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/runtimes/nomad"
	"github.com/accordmesh/accord/runtimes/nomad/pools"
)

func TestPoolProfile(t *testing.T) {
	p := pools.Pool{Name: "lab", Kind: pools.KindNomad, Options: map[string]string{"region": "eu-west-1"},
		Pricing: &pools.Pricing{Currency: "EUR", GPUHour: map[string]int64{"H100": 3000, "*": 500}, CPUCoreHour: 100, MemoryGiBHour: 20, Minimum: 7}}
	c := nomad.Capacity{CPUMHzPerCore: 2000, Nodes: []nomad.NodeCapacity{
		{ID: "n1", Schedulable: true, CPUMHz: 8000, MemoryMB: 1024, FreeCPUMHz: 4000, FreeMemoryMB: 512, GPUs: []nomad.GPU{
			{ID: "g0", Model: "NVIDIA H100 80GB HBM3", MemoryMiB: 81920, Vendor: "nvidia", Type: "gpu", Healthy: true, Free: true},
			{ID: "g1", Model: "NVIDIA H100 80GB HBM3", MemoryMiB: 81920, Vendor: "nvidia", Type: "gpu", Healthy: true},
			{ID: "g2", Model: "NVIDIA L4", MemoryMiB: 24576, Vendor: "nvidia", Type: "gpu", Healthy: true, Free: true},
		}},
		{ID: "n2", Schedulable: false, CPUMHz: 2000, MemoryMB: 1024, FreeCPUMHz: 2000, FreeMemoryMB: 1024},
	}}
	prof := poolProfile(p, c)
	if err := prof.Validate(); err != nil {
		t.Fatal(err)
	}
	// An attached pool is the operator's: it stakes nothing by default.
	if prof.Name != "lab" || prof.Region != "eu-west-1" || prof.Pricing.Currency != "EUR" || prof.Pricing.Reserve != 7 || prof.SLA != DefaultSLA() {
		t.Errorf("profile %+v", prof)
	}
	// Only schedulable nodes offer capacity: 4000 MHz at 2000 MHz/core.
	if prof.Free.MilliCPU != 2000 || prof.Free.MemoryBytes != 512<<20 || prof.Total.MilliCPU != 5000 {
		t.Errorf("cpu/memory free %d/%d total %d", prof.Free.MilliCPU, prof.Free.MemoryBytes, prof.Total.MilliCPU)
	}
	// GPUs by the price list's key; the L4 only under "*", by its own name.
	if len(prof.Free.GPUs) != 2 || prof.Free.GPUs[0].Model != "H100" || prof.Free.GPUs[0].Count != 1 || prof.Free.GPUs[0].MemoryBytes != 80<<30 ||
		prof.Free.GPUs[1].Model != "NVIDIA L4" || prof.Total.GPUs[0].Count != 2 {
		t.Errorf("GPUs free %+v total %+v", prof.Free.GPUs, prof.Total.GPUs)
	}
	if prof.Pricing.GPUHour["H100"] != 3000 || prof.Pricing.GPUHour["NVIDIA L4"] != 500 {
		t.Errorf("GPU prices %v", prof.Pricing.GPUHour)
	}
	// Without a "*" rate an unpriced GPU is not for sale.
	p.Pricing.GPUHour = map[string]int64{"H100": 3000}
	if prof := poolProfile(p, c); len(prof.Free.GPUs) != 1 {
		t.Errorf("unpriced GPU offered: %+v", prof.Free.GPUs)
	}
	// Taking a choice out of a snapshot leaves the original intact.
	ch, err := c.Pick(runtimes.Resources{MilliCPU: 1000, MemoryBytes: 128 << 20, GPUs: 1, GPUModel: "H100"})
	if err != nil || ch.NodeID != "n1" || ch.GPUs[0].ID != "g0" {
		t.Fatalf("pick %+v %v", ch, err)
	}
	cc := c
	take(&cc, ch)
	if _, err := cc.Pick(runtimes.Resources{GPUs: 1, GPUModel: "H100"}); err == nil {
		t.Errorf("the taken GPU is offered again")
	}
	if !c.Nodes[0].GPUs[0].Free || c.Nodes[0].FreeCPUMHz != 4000 {
		t.Errorf("take changed the original snapshot")
	}
}

package nomad_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/runtimes/nomad"
)

// FuzzBuildJob: any task description either builds a job or fails with an
// error — never a panic — and a built job is named deterministically, keeps
// its task ID in meta and survives a JSON round trip (what the api sends).
func FuzzBuildJob(f *testing.F) {
	f.Add("job-1.train.1", "busybox:1.36", "sh", "echo hi", "H100", int64(2000), int64(8<<30), 1, int64(40<<30), int64(time.Hour))
	f.Add("a b/c\x00", "", "", "", "", int64(-1), int64(0), -2, int64(-5), int64(-1))
	f.Add("x", "oci-archive:/nonexistent.tar", "/bin/trainer", "train", "(?", int64(1), int64(1), 8, int64(1), int64(1))
	cfg := nomad.Config{Address: "http://127.0.0.1:4646", NodePool: "gpu"}
	f.Fuzz(func(t *testing.T, id, image, cmd, arg, model string, milli, mem int64, gpus int, gpuMem, maxDur int64) {
		spec := runtimes.TaskSpec{ID: id, Image: image, Command: []string{cmd, arg},
			Resources: runtimes.Resources{MilliCPU: milli, MemoryBytes: mem, GPUs: gpus, GPUModel: model, GPUMemBytes: gpuMem, MaxDuration: time.Duration(maxDur)}}
		job, err := nomad.BuildJob(cfg, spec, "")
		if err != nil {
			return
		}
		if *job.ID != nomad.JobID(id) || job.Meta[nomad.MetaTaskID] != id {
			t.Fatalf("job %q meta %q for task %q", *job.ID, job.Meta[nomad.MetaTaskID], id)
		}
		b, err := json.Marshal(job)
		if err != nil {
			t.Fatal(err)
		}
		var back api.Job
		if err := json.Unmarshal(b, &back); err != nil || *back.ID != *job.ID {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func benchCluster(nodes int) ([]*api.NodeListStub, []*api.AllocationListStub) {
	var ns []*api.NodeListStub
	var as []*api.AllocationListStub
	mem := int64(81920)
	for i := range nodes {
		id := fmt.Sprintf("node-%05d", i)
		dev := &api.NodeDeviceResource{Vendor: "nvidia", Type: "gpu", Name: h100, Attributes: map[string]*api.Attribute{"memory": {IntVal: &mem, Unit: "MiB"}}}
		for g := range 8 {
			dev.Instances = append(dev.Instances, &api.NodeDevice{ID: fmt.Sprintf("GPU-%05d-%d", i, g), Healthy: true})
		}
		ns = append(ns, &api.NodeListStub{ID: id, Name: id, Datacenter: "dc1", NodePool: "default", Status: "ready",
			SchedulingEligibility: api.NodeSchedulingEligible,
			NodeResources:         &api.NodeResources{Cpu: api.NodeCpuResources{CpuShares: 128000}, Memory: api.NodeMemoryResources{MemoryMB: 1 << 20}, Devices: []*api.NodeDeviceResource{dev}}})
		for a := range 6 { // six of eight GPUs busy
			as = append(as, &api.AllocationListStub{NodeID: id, ClientStatus: "running", DesiredStatus: "run",
				AllocatedResources: &api.AllocatedResources{Tasks: map[string]*api.AllocatedTaskResources{"t": {
					Cpu: api.AllocatedCpuResources{CpuShares: 8000}, Memory: api.AllocatedMemoryResources{MemoryMB: 65536},
					Devices: []*api.AllocatedDeviceResource{{Vendor: "nvidia", Type: "gpu", Name: h100, DeviceIDs: []string{fmt.Sprintf("GPU-%05d-%d", i, a)}}}}}}})
		}
	}
	return ns, as
}

// BenchmarkCompute: free-capacity arithmetic for a 1000-node, 8000-GPU
// cluster with 6000 live allocations (what each inventory refresh costs).
func BenchmarkCompute(b *testing.B) {
	ns, as := benchCluster(1000)
	b.ReportAllocs()
	for b.Loop() {
		c := nomad.Compute(nomad.Config{}, ns, as)
		if len(c.Nodes) != 1000 {
			b.Fatal(len(c.Nodes))
		}
	}
}

// BenchmarkPick: choosing a node and two GPUs in that snapshot.
func BenchmarkPick(b *testing.B) {
	ns, as := benchCluster(1000)
	c := nomad.Compute(nomad.Config{}, ns, as)
	r := runtimes.Resources{MilliCPU: 4000, MemoryBytes: 32 << 30, GPUs: 2, GPUModel: "H100", GPUMemBytes: 40 << 30}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Pick(r); err != nil {
			b.Fatal(err)
		}
	}
}

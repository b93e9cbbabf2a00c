package nomad_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/runtimes/nomad"
	"github.com/accordmesh/accord/runtimes/nomad/nomadtest"
)

const (
	h100 = "NVIDIA H100 80GB HBM3"
	a10  = "NVIDIA A10"
)

// cluster is a double with two GPU nodes and one CPU node:
// gpu-a: 4× H100 (80 GiB), 32000 MHz, 256 GiB, 1000 MHz/1 GiB reserved
// gpu-b: 2× A10 (24 GiB), one unhealthy
// cpu-c: no GPUs
func cluster(t *testing.T) (*nomadtest.Server, map[string]string) {
	t.Helper()
	s := nomadtest.New()
	t.Cleanup(s.Close)
	ids := map[string]string{}
	ids["a"] = s.AddNode(nomadtest.NodeSpec{Name: "gpu-a", CPUMHz: 32000, MemoryMB: 262144, ReservedCPU: 1000, ReservedMemoryMB: 1024,
		GPUs: []nomadtest.GPU{{Model: h100, MemoryMiB: 81920, IDs: []string{"GPU-a0", "GPU-a1", "GPU-a2", "GPU-a3"}}}})
	ids["b"] = s.AddNode(nomadtest.NodeSpec{Name: "gpu-b", CPUMHz: 16000, MemoryMB: 65536,
		GPUs: []nomadtest.GPU{{Model: a10, MemoryMiB: 24576, IDs: []string{"GPU-b0", "GPU-b1"}, Unhealthy: []string{"GPU-b1"}}}})
	ids["c"] = s.AddNode(nomadtest.NodeSpec{Name: "cpu-c", CPUMHz: 8000, MemoryMB: 16384})
	return s, ids
}

func open(t *testing.T, s *nomadtest.Server, mut ...func(*nomad.Config)) *nomad.Runtime {
	t.Helper()
	cfg := nomad.Config{Pool: "test", Address: s.URL}
	for _, m := range mut {
		m(&cfg)
	}
	rt, err := nomad.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestSuiteAgainstDouble(t *testing.T) {
	s, _ := cluster(t)
	s.SetBehavior(nomadtest.ShellBehavior(100))
	nomadtest.RunSuite(t, nomadtest.Harness{Runtime: open(t, s), Timeout: 20 * time.Second})
}

func TestRegisteredKind(t *testing.T) {
	s, _ := cluster(t)
	rt, err := runtimes.Open(context.Background(), "nomad", map[string]string{"address": s.URL, "node_pool": "default"})
	if err != nil {
		t.Fatal(err)
	}
	if rt.Name() != "nomad" {
		t.Fatalf("Name = %q", rt.Name())
	}
	if _, err := runtimes.Open(context.Background(), "nomad", map[string]string{}); !errors.Is(err, nomad.ErrConfig) {
		t.Fatalf("Open without address: %v, want ErrConfig", err)
	}
	if _, err := runtimes.Open(context.Background(), "nomad", map[string]string{"address": s.URL, "driver": "qemu"}); !errors.Is(err, nomad.ErrConfig) {
		t.Fatalf("Open with driver qemu: %v, want ErrConfig", err)
	}
}

func TestGPUInventory(t *testing.T) {
	s, ids := cluster(t)
	rt := open(t, s)
	c, err := nomad.Snapshot(ctx(t), rt.Client(), rt.Config())
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Nodes) != 3 || c.Pool != "test" || c.Index == 0 {
		t.Fatalf("snapshot: %d nodes, pool %q, index %d", len(c.Nodes), c.Pool, c.Index)
	}
	byID := map[string]nomad.NodeCapacity{}
	for _, n := range c.Nodes {
		byID[n.ID] = n
	}
	a := byID[ids["a"]]
	if a.CPUMHz != 31000 || a.MemoryMB != 261120 || a.FreeCPUMHz != 31000 || len(a.GPUs) != 4 {
		t.Fatalf("gpu-a: %+v", a)
	}
	g := a.GPUs[0]
	if g.ID != "GPU-a0" || g.Vendor != "nvidia" || g.Type != "gpu" || g.Model != h100 || g.MemoryMiB != 81920 || !g.Healthy || !g.Free {
		t.Fatalf("gpu-a GPU 0: %+v", g)
	}
	b := byID[ids["b"]]
	if len(b.GPUs) != 2 || b.GPUs[1].Healthy || b.GPUs[1].Free || b.GPUs[1].HealthDescription == "" {
		t.Fatalf("gpu-b unhealthy GPU not reported: %+v", b.GPUs)
	}
	free := c.FreeGPUsByModel()
	if free[h100] != 4 || free[a10] != 1 || len(free) != 2 {
		t.Fatalf("free by model = %v", free)
	}
	nodes, sched, gpus, healthy, nfree := c.Totals()
	if nodes != 3 || sched != 3 || gpus != 6 || healthy != 5 || nfree != 5 {
		t.Fatalf("totals = %d %d %d %d %d", nodes, sched, gpus, healthy, nfree)
	}
}

// TestFreeCapacityArithmetic checks free = total − reserved − live
// allocations with a known answer, ignoring terminal allocations.
func TestFreeCapacityArithmetic(t *testing.T) {
	mem := int64(81920)
	node := &api.NodeListStub{ID: "n1", Name: "n1", Datacenter: "dc1", NodePool: "default", Status: "ready",
		SchedulingEligibility: api.NodeSchedulingEligible,
		NodeResources: &api.NodeResources{Cpu: api.NodeCpuResources{CpuShares: 10000}, Memory: api.NodeMemoryResources{MemoryMB: 8192},
			Devices: []*api.NodeDeviceResource{{Vendor: "nvidia", Type: "gpu", Name: h100, Attributes: map[string]*api.Attribute{"memory": {IntVal: &mem, Unit: "MiB"}},
				Instances: []*api.NodeDevice{{ID: "g0", Healthy: true}, {ID: "g1", Healthy: true}, {ID: "g2", Healthy: true}}}}},
		ReservedResources: &api.NodeReservedResources{Cpu: api.NodeReservedCpuResources{CpuShares: 500}, Memory: api.NodeReservedMemoryResources{MemoryMB: 192}},
	}
	alloc := func(client, desired string, cpu, memMB int64, devs ...string) *api.AllocationListStub {
		tr := &api.AllocatedTaskResources{Cpu: api.AllocatedCpuResources{CpuShares: cpu}, Memory: api.AllocatedMemoryResources{MemoryMB: memMB}}
		if len(devs) > 0 {
			tr.Devices = []*api.AllocatedDeviceResource{{Vendor: "nvidia", Type: "gpu", Name: h100, DeviceIDs: devs}}
		}
		return &api.AllocationListStub{NodeID: "n1", ClientStatus: client, DesiredStatus: desired,
			AllocatedResources: &api.AllocatedResources{Tasks: map[string]*api.AllocatedTaskResources{"t": tr}}}
	}
	allocs := []*api.AllocationListStub{
		alloc("running", "run", 2000, 1024, "g1"),
		alloc("pending", "run", 1500, 512),
		alloc("complete", "run", 4000, 4000, "g0"), // terminal: frees
		alloc("running", "stop", 4000, 4000, "g2"), // server-terminal: frees
		alloc("failed", "run", 4000, 4000, "g0"),   // terminal
		{NodeID: "other", ClientStatus: "running"}, // another node, no resources
	}
	c := nomad.Compute(nomad.Config{Pool: "p"}, []*api.NodeListStub{node}, allocs)
	n := c.Nodes[0]
	if n.CPUMHz != 9500 || n.MemoryMB != 8000 {
		t.Fatalf("totals %d MHz %d MB, want 9500 and 8000", n.CPUMHz, n.MemoryMB)
	}
	if n.FreeCPUMHz != 9500-2000-1500 || n.FreeMemoryMB != 8000-1024-512 {
		t.Fatalf("free %d MHz %d MB, want 6000 and 6464", n.FreeCPUMHz, n.FreeMemoryMB)
	}
	var freeIDs []string
	for _, g := range n.GPUs {
		if g.Free {
			freeIDs = append(freeIDs, g.ID)
		}
	}
	if strings.Join(freeIDs, ",") != "g0,g2" {
		t.Fatalf("free GPUs %v, want g0,g2", freeIDs)
	}
	// Out-of-scope pool and datacenter are dropped.
	if c := nomad.Compute(nomad.Config{NodePool: "gpu"}, []*api.NodeListStub{node}, nil); len(c.Nodes) != 0 {
		t.Fatalf("node of pool default listed for pool gpu")
	}
	if c := nomad.Compute(nomad.Config{Datacenters: []string{"dc2"}}, []*api.NodeListStub{node}, nil); len(c.Nodes) != 0 {
		t.Fatalf("node of dc1 listed for dc2")
	}
	if c := nomad.Compute(nomad.Config{Datacenters: []string{"dc*"}, NodePool: "all"}, []*api.NodeListStub{node}, nil); len(c.Nodes) != 1 {
		t.Fatalf("glob dc* / pool all did not match")
	}
}

func TestDrainAndEligibility(t *testing.T) {
	s, ids := cluster(t)
	rt := open(t, s)
	s.SetDrain(ids["a"], true)
	s.SetEligible(ids["b"], false)
	c, err := nomad.Snapshot(ctx(t), rt.Client(), rt.Config())
	if err != nil {
		t.Fatal(err)
	}
	if free := c.FreeGPUsByModel(); len(free) != 0 {
		t.Fatalf("drained/ineligible nodes offer GPUs: %v", free)
	}
	for _, n := range c.Nodes {
		if n.ID == ids["a"] && (!n.Draining || n.Schedulable || n.FreeCPUMHz != 0) {
			t.Fatalf("draining node reported schedulable: %+v", n)
		}
	}
	if _, err := c.Pick(runtimes.Resources{GPUs: 1}); !errors.Is(err, nomad.ErrNoFit) {
		t.Fatalf("Pick on drained pool: %v, want ErrNoFit", err)
	}
}

func TestPick(t *testing.T) {
	s, ids := cluster(t)
	rt := open(t, s)
	c, err := nomad.Snapshot(ctx(t), rt.Client(), rt.Config())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := c.Pick(runtimes.Resources{MilliCPU: 4000, MemoryBytes: 16 << 30, GPUs: 2, GPUModel: "h100", GPUMemBytes: 40 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if ch.NodeID != ids["a"] || strings.Join(ch.GPUIDs(), ",") != "GPU-a0,GPU-a1" || ch.CPUMHz != 8000 || ch.MemoryMB != 16384 {
		t.Fatalf("Pick = %+v", ch)
	}
	// One A10 fits on gpu-b only (the other is unhealthy); packing prefers
	// the node left with fewer free GPUs.
	ch, err = c.Pick(runtimes.Resources{GPUs: 1})
	if err != nil || ch.NodeID != ids["b"] || ch.GPUIDs()[0] != "GPU-b0" {
		t.Fatalf("Pick 1 GPU = %+v, %v; want GPU-b0", ch, err)
	}
	for _, r := range []runtimes.Resources{
		{GPUs: 2, GPUModel: "A10"},              // only one healthy A10
		{GPUs: 1, GPUMemBytes: 100 << 30},       // no GPU that large
		{GPUs: 5},                               // more than any group
		{MemoryBytes: 1 << 40},                  // more memory than any node
		{GPUs: 1, GPUDevices: []string{"nope"}}, // pinned to unknown IDs
	} {
		if _, err := c.Pick(r); !errors.Is(err, nomad.ErrNoFit) {
			t.Errorf("Pick(%+v) = %v, want ErrNoFit", r, err)
		}
	}
	ch, err = c.Pick(runtimes.Resources{GPUs: 1, GPUDevices: []string{"GPU-a3"}})
	if err != nil || ch.GPUIDs()[0] != "GPU-a3" {
		t.Fatalf("Pick pinned = %+v, %v", ch, err)
	}
}

func gpuSpec(id string, n int) runtimes.TaskSpec {
	return runtimes.TaskSpec{ID: id, Image: "registry.example/trainer@sha256:" + strings.Repeat("ab", 32),
		Command:   []string{"/bin/trainer", "train"},
		Resources: runtimes.Resources{MilliCPU: 2000, MemoryBytes: 8 << 30, GPUs: n, GPUModel: "H100", GPUMemBytes: 40 << 30}}
}

func TestGPUJobPlacesOnExactDevicesAndInventoryFollows(t *testing.T) {
	s, ids := cluster(t)
	s.SetBehavior(func(*api.Job, *api.Allocation, int) nomadtest.Run { return nomadtest.Run{Hold: true} })
	rt := open(t, s)
	c := ctx(t)
	watch := nomad.Watch(c, rt.Client(), rt.Config())
	first := <-watch
	if first.FreeGPUsByModel()[h100] != 4 {
		t.Fatalf("initial free H100 = %d", first.FreeGPUsByModel()[h100])
	}
	spec := gpuSpec("job-1.train.1", 2)
	spec.Resources.GPUDevices = []string{"GPU-a2", "GPU-a3"}
	st, err := rt.Start(c, spec)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtimes.StateRunning || st.Node != ids["a"] {
		t.Fatalf("Start = %+v", st)
	}
	job := s.Job(nomad.JobID(spec.ID))
	task := job.TaskGroups[0].Tasks[0]
	dev := task.Resources.Devices[0]
	if dev.Name != "nvidia/gpu" || *dev.Count != 2 || len(dev.Constraints) != 2 ||
		dev.Constraints[0].LTarget != "${device.attr.memory}" || dev.Constraints[0].RTarget != "40960 MiB" {
		t.Fatalf("device block = %+v %+v", dev, dev.Constraints)
	}
	if len(job.Constraints) != 1 || job.Constraints[0].RTarget != ids["a"] {
		t.Fatalf("job not pinned to the node holding the granted GPUs: %+v", job.Constraints)
	}
	if *task.Resources.CPU != 4000 || *task.Resources.MemoryMB != 8192 || task.Driver != "docker" {
		t.Fatalf("resources = %d MHz %d MB driver %s", *task.Resources.CPU, *task.Resources.MemoryMB, task.Driver)
	}
	// The watcher sees the allocation take two GPUs and its CPU/memory.
	deadline := time.After(5 * time.Second)
	for {
		select {
		case snap := <-watch:
			if snap.FreeGPUsByModel()[h100] == 2 {
				for _, n := range snap.Nodes {
					if n.ID == ids["a"] && (n.FreeCPUMHz != 31000-4000 || n.FreeMemoryMB != 261120-8192) {
						t.Fatalf("free after placement: %d MHz %d MB", n.FreeCPUMHz, n.FreeMemoryMB)
					}
				}
				allocs := s.Allocations(*job.ID)
				got := allocs[0].AllocatedResources.Tasks["task"].Devices[0].DeviceIDs
				if len(got) != 2 {
					t.Fatalf("allocated devices %v", got)
				}
				goto drained
			}
		case <-deadline:
			t.Fatal("watcher never reported the allocation")
		}
	}
drained:
	// Drain events reach the watcher too.
	s.SetDrain(ids["b"], true)
	deadline = time.After(5 * time.Second)
	for {
		select {
		case snap := <-watch:
			if snap.FreeGPUsByModel()[a10] == 0 {
				return
			}
		case <-deadline:
			t.Fatal("watcher never reported the drain")
		}
	}
}

func TestPlanFailureExhaustedIsRetryable(t *testing.T) {
	s, _ := cluster(t)
	s.SetBehavior(func(*api.Job, *api.Allocation, int) nomadtest.Run { return nomadtest.Run{Hold: true} })
	rt := open(t, s)
	c := ctx(t)
	if _, err := rt.Start(c, gpuSpec("big.1", 4)); err != nil {
		t.Fatal(err)
	}
	_, err := rt.Start(c, gpuSpec("big.2", 1))
	if !errors.Is(err, nomad.ErrPlacement) || !errors.Is(err, runtimes.ErrUnavailable) {
		t.Fatalf("second Start = %v, want ErrPlacement + ErrUnavailable (busy, may pass)", err)
	}
	if !strings.Contains(err.Error(), "exhausted on devices") || !strings.Contains(err.Error(), "nvidia/gpu ×1") {
		t.Fatalf("plan failure does not say what is exhausted: %v", err)
	}
	// A memory constraint nobody meets is permanent and quoted.
	spec := gpuSpec("huge.1", 1)
	spec.Resources.GPUMemBytes = 200 << 30
	_, err = rt.Start(c, spec)
	if !errors.Is(err, runtimes.ErrInvalid) || !strings.Contains(err.Error(), "204800 MiB") {
		t.Fatalf("Start huge = %v", err)
	}
	// Node pool with no nodes.
	rt2 := open(t, s, func(c *nomad.Config) { c.NodePool = "empty" })
	if _, err := rt2.Start(c, gpuSpec("nopool.1", 1)); !errors.Is(err, nomad.ErrPlacement) || !strings.Contains(err.Error(), `pool "empty"`) {
		t.Fatalf("Start in empty pool = %v", err)
	}
}

func TestAllocationFailureRescheduled(t *testing.T) {
	s, _ := cluster(t)
	s.SetBehavior(func(_ *api.Job, _ *api.Allocation, attempt int) nomadtest.Run {
		if attempt == 0 {
			return nomadtest.Run{Stdout: "attempt 0\n", ExitCode: 1}
		}
		return nomadtest.Run{Stdout: "attempt 1\n"}
	})
	rt := open(t, s, func(c *nomad.Config) { c.RescheduleAttempts = 1 })
	c := ctx(t)
	spec := gpuSpec("resched.1", 1)
	if _, err := rt.Start(c, spec); err != nil {
		t.Fatal(err)
	}
	st, err := rt.Wait(c, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtimes.StateExited || st.ExitCode != 0 {
		t.Fatalf("Wait = %+v, want exited 0 after reschedule", st)
	}
	allocs := s.Allocations(nomad.JobID(spec.ID))
	if len(allocs) != 2 || allocs[0].NextAllocation != allocs[1].ID || allocs[1].PreviousAllocation != allocs[0].ID {
		t.Fatalf("allocation chain = %d allocs", len(allocs))
	}
	rc, err := rt.Logs(c, spec.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "attempt 1\n" {
		t.Fatalf("logs = %q, want the replacement's", b)
	}
}

func TestAllocationFailureWithoutReschedule(t *testing.T) {
	s, _ := cluster(t)
	rt := open(t, s)
	c := ctx(t)
	s.SetBehavior(func(*api.Job, *api.Allocation, int) nomadtest.Run {
		return nomadtest.Run{DriverFail: "failed to pull image: manifest unknown"}
	})
	spec := gpuSpec("driverfail.1", 1)
	if _, err := rt.Start(c, spec); err != nil {
		t.Fatal(err)
	}
	st, err := rt.Wait(c, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtimes.StateFailed || !strings.Contains(st.Reason, "manifest unknown") {
		t.Fatalf("driver failure: %+v", st)
	}
	s.SetBehavior(func(*api.Job, *api.Allocation, int) nomadtest.Run { return nomadtest.Run{OOM: true} })
	spec = gpuSpec("oom.1", 1)
	if _, err := rt.Start(c, spec); err != nil {
		t.Fatal(err)
	}
	if st, err = rt.Wait(c, spec.ID); err != nil || st.State != runtimes.StateOOM || st.ExitCode != 137 {
		t.Fatalf("OOM: %+v %v", st, err)
	}
}

func TestLostNodeReplacement(t *testing.T) {
	s := nomadtest.New()
	t.Cleanup(s.Close)
	n1 := s.AddNode(nomadtest.NodeSpec{Name: "g1", CPUMHz: 8000, MemoryMB: 32768, GPUs: []nomadtest.GPU{{Model: h100, MemoryMiB: 81920, IDs: []string{"G1"}}}})
	n2 := s.AddNode(nomadtest.NodeSpec{Name: "g2", CPUMHz: 8000, MemoryMB: 32768, GPUs: []nomadtest.GPU{{Model: h100, MemoryMiB: 81920, IDs: []string{"G2"}}}})
	s.SetBehavior(func(_ *api.Job, _ *api.Allocation, attempt int) nomadtest.Run {
		if attempt == 0 {
			return nomadtest.Run{Hold: true}
		}
		return nomadtest.Run{Stdout: "done\n"}
	})
	rt := open(t, s)
	c := ctx(t)
	spec := gpuSpec("lost.1", 1)
	st, err := rt.Start(c, spec)
	if err != nil {
		t.Fatal(err)
	}
	other := n2
	if st.Node == n2 {
		other = n1
	}
	s.LoseNode(st.Node)
	got, err := rt.Wait(c, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != runtimes.StateExited || got.ExitCode != 0 || got.Node != other {
		t.Fatalf("after node loss: %+v, want exited 0 on %s", got, other)
	}
	// With no node left, the replacement waits for capacity and says why.
	spec2 := gpuSpec("lost.2", 1)
	s.SetBehavior(func(*api.Job, *api.Allocation, int) nomadtest.Run { return nomadtest.Run{Hold: true} })
	st, err = rt.Start(c, spec2)
	if err != nil {
		t.Fatal(err)
	}
	s.LoseNode(st.Node)
	st, err = rt.Status(c, spec2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtimes.StatePending || !strings.Contains(st.Reason, "waiting for capacity") && !strings.Contains(st.Reason, "awaiting replacement") {
		t.Fatalf("lost with no spare node: %+v", st)
	}
	if err := rt.Stop(c, spec2.ID, 0); err != nil {
		t.Fatal(err)
	}
	if st, err = rt.Wait(c, spec2.ID); err != nil || st.State != runtimes.StateKilled {
		t.Fatalf("stop of a blocked task: %+v %v", st, err)
	}
}

func TestTimeout(t *testing.T) {
	s, _ := cluster(t)
	s.SetBehavior(func(*api.Job, *api.Allocation, int) nomadtest.Run { return nomadtest.Run{Hold: true} })
	rt := open(t, s)
	c := ctx(t)
	spec := gpuSpec("slow.1", 0)
	spec.Resources.MaxDuration = 50 * time.Millisecond
	if _, err := rt.Start(c, spec); err != nil {
		t.Fatal(err)
	}
	st, err := rt.Wait(c, spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtimes.StateTimedOut {
		t.Fatalf("Wait = %+v, want timeout", st)
	}
	if d := s.Job(nomad.JobID(spec.ID)).TaskGroups[0].MaxRunDuration; d == nil || *d != 50*time.Millisecond {
		t.Fatalf("max_run_duration not set: %v", d)
	}
}

func TestConcurrentStartsSubmitOnce(t *testing.T) {
	s, _ := cluster(t)
	s.SetBehavior(func(*api.Job, *api.Allocation, int) nomadtest.Run { return nomadtest.Run{Hold: true} })
	rt := open(t, s)
	c := ctx(t)
	spec := gpuSpec("race.1", 1)
	var wg sync.WaitGroup
	sts := make([]runtimes.Status, 4)
	errs := make([]error, 4)
	for i := range sts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sts[i], errs[i] = rt.Start(c, spec)
		}()
	}
	wg.Wait()
	for i := range sts {
		if errs[i] != nil {
			t.Fatalf("Start %d: %v", i, errs[i])
		}
		if sts[i].Node != sts[0].Node {
			t.Fatalf("Starts disagree: %+v vs %+v", sts[i], sts[0])
		}
	}
	if n := len(s.Allocations(nomad.JobID(spec.ID))); n != 1 {
		t.Fatalf("%d allocations, want 1", n)
	}
	if n := s.Requests("PUT /v1/jobs"); n < 1 {
		t.Fatalf("no register calls")
	}
}

func TestEnforceIndexAtAPI(t *testing.T) {
	s, _ := cluster(t)
	rt := open(t, s)
	job, err := nomad.BuildJob(rt.Config(), gpuSpec("enforce.1", 0), "")
	if err != nil {
		t.Fatal(err)
	}
	jobs := rt.Client().Jobs()
	if _, _, err := jobs.EnforceRegister(job, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := jobs.EnforceRegister(job, 0, nil); err == nil || !strings.Contains(err.Error(), "Enforcing job modify index") {
		t.Fatalf("second register at index 0: %v", err)
	}
	plan, _, err := jobs.Plan(job, false, nil)
	if err != nil || plan.JobModifyIndex == 0 {
		t.Fatalf("plan of existing job: %+v %v", plan, err)
	}
	if _, _, err := jobs.EnforceRegister(job, plan.JobModifyIndex, nil); err != nil {
		t.Fatalf("register at plan index: %v", err)
	}
}

func TestLogsFollowAndCancel(t *testing.T) {
	s, _ := cluster(t)
	s.SetBehavior(func(*api.Job, *api.Allocation, int) nomadtest.Run {
		return nomadtest.Run{Stdout: "line one\n", Stderr: "warn\n", Hold: true}
	})
	rt := open(t, s)
	c := ctx(t)
	spec := gpuSpec("logs.1", 0)
	if _, err := rt.Start(c, spec); err != nil {
		t.Fatal(err)
	}
	rc, err := rt.Logs(c, spec.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	got := ""
	for !strings.Contains(got, "line one") || !strings.Contains(got, "warn") {
		n, err := rc.Read(buf)
		if err != nil {
			t.Fatalf("read: %v (got %q)", err, got)
		}
		got += string(buf[:n])
	}
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(rc); done <- err }()
	if err := rt.Stop(c, spec.ID, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("follow ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end after the task was stopped")
	}
	rc.Close()
	if _, err := rt.Logs(c, "nope", false); !errors.Is(err, runtimes.ErrNotFound) {
		t.Fatalf("Logs of unknown task: %v", err)
	}
}

func TestInputsEmbedded(t *testing.T) {
	s, _ := cluster(t)
	rt := open(t, s)
	dir := t.TempDir()
	if err := writeFile(dir+"/data.csv", "a,b\n1,2\n"); err != nil {
		t.Fatal(err)
	}
	spec := gpuSpec("inputs.1", 0)
	spec.Inputs = []runtimes.Mount{{Source: dir + "/data.csv", Target: "/in/data.csv"}}
	job, err := nomad.BuildJob(rt.Config(), spec, "")
	if err != nil {
		t.Fatal(err)
	}
	task := job.TaskGroups[0].Tasks[0]
	if len(task.Templates) != 1 || *task.Templates[0].EmbeddedTmpl != "a,b\n1,2\n" || *task.Templates[0].DestPath != "local/accord-in/0/data.csv" {
		t.Fatalf("templates = %+v", task.Templates)
	}
	vols := task.Config["volumes"].([]string)
	if vols[len(vols)-1] != "local/accord-in/0/data.csv:/in/data.csv:ro" {
		t.Fatalf("volumes = %v", vols)
	}
	if err := writeFile(dir+"/bin", "\xff\xfe"); err != nil {
		t.Fatal(err)
	}
	spec.Inputs = []runtimes.Mount{{Source: dir + "/bin", Target: "/in/bin"}}
	if _, err := nomad.BuildJob(rt.Config(), spec, ""); !errors.Is(err, runtimes.ErrInvalid) {
		t.Fatalf("binary input: %v, want ErrInvalid", err)
	}
}

// Inputs are read bounded: a device (/dev/zero would exhaust the worker)
// or fifo is refused unread, a symlink inside an input directory is not
// followed, and files past the inline limit are refused.
func TestInputsReadBounded(t *testing.T) {
	s, _ := cluster(t)
	rt := open(t, s)
	dir := t.TempDir()
	if err := os.Mkdir(dir+"/tree", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", dir+"/tree/escape"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(dir+"/fifo", 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(dir+"/big", strings.Repeat("a", 5<<20)); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{"fifo": dir + "/fifo", "symlink in a directory": dir + "/tree", "too large": dir + "/big"}
	if _, err := os.Stat("/dev/zero"); err == nil {
		cases["/dev/zero"] = "/dev/zero"
	}
	for name, src := range cases {
		spec := gpuSpec("inputs.2", 0)
		spec.Inputs = []runtimes.Mount{{Source: src, Target: "/in/x"}}
		done := make(chan error, 1)
		go func() { _, err := nomad.BuildJob(rt.Config(), spec, ""); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, runtimes.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: BuildJob blocked reading the input", name)
		}
	}
}

func TestBadInput(t *testing.T) {
	s, _ := cluster(t)
	rt := open(t, s)
	c := ctx(t)
	for name, spec := range map[string]runtimes.TaskSpec{
		"no id":        {Image: "x"},
		"no image":     {ID: "x.1"},
		"negative":     {ID: "x.2", Image: "x", Resources: runtimes.Resources{GPUs: -1}},
		"oci-archive":  {ID: "x.3", Image: "oci-archive:images/trainer.tar"},
		"relative out": {ID: "x.4", Image: "x", OutputDir: "out"},
	} {
		if _, err := rt.Start(c, spec); err == nil {
			t.Errorf("%s: Start accepted %+v", name, spec)
		}
	}
	if _, err := rt.Start(c, runtimes.TaskSpec{ID: "x.5", Image: "x", Resources: runtimes.Resources{GPUs: 1, GPUDevices: []string{"GPU-zz"}}}); !errors.Is(err, runtimes.ErrInvalid) {
		t.Errorf("unknown granted GPU: %v", err)
	}
	if _, err := rt.Prepare(c, "oci-archive:x.tar"); !errors.Is(err, runtimes.ErrImage) {
		t.Errorf("Prepare oci-archive: %v", err)
	}
	if d, err := rt.Prepare(c, "r/x@sha256:"+strings.Repeat("0", 64)); err != nil || d != "sha256:"+strings.Repeat("0", 64) {
		t.Errorf("Prepare pinned = %q %v", d, err)
	}
	if _, err := rt.Status(c, "never"); !errors.Is(err, runtimes.ErrNotFound) {
		t.Errorf("Status unknown: %v", err)
	}
	if err := rt.Stop(c, "never", 0); err != nil {
		t.Errorf("Stop unknown: %v", err)
	}
	if err := rt.Cleanup(c, "never"); err != nil {
		t.Errorf("Cleanup unknown: %v", err)
	}
	if nomad.JobID("a b/c") == nomad.JobID("a b/d") || !strings.HasPrefix(nomad.JobID("a b/c"), "accord-") || nomad.JobID("job-1.t.1") != "accord-job-1.t.1" {
		t.Errorf("JobID not deterministic and distinct")
	}
}

func TestPingAndToken(t *testing.T) {
	s, _ := cluster(t)
	s.RequireToken("secret")
	cfg := nomad.Config{Address: s.URL, Token: "secret", NodePool: "default"}
	cl, err := nomad.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := nomad.Ping(ctx(t), cl, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.NodePool = "missing"
	if err := nomad.Ping(ctx(t), cl, cfg); !errors.Is(err, nomad.ErrConfig) {
		t.Fatalf("missing pool: %v", err)
	}
	bad := nomad.Config{Address: s.URL, Token: "wrong"}
	cl, _ = nomad.NewClient(bad)
	if err := nomad.Ping(ctx(t), cl, bad); !errors.Is(err, nomad.ErrConfig) {
		t.Fatalf("wrong token: %v", err)
	}
	down := nomad.Config{Address: "http://127.0.0.1:1"}
	cl, _ = nomad.NewClient(down)
	if err := nomad.Ping(ctx(t), cl, down); !errors.Is(err, runtimes.ErrUnavailable) {
		t.Fatalf("unreachable: %v", err)
	}
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o644) }

func TestOCIArchiveViaArtifact(t *testing.T) {
	s, _ := cluster(t)
	dir := t.TempDir()
	digest := "sha256:" + strings.Repeat("b4", 32)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	index := `{"schemaVersion":2,"manifests":[{"digest":"` + digest + `","annotations":{"io.containerd.image.name":"accord.local/examples/trainer:latest"}}]}`
	for name, body := range map[string]string{"oci-layout": `{"imageLayoutVersion":"1.0.0"}`, "index.json": index} {
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))})
		_, _ = tw.Write([]byte(body))
	}
	_ = tw.Close()
	if err := os.WriteFile(dir+"/trainer.tar", buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	image := "oci-archive:" + dir + "/trainer.tar"
	if _, err := open(t, s).Prepare(ctx(t), image); !errors.Is(err, runtimes.ErrImage) {
		t.Fatalf("Prepare without artifact_base: %v", err)
	}
	rt := open(t, s, func(c *nomad.Config) { c.ArtifactBase = "https://artifacts.example/accord" })
	if d, err := rt.Prepare(ctx(t), image); err != nil || d != digest {
		t.Fatalf("Prepare = %q %v", d, err)
	}
	if _, err := rt.Prepare(ctx(t), "oci-archive:"+dir+"/missing.tar"); !errors.Is(err, runtimes.ErrImage) {
		t.Fatalf("Prepare missing archive: %v", err)
	}
	spec := gpuSpec("archive.1", 1)
	spec.Image = image
	job, err := nomad.BuildJob(rt.Config(), spec, "")
	if err != nil {
		t.Fatal(err)
	}
	task := job.TaskGroups[0].Tasks[0]
	if len(task.Artifacts) != 1 || *task.Artifacts[0].GetterSource != "https://artifacts.example/accord/trainer.tar" || *task.Artifacts[0].RelativeDest != "local/trainer.tar" {
		t.Fatalf("artifacts = %+v", task.Artifacts)
	}
	if task.Config["load"] != "trainer.tar" || task.Config["image"] != "accord.local/examples/trainer:latest" {
		t.Fatalf("docker config = %v", task.Config)
	}
	s.SetBehavior(func(*api.Job, *api.Allocation, int) nomadtest.Run { return nomadtest.Run{Stdout: "trained\n"} })
	if _, err := rt.Start(ctx(t), spec); err != nil {
		t.Fatal(err)
	}
	if st, err := rt.Wait(ctx(t), spec.ID); err != nil || st.State != runtimes.StateExited || st.Usage.GPUSeconds <= 0 {
		t.Fatalf("Wait = %+v %v", st, err)
	}
}

func TestCollectDeclaredOutputs(t *testing.T) {
	s, _ := cluster(t)
	s.SetBehavior(func(*api.Job, *api.Allocation, int) nomadtest.Run {
		return nomadtest.Run{RunFor: 200 * time.Millisecond, Files: map[string][]byte{
			"alloc/data/out/model.json": []byte(`{"w":1}`), "alloc/data/out/metrics.json": []byte(`{"accuracy":0.9}`), "alloc/data/out/extra.txt": []byte("x")}}
	})
	rt := open(t, s)
	c := ctx(t)
	spec := gpuSpec("outputs.1", 0)
	spec.Outputs = []string{"model.json", "./metrics.json"}
	if _, err := rt.Start(c, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Collect(c, spec.ID, t.TempDir()); !errors.Is(err, runtimes.ErrNotDone) {
		t.Fatalf("Collect while running: %v, want ErrNotDone", err)
	}
	if _, err := rt.Wait(c, spec.ID); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	outs, err := rt.Collect(c, spec.ID, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || outs[0].Path != "metrics.json" || outs[1].Path != "model.json" {
		t.Fatalf("outputs = %+v, want only the declared ones", outs)
	}
	if b, _ := os.ReadFile(outs[1].Local); string(b) != `{"w":1}` {
		t.Fatalf("collected model.json = %q", b)
	}
	spec2 := gpuSpec("outputs.2", 0)
	spec2.Outputs = []string{"missing.bin"}
	if _, err := rt.Start(c, spec2); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Wait(c, spec2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Collect(c, spec2.ID, t.TempDir()); !errors.Is(err, runtimes.ErrOutput) {
		t.Fatalf("missing declared output: %v, want ErrOutput", err)
	}
	spec3 := gpuSpec("outputs.3", 0)
	spec3.Outputs = []string{"../etc/passwd"}
	if _, err := rt.Start(c, spec3); !errors.Is(err, runtimes.ErrInvalid) {
		t.Fatalf("escaping output path: %v", err)
	}
}

// TestWatchFallsBackToBlockingQueriesAndStops: without event access the
// watcher still follows changes (blocking queries), and its channel closes
// when ctx ends.
func TestWatchFallsBackToBlockingQueriesAndStops(t *testing.T) {
	s, ids := cluster(t)
	s.DisableEventStream()
	rt := open(t, s)
	c, cancel := context.WithCancel(context.Background())
	watch := nomad.Watch(c, rt.Client(), rt.Config())
	if first := <-watch; first.FreeGPUsByModel()[h100] != 4 {
		t.Fatalf("first snapshot: %v", first.FreeGPUsByModel())
	}
	s.SetDrain(ids["a"], true)
	select {
	case snap := <-watch:
		if snap.FreeGPUsByModel()[h100] != 0 {
			t.Fatalf("after drain: %v", snap.FreeGPUsByModel())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking-query fallback never reported the drain")
	}
	if s.Requests("GET /v1/event/stream") == 0 {
		t.Fatal("the watcher never tried the event stream")
	}
	cancel()
	select {
	case _, ok := <-watch:
		for ok {
			_, ok = <-watch
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch channel not closed after cancel")
	}
}

// TestLogsFollowEndsWhenAgentKeepsStreaming: an agent that keeps a followed
// stream open after the task died must not keep Logs open forever.
func TestLogsFollowEndsWhenAgentKeepsStreaming(t *testing.T) {
	s, _ := cluster(t)
	s.KeepLogStreamsOpen()
	s.SetBehavior(func(*api.Job, *api.Allocation, int) nomadtest.Run {
		return nomadtest.Run{Stdout: "bye\n", RunFor: 50 * time.Millisecond}
	})
	rt := open(t, s)
	c := ctx(t)
	spec := gpuSpec("keepopen.1", 0)
	if _, err := rt.Start(c, spec); err != nil {
		t.Fatal(err)
	}
	rc, err := rt.Logs(c, spec.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	done := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(rc); done <- b }()
	select {
	case b := <-done:
		if string(b) != "bye\n" {
			t.Fatalf("logs = %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("followed logs never ended after the task died")
	}
}

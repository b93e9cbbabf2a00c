package pools_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/runtimes/nomad"
	"github.com/accordmesh/accord/runtimes/nomad/nomadtest"
	"github.com/accordmesh/accord/runtimes/nomad/pools"
)

func double(t *testing.T) *nomadtest.Server {
	s := nomadtest.New()
	t.Cleanup(s.Close)
	s.AddNode(nomadtest.NodeSpec{Name: "g1", NodePool: "gpu", CPUMHz: 16000, MemoryMB: 65536,
		GPUs: []nomadtest.GPU{{Model: "NVIDIA H100 80GB HBM3", MemoryMiB: 81920, IDs: []string{"G0", "G1"}}}})
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestAttachListDetach(t *testing.T) {
	s := double(t)
	st := pools.Open(t.TempDir())
	price := filepath.Join(t.TempDir(), "pricing.yaml")
	if err := os.WriteFile(price, []byte("currency: USD\ngpu_hour:\n  H100: 250000\n  \"*\": 100000\ncpu_core_hour: 2000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := nomad.Config{Address: s.URL, NodePool: "gpu", Datacenters: []string{"dc1"}}
	sum, err := pools.Attach(ctx(t), st, "lab", cfg, price)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Health != "ok" || sum.GPUs != 2 || sum.FreeGPUsByModel["NVIDIA H100 80GB HBM3"] != 2 || sum.Currency != "USD" || sum.NodePool != "gpu" {
		t.Fatalf("attach summary = %+v", sum)
	}
	if _, err := pools.Attach(ctx(t), st, "lab", cfg, price); err != nil {
		t.Fatalf("re-attach of the same pool: %v", err)
	}
	other := cfg
	other.Region = "eu"
	if _, err := pools.Attach(ctx(t), st, "lab", other, price); err == nil {
		t.Fatal("attach of a different pool under the same name succeeded")
	}
	if _, err := pools.Attach(ctx(t), st, "bad", nomad.Config{Address: s.URL, NodePool: "nope"}, ""); !errors.Is(err, nomad.ErrConfig) {
		t.Fatalf("attach to a missing node pool: %v", err)
	}
	if _, err := pools.Attach(ctx(t), st, "down", nomad.Config{Address: "http://127.0.0.1:1"}, ""); !errors.Is(err, runtimes.ErrUnavailable) {
		t.Fatalf("attach to nothing: %v", err)
	}
	if _, err := pools.Attach(ctx(t), st, "Bad Name", cfg, ""); !errors.Is(err, pools.ErrInvalid) {
		t.Fatalf("attach with a bad name: %v", err)
	}
	list, err := st.List()
	if err != nil || len(list) != 1 || list[0].Options["address"] != s.URL || list[0].Pricing.GPUHour["H100"] != 250000 {
		t.Fatalf("List = %+v %v", list, err)
	}
	if fi, err := os.Stat(st.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pools.json mode: %v %v", fi.Mode(), err)
	}

	// Running tasks block a plain detach.
	if err := st.TaskStarted("lab", "job-1.t.1"); err != nil {
		t.Fatal(err)
	}
	if err := st.TaskStarted("lab", "job-1.t.1"); err != nil {
		t.Fatalf("idempotent TaskStarted: %v", err)
	}
	rt, err := list[0].Runtime(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	s.SetBehavior(func(*api.Job, *api.Allocation, int) nomadtest.Run { return nomadtest.Run{Hold: true} })
	if _, err := rt.Start(ctx(t), runtimes.TaskSpec{ID: "job-1.t.1", Image: "busybox", Resources: runtimes.Resources{GPUs: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := pools.Detach(ctx(t), st, "lab", false, 0); !errors.Is(err, pools.ErrBusy) {
		t.Fatalf("detach with a running task: %v", err)
	}
	// --drain: no new tasks, wait for the running one, then detach.
	done := make(chan error, 1)
	go func() { done <- pools.Detach(ctx(t), st, "lab", true, 10*time.Millisecond) }()
	time.Sleep(50 * time.Millisecond)
	if err := st.TaskStarted("lab", "job-2.t.1"); !errors.Is(err, pools.ErrDraining) {
		t.Fatalf("new task on a draining pool: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("drain returned early: %v", err)
	default:
	}
	a, err := s.WaitAlloc(nomad.JobID("job-1.t.1"), 5*time.Second, "running")
	if err != nil {
		t.Fatal(err)
	}
	s.Finish(a.ID, 0)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("drain never finished")
	}
	if _, err := st.Get("lab"); !errors.Is(err, pools.ErrNotFound) {
		t.Fatalf("pool still there after drain: %v", err)
	}
	if err := st.TaskFinished("lab", "job-1.t.1"); err != nil {
		t.Fatalf("TaskFinished after detach: %v", err)
	}
}

func TestDescribeHealth(t *testing.T) {
	s := double(t)
	id := s.AddNode(nomadtest.NodeSpec{Name: "g2", NodePool: "gpu", CPUMHz: 1000, MemoryMB: 1024,
		GPUs: []nomadtest.GPU{{Model: "NVIDIA A10", MemoryMiB: 24576, IDs: []string{"X"}, Unhealthy: []string{"X"}}}})
	p := pools.Pool{Name: "p", Kind: pools.KindNomad, Options: map[string]string{"address": s.URL, "node_pool": "gpu"}}
	sum := pools.Describe(ctx(t), p)
	if sum.Health != "degraded" || sum.HealthyGPUs != 2 || sum.GPUs != 3 || sum.FreeGPUs != 2 {
		t.Fatalf("Describe = %+v", sum)
	}
	s.SetGPUHealth(id, "X", true)
	if sum = pools.Describe(ctx(t), p); sum.Health != "ok" || sum.FreeGPUs != 3 || sum.FreeCPUMHz != 17000 {
		t.Fatalf("Describe healthy = %+v", sum)
	}
	p.Options["address"] = "http://127.0.0.1:1"
	if sum = pools.Describe(ctx(t), p); sum.Health != "unreachable" || sum.Error == "" {
		t.Fatalf("Describe unreachable = %+v", sum)
	}
}

func TestConcurrentUpdatesAreNotLost(t *testing.T) {
	st := pools.Open(t.TempDir())
	if err := st.Add(pools.Pool{Name: "p", Kind: pools.KindNomad, Options: map[string]string{"address": "http://x"}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.TaskStarted("p", fmt.Sprintf("t%d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	p, err := st.Get("p")
	if err != nil || len(p.Running) != 20 {
		t.Fatalf("running = %d, %v", len(p.Running), err)
	}
	if err := st.Remove("p", false); !errors.Is(err, pools.ErrBusy) {
		t.Fatalf("Remove busy: %v", err)
	}
	if err := os.WriteFile(st.Path(), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.List(); err == nil {
		t.Fatal("corrupt file accepted")
	}
}

func TestPricingQuote(t *testing.T) {
	p := &pools.Pricing{Currency: "USD", GPUHour: map[string]int64{"H100": 250000, "H100 NVL": 300000, "*": 100000}, CPUCoreHour: 2000, MemoryGiBHour: 500, Minimum: 10}
	// 2 H100 for 90 minutes, 1.5 cores, 3 GiB: (500000 + 3000 + 1500) × 1.5 = 756750
	got, err := p.Quote(runtimes.Resources{GPUs: 2, MilliCPU: 1500, MemoryBytes: 3 << 30}, "NVIDIA H100 80GB HBM3", 90*time.Minute)
	if err != nil || got != 756750 {
		t.Fatalf("Quote = %d %v, want 756750", got, err)
	}
	if r, _ := p.GPURate("NVIDIA H100 NVL"); r != 300000 {
		t.Fatalf("longest key should win: %d", r)
	}
	if r, _ := p.GPURate("NVIDIA L4"); r != 100000 {
		t.Fatalf("fallback: %d", r)
	}
	if got, _ := p.Quote(runtimes.Resources{MilliCPU: 1}, "", time.Second); got != 10 {
		t.Fatalf("minimum not applied: %d", got)
	}
	if _, err := (&pools.Pricing{Currency: "USD", CPUCoreHour: 1}).Quote(runtimes.Resources{GPUs: 1}, "A10", time.Hour); !errors.Is(err, pools.ErrInvalid) {
		t.Fatalf("no GPU rate: %v", err)
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"cur.yaml":   "currency: dollars\ncpu_core_hour: 1\n",
		"neg.yaml":   "currency: USD\ncpu_core_hour: -1\n",
		"none.yaml":  "currency: USD\n",
		"field.yaml": "currency: USD\ncpu_core_hour: 1\ngpu_hours: {}\n",
	} {
		path := filepath.Join(dir, name)
		_ = os.WriteFile(path, []byte(body), 0o644)
		if _, err := pools.LoadPricing(path); !errors.Is(err, pools.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	path := filepath.Join(dir, "ok.json")
	_ = os.WriteFile(path, []byte(`{"currency":"EUR","gpu_hour":{"A10":5}}`), 0o644)
	if p, err := pools.LoadPricing(path); err != nil || p.GPUHour["A10"] != 5 {
		t.Fatalf("JSON pricing: %+v %v", p, err)
	}
}

func TestMakeOffer(t *testing.T) {
	s := double(t)
	p := pools.Pool{Name: "p", Kind: pools.KindNomad, Options: map[string]string{"address": s.URL, "node_pool": "gpu"},
		Pricing: &pools.Pricing{Currency: "EUR", GPUHour: map[string]int64{"H100": 1000}}}
	c, err := pools.Capacity(ctx(t), p)
	if err != nil {
		t.Fatal(err)
	}
	r := runtimes.Resources{GPUs: 2, GPUModel: "H100", GPUMemBytes: 40 << 30}
	o, err := pools.MakeOffer(p, c, r, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if o.Price != 1000 || o.Currency != "EUR" || len(o.Choice.GPUIDs()) != 2 || o.Choice.GPUIDs()[0] != "G0" {
		t.Fatalf("offer = %+v", o)
	}
	if _, err := pools.MakeOffer(p, c, runtimes.Resources{GPUs: 3}, time.Hour); !errors.Is(err, nomad.ErrNoFit) {
		t.Fatalf("3 GPUs: %v", err)
	}
	p.Draining = true
	if _, err := pools.MakeOffer(p, c, r, time.Hour); !errors.Is(err, pools.ErrDraining) {
		t.Fatalf("draining: %v", err)
	}
	p.Draining, p.Pricing = false, nil
	if _, err := pools.MakeOffer(p, c, r, time.Hour); !errors.Is(err, pools.ErrInvalid) {
		t.Fatalf("no pricing: %v", err)
	}
}

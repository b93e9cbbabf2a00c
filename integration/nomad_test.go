package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/runtimes/nomad"
	"github.com/accordmesh/accord/runtimes/nomad/nomadtest"
	"github.com/accordmesh/accord/runtimes/nomad/pools"
	"github.com/accordmesh/accord/specs"
)

// TestNomadAgent runs the Nomad runtime's portable suite — the same cases
// the unit tests run against the HTTP API double — against a real Nomad
// agent. No Nomad agent runs in this project's CI (Nomad is not packaged in
// Debian and nothing may be downloaded), so it runs only when NOMAD_ADDR is
// set, e.g. with `nomad agent -dev` (which has the docker driver when Docker
// is installed):
//
//	NOMAD_ADDR=http://127.0.0.1:4646 go test ./integration -run TestNomadAgent -v
//
// Optional: NOMAD_TOKEN, ACCORD_NOMAD_NODE_POOL, ACCORD_NOMAD_DRIVER
// (docker or exec), ACCORD_NOMAD_IMAGE (default busybox:1.36; it needs sh).
func TestNomadAgent(t *testing.T) {
	addr := os.Getenv("NOMAD_ADDR")
	if addr == "" {
		t.Skip("NOMAD_ADDR is not set: no real Nomad agent to test against (none runs in this project's CI; see docs/nomad.md)")
	}
	cfg := nomad.Config{
		Pool: "integration", Address: addr, Token: os.Getenv("NOMAD_TOKEN"),
		NodePool: os.Getenv("ACCORD_NOMAD_NODE_POOL"), Driver: os.Getenv("ACCORD_NOMAD_DRIVER"),
	}
	rt, err := nomad.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.Ping(ctx); err != nil {
		t.Fatalf("NOMAD_ADDR=%s is set but the agent does not answer: %v", addr, err)
	}
	t.Run("Attach", func(t *testing.T) {
		sum, err := pools.Attach(ctx, pools.Open(t.TempDir()), "integration", cfg, "")
		if err != nil {
			t.Fatal(err)
		}
		if sum.Nodes == 0 || sum.Health == "unreachable" {
			t.Fatalf("attach summary: %+v", sum)
		}
	})
	nomadtest.RunSuite(t, nomadtest.Harness{Runtime: rt, Image: os.Getenv("ACCORD_NOMAD_IMAGE"), Timeout: 5 * time.Minute})
}

// TestNomadPoolLLMFinetune takes examples/llm-finetune.md through a Nomad
// pool on the HTTP API double: attach the pool with pricing, then for each
// task in plan order: offer from the live inventory (exact node and GPU,
// priced), start the job pinned to the offered GPU, watch it to the end,
// collect its declared outputs with digests, and feed them to downstream
// tasks as inputs. The double does not run images (TrainerBehavior writes
// the trainer's files by contract); the Temporal workflow, ledger and
// attestations are wired by the activities, which call the same API.
func TestNomadPoolLLMFinetune(t *testing.T) {
	d := nomadtest.New()
	t.Cleanup(d.Close)
	d.AddNode(nomadtest.NodeSpec{Name: "cpu-1", NodePool: "gpu", CPUMHz: 8000, MemoryMB: 16384})
	gpuNode := d.AddNode(nomadtest.NodeSpec{Name: "gpu-1", NodePool: "gpu", CPUMHz: 32000, MemoryMB: 262144,
		GPUs: []nomadtest.GPU{{Model: "NVIDIA H100 80GB HBM3", MemoryMiB: 81920, IDs: []string{"GPU-h0", "GPU-h1"}}}})
	d.SetBehavior(nomadtest.TrainerBehavior())

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	home := t.TempDir()
	pricing := filepath.Join(home, "pricing.yaml")
	if err := os.WriteFile(pricing, []byte("currency: EUR\ngpu_hour: {H100: 300000}\ncpu_core_hour: 2000\nmemory_gib_hour: 200\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := pools.Open(home)
	cfg := nomad.Config{Address: d.URL, NodePool: "gpu", ArtifactBase: "https://artifacts.example/accord"}
	if _, err := pools.Attach(ctx, store, "lab", cfg, pricing); err != nil {
		t.Fatal(err)
	}
	pool, err := store.Get("lab")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := pool.Runtime(ctx)
	if err != nil {
		t.Fatal(err)
	}

	spec, err := specs.Load("../examples/llm-finetune.md")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := specs.Compile(spec)
	if err != nil {
		t.Fatal(err)
	}
	// The double never loads the image; stand in for an unbuilt archive.
	archive := filepath.Join(home, "trainer.tar")
	writeOCIStub(t, archive)

	outputs := map[string]string{} // "task:path" → collected file
	var total int64
	for _, pt := range plan.Tasks {
		r := runtimes.Resources{
			MilliCPU: pt.Resources.MilliCPU, MemoryBytes: pt.Resources.MemoryBytes, DiskBytes: pt.Resources.DiskBytes,
			GPUs: pt.Resources.GPU.Count, GPUModel: pt.Resources.GPU.Model, GPUMemBytes: pt.Resources.GPU.MinMemoryBytes,
			MaxDuration: pt.Resources.MaxDuration,
		}
		capacity, err := pools.Capacity(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		dur := pt.Resources.MaxDuration
		if dur == 0 {
			dur = time.Hour
		}
		offer, err := pools.MakeOffer(pool, capacity, r, dur)
		if err != nil {
			t.Fatalf("%s: %v", pt.Name, err)
		}
		total += offer.Price
		r.GPUDevices = offer.Choice.GPUIDs()
		ts := runtimes.TaskSpec{
			ID: "job-e2e." + pt.Name + ".1", Image: "oci-archive:" + archive,
			Command: append(append([]string(nil), pt.Command...), pt.Args...), Env: pt.Env, OutputDir: "/out", Resources: r,
		}
		for _, o := range pt.Outputs {
			ts.Outputs = append(ts.Outputs, o.Path)
		}
		for _, in := range pt.Inputs {
			src, ok := outputs[in.From]
			if !ok {
				t.Fatalf("%s: input %s from %s not collected", pt.Name, in.Name, in.From)
			}
			ts.Inputs = append(ts.Inputs, runtimes.Mount{Source: src, Target: in.Target})
		}
		if _, err := rt.Prepare(ctx, ts.Image); err != nil {
			t.Fatal(err)
		}
		if err := store.TaskStarted("lab", ts.ID); err != nil {
			t.Fatal(err)
		}
		st, err := rt.Start(ctx, ts)
		if err != nil {
			t.Fatalf("%s: %v", pt.Name, err)
		}
		if st.Node != offer.Choice.NodeID {
			t.Fatalf("%s placed on %s, offered %s", pt.Name, st.Node, offer.Choice.NodeID)
		}
		if st, err = rt.Wait(ctx, ts.ID); err != nil || st.State != runtimes.StateExited || st.ExitCode != 0 {
			t.Fatalf("%s: %+v %v", pt.Name, st, err)
		}
		dir := filepath.Join(home, "out", pt.Name)
		outs, err := rt.Collect(ctx, ts.ID, dir)
		if err != nil {
			t.Fatalf("%s: %v", pt.Name, err)
		}
		if len(outs) != len(pt.Outputs) {
			t.Fatalf("%s: collected %+v, declared %+v", pt.Name, outs, pt.Outputs)
		}
		for _, o := range outs {
			outputs[pt.Name+":"+o.Path] = o.Local
		}
		if pt.Resources.GPU.Count > 0 {
			if st.Node != gpuNode || st.Usage.GPUSeconds <= 0 {
				t.Fatalf("%s: GPU task on %s usage %+v", pt.Name, st.Node, st.Usage)
			}
			allocs := d.Allocations(nomad.JobID(ts.ID))
			got := allocs[len(allocs)-1].AllocatedResources.Tasks["task"].Devices[0].DeviceIDs
			// The job is pinned to the offered GPU's node; Nomad picks the
			// instance there, and with one free group it is the offered one.
			if len(got) != 1 || len(r.GPUDevices) != 1 || got[0] != r.GPUDevices[0] {
				t.Fatalf("%s: allocated %v, offered %v", pt.Name, got, r.GPUDevices)
			}
		}
		t.Logf("%s: node %s GPUs %v price %d %s, outputs %d", pt.Name, st.Node, r.GPUDevices, offer.Price, offer.Currency, len(outs))
		if err := store.TaskFinished("lab", ts.ID); err != nil {
			t.Fatal(err)
		}
		if err := rt.Cleanup(ctx, ts.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := outputs["eval:eval.json"]; !ok {
		t.Fatalf("eval.json not collected: %v", outputs)
	}
	if total <= 0 {
		t.Fatalf("offers priced at %d", total)
	}
	if err := pools.Detach(ctx, store, "lab", false, 0); err != nil {
		t.Fatalf("detach after the pipeline: %v", err)
	}
}

// writeOCIStub writes a minimal OCI image-layout archive (index.json only).
func writeOCIStub(t *testing.T, path string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	index := `{"schemaVersion":2,"manifests":[{"digest":"sha256:` + strings.Repeat("0", 64) + `","annotations":{"io.containerd.image.name":"accord.local/examples/trainer:latest"}}]}`
	for name, body := range map[string]string{"oci-layout": `{"imageLayoutVersion":"1.0.0"}`, "index.json": index} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

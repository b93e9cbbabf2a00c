package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/runtimes/nomad"
	"github.com/accordmesh/accord/runtimes/nomad/nomadtest"
	"github.com/accordmesh/accord/runtimes/nomad/pools"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workflows"
)

// llmFinetuneForPool derives a spec from examples/llm-finetune.md that a
// Nomad pool on the test double can win: the double has no GPU TEE, no
// remote attestation and no EU jurisdiction to offer, so those placement
// lines go, and the approval gate is tested elsewhere. Everything else —
// three tasks, the H100 with ≥40 GiB, alternating offers, the acceptance
// tests (the command one runs the real trainer image on the worker's
// containerd), budget, royalties — is the example's.
func llmFinetuneForPool(t *testing.T, dir, image string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(repoRoot(), "examples", "llm-finetune.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	for _, line := range []string{"regions: [eu-west-1, eu-central-1]\n", "residency: [EU]\n", "tee: nvidia-cc\n",
		"require_attestation: true\n"} {
		if !strings.Contains(s, line) {
			t.Fatalf("examples/llm-finetune.md no longer has %q: update the derivation", line)
		}
		s = strings.Replace(s, line, "", 1)
	}
	if i := strings.Index(s, "## Approval"); i >= 0 {
		s = s[:i]
	}
	// The worker imports archives only under its --host-inputs roots
	// (hostInputs: the repository's examples/images).
	s = strings.ReplaceAll(s, "oci-archive:images/trainer.tar", "oci-archive:"+image)
	p := filepath.Join(dir, "llm-finetune.md")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A GPU job through a Nomad pool on the real embedded Temporal stack: the
// pool attached to the Nomad test double bids from its live inventory,
// wins the H100 task, runs all three tasks as Nomad jobs pinned to the
// offered GPU, and the job is verified, settled once and attested in seven
// chained stages.
func TestJobNomadPool(t *testing.T) {
	image := needStack(t) // the worker's containerd runs the acceptance test
	d := nomadtest.New()
	t.Cleanup(d.Close)
	d.AddNode(nomadtest.NodeSpec{Name: "cpu-1", NodePool: "gpu", CPUMHz: 8000, MemoryMB: 16384})
	gpuNode := d.AddNode(nomadtest.NodeSpec{Name: "gpu-1", NodePool: "gpu", CPUMHz: 32000, MemoryMB: 262144,
		GPUs: []nomadtest.GPU{{Model: "NVIDIA H100 80GB HBM3", MemoryMiB: 81920, IDs: []string{"GPU-h0", "GPU-h1"}}}})
	home := newHome(t)
	store := pools.Open(home)
	// Record where each Nomad job ran, with which GPUs, and whether the pool
	// store knew the task was running at that moment.
	type placed struct {
		node     string
		gpus     []string
		recorded bool
	}
	var mu sync.Mutex
	ran := map[string]placed{} // Nomad job ID → placement
	trainer := nomadtest.TrainerBehavior()
	d.SetBehavior(func(job *api.Job, a *api.Allocation, attempt int) nomadtest.Run {
		pl := placed{node: a.NodeID}
		if a.AllocatedResources != nil {
			for _, tr := range a.AllocatedResources.Tasks {
				for _, dv := range tr.Devices {
					pl.gpus = append(pl.gpus, dv.DeviceIDs...)
				}
			}
		}
		if p, err := store.Get("lab"); err == nil && job.Meta != nil {
			_, pl.recorded = p.Running[job.Meta["accord_task_id"]]
		}
		mu.Lock()
		ran[*job.ID] = pl
		mu.Unlock()
		return trainer(job, a, attempt)
	})

	ctx := context.Background()
	pricing := filepath.Join(home, "pricing.yaml")
	if err := os.WriteFile(pricing, []byte("currency: EUR\ngpu_hour: {H100: 3000}\ncpu_core_hour: 100\nmemory_gib_hour: 20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := pools.Attach(actx, store, "lab", nomad.Config{Address: d.URL, NodePool: "gpu", ArtifactBase: "https://artifacts.example/accord"}, pricing); err != nil {
		t.Fatal(err)
	}
	l, err := settlement.Open(ctx, settlement.DefaultDSN(home))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Deposit(ctx, settlement.DepositRequest{Tenant: "acme-research", Currency: "EUR", Amount: 20000, Key: "test-fund-acme-research"}); err != nil {
		t.Fatal(err)
	}
	l.Close()

	st := startStack(t, home, 0, false)
	defer st.Stop()
	spec := llmFinetuneForPool(t, t.TempDir(), image)
	sub, err := jobclient.Submit(ctx, st.Client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	res := result(t, st.Client, sub.JobID, 3*time.Minute)
	if res.Status != workflows.StatusSettled {
		t.Fatalf("job %s/%s: %s", res.Status, res.Class, res.Error)
	}
	if res.Provider != "lab" || res.Currency != "EUR" || res.Price <= 0 {
		t.Errorf("award: provider %q price %d %s", res.Provider, res.Price, res.Currency)
	}
	for _, n := range []string{"prepare", "train", "eval"} {
		if res.Tasks[n].State != workflows.TaskSucceeded {
			t.Errorf("task %s: %+v", n, res.Tasks[n])
		}
	}
	if len(res.Tests) != 2 {
		t.Errorf("verification results %+v, want the example's two tests", res.Tests)
	}
	for _, tr := range res.Tests {
		if !tr.Passed {
			t.Errorf("test %+v", tr)
		}
	}
	// The train task ran as a Nomad job on the offered GPU's node, with
	// exactly the offered GPU.
	mu.Lock()
	pl, ok := ran[nomad.JobID(workflows.RunID(sub.JobID, "train", 1))]
	nruns := len(ran)
	mu.Unlock()
	if !ok || pl.node != gpuNode || len(pl.gpus) != 1 || !pl.recorded {
		t.Fatalf("train ran as %+v (found %v), want node %s with one GPU, recorded as running on the pool", pl, ok, gpuNode)
	}
	if nruns != 3 {
		t.Errorf("%d Nomad jobs ran, want 3", nruns)
	}
	gpu := pl.gpus[0]

	// Seven chained attestations; negotiation names the pool, placement
	// names the pool, the node and the GPU.
	if len(res.Attestations) != 7 {
		t.Fatalf("attestations %+v", res.Attestations)
	}
	atts, err := provenance.NewStore(provenance.DefaultStoreDir(home)).List(sub.JobID)
	if err != nil || len(atts) != 7 {
		t.Fatalf("stored attestations: %d %v", len(atts), err)
	}
	stages := map[string]string{}
	for i, at := range atts {
		if at.Entry == nil || at.Digest != res.Attestations[i].Digest {
			t.Errorf("stage %s: logged %v digest %s vs %s", at.Stage, at.Entry != nil, at.Digest, res.Attestations[i].Digest)
		}
		stages[at.Stage] = payload(t, at.Envelope)
	}
	place := stages["placement"]
	for _, want := range []string{`"provider":"lab"`, `"devices"`, `"task":"train"`, gpuNode, gpu} {
		if !strings.Contains(place, want) {
			t.Errorf("placement attestation lacks %s: %s", want, place)
		}
	}
	if !regexp.MustCompile(`"provider":\s*"lab"`).MatchString(stages["negotiation"]) {
		t.Errorf("negotiation attestation does not name the pool")
	}

	// Settled once; the ledger balances; the pool has no running task left
	// and detaches.
	lc := ledgerCheck(t, home)
	if tx, err := lc.Transaction(ctx, settlement.Key(sub.JobID, "settle", 1)); err != nil || tx == nil {
		t.Errorf("settlement transaction: %v", err)
	}
	if n := countActivities(t, st.Client, sub.JobID, workflows.Settle.Name); n != 1 {
		t.Errorf("settle scheduled %d times", n)
	}
	if res.Paid <= 0 || res.Paid > res.Price {
		t.Errorf("paid %d of price %d", res.Paid, res.Price)
	}
	p, err := store.Get("lab")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.RunningTasks()) != 0 {
		t.Errorf("tasks still recorded on the pool: %v", p.RunningTasks())
	}
	if err := pools.Detach(ctx, store, "lab", false, 0); err != nil {
		t.Errorf("detach: %v", err)
	}
}

// payload is the in-toto statement inside a DSSE envelope.
func payload(t *testing.T, env []byte) string {
	t.Helper()
	var e struct {
		Payload string `json:"payload"`
	}
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

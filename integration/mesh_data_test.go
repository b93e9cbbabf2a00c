package integration

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/market/agents"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/workers/apijobs"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workers/stack"
	"github.com/accordmesh/accord/workflows"
)

// meshSpec is a job of tenant mesh that only provider may run.
func meshSpec(t *testing.T, dir, name, provider, tasks, tests string) string {
	t.Helper()
	doc := fmt.Sprintf("---\naccord: v1\nname: %s\nversion: 1.0.0\ntenant: mesh\n---\n\n# %s\n\n## Tasks\n\n```yaml\n%s```\n\n"+
		"## Verification\n\n```yaml\n%s```\n\n"+
		"## Placement\n\n```yaml\nallow_providers: [%s]\n```\n\n"+
		"## Budget\n\n```yaml\nmax_price: 500\ncurrency: USD\npreference: cheapest\n```\n\n"+
		"## Settlement\n\n```yaml\npay_on_success: true\n```\n", name, name, tasks, tests, provider)
	p := filepath.Join(dir, name+".md")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// agentAPI puts the trainer image in home's artifact store, granted to
// tenant, and serves the control plane's API (jobs, the agents' registry
// and the artifact store) for provider agents until the test ends. It
// returns the store, the image's digest, the agents' registry and the API.
func agentAPI(t *testing.T, st *stack.Stack, home, image, tenant string) (artifacts.Local, string, *agents.Registry, *httptest.Server) {
	t.Helper()
	store := artifacts.Local{Dir: artifacts.DefaultDir(home)}
	f, err := os.Open(image)
	if err != nil {
		t.Fatal(err)
	}
	digest, _, err := store.PutReader(context.Background(), f, 1<<30)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Grant(tenant, digest); err != nil {
		t.Fatal(err)
	}
	reg := agents.Open(home)
	prov := &provenance.Local{Home: home, Log: st.Local.Log, Store: provenance.NewStore(provenance.DefaultStoreDir(home))}
	srv := httptest.NewServer(apiserver.New(&apijobs.Jobs{Client: st.Client, Home: home, Prov: prov}, st.Local.Store,
		apiserver.WithProviders(reg), apiserver.WithBlobs(store, apiserver.DefaultMaxData), apiserver.WithRateLimit(0, 0)))
	t.Cleanup(srv.Close)
	return store, digest, reg, srv
}

// startAgent runs `accord provider serve --name NAME` with its own home,
// containerd and key, reaching the control plane only through Temporal
// and the API (no --artifacts, no --host-inputs: nothing shared), and
// trusts its key for provider:NAME. extra are more flags of provider serve.
func startAgent(t *testing.T, bin, home, temporal, api string, store *policies.Store, reg *agents.Registry, name string, extra ...string) (agentHome string) {
	t.Helper()
	agentHome = newHome(t)
	tok, err := store.CreateToken(context.Background(), policies.Principal{Role: policies.RoleProvider, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(agentHome, "provider.token")
	if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(agentHome, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	cmd := exec.Command(bin, append([]string{"provider", "serve", "--name", name, "--home", agentHome,
		"--temporal-address", temporal, "--api", api, "--token-file", tokFile, "--heartbeat", "1s"}, extra...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	waitFor(t, 2*time.Minute, name+"'s first heartbeat", func() bool { _, ok := reg.Live(name); return ok })
	key, err := provenance.LoadKey(filepath.Join(agentHome, "keys", "provider.key"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := provenance.LoadTrustStore(provenance.DefaultTrustPath(home))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Add(key.PublicPEM(), "agent "+name, provenance.ProviderScope(name)); err != nil {
		t.Fatal(err)
	}
	if err := ts.Save(provenance.DefaultTrustPath(home)); err != nil {
		t.Fatal(err)
	}
	return agentHome
}

// Outputs move between machines: two provider agents, each with its own
// home, containerd and key and no directory shared with the control plane
// or each other. The trainer image is the tenant's artifact, fetched by
// each agent over the API. Job one runs a two-task DAG on gpu-a (prepare
// → train); gpu-a pushes every output to the store, and the buyer's
// acceptance tests (a metric and a container over /out) read them from
// the store. Job two runs on gpu-b with job one's dataset and model as
// inputs by digest: the data flows gpu-a → store → gpu-b, verified at
// each hop, and job two's own acceptance test passes on the buyer side.
// Both jobs settle and the ledger is clean.
//
// The two tasks are two jobs because an award is per job: every task of
// a job runs on its winner's queue, and the spec has no per-task
// provider constraint (placement.allow_providers is the job's).
func TestProviderAgentsDataFlow(t *testing.T) {
	image := needStack(t)
	bin := accordBinary(t)
	home := newHome(t)
	st := startStack(t, home, 0, false)
	defer st.Stop()
	ctx := context.Background()
	fund(t, home, "mesh", 2000)

	store, imgDigest, reg, srv := agentAPI(t, st, home, image, "mesh")
	homeA := startAgent(t, bin, home, st.Server.Address(), srv.URL, st.Local.Store, reg, "gpu-a")
	homeB := startAgent(t, bin, home, st.Server.Address(), srv.URL, st.Local.Store, reg, "gpu-b")
	agentLogs := func() string {
		a, _ := os.ReadFile(filepath.Join(homeA, "agent.log"))
		b, _ := os.ReadFile(filepath.Join(homeB, "agent.log"))
		return "gpu-a:\n" + string(a) + "\ngpu-b:\n" + string(b)
	}

	const res = "  resources: {cpu: 250m, memory: 128MiB, max_duration: 5m}\n"
	dir := t.TempDir()
	one := meshSpec(t, dir, "produce", "gpu-a",
		artifactTask("prepare", imgDigest, []string{"trainer", "prepare", "--samples", "2000", "--seed", "3"}, "  outputs: [dataset.csv]\n"+res)+
			artifactTask("train", imgDigest, []string{"trainer", "train", "--data", "/in/data.csv", "--epochs", "2000"},
				"  inputs:\n    - {name: data, from: \"prepare:dataset.csv\", target: /in/data.csv}\n  outputs: [model.json, metrics.json]\n"+res),
		"tests:\n  - name: trained\n    task: train\n    command: [trainer, check, --file, /out/metrics.json, --metric, accuracy, --min, \"0\"]\n    expect_exit: 0\n"+
			"    metrics:\n      - {file: metrics.json, metric: accuracy, op: \">=\", value: 0}\n")
	sub1, err := jobclient.Submit(ctx, st.Client, one, "")
	if err != nil {
		t.Fatal(err)
	}
	res1 := result(t, st.Client, sub1.JobID, 6*time.Minute)
	if res1.Status != workflows.StatusSettled || res1.Provider != "gpu-a" || len(res1.Tests) != 1 || !res1.Tests[0].Passed {
		t.Fatalf("job one: %+v\n%s", res1, agentLogs())
	}
	digestOf := func(r workflows.JobResult, task, path string) string {
		for _, o := range r.Tasks[task].Outputs {
			if o.Path == path {
				return "sha256:" + o.SHA256
			}
		}
		t.Fatalf("%s has no output %s: %+v", task, path, r.Tasks[task])
		return ""
	}
	model, data := digestOf(res1, "train", "model.json"), digestOf(res1, "prepare", "dataset.csv")
	for _, d := range []string{model, data} {
		if ok, err := store.Owns("mesh", d); !ok || err != nil {
			t.Errorf("job one's output %s is not the tenant's in the store: %v %v", d, ok, err)
		}
	}

	two := meshSpec(t, dir, "consume", "gpu-b",
		artifactTask("eval", imgDigest, []string{"trainer", "eval", "--model", "/in/model.json", "--data", "/in/data.csv"},
			fmt.Sprintf("  inputs:\n    - {name: model, artifact: %q, target: /in/model.json}\n    - {name: data, artifact: %q, target: /in/data.csv}\n"+
				"  outputs: [eval.json]\n", model, data)+res),
		"tests:\n  - name: accuracy\n    task: eval\n    metrics:\n      - {file: eval.json, metric: accuracy, op: \">=\", value: 0.5}\n")
	sub2, err := jobclient.Submit(ctx, st.Client, two, "")
	if err != nil {
		t.Fatal(err)
	}
	res2 := result(t, st.Client, sub2.JobID, 6*time.Minute)
	if res2.Status != workflows.StatusSettled || res2.Provider != "gpu-b" || len(res2.Tests) != 1 || !res2.Tests[0].Passed {
		t.Fatalf("job two: %+v\n%s", res2, agentLogs())
	}

	// Where things ran and what crossed: each job's runs are recorded on
	// its agent only; gpu-b holds job one's outputs as verified inputs it
	// fetched; the control plane ran nothing and holds the outputs it
	// verified, fetched from the store.
	for _, c := range []struct {
		home, job, task string
		want            bool
	}{
		{homeA, sub1.JobID, "train", true}, {homeB, sub2.JobID, "eval", true},
		{homeB, sub1.JobID, "train", false}, {homeA, sub2.JobID, "eval", false},
		{home, sub1.JobID, "train", false}, {home, sub2.JobID, "eval", false},
	} {
		_, err := os.Stat(filepath.Join(c.home, "jobs", c.job, "results", workflows.RunID(c.job, c.task, 1)+".json"))
		if (err == nil) != c.want {
			t.Errorf("run record of %s.%s under %s: %v, want present=%v", c.job, c.task, c.home, err, c.want)
		}
	}
	for _, d := range []string{model, data} {
		if _, err := os.Stat(filepath.Join(homeB, "inputs", "sha256", strings.TrimPrefix(d, "sha256:"))); err != nil {
			t.Errorf("gpu-b did not fetch %s from the store: %v", d, err)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "jobs", sub1.JobID, "outputs", "train", "metrics.json")); err != nil {
		t.Errorf("the buyer's verifier did not materialize job one's outputs: %v", err)
	}
	ledgerCheck(t, home)
}

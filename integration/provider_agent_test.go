package integration

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/market/agents"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/workers/apijobs"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workflows"
)

// agentSpec is a one-task job that only provider gpu-a may run.
func agentSpec(t *testing.T, dir, name, image string) string {
	t.Helper()
	doc := fmt.Sprintf("---\naccord: v1\nname: %s\nversion: 1.0.0\ntenant: agents\n---\n\n# %s\n\n## Tasks\n\n```yaml\n%s```\n\n"+
		"## Placement\n\n```yaml\nallow_providers: [gpu-a]\n```\n\n"+
		"## Budget\n\n```yaml\nmax_price: 500\ncurrency: USD\npreference: cheapest\n```\n\n"+
		"## Settlement\n\n```yaml\npay_on_success: true\n```\n", name, name,
		trainerTask("train", image, []string{"trainer", "train", "--samples", "200", "--epochs", "3"},
			"  outputs: [metrics.json, model.json]\n  resources: {cpu: 250m, memory: 128MiB, max_duration: 5m}\n"))
	p := filepath.Join(dir, name+".md")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// One `accord provider serve` process with its own home, containerd and
// key runs a job awarded to it: the job settles, the container ran under
// the agent's home, and the execution attestation in the receipt is signed
// by the agent's key. When the agent is killed its heartbeat stops, and a
// new job gets no offer from it.
func TestProviderAgent(t *testing.T) {
	image := needStack(t)
	bin := accordBinary(t)
	home := newHome(t)      // the control plane
	agentHome := newHome(t) // the provider's machine
	st := startStack(t, home, 0, false)
	defer st.Stop()
	ctx := context.Background()
	fund(t, home, "agents", 1000)

	reg := agents.Open(home)
	prov := &provenance.Local{Home: home, Log: st.Local.Log, Store: provenance.NewStore(provenance.DefaultStoreDir(home))}
	srv := httptest.NewServer(apiserver.New(&apijobs.Jobs{Client: st.Client, Home: home, Prov: prov}, st.Local.Store,
		apiserver.WithProviders(reg), apiserver.WithBlobs(artifacts.Local{Dir: artifacts.DefaultDir(home)}, apiserver.DefaultMaxData),
		apiserver.WithRateLimit(0, 0)))
	defer srv.Close()
	tok, err := st.Local.Store.CreateToken(ctx, policies.Principal{Role: policies.RoleProvider, Name: "gpu-a"})
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
	defer logf.Close()
	agent := exec.Command(bin, "provider", "serve", "--name", "gpu-a", "--home", agentHome,
		"--temporal-address", st.Server.Address(), "--api", srv.URL, "--token-file", tokFile, "--heartbeat", "1s",
		"--host-inputs", filepath.Dir(image)) // the agent's own copy of the image; the store is reached through --api
	agent.Stdout, agent.Stderr = logf, logf
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _, _ = agent.Process.Wait() })
	waitFor(t, 2*time.Minute, "the agent's first heartbeat", func() bool { _, ok := reg.Live("gpu-a"); return ok })

	// The operator trusts the agent's key for its own stages only.
	key, err := provenance.LoadKey(filepath.Join(agentHome, "keys", "provider.key"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := provenance.LoadTrustStore(provenance.DefaultTrustPath(home))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Add(key.PublicPEM(), "agent gpu-a", provenance.ProviderScope("gpu-a")); err != nil {
		t.Fatal(err)
	}
	if err := ts.Save(provenance.DefaultTrustPath(home)); err != nil {
		t.Fatal(err)
	}

	sub, err := jobclient.Submit(ctx, st.Client, agentSpec(t, t.TempDir(), "on-agent", image), "")
	if err != nil {
		t.Fatal(err)
	}
	res := result(t, st.Client, sub.JobID, 5*time.Minute)
	if res.Status != workflows.StatusSettled || res.Provider != "gpu-a" || res.Paid <= 0 {
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("job: %+v\nagent log:\n%s", res, out)
	}
	recordHistory(t, st.Client, sub.JobID, "job_agent")
	// The container ran on the agent's machine, not the control plane's.
	runID := workflows.RunID(sub.JobID, "train", 1)
	if _, err := os.Stat(filepath.Join(agentHome, "jobs", sub.JobID, "results", runID+".json")); err != nil {
		t.Errorf("no run record on the agent: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, "jobs", sub.JobID, "results", runID+".json")); err == nil {
		t.Error("the control plane's worker ran the task")
	}
	rc, err := provenance.BuildReceipt(ctx, sub.JobID, prov.Store, st.Local.Log)
	if err != nil {
		t.Fatal(err)
	}
	signers := map[string]string{}
	for _, a := range rc.Attestations {
		ids, err := provenance.EnvelopeSignerIDs(a.Envelope)
		if err != nil || len(ids) != 1 {
			t.Fatalf("%s signers %v %v", a.Stage, ids, err)
		}
		signers[a.Stage] = ids[0]
	}
	for _, stage := range []string{provenance.StagePlacement, provenance.StageExecution} {
		if signers[stage] != key.ID() {
			t.Errorf("%s signed by %s, want the agent's key %s", stage, signers[stage], key.ID())
		}
	}
	if signers[provenance.StageNegotiation] == key.ID() || signers[provenance.StageSettlement] == key.ID() {
		t.Errorf("the agent signed the operator's stages: %v", signers)
	}
	rep, err := provenance.Verify(ctx, rc, ts, provenance.VerifyOptions{})
	if err != nil || !rep.OK {
		t.Errorf("receipt: %v %+v", err, rep)
	}

	// The agent dies: after three missed heartbeats it is withdrawn, and a
	// job only it may run finds no offer.
	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = agent.Process.Wait()
	waitFor(t, 30*time.Second, "the agent's offers withdrawn", func() bool { _, ok := reg.Live("gpu-a"); return !ok })
	sub2, err := jobclient.Submit(ctx, st.Client, agentSpec(t, t.TempDir(), "after-agent", image), "")
	if err != nil {
		t.Fatal(err)
	}
	res2 := result(t, st.Client, sub2.JobID, 2*time.Minute)
	if res2.Status != workflows.StatusFailed || res2.Class != workflows.ClassNoOffers {
		t.Fatalf("job after the agent died: %+v", res2)
	}
	if res2.Provider != "" || res2.Paid != 0 {
		t.Errorf("job after the agent died was awarded: provider %q paid %d", res2.Provider, res2.Paid)
	}
	ledgerCheck(t, home)
}

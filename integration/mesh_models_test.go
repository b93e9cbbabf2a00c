package integration

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/activities"
	"github.com/accordmesh/accord/models/registry/registrytest"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog/rekorapi"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workers/local"
	"github.com/accordmesh/accord/workers/stack"
	"github.com/accordmesh/accord/workflows"
)

// TestProviderAgentRegistryModel: a job that uses a registry model runs on
// a provider agent with its own home (nothing shared with the control
// plane but Temporal, the API, the registry and the log). The agent
// fetches the model from the registry and verifies it itself, against its
// own trust store and the log served over HTTP, before mounting it
// read-only; the job settles and the model's owner is paid its fee.
func TestProviderAgentRegistryModel(t *testing.T) {
	image := needStack(t)
	bin := accordBinary(t)
	srv := registrytest.StartServer(t)
	home := newHome(t)
	ctx := context.Background()
	fund(t, home, "mesh", 2000)
	st, err := stack.Start(ctx, stack.Options{Home: home, Local: local.Options{
		AutoCreateTenants: true, HostInputs: hostInputs(), Registry: srv.Addr, RegistryPlainHTTP: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()

	// The owner pushes a model, signed with its key (trusted for spec:rex).
	x := st.Local.Activities.Models.(activities.Exchange).X
	rex, _ := publisher(t, home, x, "rex")
	base := trainBase(t, "rex/agent-classifier")
	if _, err := rex.Push(ctx, base, baseManifest(t, base, "rex/agent-classifier", "rex")); err != nil {
		t.Fatal(err)
	}

	_, imgDigest, reg, api := agentAPI(t, st, home, image, "mesh")
	// The log every party reads, served read-only over Rekor's REST API.
	logSrv := httptest.NewServer(rekorapi.NewHandler(st.Local.Log, rekorapi.WithReadOnly()))
	defer logSrv.Close()

	agentHome := startAgent(t, bin, home, st.Server.Address(), api.URL, st.Local.Store, reg, "gpu-a",
		"--registry", srv.Addr, "--registry-plain-http", "--rekor-url", logSrv.URL, "--insecure")
	// The provider trusts what the control plane trusts: the log's key
	// (scope log) and the owner's (spec:rex), from the operator's trust file.
	trust, err := os.ReadFile(provenance.DefaultTrustPath(home))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(provenance.DefaultTrustPath(agentHome), trust, 0o600); err != nil {
		t.Fatal(err)
	}

	spec := meshSpec(t, t.TempDir(), "use-model", "gpu-a",
		artifactTask("use", imgDigest, []string{"trainer", "train", "--init", "/models/clf/model.json", "--samples", "200", "--epochs", "1", "--seed", "5"},
			"  models: [{name: rex/agent-classifier, version: \"^1.0\", as: /models/clf}]\n"+
				"  outputs: [model.json]\n  resources: {cpu: 250m, memory: 128MiB, max_duration: 5m}\n"), "tests: []\n")
	sub, err := jobclient.Submit(ctx, st.Client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	res := result(t, st.Client, sub.JobID, 6*time.Minute)
	if res.Status != workflows.StatusSettled || res.Provider != "gpu-a" {
		log, _ := os.ReadFile(filepath.Join(agentHome, "agent.log"))
		t.Fatalf("job: %+v\nagent log:\n%s", res, log)
	}
	// The agent ran the task and fetched the model into its own verified
	// cache; the control plane ran nothing.
	if _, err := os.Stat(filepath.Join(agentHome, "jobs", sub.JobID, "results", workflows.RunID(sub.JobID, "use", 1)+".json")); err != nil {
		t.Errorf("the agent's run record: %v", err)
	}
	if cached, _ := filepath.Glob(filepath.Join(agentHome, "models", "*")); len(cached) == 0 {
		t.Error("the agent's model cache is empty: it did not fetch the model itself")
	}
	if _, err := os.Stat(filepath.Join(home, "jobs", sub.JobID, "results", workflows.RunID(sub.JobID, "use", 1)+".json")); err == nil {
		t.Error("the control plane ran the task")
	}
	l := ledgerCheck(t, home)
	if got, err := l.Balance(ctx, settlement.OwnerAccount("rex"), "USD"); err != nil || got != 40 {
		t.Errorf("owner:rex balance %d (%v), want 40 (one inference)", got, err)
	}

	// A provider that does not trust the model's owner will not run it:
	// gpu-b trusts the log but not rex, and the task fails there.
	homeB := startAgent(t, bin, home, st.Server.Address(), api.URL, st.Local.Store, reg, "gpu-b",
		"--registry", srv.Addr, "--registry-plain-http", "--rekor-url", logSrv.URL, "--insecure")
	ts, err := provenance.LoadTrustStore(provenance.DefaultTrustPath(home))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ts.Keys() {
		if k.Name == "rex" {
			ts.Remove(k.ID)
		}
	}
	if err := ts.Save(provenance.DefaultTrustPath(homeB)); err != nil {
		t.Fatal(err)
	}
	specB := meshSpec(t, t.TempDir(), "use-model-b", "gpu-b",
		artifactTask("use", imgDigest, []string{"trainer", "train", "--init", "/models/clf/model.json", "--samples", "200", "--epochs", "1", "--seed", "5"},
			"  models: [{name: rex/agent-classifier, version: \"^1.0\", as: /models/clf}]\n"+
				"  outputs: [model.json]\n  resources: {cpu: 250m, memory: 128MiB, max_duration: 5m}\n"), "tests: []\n")
	subB, err := jobclient.Submit(ctx, st.Client, specB, "")
	if err != nil {
		t.Fatal(err)
	}
	resB := result(t, st.Client, subB.JobID, 6*time.Minute)
	if resB.Status != workflows.StatusFailed || !strings.Contains(resB.Error, "rex/agent-classifier") {
		t.Fatalf("job on a provider that does not trust the model's owner: %s %s %s", resB.Status, resB.Class, resB.Error)
	}
	t.Logf("gpu-b refused the model: %s", resB.Error)
	if got, _ := l.Balance(ctx, settlement.OwnerAccount("rex"), "USD"); got != 40 {
		t.Errorf("owner:rex balance %d after the refused job, want still 40", got)
	}
	ledgerCheck(t, home)
}

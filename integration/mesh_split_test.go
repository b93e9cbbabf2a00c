package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workflows"
)

// e) A DAG job split over the two providers (placement.split; each task
// asks 5 CPUs, more than a provider offers for both at once): prepare runs
// on one, train on the other, which reads prepare's dataset through the
// artifact store. The job settles paying each provider for its own part,
// and its receipt verifies with the four parties' keys; one provider's
// execution part re-signed by the operator fails the audit, naming the
// stage.
func meshSplit(t *testing.T, cp *meshControl) {
	ctx := context.Background()
	const res = "  resources: {cpu: 5, memory: 64MiB, max_duration: 10m}\n"
	tasks := artifactTask("prepare", cp.image, []string{"trainer", "prepare", "--samples", "500", "--seed", "3"}, "  outputs: [dataset.csv]\n"+res) +
		artifactTask("train", cp.image, []string{"trainer", "train", "--data", "/in/data.csv", "--epochs", "50"},
			"  inputs:\n    - {name: data, from: \"prepare:dataset.csv\", target: /in/data.csv}\n  outputs: [model.json, metrics.json]\n"+res)
	spec := meshJobSpec(t, t.TempDir(), "split", "mesh-split", []string{"prov-a", "prov-b"}, tasks)
	b, err := os.ReadFile(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec, []byte(strings.Replace(string(b), "allow_providers: [prov-a, prov-b]\n", "allow_providers: [prov-a, prov-b]\nsplit: true\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	before := providerBalances(t, cp)
	sub, err := jobclient.Submit(ctx, cp.client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	r := result(t, cp.client, sub.JobID, 6*time.Minute)
	if r.Status != workflows.StatusSettled || r.Paid <= 0 || !strings.Contains(r.PriceExplanation, "split over 2 providers") {
		t.Fatalf("job: %+v", r)
	}
	recordHistory(t, cp.client, sub.JobID, "job_split")
	ran := splitRanOn(t, cp, sub.JobID)
	if ran["prepare"] == "" || ran["train"] == "" || ran["prepare"] == ran["train"] {
		t.Fatalf("tasks ran on %v, want prepare and train on different providers", ran)
	}
	if len(r.Parts) != 2 || r.Provider != r.Parts[0].Provider {
		t.Errorf("result's parts %+v (provider %s)", r.Parts, r.Provider)
	}
	for _, p := range r.Parts {
		if len(p.Tasks) != 1 || ran[p.Tasks[0]] != p.Provider || p.Price <= 0 {
			t.Errorf("part %+v: not where its task ran (%v)", p, ran)
		}
	}
	t.Logf("prepare ran on %s, train on %s; %s", ran["prepare"], ran["train"], r.PriceExplanation)

	// The data crossed through the store: train's host holds prepare's
	// dataset, fetched and verified against its digest.
	data := r.Tasks["prepare"].Outputs
	if len(data) != 1 {
		t.Fatalf("prepare's outputs %+v", data)
	}
	got, err := os.ReadFile(filepath.Join(cp.agents[ran["train"]].home, "jobs", sub.JobID, "outputs", "prepare", "dataset.csv"))
	if err != nil || "sha256:"+data[0].SHA256 != artifacts.Digest(got) {
		t.Errorf("train's host holds prepare's dataset %d bytes (%v), want digest sha256:%s", len(got), err, data[0].SHA256)
	}

	// Each provider was paid for its own part.
	after := providerBalances(t, cp)
	for _, p := range []string{"prov-a", "prov-b"} {
		if after[p] <= before[p] {
			t.Errorf("%s's balance %d -> %d: not paid for its part", p, before[p], after[p])
		}
	}
	checkPGLedger(t, cp.ledgerDSN, sub.JobID, "mesh-split", 1000, r.Paid)

	rc, verify := meshAudit(t, cp, sub.JobID)
	rep, code, out := verify(rc.path, "--parties")
	if code != 0 || !rep.OK || !rep.Complete {
		t.Fatalf("audit verify --parties --witnesses 1 of the split job: exit %d\n%s", code, out)
	}
	for _, s := range rep.Stages {
		t.Logf("stage %-13s signed by %s (%s)", s.Stage, s.Signer, s.Party)
		for _, p := range s.Parts {
			t.Logf("  part %v signed by %s (%s)", p.Tasks, p.KeyID, p.Party)
		}
	}
	checkPartSigners(t, rep, cp, ran)
	forged := filepath.Join(t.TempDir(), "forged.json")
	resignPart(t, rc.receipt, provenance.StageExecution, ran["train"], filepath.Join(cp.home, "keys", "worker.key"), forged)
	rep, code, out = verify(forged, "--parties")
	if code != 7 || rep.OK || !hasProblem(rep, provenance.StageExecution, "", ran["train"]) {
		t.Fatalf("%s's execution part signed by the operator: exit %d, want 7 and a problem at stage execution naming it\n%s", ran["train"], code, out)
	}
}

// providerBalances are the providers' ledger balances (USD).
func providerBalances(t *testing.T, cp *meshControl) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	l, err := settlement.Open(ctx, cp.ledgerDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out := map[string]int64{}
	for _, p := range []string{"prov-a", "prov-b"} {
		if out[p], err = l.Balance(ctx, settlement.ProviderAccount(p), "USD"); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// splitRanOn maps each task of the job to the provider whose host holds
// its one run record (attempt 1); a task recorded twice, or a run on the
// control plane, is an error.
func splitRanOn(t *testing.T, cp *meshControl, jobID string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, a := range cp.agents {
		recs, _ := filepath.Glob(filepath.Join(a.home, "jobs", jobID, "results", "*.json"))
		for _, rec := range recs {
			for _, task := range []string{"prepare", "train"} {
				if filepath.Base(rec) != workflows.RunID(jobID, task, 1)+".json" {
					continue
				}
				if out[task] != "" {
					t.Errorf("task %s ran on %s and %s", task, out[task], name)
				}
				out[task] = name
			}
		}
	}
	if recs, _ := filepath.Glob(filepath.Join(cp.home, "jobs", jobID, "results", "*.json")); len(recs) != 0 {
		t.Errorf("the control plane ran %s: %v", jobID, recs)
	}
	return out
}

// resignPart writes r to path with provider's signed part of stage
// re-signed by the key at keyPath, and the stage's own envelope (the
// operator's) signed again by that key over the changed statement.
func resignPart(t *testing.T, r *provenance.Receipt, stage, provider, keyPath, path string) {
	t.Helper()
	key, err := provenance.LoadKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	resign := func(envelope []byte) []byte {
		env, payload, err := provenance.ParseEnvelope(envelope)
		if err != nil {
			t.Fatal(err)
		}
		b, err := provenance.SignEnvelope(context.Background(), key, env.PayloadType, payload)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	done := false
	for _, a := range r.Attestations {
		if a.Stage != stage {
			continue
		}
		_, payload, err := provenance.ParseEnvelope(a.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]any
		if err := json.Unmarshal(payload, &st); err != nil {
			t.Fatal(err)
		}
		pred, _ := st["predicate"].(map[string]any)
		parts, _ := pred["parts"].([]any)
		for _, p := range parts {
			part := p.(map[string]any)
			if part["provider"] != provider {
				continue
			}
			env, err := json.Marshal(part["envelope"])
			if err != nil {
				t.Fatal(err)
			}
			part["envelope"] = json.RawMessage(resign(env))
			done = true
		}
		payload, err = json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		env, _, _ := provenance.ParseEnvelope(a.Envelope)
		if a.Envelope, err = provenance.SignEnvelope(context.Background(), key, env.PayloadType, payload); err != nil {
			t.Fatal(err)
		}
	}
	if !done {
		t.Fatalf("the receipt's %s stage has no part of %s", stage, provider)
	}
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
}

// checkPartSigners: the split job's placement and execution each list two
// parts, each signed by the key of the provider that ran its task.
func checkPartSigners(t *testing.T, rep provenance.Report, cp *meshControl, ran map[string]string) {
	t.Helper()
	for _, s := range rep.Stages {
		if s.Stage != provenance.StagePlacement && s.Stage != provenance.StageExecution {
			continue
		}
		if len(s.Parts) != 2 {
			t.Errorf("stage %s lists %d parts, want 2", s.Stage, len(s.Parts))
			continue
		}
		for _, p := range s.Parts {
			key, err := provenance.LoadKey(filepath.Join(cp.agents[p.Provider].home, "keys", "provider.key"))
			if err != nil {
				t.Fatalf("part of %q: %v", p.Provider, err)
			}
			if len(p.Tasks) != 1 || ran[p.Tasks[0]] != p.Provider || p.KeyID != key.ID() || p.Party != provenance.ProviderScope(p.Provider) {
				t.Errorf("stage %s part %+v: want the task's provider, signed with its key %s", s.Stage, p, key.ID())
			}
		}
	}
}

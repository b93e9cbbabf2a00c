package activities

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// runOnAgent runs the quickstart's train task on an agent whose outputs go
// to store, and returns its result.
func runOnAgent(t *testing.T, agent *Activities, rt *fakeRuntime, raw json.RawMessage, files map[string]string) (workflows.WaitTaskOutput, error) {
	t.Helper()
	ctx := context.Background()
	run := workflows.RunID("job-1", "train", 1)
	if _, err := agent.StartTask(ctx, workflows.StartTaskInput{JobID: "job-1", Task: "train", Attempt: 1, RunID: run,
		PlanInput: workflows.PlanInput{PlanJSON: raw}, Award: workflows.NegotiateOutput{Runtime: "fake"}}); err != nil {
		t.Fatal(err)
	}
	rt.finish(run, 0, files)
	return agent.WaitTask(ctx, workflows.WaitTaskInput{JobID: "job-1", Task: "train", RunID: run, Runtime: "fake", Window: time.Second})
}

// An agent pushes what it collects; the buyer's verifier, on another host
// (another jobs directory), materializes the outputs from the store by the
// digests of the results and verifies them. A result naming bytes the
// store does not hold fails verification's activity, never passes it.
func TestOutputsCrossMachines(t *testing.T) {
	plan, raw := quickstartPlan(t)
	plan.Spec.Verification.Tests[0].Command = nil // metrics only: no container
	raw, _ = json.Marshal(plan)
	store := artifacts.Local{Dir: t.TempDir()}
	if err := store.AwardJob("job-1", "gpu-a", plan.Tenant); err != nil {
		t.Fatal(err)
	}
	rt := newFake()
	agent := &Activities{Runtimes: map[string]runtimes.Runtime{"fake": rt}, JobsDir: t.TempDir(), Outputs: store}
	out, err := runOnAgent(t, agent, rt, raw, map[string]string{"metrics.json": `{"accuracy": 0.93}`})
	if err != nil || out.State != "exited" || len(out.Outputs) != 1 {
		t.Fatalf("run: %+v %v", out, err)
	}
	d := "sha256:" + out.Outputs[0].SHA256
	if ok, err := store.Owns(plan.Tenant, d); !ok || err != nil {
		t.Fatalf("output not granted to the tenant: %v %v", ok, err)
	}
	if ok, _ := store.AgentReads("gpu-a", d); !ok {
		t.Error("the agent cannot read back its own output")
	}

	buyer := &Activities{Runtimes: map[string]runtimes.Runtime{"fake": newFake()}, JobsDir: t.TempDir(), Inputs: store}
	in := workflows.VerifyInput{JobID: "job-1", PlanInput: workflows.PlanInput{PlanJSON: raw}, Award: workflows.NegotiateOutput{Runtime: "fake"},
		Tasks: map[string]workflows.TaskStatus{"train": {State: workflows.TaskSucceeded, Outputs: out.Outputs}}}
	v, err := buyer.Verify(context.Background(), in)
	if err != nil || !v.Passed {
		t.Fatalf("verify on the buyer: %+v %v", v, err)
	}
	if b, err := os.ReadFile(filepath.Join(buyer.OutputsDir("job-1", "train"), "metrics.json")); err != nil || string(b) != `{"accuracy": 0.93}` {
		t.Errorf("materialized output: %q %v", b, err)
	}

	other := &Activities{Runtimes: map[string]runtimes.Runtime{"fake": newFake()}, JobsDir: t.TempDir(), Inputs: store}
	forged := []workflows.OutputArtifact{{Path: "metrics.json", SHA256: artifacts.Digest([]byte(`{"accuracy": 1}`))[7:], Size: 15}}
	in.Tasks = map[string]workflows.TaskStatus{"train": {State: workflows.TaskSucceeded, Outputs: forged}}
	_, err = other.Verify(context.Background(), in)
	ae, top := err.(*temporal.ApplicationError) // Temporal classifies by the outermost error
	if !top || !ae.NonRetryable() || ae.Type() != workflows.ErrTypeExecution || !errors.Is(err, artifacts.ErrNotFound) {
		t.Errorf("verify over bytes the store lacks: %v", err)
	}
	escape := []workflows.OutputArtifact{{Path: "../../etc/x", SHA256: out.Outputs[0].SHA256, Size: out.Outputs[0].Size}}
	in.Tasks = map[string]workflows.TaskStatus{"train": {State: workflows.TaskSucceeded, Outputs: escape}}
	if _, err := other.Verify(context.Background(), in); appErrType(err) != workflows.ErrTypeExecution {
		t.Errorf("output path leaving its directory: %v", err)
	}
	if _, err := os.Stat(other.OutputsDir("job-1", "train")); err == nil {
		t.Error("a refused fetch left an outputs directory behind")
	}
}

// An agent whose job the store does not know refuses the run as failed to
// deliver, permanently, and records nothing.
func TestOutputsPushRefused(t *testing.T) {
	_, raw := quickstartPlan(t)
	rt := newFake()
	agent := &Activities{Runtimes: map[string]runtimes.Runtime{"fake": rt}, JobsDir: t.TempDir(), Outputs: artifacts.Local{Dir: t.TempDir()}}
	_, err := runOnAgent(t, agent, rt, raw, map[string]string{"metrics.json": `{}`})
	if appErrType(err) != workflows.ErrTypeExecution || !errors.Is(err, artifacts.ErrNoAward) {
		t.Fatalf("push for an unknown job: %v", err)
	}
	if _, ok := agent.readResult("job-1", workflows.RunID("job-1", "train", 1)); ok {
		t.Error("a result was recorded before the outputs were pushed")
	}
}

// Placement on an agent grants it the plan and the inputs its tenant
// owns, nothing else; sealing grants it the results it signs over.
func TestPlaceGrantsAgent(t *testing.T) {
	plan, _ := quickstartPlan(t)
	ctx := context.Background()
	store := artifacts.Local{Dir: t.TempDir()}
	owned, _ := store.Put(ctx, []byte("tenant's data"))
	foreign, _ := store.Put(ctx, []byte("someone else's"))
	if err := store.Grant(plan.Tenant, owned); err != nil {
		t.Fatal(err)
	}
	plan.Tasks[0].Inputs = append(plan.Tasks[0].Inputs, specs.Input{Name: "a", Artifact: owned, Target: "/in/a"},
		specs.Input{Name: "b", Artifact: foreign, Target: "/in/b"})
	raw, _ := json.Marshal(plan)
	ref, _ := store.Put(ctx, raw)
	a := &Activities{Artifacts: store, Inputs: store, Grants: store, Ledger: &fakeLedger{}}
	in := workflows.PlaceInput{JobID: "job-1", Tenant: plan.Tenant, PlanInput: workflows.PlanInput{PlanRef: ref},
		Award: workflows.NegotiateOutput{Provider: "gpu-a", Runtime: "containerd", Queue: workflows.ExecQueue("gpu-a")}}
	for range 2 { // idempotent
		if _, err := a.Place(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, got bool, want bool) {
		t.Helper()
		if got != want {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	reads := func(d string) bool { ok, _ := store.AgentReads("gpu-a", d); return ok }
	owns := func(p, d string) bool { ok, _ := store.AgentOwns(p, plan.Tenant, d); return ok }
	check("plan readable", reads(ref), true)
	check("owned input usable", owns("gpu-a", owned), true)
	check("foreign input readable", reads(foreign), false)
	check("foreign input usable", owns("gpu-a", foreign), false)
	check("another agent", owns("gpu-b", owned), false)
	sealed, err := a.SealResults(ctx, workflows.SealResultsInput{JobID: "job-1", Tasks: map[string]workflows.TaskStatus{"train": {State: workflows.TaskSucceeded}}})
	if err != nil {
		t.Fatal(err)
	}
	check("sealed results readable", reads(sealed.Ref), true)
	// A job no agent runs seals without grants.
	if _, err := a.SealResults(ctx, workflows.SealResultsInput{JobID: "job-2"}); err != nil {
		t.Errorf("seal of a local job: %v", err)
	}
}

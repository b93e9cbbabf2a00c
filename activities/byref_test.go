package activities

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

type captureAttestor struct{ got []workflows.AttestInput }

func (c *captureAttestor) Attest(_ context.Context, in workflows.AttestInput) (workflows.AttestOutput, error) {
	c.got = append(c.got, in)
	return workflows.AttestOutput{Digest: "sha256:x"}, nil
}

// Sealed results come back as the execution predicate's tasks and as
// subjects, so the workflow's history carries only their digest.
func TestSealedResultsFeedTheAttestation(t *testing.T) {
	ctx := context.Background()
	att := &captureAttestor{}
	a := &Activities{Artifacts: artifacts.Local{Dir: t.TempDir()}, Attestor: att}
	tasks := map[string]workflows.TaskStatus{
		"b": {State: workflows.TaskSucceeded, Outputs: []workflows.OutputArtifact{{Path: "m.json", SHA256: "22"}}},
		"a": {State: workflows.TaskSucceeded, Outputs: []workflows.OutputArtifact{{Path: "x", SHA256: "11"}}},
	}
	sealed, err := a.SealResults(ctx, workflows.SealResultsInput{JobID: "job-1", Tasks: tasks})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := a.SealResults(ctx, workflows.SealResultsInput{JobID: "job-1", Tasks: tasks})
	if again.Ref != sealed.Ref {
		t.Fatalf("sealing is not idempotent: %s then %s", sealed.Ref, again.Ref)
	}
	pred, _ := json.Marshal(predicate.Execution{Header: predicate.Header{JobID: "job-1"}, Runtime: "containerd"})
	if _, err := a.Attest(ctx, workflows.AttestInput{JobID: "job-1", Stage: predicate.StageExecution, Predicate: pred, Results: []string{sealed.Ref}}); err != nil {
		t.Fatal(err)
	}
	in := att.got[0]
	if len(in.Subjects) != 2 || in.Subjects[0].Name != "a:x" || in.Subjects[1].Digest != "sha256:22" || len(in.Results) != 0 {
		t.Fatalf("subjects %+v results %v", in.Subjects, in.Results)
	}
	var got predicate.Execution
	if err := json.Unmarshal(in.Predicate, &got); err != nil || len(got.Tasks) != 2 || got.Runtime != "containerd" {
		t.Fatalf("predicate %s: %v", in.Predicate, err)
	}
	// A result set that is not in the store is a permanent failure.
	_, err = a.Attest(ctx, workflows.AttestInput{JobID: "job-1", Stage: predicate.StageVerification, Predicate: pred,
		Results: []string{artifacts.Digest([]byte("nothing"))}})
	if err == nil || !errors.Is(err, artifacts.ErrNotFound) {
		t.Fatalf("missing results: %v", err)
	}
}

// A plan passed by reference is read back from the store and checked
// against its digest.
func TestPlanByReference(t *testing.T) {
	ctx := context.Background()
	store := artifacts.Local{Dir: t.TempDir()}
	a := &Activities{Artifacts: store}
	plan, raw := quickstartPlan(t)
	ref, err := store.Put(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.plan(ctx, workflows.PlanInput{PlanRef: ref})
	if err != nil || got.Name != plan.Name || len(got.Tasks) != len(plan.Tasks) {
		t.Fatalf("plan by ref: %v", err)
	}
	if _, err := a.plan(ctx, workflows.PlanInput{PlanRef: "sha256:../../etc"}); !errors.Is(err, artifacts.ErrDigest) {
		t.Fatalf("bad ref: %v", err)
	}
}

type countingAdmitter struct{ calls int }

func (c *countingAdmitter) Admit(context.Context, string, *specs.Plan, []byte, []byte) (bool, string, any, error) {
	c.calls++
	return true, "", nil, nil
}

// A tenant that cannot escrow the budget fails admission with its own
// class, before the admitter reserves any quota.
func TestAdmitChecksFundsFirst(t *testing.T) {
	plan, raw := quickstartPlan(t)
	adm := &countingAdmitter{}
	a := &Activities{Admitter: adm, Ledger: &fakeLedger{short: true}}
	_, err := a.Admit(context.Background(), workflows.AdmitInput{JobID: "job-1", SpecPath: "../examples/quickstart.md",
		PlanInput: workflows.PlanInput{PlanJSON: raw}})
	if appErrType(err) != workflows.ErrTypeInsufficient || !strings.Contains(err.Error(), plan.Tenant) {
		t.Fatalf("admit without funds: %v", err)
	}
	if adm.calls != 0 {
		t.Errorf("the admitter ran (and reserved quota) for a job that cannot pay")
	}
	// Shares over 100 % are an invalid spec, refused before any quota too.
	a.Ledger = &fakeLedger{shares: errors.New("royalties and fee exceed the price")}
	if _, err := a.Admit(context.Background(), workflows.AdmitInput{JobID: "job-1", SpecPath: "../examples/quickstart.md",
		PlanInput: workflows.PlanInput{PlanJSON: raw}}); appErrType(err) != workflows.ErrTypeInvalidSpec || adm.calls != 0 {
		t.Fatalf("admit with shares over 100%%: %v (admitter calls %d)", err, adm.calls)
	}
	a.Ledger = &fakeLedger{}
	if out, err := a.Admit(context.Background(), workflows.AdmitInput{JobID: "job-1", SpecPath: "../examples/quickstart.md",
		PlanInput: workflows.PlanInput{PlanJSON: raw}}); err != nil || !out.Allowed || adm.calls != 1 {
		t.Fatalf("admit with funds: %+v %v", out, err)
	}
}

// The tasks of a large job start together: their image is prepared once.
func TestPrepareOncePerImage(t *testing.T) {
	rt := newFake()
	a := &Activities{}
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := a.prepare(context.Background(), rt, "registry.example/trainer@sha256:1"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := rt.prepares.Load(); n != 1 {
		t.Errorf("image prepared %d times, want once", n)
	}
}

// StopTests, the compensation for Verify, stops and removes the job's test
// containers and is a no-op the second time; test containers are bounded.
func TestStopTestsAndTestDuration(t *testing.T) {
	ctx := context.Background()
	rt := newFake()
	a := &Activities{Runtimes: map[string]runtimes.Runtime{"fake": rt}, JobsDir: t.TempDir()}
	if _, err := rt.Start(ctx, runtimes.TaskSpec{ID: testRunID("job-1", 1)}); err != nil {
		t.Fatal(err)
	}
	in := workflows.StopTestsInput{JobID: "job-1", Runtime: "fake", Tests: 3}
	if _, err := a.StopTests(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Status(ctx, testRunID("job-1", 1)); !errors.Is(err, runtimes.ErrNotFound) || rt.stops != 1 {
		t.Fatalf("test container still there (%v), %d stops", err, rt.stops)
	}
	if _, err := a.StopTests(ctx, in); err != nil || rt.stops != 1 {
		t.Fatalf("second StopTests: %v, %d stops", err, rt.stops)
	}
	if a.testDuration() != DefaultTestDuration || DefaultTestDuration <= 0 {
		t.Errorf("test containers unbounded: %v", a.testDuration())
	}
}

// An acceptance-test container runs under a time limit.
func TestTestContainerIsBounded(t *testing.T) {
	plan, raw := quickstartPlan(t)
	if len(plan.Spec.Verification.Tests) == 0 || len(plan.Spec.Verification.Tests[0].Command) == 0 {
		t.Fatal("the quickstart's first test runs a command")
	}
	rt := newFake()
	a := &Activities{Runtimes: map[string]runtimes.Runtime{"fake": rt}, JobsDir: t.TempDir(), TestDuration: 3 * time.Minute}
	in := workflows.VerifyInput{JobID: "job-1", PlanInput: workflows.PlanInput{PlanJSON: raw}, Award: workflows.NegotiateOutput{Runtime: "fake"},
		Tasks: map[string]workflows.TaskStatus{"train": {State: workflows.TaskSucceeded}}}
	done := make(chan error, 1)
	go func() { _, err := a.Verify(context.Background(), in); done <- err }()
	id := testRunID("job-1", 0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if tk, err := rt.get(id); err == nil {
			if d := tk.spec.Resources.MaxDuration; d != 3*time.Minute {
				t.Errorf("test container max duration %v, want 3m", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no test container started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	rt.finish(id, 0, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// cancelOnCollect is a runtime whose output collection is cut short, as by
// a worker shutting down or a lost heartbeat.
type cancelOnCollect struct {
	*fakeRuntime
	cancel context.CancelFunc
}

func (c cancelOnCollect) Collect(ctx context.Context, id, dir string) ([]runtimes.Output, error) {
	c.cancel()
	return nil, ctx.Err()
}

// A collection cut short is retried, not recorded as the task's failure.
func TestCollectCutShortIsRetried(t *testing.T) {
	fake := newFake()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rt := cancelOnCollect{fake, cancel}
	a := &Activities{Runtimes: map[string]runtimes.Runtime{"fake": rt}, JobsDir: t.TempDir()}
	if _, err := fake.Start(ctx, runtimes.TaskSpec{ID: "job-1.train.1"}); err != nil {
		t.Fatal(err)
	}
	fake.finish("job-1.train.1", 0, nil)
	_, err := a.wait(ctx, workflows.WaitTaskInput{JobID: "job-1", Task: "train", RunID: "job-1.train.1", Runtime: "fake"}, "", nil)
	if err == nil || appErrType(err) == workflows.ErrTypeExecution {
		t.Fatalf("collection cut short: %v (must be a retryable error)", err)
	}
	if out, ok := a.readResult("job-1", "job-1.train.1"); ok {
		t.Fatalf("recorded %+v for a run whose outputs were never collected", out)
	}
}

// countingStore counts reads.
type countingStore struct {
	artifacts.Store
	gets int
}

func (c *countingStore) Get(ctx context.Context, d string, limit int64) ([]byte, error) {
	c.gets++
	return c.Store.Get(ctx, d, limit)
}

// The tasks of a large job read one plan: it is decoded once, not per task.
func TestPlanReadOnce(t *testing.T) {
	ctx := context.Background()
	store := &countingStore{Store: artifacts.Local{Dir: t.TempDir()}}
	_, raw := quickstartPlan(t)
	ref, err := store.Put(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	a := &Activities{Artifacts: store}
	for range 5 {
		if _, err := a.plan(ctx, workflows.PlanInput{PlanRef: ref}); err != nil {
			t.Fatal(err)
		}
	}
	if store.gets != 1 {
		t.Errorf("plan read %d times, want once", store.gets)
	}
}

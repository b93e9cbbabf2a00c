package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/accordmesh/accord/provenance/predicate"
)

// Activity signatures for registration in the test environment; every call
// is mocked with OnActivity, these bodies never run.
func compileAct(context.Context, CompileInput) (CompileOutput, error)       { panic("mocked") }
func admitAct(context.Context, AdmitInput) (AdmitOutput, error)             { panic("mocked") }
func negotiateAct(context.Context, NegotiateInput) (NegotiateOutput, error) { panic("mocked") }
func placeAct(context.Context, PlaceInput) (PlaceOutput, error)             { panic("mocked") }
func releaseAct(context.Context, ReleaseInput) (ReleaseOutput, error)       { panic("mocked") }
func runAct(context.Context, RunTaskInput) (RunTaskOutput, error)           { panic("mocked") }
func sealAct(context.Context, SealResultsInput) (SealResultsOutput, error)  { panic("mocked") }
func stopAct(context.Context, StopTaskInput) (StopTaskOutput, error)        { panic("mocked") }
func stopTestsAct(context.Context, StopTestsInput) (StopTestsOutput, error) { panic("mocked") }
func verifyAct(context.Context, VerifyInput) (VerifyOutput, error)          { panic("mocked") }
func settleAct(context.Context, SettleInput) (SettleOutput, error)          { panic("mocked") }
func attestAct(context.Context, AttestInput) (AttestOutput, error)          { panic("mocked") }

// harness is one test environment with every activity mocked to succeed;
// tests override single activities before running.
type harness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment

	plan       PlanSummary
	overridden map[string]bool

	mu     sync.Mutex
	placed bool
	// maxRunInput is the largest RunTask input seen, in JSON bytes.
	maxRunInput int
	sealed      []SealResultsInput
	attests     []AttestInput
	started     []string
	released    []ReleaseInput
	stopped     []string
	// stoppedTests counts StopTests calls.
	stoppedTests []StopTestsInput
	settled      []SettleInput
}

func dagPlan() PlanSummary {
	return PlanSummary{
		Name: "dag", Version: "1", Tenant: "acme", DocumentDigest: "sha256:aa", ContractDigest: "sha256:bb",
		MaxCost: 1000, Currency: "USD", HasTests: true, Tests: 1,
		Tasks: []PlanTask{
			{Name: "prepare", Attempts: 1},
			{Name: "train-a", DependsOn: []string{"prepare"}, Attempts: 1},
			{Name: "train-b", DependsOn: []string{"prepare"}, Attempts: 1},
			{Name: "eval", DependsOn: []string{"train-a", "train-b"}, Attempts: 1},
		},
	}
}

func newHarness(t *testing.T, plan PlanSummary) *harness {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(testLogOut(), nil))))
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(30 * time.Second)
	h := &harness{t: t, env: env, overridden: map[string]bool{}}
	Register(env)
	Compile.Register(env, compileAct)
	Admit.Register(env, admitAct)
	Negotiate.Register(env, negotiateAct)
	Place.Register(env, placeAct)
	Release.Register(env, releaseAct)
	RunTask.Register(env, runAct)
	SealResults.Register(env, sealAct)
	StopTask.Register(env, stopAct)
	StopTests.Register(env, stopTestsAct)
	Verify.Register(env, verifyAct)
	Settle.Register(env, settleAct)
	Attest.Register(env, attestAct)
	// Every RunTask call, mocked or overridden, is an attempt started (or,
	// on a wait window's retry, re-attached).
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		if info.ActivityType.Name != RunTask.Name {
			return
		}
		var in RunTaskInput
		if err := args.Get(&in); err != nil {
			t.Errorf("RunTask input: %v", err)
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.started = append(h.started, in.RunID)
		if b, _ := json.Marshal(in); len(b) > h.maxRunInput {
			h.maxRunInput = len(b)
		}
	})
	h.plan = plan
	return h
}

// on overrides one activity's mock for this test.
func (h *harness) on(name string) *testsuite.MockCallWrapper {
	h.overridden[name] = true
	return h.env.OnActivity(name, mock.Anything, mock.Anything)
}

// defaults mocks every activity a test did not override to succeed.
func (h *harness) defaults() {
	env, plan := h.env, h.plan
	if !h.overridden[Compile.Name] {
		env.OnActivity(Compile.Name, mock.Anything, mock.Anything).Return(CompileOutput{Plan: plan, PlanRef: "sha256:plan"}, nil).Maybe()
	}
	if !h.overridden[Admit.Name] {
		env.OnActivity(Admit.Name, mock.Anything, mock.Anything).Return(AdmitOutput{Allowed: true}, nil).Maybe()
	}
	if !h.overridden[Negotiate.Name] {
		env.OnActivity(Negotiate.Name, mock.Anything, mock.Anything).Return(NegotiateOutput{
			Provider: "local", Pool: "local", Runtime: "containerd", Price: 400, Currency: "USD",
		}, nil).Maybe()
	}
	if !h.overridden[Place.Name] {
		env.OnActivity(Place.Name, mock.Anything, mock.Anything).Return(
			func(context.Context, PlaceInput) (PlaceOutput, error) {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.placed = true
				return PlaceOutput{Reservation: "r1", HoldID: "h1", Held: 500, Currency: "USD"}, nil
			}).Maybe()
	}
	if !h.overridden[Release.Name] {
		env.OnActivity(Release.Name, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in ReleaseInput) (ReleaseOutput, error) {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.released = append(h.released, in)
				if h.placed {
					return ReleaseOutput{Refunded: 500}, nil
				}
				return ReleaseOutput{}, nil
			}).Maybe()
	}
	if !h.overridden[RunTask.Name] {
		env.OnActivity(RunTask.Name, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in RunTaskInput) (RunTaskOutput, error) {
				return RunTaskOutput{State: "exited", Outputs: []OutputArtifact{{Path: "out.json", SHA256: "cc"}},
					Usage: Usage{WallSeconds: 1}}, nil
			}).Maybe()
	}
	if !h.overridden[SealResults.Name] {
		env.OnActivity(SealResults.Name, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in SealResultsInput) (SealResultsOutput, error) {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.sealed = append(h.sealed, in)
				return SealResultsOutput{Ref: fmt.Sprintf("sha256:results%d", len(h.sealed))}, nil
			}).Maybe()
	}
	if !h.overridden[StopTask.Name] {
		env.OnActivity(StopTask.Name, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in StopTaskInput) (StopTaskOutput, error) {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.stopped = append(h.stopped, in.RunID)
				return StopTaskOutput{}, nil
			}).Maybe()
	}
	if !h.overridden[StopTests.Name] {
		env.OnActivity(StopTests.Name, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in StopTestsInput) (StopTestsOutput, error) {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.stoppedTests = append(h.stoppedTests, in)
				return StopTestsOutput{}, nil
			}).Maybe()
	}
	if !h.overridden[Verify.Name] {
		env.OnActivity(Verify.Name, mock.Anything, mock.Anything).Return(VerifyOutput{
			Passed: true, Tests: []TestResult{{Name: "accuracy", Passed: true}},
		}, nil).Maybe()
	}
	if !h.overridden[Settle.Name] {
		env.OnActivity(Settle.Name, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in SettleInput) (SettleOutput, error) {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.settled = append(h.settled, in)
				return SettleOutput{Paid: 400, Refunded: 100, Currency: "USD"}, nil
			}).Maybe()
	}
	if !h.overridden[Attest.Name] {
		env.OnActivity(Attest.Name, mock.Anything, mock.Anything).Return(
			func(_ context.Context, in AttestInput) (AttestOutput, error) {
				h.mu.Lock()
				defer h.mu.Unlock()
				h.attests = append(h.attests, in)
				return AttestOutput{Digest: "sha256:" + in.Stage, LogIndex: int64(len(h.attests) - 1)}, nil
			}).Maybe()
	}
}

func (h *harness) run() JobResult {
	h.t.Helper()
	h.defaults()
	h.env.ExecuteWorkflow(Job, JobInput{JobID: "job-1", SpecPath: "/specs/dag.md"})
	if !h.env.IsWorkflowCompleted() {
		h.t.Fatal("workflow did not complete")
	}
	if err := h.env.GetWorkflowError(); err != nil {
		h.t.Fatalf("workflow error: %v", err)
	}
	var res JobResult
	if err := h.env.GetWorkflowResult(&res); err != nil {
		h.t.Fatalf("result: %v", err)
	}
	return res
}

// attempts lists the distinct run IDs RunTask was called with, in order (a
// wait window's retry calls it again for the same run).
func (h *harness) attempts() []string {
	var out []string
	for _, id := range h.started {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

func (h *harness) stages() []string {
	var out []string
	for _, a := range h.attests {
		out = append(out, a.Stage)
	}
	return out
}

func TestJobDAGSettles(t *testing.T) {
	h := newHarness(t, dagPlan())
	var order []string
	var mu sync.Mutex
	h.on(RunTask.Name).Return(
		func(_ context.Context, in RunTaskInput) (RunTaskOutput, error) {
			mu.Lock()
			order = append(order, in.Task)
			mu.Unlock()
			return WaitTaskOutput{State: "exited", Outputs: []OutputArtifact{{Path: in.Task + ".json", SHA256: "cc"}},
				Usage: Usage{WallSeconds: 1}}, nil
		})
	res := h.run()
	if res.Status != StatusSettled || res.Stage != StageDone {
		t.Fatalf("status %s stage %s class %s err %s", res.Status, res.Stage, res.Class, res.Error)
	}
	if res.Paid != 400 || res.Refunded != 100 || res.Price != 400 {
		t.Errorf("money: %+v", res)
	}
	want := []string{"spec", "admission", "negotiation", "placement", "execution", "verification", "settlement"}
	if got := h.stages(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("attestations %v, want %v", got, want)
	}
	// Each attestation links the previous one.
	for i, a := range h.attests {
		wantPrev := ""
		if i > 0 {
			wantPrev = "sha256:" + h.attests[i-1].Stage
		}
		if a.Previous != wantPrev {
			t.Errorf("%s previous = %q, want %q", a.Stage, a.Previous, wantPrev)
		}
	}
	// The execution and verification attestations name the sealed results,
	// which hold every task with its outputs.
	if exec := h.attests[4]; len(exec.Results) != 1 || len(h.sealed) != 1 || len(h.sealed[0].Tasks) != 4 {
		t.Errorf("execution attestation results %v, sealed %+v", exec.Results, h.sealed)
	}
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	if pos["prepare"] != 0 || pos["eval"] != 3 {
		t.Errorf("dependency order violated: %v", order)
	}
	if len(h.released) != 0 || len(h.stopped) != 0 {
		t.Errorf("compensations ran on success: released %v stopped %v", h.released, h.stopped)
	}
	if len(h.settled) != 1 || !h.settled[0].Verified {
		t.Errorf("settle calls %+v", h.settled)
	}
	for _, ts := range res.Tasks {
		if ts.State != TaskSucceeded {
			t.Errorf("task state %+v", ts)
		}
	}
	if len(res.Attestations) != 7 {
		t.Errorf("attestation refs %v", res.Attestations)
	}
}

// Independent tasks run in parallel: train-a and train-b both start before
// either finishes.
func TestJobParallelBranches(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(RunTask.Name).After(time.Minute).Return(
		WaitTaskOutput{State: "exited"}, nil)
	res := h.run()
	if res.Status != StatusSettled {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	// Three levels of one minute each: in series it would be four minutes.
	exec := res.Stages[StageExecute]
	if d := exec.End.Sub(exec.Start); d < 3*time.Minute || d >= 4*time.Minute {
		t.Errorf("execute took %v of workflow time, want 3 levels of 1m", d)
	}
}

func TestJobInvalidSpec(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(Compile.Name).Return(CompileOutput{},
		temporal.NewNonRetryableApplicationError("tasks.train: image missing", ErrTypeInvalidSpec, nil))
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassInvalidSpec || res.Stage != StageCompile {
		t.Fatalf("got %+v", res)
	}
	if len(h.attests) != 0 {
		t.Errorf("attested an invalid spec: %v", h.stages())
	}
}

func TestJobPolicyRejected(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(Admit.Name).Return(AdmitOutput{Allowed: false, Reason: "gpu quota"}, nil)
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassPolicy || !strings.Contains(res.Error, "gpu quota") {
		t.Fatalf("got %+v", res)
	}
	// The rejection itself is attested; nothing was reserved to release.
	if got := h.stages(); strings.Join(got, ",") != "spec,admission" {
		t.Errorf("attestations %v", got)
	}
	if len(h.released) != 0 {
		t.Errorf("released %+v after a rejection", h.released)
	}
}

func TestJobNoOffers(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(Negotiate.Name).Return(NegotiateOutput{},
		temporal.NewNonRetryableApplicationError("no provider: gpu model H100 unavailable", ErrTypeNoOffers, nil))
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassNoOffers {
		t.Fatalf("got %+v", res)
	}
	// The quota reservation is released; there is no escrow to refund.
	if len(h.released) != 1 || h.placed || res.Refunded != 0 {
		t.Errorf("released %+v refunded %d", h.released, res.Refunded)
	}
}

func TestJobControlActivityTimeout(t *testing.T) {
	h := newHarness(t, dagPlan())
	// Admission runs past its start-to-close timeout on every attempt (the
	// test environment's timeouts run on wall-clock time, so the mock reports
	// the timeout the server would).
	attempts := 0
	h.on(Admit.Name).Return(func(context.Context, AdmitInput) (AdmitOutput, error) {
		attempts++
		return AdmitOutput{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_START_TO_CLOSE, nil)
	})
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassInternal || res.Stage != StageAdmit {
		t.Fatalf("got %+v", res)
	}
	if !strings.Contains(strings.ToLower(res.Error), "timeout") {
		t.Errorf("error does not name the timeout: %s", res.Error)
	}
	if attempts != 5 {
		t.Errorf("admission attempted %d times, want the policy's 5", attempts)
	}
}

func TestJobTaskTimeoutRetriedThenFails(t *testing.T) {
	plan := dagPlan()
	plan.Tasks = []PlanTask{{Name: "train", Attempts: 2, Backoff: time.Second, MaxDuration: time.Minute}}
	h := newHarness(t, plan)
	// The container never finishes: each wait window ends still running until
	// the wait's schedule-to-close (max duration + margin) ends the attempt.
	h.on(RunTask.Name).Return(WaitTaskOutput{}, temporal.NewApplicationError("still running", ErrTypeStillRunning))
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassExecution {
		t.Fatalf("got %+v", res)
	}
	if got := h.attempts(); len(got) != 2 {
		t.Errorf("attempts started %v, want 2", got)
	}
	// Both attempts' containers are stopped by compensation, escrow released.
	if len(h.stopped) != 2 || len(h.released) != 1 {
		t.Errorf("stopped %v released %v", h.stopped, h.released)
	}
}

// approve sends the approve update; wantType is the rejection's error
// type, or "" when the approval must be accepted.
func (h *harness) approve(by, wantType string) {
	t := h.t
	h.env.UpdateWorkflow(UpdateApprove, "", &testsuite.TestUpdateCallback{
		OnReject: func(err error) {
			var app *temporal.ApplicationError
			if wantType == "" || !errors.As(err, &app) || app.Type() != wantType {
				t.Errorf("approval by %q rejected with %v, want %q", by, err, wantType)
			}
		},
		OnAccept: func() {
			if wantType != "" {
				t.Errorf("approval by %q accepted, want a rejection of type %s", by, wantType)
			}
		},
		OnComplete: func(any, error) {},
	}, ApproveInput{By: by, Reason: "budget ok"})
}

func TestJobApprovalGate(t *testing.T) {
	plan := dagPlan()
	plan.ApprovalRequired, plan.ApprovalAbove, plan.Approvers = true, 100, []string{"alice", "bob"}
	h := newHarness(t, plan)
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(QueryStatus)
		if err != nil {
			t.Errorf("query: %v", err)
			return
		}
		var st JobStatus
		_ = v.Get(&st)
		if st.Stage != StageApproval || st.Status != StatusAwaitingApproval || st.Cost.Price != 400 {
			t.Errorf("before approval: %+v", st)
		}
		if len(h.started) != 0 {
			t.Errorf("tasks started before approval: %v", h.started)
		}
		h.approve("mallory", ErrTypeNotApprover)
		h.approve("", ErrTypeNotApprover)
		h.env.SignalWorkflow(SignalApprove, "alice") // a signal is not an approval
	}, time.Hour)
	h.env.RegisterDelayedCallback(func() {
		h.approve("alice", "")
	}, 2*time.Hour)
	h.env.RegisterDelayedCallback(func() {
		h.approve("bob", ErrTypeNotAwaitingApproval)
	}, 2*time.Hour+time.Second)
	res := h.run()
	if res.Status != StatusSettled {
		t.Fatalf("got %+v", res)
	}
	ap := res.Stages[StageApproval]
	if ap.End.Sub(ap.Start) < 2*time.Hour {
		t.Errorf("approval stage lasted %v, want ≥ 2h (the signal did not pass the gate)", ap.End.Sub(ap.Start))
	}
	var placement predicate.Placement
	for _, a := range h.attests {
		if a.Stage == predicate.StagePlacement {
			_ = json.Unmarshal(a.Predicate, &placement)
		}
	}
	if placement.Approval == nil || placement.Approval.By != "alice" || placement.Approval.Reason != "budget ok" {
		t.Errorf("placement attestation's approval: %+v", placement.Approval)
	}
}

func TestJobApprovalBeforeGateRejected(t *testing.T) {
	plan := dagPlan()
	plan.ApprovalRequired, plan.Approvers = true, []string{"alice"}
	h := newHarness(t, plan)
	h.on(Negotiate.Name).After(time.Hour).Return(NegotiateOutput{
		Provider: "local", Runtime: "containerd", Price: 400, Currency: "USD",
	}, nil)
	h.env.RegisterDelayedCallback(func() {
		h.approve("alice", ErrTypeNotAwaitingApproval)
	}, time.Minute)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalCancel, "nobody approved") }, 3*time.Hour)
	res := h.run()
	if res.Status != StatusCancelled || h.placed {
		t.Fatalf("an approval before the gate passed it: %+v", res)
	}
}

func TestJobApprovalNotNeededBelowThreshold(t *testing.T) {
	plan := dagPlan()
	plan.ApprovalRequired, plan.ApprovalAbove = true, 10_000
	h := newHarness(t, plan)
	res := h.run()
	if res.Status != StatusSettled {
		t.Fatalf("got %+v", res)
	}
	if _, ok := res.Stages[StageApproval]; ok {
		t.Error("approval gate used below its price threshold")
	}
}

func TestJobCancelWhileAwaitingApproval(t *testing.T) {
	plan := dagPlan()
	plan.ApprovalRequired = true
	h := newHarness(t, plan)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalCancel, "changed my mind") }, time.Minute)
	res := h.run()
	if res.Status != StatusCancelled || res.Class != ClassCancelled {
		t.Fatalf("got %+v", res)
	}
	if len(h.started) != 0 || len(h.released) != 1 || h.placed {
		t.Errorf("nothing was placed: want only the quota released; released %+v started %v", h.released, h.started)
	}
}

func TestJobCancelSignalMidExecution(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(RunTask.Name).After(time.Hour).Return(WaitTaskOutput{State: "exited"}, nil)
	h.env.RegisterDelayedCallback(func() {
		v, _ := h.env.QueryWorkflow(QueryTasks)
		var ts map[string]TaskStatus
		_ = v.Get(&ts)
		if ts["prepare"].State != TaskRunning {
			t.Errorf("prepare not running before cancel: %+v", ts)
		}
		h.env.SignalWorkflow(SignalCancel, "")
	}, 10*time.Minute)
	res := h.run()
	assertCancelledWithCompensation(t, h, res)
}

func TestJobWorkflowCancelMidExecution(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(RunTask.Name).After(time.Hour).Return(WaitTaskOutput{State: "exited"}, nil)
	h.env.RegisterDelayedCallback(func() { h.env.CancelWorkflow() }, 10*time.Minute)
	res := h.run()
	assertCancelledWithCompensation(t, h, res)
}

func assertCancelledWithCompensation(t *testing.T, h *harness, res JobResult) {
	t.Helper()
	if res.Status != StatusCancelled || res.Class != ClassCancelled {
		t.Fatalf("got %+v", res)
	}
	if len(h.stopped) != 1 || h.stopped[0] != "job-1.prepare.1" {
		t.Errorf("stopped %v, want the running prepare container", h.stopped)
	}
	if len(h.released) != 1 || !h.placed {
		t.Errorf("released %+v", h.released)
	}
	if res.Refunded != 500 || len(h.settled) != 0 {
		t.Errorf("refunded %d settled %v", res.Refunded, h.settled)
	}
	if strings.Join(res.Compensated, ",") != "stop:job-1.prepare.1,release" {
		t.Errorf("compensations %v", res.Compensated)
	}
}

func TestJobTaskRetriedThenSucceeds(t *testing.T) {
	plan := dagPlan()
	plan.Tasks = []PlanTask{{Name: "train", Attempts: 3, Backoff: 10 * time.Second, MaxBackoff: 15 * time.Second}}
	h := newHarness(t, plan)
	h.on(RunTask.Name).Return(
		func(_ context.Context, in RunTaskInput) (RunTaskOutput, error) {
			if strings.HasSuffix(in.RunID, ".3") {
				return WaitTaskOutput{State: "exited"}, nil
			}
			return WaitTaskOutput{State: "exited", ExitCode: 1, Reason: "flaky"}, nil
		})
	res := h.run()
	if res.Status != StatusSettled {
		t.Fatalf("got %+v", res)
	}
	if strings.Join(h.started, ",") != "job-1.train.1,job-1.train.2,job-1.train.3" {
		t.Errorf("attempts %v", h.started)
	}
	ex := res.Stages[StageExecute]
	if d := ex.End.Sub(ex.Start); d < 25*time.Second {
		t.Errorf("backoff not applied: execute took %v", d)
	}
	if res.Tasks["train"].Attempt != 3 {
		t.Errorf("task %+v", res.Tasks["train"])
	}
}

func TestJobTaskFailsCleanly(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(RunTask.Name).Return(
		func(_ context.Context, in RunTaskInput) (RunTaskOutput, error) {
			if in.Task == "train-a" {
				return WaitTaskOutput{State: "exited", ExitCode: 2, Reason: "bad data"}, nil
			}
			return WaitTaskOutput{State: "exited"}, nil
		})
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassExecution || res.Stage != StageExecute {
		t.Fatalf("got %+v", res)
	}
	if res.Tasks["train-a"].State != TaskFailed || res.Tasks["train-a"].ExitCode != 2 {
		t.Errorf("train-a %+v", res.Tasks["train-a"])
	}
	if res.Tasks["eval"].State != TaskSkipped && res.Tasks["eval"].State != TaskCancelled {
		t.Errorf("eval %+v", res.Tasks["eval"])
	}
	if len(h.released) != 1 || len(h.settled) != 0 {
		t.Errorf("released %v settled %v", h.released, h.settled)
	}
}

func TestJobStartErrorNonRetryable(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(RunTask.Name).Return(RunTaskOutput{},
		temporal.NewNonRetryableApplicationError("image unavailable", ErrTypeExecution, nil))
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassExecution {
		t.Fatalf("got %+v", res)
	}
	if !strings.Contains(res.Tasks["prepare"].Reason, "image unavailable") {
		t.Errorf("reason %q", res.Tasks["prepare"].Reason)
	}
	if len(h.released) != 1 {
		t.Errorf("released %v", h.released)
	}
}

func TestJobWaitWindowReschedules(t *testing.T) {
	plan := dagPlan()
	plan.Tasks = []PlanTask{{Name: "train", Attempts: 1}}
	h := newHarness(t, plan)
	calls := 0
	h.on(RunTask.Name).Return(
		func(_ context.Context, in RunTaskInput) (RunTaskOutput, error) {
			calls++
			if calls < 3 {
				return WaitTaskOutput{}, temporal.NewApplicationError("still running", ErrTypeStillRunning)
			}
			return WaitTaskOutput{State: "exited"}, nil
		})
	res := h.run()
	if res.Status != StatusSettled || calls != 3 {
		t.Fatalf("status %s after %d waits: %+v", res.Status, calls, res)
	}
	// Each window's retry re-attaches to the same run; no second attempt.
	for _, id := range h.started {
		if id != "job-1.train.1" {
			t.Errorf("a wait window started another attempt: %v", h.started)
		}
	}
}

func TestJobVerificationFailedStillSettles(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(Verify.Name).Return(VerifyOutput{
		Passed: false, Tests: []TestResult{{Name: "accuracy", Passed: false, Detail: "0.4 < 0.9"}},
	}, nil)
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassVerification {
		t.Fatalf("got %+v", res)
	}
	if len(h.settled) != 1 || h.settled[0].Verified {
		t.Errorf("settle %+v", h.settled)
	}
	if len(h.released) != 0 {
		t.Error("released escrow that settlement already closed")
	}
	if got := h.stages(); got[len(got)-1] != "settlement" {
		t.Errorf("attestations %v", got)
	}
}

func TestJobPlacementInsufficientFunds(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(Place.Name).Return(PlaceOutput{},
		temporal.NewNonRetryableApplicationError("escrow hold: insufficient funds", ErrTypeInsufficient, nil))
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassFunds || res.Stage != StagePlace {
		t.Fatalf("got %+v", res)
	}
	if len(h.started) != 0 || len(h.released) != 1 || h.placed {
		t.Errorf("started %v released %+v", h.started, h.released)
	}
}

func TestJobCompensationRetriedUntilDone(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(RunTask.Name).Return(RunTaskOutput{State: "exited", ExitCode: 1, Reason: "crashed"}, nil)
	fails := 0
	h.on(Release.Name).Return(
		func(_ context.Context, in ReleaseInput) (ReleaseOutput, error) {
			if fails < 2 {
				fails++
				return ReleaseOutput{}, errors.New("ledger busy")
			}
			h.released = append(h.released, in)
			return ReleaseOutput{Refunded: 500}, nil
		})
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassExecution || res.Stage != StageExecute {
		t.Fatalf("got %+v", res)
	}
	if fails != 2 || len(h.released) != 1 || res.Refunded != 500 {
		t.Errorf("release attempts %d, released %v, refunded %d", fails, h.released, res.Refunded)
	}
}

// Work that finished executing is paid even when what follows fails: a
// verifier that cannot run, a ledger down at settle (retried, not
// refunded).
func TestJobWorkDoneIsPaid(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(Verify.Name).Return(VerifyOutput{},
		temporal.NewNonRetryableApplicationError("verifier image missing", ErrTypeExecution, nil))
	fails := 0
	h.on(Settle.Name).Return(
		func(_ context.Context, in SettleInput) (SettleOutput, error) {
			if fails < 3 {
				fails++
				return SettleOutput{}, errors.New("ledger down")
			}
			h.settled = append(h.settled, in)
			return SettleOutput{Paid: 300, Refunded: 200, Currency: "USD"}, nil
		})
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassExecution || res.Stage != StageVerify {
		t.Fatalf("got %+v", res)
	}
	if len(h.settled) != 1 || !h.settled[0].Verified || h.settled[0].Usage == nil || h.settled[0].Usage.WallSeconds != 4 {
		t.Fatalf("settled %+v, want the metered work of 4 tasks, unjudged", h.settled)
	}
	if len(h.released) != 0 || res.Paid != 300 || res.Refunded != 200 || !slices.Contains(res.Compensated, "settle-work") {
		t.Errorf("released %v, result %+v", h.released, res)
	}
	if got := h.stages(); got[len(got)-1] != predicate.StageSettlement {
		t.Errorf("attestations %v: want the settlement last", got)
	}
}

func TestJobAttestationRetriedWhileLogDown(t *testing.T) {
	h := newHarness(t, dagPlan())
	down := 3
	h.on(Attest.Name).Return(
		func(_ context.Context, in AttestInput) (AttestOutput, error) {
			if in.Stage == "negotiation" && down > 0 {
				down--
				return AttestOutput{}, errors.New("log unreachable")
			}
			h.attests = append(h.attests, in)
			return AttestOutput{Digest: "sha256:" + in.Stage}, nil
		})
	res := h.run()
	if res.Status != StatusSettled || down != 0 || len(res.Attestations) != 7 {
		t.Fatalf("status %s, down %d, attestations %d", res.Status, down, len(res.Attestations))
	}
}

func TestJobQueriesAndSearchAttributes(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(QueryStage)
		if err != nil {
			t.Errorf("stage query: %v", err)
			return
		}
		var stage string
		_ = v.Get(&stage)
		if stage != StageExecute {
			t.Errorf("stage %q", stage)
		}
		v, _ = h.env.QueryWorkflow(QueryCost)
		var c Cost
		_ = v.Get(&c)
		if c.Price != 400 || c.Held != 500 || c.Currency != "USD" {
			t.Errorf("cost %+v", c)
		}
	}, 30*time.Second)
	h.on(RunTask.Name).After(time.Minute).Return(WaitTaskOutput{State: "exited"}, nil)
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Return(nil)
	res := h.run()
	if res.Status != StatusSettled {
		t.Fatalf("got %+v", res)
	}
}

func permanentErr(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, "Test", nil)
}

func TestJobAttestationPermanentFailureCompensates(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(Attest.Name).Return(func(_ context.Context, in AttestInput) (AttestOutput, error) {
		if in.Stage == "placement" {
			return AttestOutput{}, permanentErr("signing key unreadable")
		}
		return AttestOutput{Digest: "sha256:" + in.Stage}, nil
	})
	res := h.run()
	// Attestations run beside the stages: the failure stops the job at the
	// next stage boundary, and the escrow is refunded.
	if res.Status != StatusFailed || res.Class != ClassInternal || !strings.Contains(res.Error, "signing key unreadable") {
		t.Fatalf("got %+v", res)
	}
	if len(h.released) != 1 || !h.placed || len(h.settled) != 0 {
		t.Errorf("released %+v settled %v", h.released, h.settled)
	}
}

func TestJobSettlementAttestationFailureKeepsSettlement(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(Attest.Name).Return(func(_ context.Context, in AttestInput) (AttestOutput, error) {
		if in.Stage == "settlement" {
			return AttestOutput{}, permanentErr("log rejected entry")
		}
		return AttestOutput{Digest: "sha256:" + in.Stage}, nil
	})
	res := h.run()
	if res.Status != StatusSettled || res.Paid != 400 || len(h.released) != 0 {
		t.Fatalf("settled money must stand: %+v released %v", res, h.released)
	}
	if len(res.Attestations) != 6 || !strings.Contains(res.Error, "log rejected entry") {
		t.Errorf("attestations %d (want 6, settlement missing), error %q", len(res.Attestations), res.Error)
	}
}

func TestJobSettleFailureCompensates(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(Settle.Name).Return(SettleOutput{}, permanentErr("ledger schema mismatch"))
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassInternal || res.Stage != StageSettle {
		t.Fatalf("got %+v", res)
	}
	// The work-done settlement is refused for good too: then, and only
	// then, the escrow is refunded.
	if len(h.released) != 1 || !strings.Contains(res.Error, "compensation settle") {
		t.Errorf("released %v", h.released)
	}
}

func TestJobCompensationFailureReported(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(RunTask.Name).After(time.Hour).Return(WaitTaskOutput{State: "exited"}, nil)
	h.on(StopTask.Name).Return(StopTaskOutput{}, permanentErr("containerd socket gone"))
	h.on(Release.Name).Return(ReleaseOutput{}, permanentErr("ledger read-only"))
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalCancel, "") }, 10*time.Minute)
	res := h.run()
	if res.Status != StatusCancelled {
		t.Fatalf("got %+v", res)
	}
	if len(res.Compensated) != 0 || !strings.Contains(res.Error, "containerd socket gone") || !strings.Contains(res.Error, "ledger read-only") {
		t.Errorf("compensation failures must be reported: compensated %v, error %q", res.Compensated, res.Error)
	}
}

func TestJobCancelDuringRetryBackoff(t *testing.T) {
	plan := dagPlan()
	plan.Tasks = []PlanTask{{Name: "train", Attempts: 3, Backoff: time.Hour}}
	h := newHarness(t, plan)
	h.on(RunTask.Name).Return(WaitTaskOutput{State: "exited", ExitCode: 1}, nil)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalCancel, "") }, 10*time.Minute)
	res := h.run()
	if res.Status != StatusCancelled || res.Tasks["train"].State != TaskCancelled {
		t.Fatalf("got %+v", res)
	}
	if len(h.started) != 1 || len(h.released) != 1 {
		t.Errorf("started %v released %v", h.started, h.released)
	}
}

func testLogOut() io.Writer {
	if os.Getenv("ACCORD_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// manyTasks is a plan of n tasks; task i depends on task i-dep when dep > 0.
func manyTasks(n, dep int) PlanSummary {
	p := dagPlan()
	p.Tasks = nil
	for i := range n {
		t := PlanTask{Name: fmt.Sprintf("t%04d", i), Attempts: 1}
		if dep > 0 && i >= dep {
			t.DependsOn = []string{fmt.Sprintf("t%04d", i-dep)}
		}
		p.Tasks = append(p.Tasks, t)
	}
	return p
}

// A job of more than BatchSize tasks runs them in JobBatch children, one
// sealed result per batch, and its result lists tasks boundedly.
func TestJobLargeRunsInBatches(t *testing.T) {
	h := newHarness(t, manyTasks(2*BatchSize+100, BatchSize+100))
	h.env.SetTestTimeout(2 * time.Minute)
	// The negotiation record grows with the job; task inputs must not.
	record, _ := json.Marshal(map[string]string{"offers": strings.Repeat("x", 64<<10)})
	devices := []TaskDevices{{Task: "t0001", Node: "n1", GPUDevices: []string{"GPU-1"}}, {Task: "t0002", Node: "n2"}}
	h.on(Negotiate.Name).Return(NegotiateOutput{Provider: "p", Runtime: "containerd", Price: 400, Currency: "USD",
		Record: record, Devices: devices}, nil)
	res := h.run()
	if res.Status != StatusSettled {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	if len(h.sealed) != 3 {
		t.Fatalf("sealed %d result sets, want one per batch (3)", len(h.sealed))
	}
	n := 0
	for _, s := range h.sealed {
		if len(s.Tasks) > BatchSize {
			t.Errorf("a batch sealed %d tasks", len(s.Tasks))
		}
		n += len(s.Tasks)
	}
	if n != 2*BatchSize+100 || len(h.attempts()) != n {
		t.Errorf("sealed %d tasks, ran %d attempts", n, len(h.attempts()))
	}
	if exec := h.attests[4]; len(exec.Results) != 3 || len(exec.Predicate) > 4096 {
		t.Errorf("execution attestation input: %d results, %d predicate bytes", len(exec.Results), len(exec.Predicate))
	}
	if len(res.Tasks) != 0 || res.TaskCounts[TaskSucceeded] != n {
		t.Errorf("result lists %d tasks, counts %v", len(res.Tasks), res.TaskCounts)
	}
	if len(h.settled) != 1 || h.settled[0].Usage == nil || h.settled[0].Tasks != nil {
		t.Fatalf("settle input must carry the usage total, not the tasks: %+v", h.settled)
	}
	if u := h.settled[0].Usage; u.WallSeconds != float64(n) {
		t.Errorf("settled usage %+v, want %d wall seconds (one per task)", u, n)
	}
	if h.maxRunInput > 1024 {
		t.Errorf("a RunTask input is %d bytes: it carries the negotiation record or every task's devices", h.maxRunInput)
	}
	if got := h.attests[2].Predicate; !strings.Contains(string(got), strings.Repeat("x", 64<<10)) {
		t.Errorf("the negotiation attestation lost its record")
	}
}

// A failing task in one batch fails the job; dependants in later batches
// never run and the escrow is released.
func TestJobBatchFailureFailsJob(t *testing.T) {
	h := newHarness(t, manyTasks(BatchSize+10, BatchSize))
	h.on(RunTask.Name).Return(func(_ context.Context, in RunTaskInput) (RunTaskOutput, error) {
		if in.Task == "t0003" {
			return RunTaskOutput{State: "exited", ExitCode: 1, Reason: "boom"}, nil
		}
		return RunTaskOutput{State: "exited"}, nil
	})
	h.env.SetTestTimeout(2 * time.Minute)
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassExecution {
		t.Fatalf("got %s %s %s", res.Status, res.Class, res.Error)
	}
	for _, id := range h.attempts() {
		if id == RunID("job-1", fmt.Sprintf("t%04d", BatchSize+3), 1) {
			t.Errorf("a dependant of the failed task ran")
		}
	}
	if len(h.released) != 1 || len(h.settled) != 0 {
		t.Errorf("released %v settled %v", h.released, h.settled)
	}
}

// No more than maxInFlight attempts run at once: 300 one-minute tasks take
// two minutes of workflow time, not one.
func TestJobCapsAttemptsInFlight(t *testing.T) {
	h := newHarness(t, manyTasks(300, 0))
	h.on(RunTask.Name).After(time.Minute).Return(RunTaskOutput{State: "exited"}, nil)
	res := h.run()
	if res.Status != StatusSettled {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	ex := res.Stages[StageExecute]
	if d := ex.End.Sub(ex.Start); d < 2*time.Minute || d >= 3*time.Minute {
		t.Errorf("execute took %v, want 2 rounds of 1m (cap %d)", d, maxInFlight)
	}
	if len(res.Tasks) != 0 || res.TaskCounts[TaskSucceeded] != 300 {
		t.Errorf("tasks listed %d, counts %v", len(res.Tasks), res.TaskCounts)
	}
}

// Without acceptance tests there is nothing to verify: no Verify activity,
// and the verification attestation says passed.
func TestJobWithoutTestsSkipsVerify(t *testing.T) {
	plan := dagPlan()
	plan.HasTests = false
	h := newHarness(t, plan)
	h.on(Verify.Name).Return(VerifyOutput{}, permanentErr("Verify must not run"))
	res := h.run()
	if res.Status != StatusSettled || len(res.Attestations) != 7 {
		t.Fatalf("got %s %s, %d attestations", res.Status, res.Error, len(res.Attestations))
	}
}

func TestChunkAndBatchDeps(t *testing.T) {
	p := manyTasks(1100, 600)
	b := chunk(p.Tasks, BatchSize)
	if len(b) != 3 || len(b[2]) != 100 {
		t.Fatalf("chunks %d", len(b))
	}
	deps := batchDeps(b)
	// t0600..t0999 (batch 1) need t0000..t0399 (batch 0); t1000.. need batch 0.
	if fmt.Sprint(deps) != "[[] [0] [0]]" {
		t.Errorf("deps %v", deps)
	}
}

// Layout 2: a verification cancelled midway stops its test containers; a
// passing one leaves them to Verify. Layout 3: the executed work is then
// settled, not refunded.
func TestJobCancelDuringVerifyStopsTests(t *testing.T) {
	h := newHarness(t, dagPlan())
	h.on(Verify.Name).After(time.Hour).Return(VerifyOutput{Passed: true}, nil)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalCancel, "too slow") }, 30*time.Minute)
	res := h.run()
	if res.Status != StatusCancelled || res.Stage != StageVerify {
		t.Fatalf("got %s at %s: %s", res.Status, res.Stage, res.Error)
	}
	if len(h.stoppedTests) != 1 || h.stoppedTests[0].Tests != 1 || h.stoppedTests[0].Runtime != "containerd" {
		t.Fatalf("StopTests calls %+v", h.stoppedTests)
	}
	if !slices.Contains(res.Compensated, "stop-tests") || !slices.Contains(res.Compensated, "settle-work") {
		t.Errorf("compensated %v", res.Compensated)
	}
	if len(h.settled) != 1 || !h.settled[0].Verified || len(h.released) != 0 || res.Paid != 400 {
		t.Errorf("settled %v released %v paid %d: want the work paid", h.settled, h.released, res.Paid)
	}

	ok := newHarness(t, dagPlan())
	if res := ok.run(); res.Status != StatusSettled || len(ok.stoppedTests) != 0 {
		t.Errorf("a passing verification ran StopTests: %+v", ok.stoppedTests)
	}
}

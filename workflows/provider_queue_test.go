package workflows

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/accordmesh/accord/provenance/predicate"
)

func signStageAct(context.Context, AttestInput) (SignedStage, error) { panic("mocked") }

// queueLog records the task queue every activity attempt was scheduled on.
type queueLog struct {
	mu     sync.Mutex
	queues map[string][]string // activity type -> queues, in order
}

func watchQueues(h *harness) *queueLog {
	q := &queueLog{queues: map[string][]string{}}
	SignStage.Register(h.env, signStageAct)
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.queues[info.ActivityType.Name] = append(q.queues[info.ActivityType.Name], info.TaskQueue)
	})
	return q
}

func (q *queueLog) on(activity string) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.queues[activity])
}

// agentAward is an award to a provider agent with its own queue.
func agentAward() NegotiateOutput {
	return NegotiateOutput{Provider: "gpu-a", Pool: "gpu-a", Runtime: "containerd", Price: 400, Currency: "USD",
		Queue: ExecQueue("gpu-a")}
}

func TestExecQueue(t *testing.T) {
	if got := ExecQueue("gpu-a"); got != "accord-exec-gpu-a" {
		t.Fatalf("ExecQueue = %q", got)
	}
}

// Layout 5 runs every task attempt on the award's queue and has the
// provider sign the execution statement there; the control plane logs it,
// and every other stage is signed on the control queue.
func TestJobProviderQueueRoutesExecution(t *testing.T) {
	h := newHarness(t, dagPlan())
	q := watchQueues(h)
	h.on(Negotiate.Name).Return(agentAward(), nil)
	var signed []AttestInput
	h.on(SignStage.Name).Return(func(_ context.Context, in AttestInput) (SignedStage, error) {
		signed = append(signed, in)
		return SignedStage{Envelope: []byte(`{"payload":"x"}`), Digest: "sha256:env", SignerPublicKey: "PEM"}, nil
	})
	res := h.run()
	if res.Status != StatusSettled {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	runs := q.on(RunTask.Name)
	if len(runs) != 4 {
		t.Fatalf("RunTask ran %d times, want 4", len(runs))
	}
	for _, got := range runs {
		if got != "accord-exec-gpu-a" {
			t.Errorf("RunTask on %q, want the agent's queue", got)
		}
	}
	// The provider signs its placement acceptance and its execution.
	if got := q.on(SignStage.Name); len(got) != 2 || got[0] != "accord-exec-gpu-a" || got[1] != "accord-exec-gpu-a" {
		t.Errorf("SignStage on %v, want twice on the agent's queue", got)
	}
	if len(signed) != 2 || signed[0].Stage != predicate.StagePlacement || signed[0].Provider != "gpu-a" ||
		signed[1].Stage != predicate.StageExecution || signed[1].SpecDigest != "sha256:aa" ||
		signed[1].Provider != "gpu-a" || len(signed[1].Results) != 1 || signed[1].Previous != "sha256:"+predicate.StagePlacement {
		t.Errorf("SignStage input %+v", signed)
	}
	for i, got := range q.on(Attest.Name) {
		if got != TaskQueueControl {
			t.Errorf("Attest %d on %q, want the control queue", i, got)
		}
	}
	if got := q.on(Verify.Name); len(got) != 1 || got[0] != TaskQueueExecution {
		t.Errorf("Verify on %v, want the buyer's execution queue", got)
	}
	var exec *AttestInput
	for i, a := range h.attests {
		if a.Stage == predicate.StageExecution {
			exec = &h.attests[i]
		}
	}
	if exec == nil || exec.Signed == nil || exec.Signed.Digest != "sha256:env" || exec.Provider != "gpu-a" {
		t.Fatalf("execution attestation not the provider's signed envelope: %+v", exec)
	}
	for _, a := range h.attests {
		provider := a.Stage == predicate.StageExecution || a.Stage == predicate.StagePlacement
		if provider != (a.Signed != nil) {
			t.Errorf("stage %s: provider signature %v, want %v", a.Stage, a.Signed != nil, provider)
		}
	}
}

// A cancelled job stops its running attempt on the agent's queue.
func TestJobProviderQueueStopsThere(t *testing.T) {
	h := newHarness(t, dagPlan())
	q := watchQueues(h)
	h.on(Negotiate.Name).Return(agentAward(), nil)
	h.on(RunTask.Name).After(time.Hour).Return(WaitTaskOutput{State: "exited"}, nil)
	var signed []string
	h.on(SignStage.Name).Return(func(_ context.Context, in AttestInput) (SignedStage, error) {
		signed = append(signed, in.Stage)
		return SignedStage{Envelope: []byte(`{"payload":"x"}`), Digest: "sha256:env", SignerPublicKey: "PEM"}, nil
	})
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalCancel, "") }, 10*time.Minute)
	res := h.run()
	assertCancelledWithCompensation(t, h, res)
	if got := q.on(StopTask.Name); len(got) != 1 || got[0] != "accord-exec-gpu-a" {
		t.Errorf("StopTask on %v, want the agent's queue", got)
	}
	// The provider accepted the placement; the cancelled execution is not
	// signed.
	if len(signed) != 1 || signed[0] != predicate.StagePlacement {
		t.Errorf("signed stages %v, want only the placement", signed)
	}
}

// A provider that refuses to sign its placement acceptance, or its
// execution (the statement names a run it did not make), fails the job
// before money moves for its work; a refused placement runs nothing.
func TestJobProviderRefusesToSign(t *testing.T) {
	for _, tc := range []struct{ stage, want string }{
		{predicate.StagePlacement, "provider gpu-a accepts the placement"},
		{predicate.StageExecution, "provider gpu-a signs the execution"},
	} {
		t.Run(tc.stage, func(t *testing.T) {
			h := newHarness(t, dagPlan())
			q := watchQueues(h)
			h.on(Negotiate.Name).Return(agentAward(), nil)
			h.on(SignStage.Name).Return(func(_ context.Context, in AttestInput) (SignedStage, error) {
				if in.Stage == tc.stage {
					return SignedStage{}, permanentErr("run not executed here as stated")
				}
				return SignedStage{Envelope: []byte(`{"payload":"x"}`), Digest: "sha256:env", SignerPublicKey: "PEM"}, nil
			})
			res := h.run()
			if res.Status != StatusFailed || !strings.Contains(res.Error, tc.want) {
				t.Fatalf("got %s %q, want failed with %q", res.Status, res.Error, tc.want)
			}
			for _, a := range h.attests {
				if a.Stage == tc.stage || a.Stage == predicate.StageExecution {
					t.Errorf("the %s stage was logged", a.Stage)
				}
			}
			if ran := len(q.on(RunTask.Name)); tc.stage == predicate.StagePlacement && ran != 0 {
				t.Errorf("%d task runs on a placement the provider refused", ran)
			}
			// Unsigned work is not paid: the escrow is refunded.
			if len(h.settled) != 0 || len(h.released) != 1 || res.Refunded != 500 {
				t.Errorf("settled %v released %v refunded %d", h.settled, h.released, res.Refunded)
			}
		})
	}
}

// An award without a queue runs on the shared execution queue, signed by
// the control plane as before.
func TestJobWithoutProviderQueue(t *testing.T) {
	h := newHarness(t, dagPlan())
	q := watchQueues(h)
	res := h.run()
	if res.Status != StatusSettled {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	for _, got := range q.on(RunTask.Name) {
		if got != TaskQueueExecution {
			t.Errorf("RunTask on %q", got)
		}
	}
	if got := q.on(SignStage.Name); len(got) != 0 {
		t.Errorf("SignStage ran: %v", got)
	}
}

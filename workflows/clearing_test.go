package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/accordmesh/accord/provenance/predicate"
)

func enqueueAct(context.Context, EnqueueInput) (EnqueueOutput, error)             { panic("mocked") }
func dequeueAct(context.Context, DequeueInput) (DequeueOutput, error)             { panic("mocked") }
func clearMarketAct(context.Context, ClearMarketInput) (ClearMarketOutput, error) { panic("mocked") }

func batchPlan() PlanSummary {
	p := dagPlan()
	p.Batch, p.BatchWait = true, 10*time.Minute
	return p
}

// batchHarness mocks the clearing queue: it records what the job queued
// and took off, and answers a dequeue with reasons.
type batchHarness struct {
	*harness
	queued   []EnqueueInput
	dequeued [][]string
}

func newBatchHarness(t *testing.T, reasons map[string]string) *batchHarness {
	h := &batchHarness{harness: newHarness(t, batchPlan())}
	EnqueueClearing.Register(h.env, enqueueAct)
	DequeueClearing.Register(h.env, dequeueAct)
	h.on(EnqueueClearing.Name).Return(func(_ context.Context, in EnqueueInput) (EnqueueOutput, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.queued = append(h.queued, in)
		return EnqueueOutput{}, nil
	})
	h.on(DequeueClearing.Name).Return(func(_ context.Context, in DequeueInput) (DequeueOutput, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.dequeued = append(h.dequeued, in.JobIDs)
		return DequeueOutput{Reasons: reasons}, nil
	}).Maybe()
	// A batch-mode job never runs its own auction.
	h.on(Negotiate.Name).Return(func(context.Context, NegotiateInput) (NegotiateOutput, error) {
		t.Error("a batch-mode job ran the immediate negotiation")
		return NegotiateOutput{}, errors.New("not here")
	}).Maybe()
	return h
}

func clearingAward(job string) ClearingAward {
	rec, _ := json.Marshal(map[string]any{"jobs": []string{"job-0", "job-1", "job-2"}, "awards": []map[string]any{{"job": job, "provider": "remote"}}})
	return ClearingAward{JobID: job, Clearing: "sha256:clearing", Award: NegotiateOutput{
		Provider: "remote", Pool: "remote", Runtime: "containerd", Price: 300, Currency: "USD", Record: rec,
		Explanation: "paid 3.00 USD: the buyer's reserve",
	}}
}

// TestJobBatchCleared: the job queues itself with its wait, ignores awards
// that do not name it or do not fit its plan, takes the clearing's award
// and runs to settlement with it, as the immediate path would.
func TestJobBatchCleared(t *testing.T) {
	h := newBatchHarness(t, nil)
	h.env.RegisterDelayedCallback(func() {
		if len(h.attests) != 2 || h.placed {
			t.Errorf("before the award: attested %v, placed %v", h.stages(), h.placed)
		}
		h.env.SignalWorkflow(SignalClearingAward, clearingAward("job-2")) // another job's
		bad := clearingAward("job-1")
		bad.Award.Currency = "EUR"
		h.env.SignalWorkflow(SignalClearingAward, bad)
		bad = clearingAward("job-1")
		bad.Award.Price = 1001
		h.env.SignalWorkflow(SignalClearingAward, bad)
	}, time.Minute)
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(SignalClearingAward, clearingAward("job-1"))
	}, 3*time.Minute)
	res := h.run()
	if res.Status != StatusSettled || res.Provider != "remote" || res.Price != 300 || !h.placed {
		t.Fatalf("got %+v", res)
	}
	if len(h.queued) != 1 || h.queued[0].JobID != "job-1" || h.queued[0].PlanRef != "sha256:plan" || h.queued[0].Tenant != "acme" ||
		h.queued[0].Deadline.Sub(h.queued[0].Enqueued) != 10*time.Minute {
		t.Fatalf("queued %+v", h.queued)
	}
	if len(h.dequeued) != 0 {
		t.Errorf("a cleared job took itself off the queue: %v (the clearing does)", h.dequeued)
	}
	var neg predicate.Negotiation
	for _, a := range h.attests {
		if a.Stage == predicate.StageNegotiation {
			if err := json.Unmarshal(a.Predicate, &neg); err != nil {
				t.Fatal(err)
			}
		}
	}
	if neg.Provider != "remote" || neg.Price != 300 || !strings.Contains(string(neg.Record), `"job-2"`) {
		t.Fatalf("negotiation attestation %+v", neg)
	}
}

// TestJobBatchWaitEnds: no clearing places the job within its wait: it
// leaves the queue and fails as no offers, with the last clearing's
// reasons; nothing was held.
func TestJobBatchWaitEnds(t *testing.T) {
	h := newBatchHarness(t, map[string]string{"job-1": "not placed: local: needs 8 CPUs, has 4 (cpu)"})
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassNoOffers || h.placed || res.Stage != StageNegotiate {
		t.Fatalf("got %+v (placed %v)", res, h.placed)
	}
	if !strings.Contains(res.Error, "not cleared within batch_wait 10m0s: not placed: local: needs 8 CPUs") {
		t.Errorf("error %q", res.Error)
	}
	if len(h.dequeued) != 1 || len(h.dequeued[0]) != 1 || h.dequeued[0][0] != "job-1" {
		t.Errorf("dequeued %v", h.dequeued)
	}
	if len(h.released) != 1 {
		t.Errorf("released %v: the quota reservation must be released", h.released)
	}
}

// TestJobBatchNoted: a clearing's note (for this job) shows in the status
// while the job waits, and is gone once it is placed.
func TestJobBatchNoted(t *testing.T) {
	h := newBatchHarness(t, nil)
	status := func() JobStatus {
		v, err := h.env.QueryWorkflow(QueryStatus)
		if err != nil {
			t.Fatal(err)
		}
		var st JobStatus
		if err := v.Get(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(SignalClearingNote, ClearingNote{JobID: "job-2", Clearing: "sha256:c1", Reason: "not mine"})
		h.env.SignalWorkflow(SignalClearingNote, ClearingNote{JobID: "job-1", Clearing: "sha256:c1", Reason: "not placed: local: too small (cpu)"})
	}, time.Minute)
	h.env.RegisterDelayedCallback(func() {
		c := status().Clearing
		if c == nil || c.LastClearing != "sha256:c1" || c.Reason != "not placed: local: too small (cpu)" || c.WaitUntil.IsZero() {
			t.Errorf("clearing status %+v", c)
		}
		h.env.SignalWorkflow(SignalClearingAward, clearingAward("job-1"))
	}, 2*time.Minute)
	h.env.RegisterDelayedCallback(func() {
		if c := status().Clearing; c != nil {
			t.Errorf("placed job still shows the queue: %+v", c)
		}
	}, 3*time.Minute)
	if res := h.run(); res.Status != StatusSettled {
		t.Fatalf("got %+v", res)
	}
}

// TestJobBatchCancelled: a queued job that is cancelled leaves the queue.
func TestJobBatchCancelled(t *testing.T) {
	h := newBatchHarness(t, nil)
	h.env.RegisterDelayedCallback(func() { h.env.CancelWorkflow() }, time.Minute)
	res := h.run()
	if res.Status != StatusCancelled || h.placed || len(h.dequeued) != 1 {
		t.Fatalf("got %+v, dequeued %v", res, h.dequeued)
	}
}

// TestJobImmediateUnchanged: a plan not in batch mode never touches the
// queue.
func TestJobImmediateUnchanged(t *testing.T) {
	h := newHarness(t, dagPlan())
	EnqueueClearing.Register(h.env, enqueueAct)
	h.on(EnqueueClearing.Name).Return(EnqueueOutput{}, errors.New("queued")).Maybe()
	if res := h.run(); res.Status != StatusSettled || res.Provider != "local" {
		t.Fatalf("got %+v", res)
	}
}

// TestMarketClearing: the clearing signals each placed job its award, takes
// the delivered and the gone off the queue, and leaves the unplaced.
func TestMarketClearing(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	Register(env)
	ClearMarket.Register(env, clearMarketAct)
	DequeueClearing.Register(env, dequeueAct)
	a, b := clearingAward("job-a"), clearingAward("job-b")
	env.OnActivity(ClearMarket.Name, mock.Anything, mock.Anything).Return(func(_ context.Context, in ClearMarketInput) (ClearMarketOutput, error) {
		if in.MaxJobs != 7 || in.TimeLimit != ClearingTimeLimit {
			t.Errorf("clear input %+v", in)
		}
		return ClearMarketOutput{Clearing: "sha256:clearing", Jobs: []string{"job-a", "job-b", "job-c"},
			Placed:   []ClearedJob{{JobID: "job-a", Award: a.Award}, {JobID: "job-b", Award: b.Award}},
			Unplaced: []UnplacedJob{{JobID: "job-c", Reason: "not placed: budget", Notify: true}, {JobID: "job-d", Reason: "same as before"}}, Optimal: true}, nil
	})
	var signalled []ClearingAward
	for _, id := range []string{"job-a", "job-b"} {
		env.OnSignalExternalWorkflow(mock.Anything, id, "", SignalClearingAward, mock.Anything).Return(
			func(_, workflowID, _, _ string, arg any) error {
				signalled = append(signalled, arg.(ClearingAward))
				if workflowID == "job-b" {
					return errors.New("workflow execution already completed")
				}
				return nil
			})
	}
	var notes []ClearingNote
	env.OnSignalExternalWorkflow(mock.Anything, "job-c", "", SignalClearingNote, mock.Anything).Return(
		func(_, _, _, _ string, arg any) error {
			notes = append(notes, arg.(ClearingNote))
			return nil
		})
	var dequeued []string
	env.OnActivity(DequeueClearing.Name, mock.Anything, mock.Anything).Return(func(_ context.Context, in DequeueInput) (DequeueOutput, error) {
		dequeued = append(dequeued, in.JobIDs...)
		return DequeueOutput{}, nil
	})
	env.ExecuteWorkflow(MarketClearing, ClearingInput{MaxJobs: 7})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res ClearingResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Clearing != "sha256:clearing" || len(res.Jobs) != 3 || len(res.Delivered) != 1 || res.Delivered[0] != "job-a" ||
		len(res.Gone) != 1 || res.Gone[0] != "job-b" || len(res.Unplaced) != 2 {
		t.Fatalf("result %+v", res)
	}
	if len(signalled) != 2 || signalled[0].JobID != "job-a" || signalled[0].Clearing != "sha256:clearing" || signalled[0].Award.Provider != "remote" {
		t.Fatalf("signalled %+v", signalled)
	}
	if len(notes) != 1 || notes[0].JobID != "job-c" || notes[0].Reason != "not placed: budget" || notes[0].Clearing != "sha256:clearing" {
		t.Errorf("notes %+v: only job-c's changed reason is told", notes)
	}
	if strings.Join(dequeued, ",") != "job-a,job-b" {
		t.Fatalf("dequeued %v, want the delivered and the gone", dequeued)
	}
}

// TestMarketClearingEmpty: an empty queue is one activity and nothing else.
func TestMarketClearingEmpty(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	Register(env)
	ClearMarket.Register(env, clearMarketAct)
	env.OnActivity(ClearMarket.Name, mock.Anything, mock.Anything).Return(ClearMarketOutput{Jobs: []string{}}, nil)
	env.ExecuteWorkflow(MarketClearing, ClearingInput{})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
}

package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/broker"
	"github.com/accordmesh/accord/market/queue"
	"github.com/accordmesh/accord/workflows"
)

func clearingProvider(name string, cpu int64) *market.Static {
	return &market.Static{P: market.Profile{
		Name: name, Region: "local", Reputation: 1,
		Free:    market.Capacity{MilliCPU: cpu, MemoryBytes: 8 << 30, DiskBytes: 64 << 30},
		Pricing: market.Pricing{Currency: "USD", CPUHour: 4, MemoryGiBHour: 1},
		SLA:     market.SLAOffer{MaxRefundPercent: 100, MaxSlashPercent: 100, Stake: 300},
	}}
}

// TestClearMarket runs the clearing activities over a real queue, artifact
// store and broker: three queued batch jobs clear together (one record in
// the store naming all three), an expired entry is skipped, the placed
// jobs' awards are the immediate path's, and a second clearing with too
// small a market notes why the jobs stay queued.
func TestClearMarket(t *testing.T) {
	ctx := context.Background()
	store := artifacts.Local{Dir: t.TempDir()}
	q, err := queue.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	provs := []market.Provider{clearingProvider("local", 16000), clearingProvider("remote", 16000)}
	a := &Activities{Artifacts: store, Clearing: q, Negotiator: MarketNegotiator{
		Broker: broker.Broker{Providers: func(context.Context) ([]market.Provider, error) { return provs, nil }, DefaultRuntime: "containerd"},
		Queue:  func(p string) string { return map[string]string{"remote": "accord-exec-remote"}[p] },
	}}
	plan, _ := quickstartPlan(t)
	plan.Spec.Negotiation.Mode = "batch"
	raw, _ := json.Marshal(plan)
	ref, err := store.Put(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 3 {
		in := workflows.EnqueueInput{JobID: fmt.Sprintf("job-%d", i), Tenant: "demo", PlanInput: workflows.PlanInput{PlanRef: ref},
			Enqueued: now.Add(time.Duration(i) * time.Millisecond), Deadline: now.Add(time.Hour)}
		for range 2 { // a retry is harmless
			if _, err := a.EnqueueClearing(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
	}
	old := workflows.EnqueueInput{JobID: "job-old", PlanInput: workflows.PlanInput{PlanRef: ref}, Enqueued: now.Add(-2 * time.Hour), Deadline: now.Add(-time.Hour)}
	if _, err := a.EnqueueClearing(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := a.EnqueueClearing(ctx, workflows.EnqueueInput{JobID: "../x", PlanInput: workflows.PlanInput{PlanRef: ref}, Enqueued: now, Deadline: now}); !isNonRetryable(err) {
		t.Fatalf("hostile job ID: %v", err)
	}
	out, err := a.ClearMarket(ctx, workflows.ClearMarketInput{MaxJobs: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Jobs) != 3 || len(out.Placed)+len(out.Unplaced) != 3 || len(out.Placed) == 0 || out.Clearing == "" {
		t.Fatalf("clearing %+v", out)
	}
	rec, err := store.Get(ctx, out.Clearing, 1<<24)
	if err != nil {
		t.Fatal(err)
	}
	var whole market.Batch
	if err := json.Unmarshal(rec, &whole); err != nil || len(whole.Result.Jobs) != 3 {
		t.Fatalf("stored record: %v %+v", err, whole.Result)
	}
	for _, p := range out.Placed {
		var part market.Result
		if err := json.Unmarshal(p.Award.Record, &part); err != nil || len(part.Jobs) != 3 || len(part.Awards) == 0 || part.Awards[0].Job != p.JobID {
			t.Fatalf("%s's record: %v %+v", p.JobID, err, part)
		}
		aw := p.Award
		if aw.Pool != aw.Provider || aw.Runtime != "containerd" || aw.Price <= 0 || aw.Currency != "USD" || aw.Explanation == "" ||
			(aw.Provider == "remote") != (aw.Queue == "accord-exec-remote") {
			t.Errorf("%s: award %+v", p.JobID, aw)
		}
	}
	// The clearing took every placed job off; the queue keeps the rest.
	deq, err := a.DequeueClearing(ctx, workflows.DequeueInput{JobIDs: []string{"job-0", "job-1", "job-2", "job-0"}})
	if err != nil || len(deq.Reasons) != 0 {
		t.Fatalf("dequeue: %+v %v", deq, err)
	}
	// Queue three more against a market too small for any of them.
	provs = []market.Provider{clearingProvider("local", 100)}
	for i := range 3 {
		in := workflows.EnqueueInput{JobID: fmt.Sprintf("job-s%d", i), PlanInput: workflows.PlanInput{PlanRef: ref}, Enqueued: now, Deadline: now.Add(time.Hour)}
		if _, err := a.EnqueueClearing(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	out, err = a.ClearMarket(ctx, workflows.ClearMarketInput{MaxJobs: 10})
	if err != nil || len(out.Placed) != 0 || len(out.Unplaced) != 3 {
		t.Fatalf("small market: %+v %v", out, err)
	}
	for _, u := range out.Unplaced {
		if !u.Notify || u.Reason == "" {
			t.Errorf("first reason of %s not to be told: %+v", u.JobID, u)
		}
	}
	// The same market again: the same reasons, nobody is told twice.
	out, err = a.ClearMarket(ctx, workflows.ClearMarketInput{MaxJobs: 10})
	if err != nil || len(out.Unplaced) != 3 || out.Unplaced[0].Notify {
		t.Fatalf("second small clearing: %+v %v", out, err)
	}
	deq, err = a.DequeueClearing(ctx, workflows.DequeueInput{JobIDs: []string{"job-s1", "job-old"}})
	if err != nil || deq.Reasons["job-s1"] == "" {
		t.Fatalf("dequeue with reasons: %+v %v", deq, err)
	}
}

func isNonRetryable(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.NonRetryable()
}

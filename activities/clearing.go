package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/broker"
	"github.com/accordmesh/accord/market/queue"
	"github.com/accordmesh/accord/workflows"
)

// ClearingQueue is the market's clearing queue (queue.Queue): batch-mode
// jobs waiting for the periodic clearing. Every call is idempotent by job
// ID.
type ClearingQueue interface {
	Put(ctx context.Context, e queue.Entry) error
	Remove(ctx context.Context, jobID string) (queue.Entry, error)
	Note(ctx context.Context, jobID string, at time.Time, reason string, maxNotes int) (notify bool, err error)
	List(ctx context.Context, max int) ([]queue.Entry, int, error)
}

// Clearer is a Negotiator that can also clear many queued jobs at once
// (MarketNegotiator over broker.Broker.ClearBatch).
type Clearer interface {
	ClearBatch(ctx context.Context, jobs []broker.BatchJob, opts market.Options) (*ClearedBatch, error)
}

// ClearedBatch is a clearing's outcome: the whole record, each placed
// job's award (made as Negotiate makes it) and why the others were not
// placed.
type ClearedBatch struct {
	Record   *market.Batch
	Awards   map[string]Award
	Unplaced map[string]string
}

// ClearBatch implements Clearer.
func (m MarketNegotiator) ClearBatch(ctx context.Context, jobs []broker.BatchJob, opts market.Options) (*ClearedBatch, error) {
	cl, err := m.Broker.ClearBatch(ctx, jobs, opts)
	if err != nil {
		return nil, err
	}
	out := &ClearedBatch{Record: cl.Batch, Awards: map[string]Award{}, Unplaced: cl.Unplaced}
	for id, aw := range cl.Awards {
		out.Awards[id] = m.award(aw)
	}
	return out, nil
}

// EnqueueClearing queues a batch-mode job for the periodic clearing.
// Idempotent: the entry is keyed by job ID and built from the workflow's
// input alone, so a retry writes the same entry.
func (a *Activities) EnqueueClearing(ctx context.Context, in workflows.EnqueueInput) (workflows.EnqueueOutput, error) {
	if a.Clearing == nil {
		return workflows.EnqueueOutput{}, permanent(workflows.ErrTypeNoOffers, fmt.Errorf("enqueue %s: this worker has no clearing queue", in.JobID))
	}
	e := queue.Entry{JobID: in.JobID, Tenant: in.Tenant, PlanRef: in.PlanRef, Enqueued: in.Enqueued, Deadline: in.Deadline}
	if err := a.Clearing.Put(ctx, e); err != nil {
		if errors.Is(err, queue.ErrInvalid) {
			return workflows.EnqueueOutput{}, permanent(workflows.ErrTypeNoOffers, fmt.Errorf("enqueue %s: %w", in.JobID, err))
		}
		return workflows.EnqueueOutput{}, fmt.Errorf("enqueue %s: %w", in.JobID, err)
	}
	a.logger(ctx, in.JobID).Info("queued for market clearing", "deadline", in.Deadline)
	return workflows.EnqueueOutput{}, nil
}

// DequeueClearing takes jobs off the clearing queue and returns why a
// clearing had left each unplaced. Idempotent: a job no longer queued is
// skipped.
func (a *Activities) DequeueClearing(ctx context.Context, in workflows.DequeueInput) (workflows.DequeueOutput, error) {
	if a.Clearing == nil {
		return workflows.DequeueOutput{}, permanent(workflows.ErrTypeNoOffers, errors.New("dequeue: this worker has no clearing queue"))
	}
	if len(in.JobIDs) > workflows.MaxClearingJobs {
		return workflows.DequeueOutput{}, permanent(workflows.ErrTypeNoOffers, fmt.Errorf("dequeue: %d jobs, at most %d", len(in.JobIDs), workflows.MaxClearingJobs))
	}
	out := workflows.DequeueOutput{}
	for _, id := range in.JobIDs {
		e, err := a.Clearing.Remove(ctx, id)
		if err != nil {
			return workflows.DequeueOutput{}, fmt.Errorf("dequeue %s: %w", id, err)
		}
		if e.Reason != "" {
			if out.Reasons == nil {
				out.Reasons = map[string]string{}
			}
			out.Reasons[id] = e.Reason
		}
	}
	return out, nil
}

// ClearMarket clears up to in.MaxJobs queued jobs (oldest first, those
// still inside their wait) in one auction among the providers each job's
// placement policies allow, stores the whole record in the artifact store
// (its digest names the clearing) and notes why each unplaced job was left.
// Idempotent: the clearing is a pure function of the queue and the
// providers at the time, the record is stored by content, a note replaces
// the last; only the output the workflow records counts.
func (a *Activities) ClearMarket(ctx context.Context, in workflows.ClearMarketInput) (workflows.ClearMarketOutput, error) {
	clr, ok := a.Negotiator.(Clearer)
	if !ok || a.Clearing == nil || a.Artifacts == nil {
		return workflows.ClearMarketOutput{}, permanent(workflows.ErrTypeNoOffers, errors.New("clear: this worker cannot clear the market (no clearing queue, artifact store or batch negotiator)"))
	}
	limit := min(max(in.MaxJobs, 1), workflows.MaxClearingJobs)
	now := time.Now()
	jobs, out, err := a.queuedJobs(ctx, limit, now)
	if err != nil || len(jobs) == 0 {
		return out, err
	}
	cl, err := clr.ClearBatch(ctx, jobs, market.Options{TimeLimit: in.TimeLimit})
	if err != nil {
		return workflows.ClearMarketOutput{}, fmt.Errorf("clear %d jobs: %w", len(jobs), err)
	}
	raw, err := json.Marshal(cl.Record)
	if err != nil {
		return workflows.ClearMarketOutput{}, fmt.Errorf("clear: encode record: %w", err)
	}
	if out.Clearing, err = a.Artifacts.Put(ctx, raw); err != nil {
		return workflows.ClearMarketOutput{}, fmt.Errorf("clear: store record: %w", err)
	}
	out.Objective, out.Optimal = cl.Record.Objective, cl.Record.Result.Optimal
	for _, j := range jobs {
		out.Jobs = append(out.Jobs, j.ID)
		aw, ok := cl.Awards[j.ID]
		if !ok {
			out.Unplaced = append(out.Unplaced, workflows.UnplacedJob{JobID: j.ID, Reason: cl.Unplaced[j.ID]})
			continue
		}
		out.Placed = append(out.Placed, workflows.ClearedJob{JobID: j.ID, Award: negotiated(aw)})
	}
	if err := a.noteUnplaced(ctx, out.Unplaced, now); err != nil {
		return workflows.ClearMarketOutput{}, err
	}
	a.logger(ctx, "").Info("market cleared", "clearing", out.Clearing, "jobs", len(out.Jobs), "placed", len(out.Placed),
		"unplaced", len(out.Unplaced), "objective_minor", out.Objective, "optimal", out.Optimal)
	return out, nil
}

// queuedJobs reads the queue: the jobs to clear now, with their plans. A
// job whose plan cannot be read, or is not in batch mode, is left
// unplaced with the reason instead of failing the whole clearing.
func (a *Activities) queuedJobs(ctx context.Context, limit int, now time.Time) ([]broker.BatchJob, workflows.ClearMarketOutput, error) {
	out := workflows.ClearMarketOutput{Jobs: []string{}}
	entries, bad, err := a.Clearing.List(ctx, limit)
	if err != nil {
		return nil, out, fmt.Errorf("clear: read queue: %w", err)
	}
	if bad > 0 {
		a.logger(ctx, "").Warn("clearing queue: unreadable entries skipped", "count", bad)
	}
	var jobs []broker.BatchJob
	for _, e := range entries {
		if !now.Before(e.Deadline) {
			continue // its wait is over: the job takes itself off
		}
		plan, err := a.plan(ctx, workflows.PlanInput{PlanRef: e.PlanRef})
		switch {
		case err != nil:
			out.Unplaced = append(out.Unplaced, workflows.UnplacedJob{JobID: e.JobID, Reason: "plan unreadable: " + err.Error()})
		case plan.Spec == nil || !plan.Spec.Negotiation.Batch():
			out.Unplaced = append(out.Unplaced, workflows.UnplacedJob{JobID: e.JobID, Reason: "plan is not in batch mode"})
		default:
			jobs = append(jobs, broker.BatchJob{ID: e.JobID, Plan: plan})
		}
	}
	if len(jobs) == 0 {
		return nil, out, a.noteUnplaced(ctx, out.Unplaced, now)
	}
	return jobs, out, nil
}

// noteUnplaced keeps why each unplaced job stays queued, and marks those
// whose reason changed to be told (UnplacedJob.Notify).
func (a *Activities) noteUnplaced(ctx context.Context, unplaced []workflows.UnplacedJob, now time.Time) error {
	for i, u := range unplaced {
		notify, err := a.Clearing.Note(ctx, u.JobID, now, u.Reason, workflows.MaxClearingNotes)
		if err != nil {
			return fmt.Errorf("clear: note %s: %w", u.JobID, err)
		}
		unplaced[i].Notify = notify
	}
	return nil
}

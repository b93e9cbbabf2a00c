package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"
)

// MarketClearing is the periodic market clearing, started by a Temporal
// schedule (ClearingScheduleID, overlap policy skip): the ClearMarket
// activity clears the queued batch-mode jobs together in one auction and
// records the outcome, then each placed job is signalled its award
// (SignalClearingAward) and taken off the queue; a job whose workflow is
// gone (finished, cancelled) is taken off too. Unplaced jobs stay queued
// with the clearing's reasons, for the next clearing or until their wait
// ends.
//
// It is deterministic: the clearing and the queue are activities, both
// idempotent (ClearMarket is a pure function of the queue and the
// providers at the time; only the output recorded here counts; taking a
// job off twice is harmless), and a job takes only the first award that
// names it.
func MarketClearing(ctx workflow.Context, in ClearingInput) (ClearingResult, error) {
	log := workflow.GetLogger(ctx)
	limit := in.MaxJobs
	if limit <= 0 {
		limit = DefaultClearingJobs
	}
	limit = min(limit, MaxClearingJobs)
	out, err := ClearMarket.Run(clearCtx(ctx), ClearMarketInput{MaxJobs: limit, TimeLimit: ClearingTimeLimit})
	if err != nil {
		return ClearingResult{}, err
	}
	res := ClearingResult{Clearing: out.Clearing, Jobs: out.Jobs, Unplaced: out.Unplaced}
	if len(out.Jobs) == 0 {
		return res, nil
	}
	sent := make([]workflow.Future, len(out.Placed))
	for i, p := range out.Placed {
		sent[i] = workflow.SignalExternalWorkflow(ctx, p.JobID, "", SignalClearingAward,
			ClearingAward{JobID: p.JobID, Clearing: out.Clearing, Award: p.Award})
	}
	var done []string
	for i, f := range sent {
		id := out.Placed[i].JobID
		if err := f.Get(ctx, nil); err != nil {
			log.Warn("award not delivered: job gone", "job_id", id, "clearing", out.Clearing, "error", err)
			res.Gone = append(res.Gone, id)
		} else {
			res.Delivered = append(res.Delivered, id)
		}
		done = append(done, id)
	}
	if len(done) > 0 {
		if _, err := DequeueClearing.Run(clearCtx(ctx), DequeueInput{JobIDs: done}); err != nil {
			return res, err
		}
	}
	notifyUnplaced(ctx, out)
	log.Info("market cleared", "clearing", out.Clearing, "jobs", len(out.Jobs), "delivered", len(res.Delivered),
		"gone", len(res.Gone), "unplaced", len(res.Unplaced), "objective_minor", out.Objective, "optimal", out.Optimal)
	return res, nil
}

// notifyUnplaced tells each unplaced job whose reason changed why it
// stays queued (its status shows it). A job that is gone is not an error:
// its wait or cancellation takes it off the queue.
func notifyUnplaced(ctx workflow.Context, out ClearMarketOutput) {
	var sent []workflow.Future
	for _, u := range out.Unplaced {
		if u.Notify {
			sent = append(sent, workflow.SignalExternalWorkflow(ctx, u.JobID, "", SignalClearingNote,
				ClearingNote{JobID: u.JobID, Clearing: out.Clearing, Reason: u.Reason}))
		}
	}
	for _, f := range sent {
		_ = f.Get(ctx, nil)
	}
}

// clearCtx runs a clearing step on the control queue: winner
// determination and the price re-solves each take up to
// ClearingTimeLimit.
func clearCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           TaskQueueControl,
		StartToCloseTimeout: 2*ClearingTimeLimit + 5*time.Minute,
		RetryPolicy:         controlRetry,
	})
}

package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"
)

// negotiateBatch is a batch-mode job's negotiation (layout 9): it queues
// the job for the periodic market clearing and waits, at most the plan's
// batch wait, for the clearing's award. The award is a NegotiateOutput as
// the immediate path makes it, so everything after negotiation is the
// same. A signal that does not name this job, or whose award does not fit
// its plan, is ignored. When the wait ends (or the job is cancelled) the
// job leaves the queue first, so that no later clearing places it.
func (j *job) negotiateBatch(ctx workflow.Context) (NegotiateOutput, error) {
	wait := j.plan.BatchWait
	if wait <= 0 {
		wait = DefaultBatchWait
	}
	now := workflow.Now(ctx)
	in := EnqueueInput{JobID: j.in.JobID, Tenant: j.plan.Tenant, PlanInput: j.planIn, Enqueued: now, Deadline: now.Add(wait)}
	if _, err := control(ctx, j.layout, EnqueueClearing, in, time.Minute); err != nil {
		return NegotiateOutput{}, classify(ctx, err, ClassNoOffers)
	}
	j.log.Info("queued for market clearing", "job_id", j.in.JobID, "batch_wait", wait)
	j.clearing = &ClearingStatus{WaitUntil: in.Deadline}
	defer func() { j.clearing = nil }()
	tctx, stop := workflow.WithCancel(ctx)
	defer stop()
	timer := workflow.NewTimer(tctx, wait)
	awards := workflow.GetSignalChannel(ctx, SignalClearingAward)
	notes := workflow.GetSignalChannel(ctx, SignalClearingNote)
	for {
		var got *ClearingAward
		fired := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(awards, func(c workflow.ReceiveChannel, _ bool) {
			var a ClearingAward
			c.Receive(ctx, &a)
			got = &a
		})
		sel.AddReceive(notes, func(c workflow.ReceiveChannel, _ bool) {
			var n ClearingNote
			c.Receive(ctx, &n)
			j.noteClearing(ctx, n)
		})
		sel.AddFuture(timer, func(workflow.Future) { fired = true })
		sel.Select(ctx)
		if got == nil && !fired {
			continue // a note
		}
		if got == nil && ctx.Err() == nil {
			// An award that came with the end of the wait still counts.
			var a ClearingAward
			for got == nil && awards.ReceiveAsync(&a) {
				if j.checkClearingAward(a) == nil {
					got = &a
				}
			}
		}
		if got == nil {
			return NegotiateOutput{}, j.leaveQueue(ctx, wait)
		}
		if err := j.checkClearingAward(*got); err != nil {
			j.log.Info("clearing award ignored", "job_id", j.in.JobID, "clearing", got.Clearing, "error", err)
			continue
		}
		j.log.Info("cleared", "job_id", j.in.JobID, "clearing", got.Clearing, "provider", got.Award.Provider, "price", got.Award.Price)
		return got.Award, nil
	}
}

// noteClearing keeps why a clearing left the job unplaced, for its
// status; a note for another job is ignored.
func (j *job) noteClearing(ctx workflow.Context, n ClearingNote) {
	if n.JobID != j.in.JobID || j.clearing == nil {
		return
	}
	if len(n.Reason) > MaxNoteReason {
		n.Reason = n.Reason[:MaxNoteReason]
	}
	j.clearing.LastClearing, j.clearing.NotedAt, j.clearing.Reason = n.Clearing, workflow.Now(ctx), n.Reason
}

// checkClearingAward accepts an award only for this job, from a provider,
// at a price within the plan's budget, in its currency.
func (j *job) checkClearingAward(a ClearingAward) error {
	switch {
	case a.JobID != j.in.JobID:
		return fmt.Errorf("award names job %q", a.JobID)
	case a.Award.Provider == "" || a.Award.Runtime == "":
		return errors.New("award names no provider or runtime")
	case a.Award.Price < 0 || j.plan.MaxCost > 0 && a.Award.Price > j.plan.MaxCost:
		return fmt.Errorf("price %d outside [0, %d]", a.Award.Price, j.plan.MaxCost)
	case j.plan.Currency != "" && !strings.EqualFold(a.Award.Currency, j.plan.Currency):
		return fmt.Errorf("currency %q, the plan's is %q", a.Award.Currency, j.plan.Currency)
	}
	return nil
}

// leaveQueue takes the job off the queue when its wait ended or it was
// cancelled, and fails the job with the reason.
func (j *job) leaveQueue(ctx workflow.Context, wait time.Duration) error {
	cancelled := ctx.Err() != nil
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	out, err := DequeueClearing.Run(compensateCtx(dctx), DequeueInput{JobIDs: []string{j.in.JobID}})
	if cancelled {
		return fail(ClassCancelled, errors.Join(errors.New("cancelled while queued for market clearing"), err))
	}
	if err != nil {
		return fail(ClassInternal, fmt.Errorf("leave the clearing queue: %w", err))
	}
	why := out.Reasons[j.in.JobID]
	if why == "" {
		why = "no clearing ran or placed it"
	}
	return fail(ClassNoOffers, fmt.Errorf("not cleared within batch_wait %s: %s", wait, why))
}

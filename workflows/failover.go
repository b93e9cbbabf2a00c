package workflows

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/accordmesh/accord/provenance/predicate"
)

// Failover (layout 6). A provider agent that stops serving its queue is
// found by Temporal's own timers, never by reading a clock: a running
// RunTask's heartbeat times out and its retry waits on the queue; after
// ProviderLossTimeout unpicked (ScheduleToStart) it fails, and the
// ProviderLive activity reads the agent's heartbeat. A dead agent (or one
// that heartbeats but leaves its queue unserved for maxLiveWaits windows) is
// lost: the runner stops with *lostProvider, and the job renegotiates
// without it, moves the escrow to the new provider and runs every task
// again there (the lost machine's outputs and signature are gone with it).

// runNo is the number in the run ID of a task's next run: the attempt,
// or from layout 6 one more than the task's last run in this job, so that
// a run after a failover or a spot check's run never reuses an ID.
func (r *runner) runNo(task string, attempt int) int {
	if r.runs == nil {
		return attempt
	}
	r.runs[task]++
	return r.runs[task]
}

// runOnProvider is one RunTask on a provider agent's queue, watched for
// the agent's loss.
func (r *runner) runOnProvider(ctx workflow.Context, t PlanTask, attempt int, runID string) (WaitTaskOutput, error) {
	award := r.awardOf(t.Name)
	in := RunTaskInput{
		JobID: r.jobID, Task: t.Name, Attempt: attempt, RunID: runID, PlanInput: r.plan,
		Award: awardFor(award, []PlanTask{t}), Window: DefaultWaitWindow, Upstream: r.upstreamOutputs(t),
	}
	for waits := 1; ; waits++ {
		out, err := RunTask.Run(providerCtx(ctx, award.Queue, t, DefaultWaitWindow), in)
		if err == nil || !unpicked(err) {
			return out, err
		}
		if err := providerLost(ctx, r.jobID, award, &lostProvider{provider: award.Provider, runID: runID}, waits); err != nil {
			return out, err
		}
	}
}

// providerLost decides after a wait on award's queue went unpicked for
// ProviderLossTimeout, the waits-th time: nil to wait again, or lost
// (with its reason) once the agent's heartbeat is gone or it has left its
// queue unserved for maxLiveWaits windows.
func providerLost(ctx workflow.Context, jobID string, award NegotiateOutput, lost *lostProvider, waits int) error {
	live, err := ProviderLive.RunLocal(localCtx(ctx, time.Minute), ProviderLiveInput{JobID: jobID, Provider: award.Provider})
	if err != nil {
		return fmt.Errorf("provider %s liveness: %w", award.Provider, err)
	}
	switch {
	case !live.Live:
		lost.reason = fmt.Sprintf("queue %s not served for %s and %s", award.Queue, ProviderLossTimeout, live.Reason)
		return lost
	case waits >= maxLiveWaits:
		lost.reason = fmt.Sprintf("heartbeating, but queue %s not served for %d windows of %s", award.Queue, waits, ProviderLossTimeout)
		return lost
	}
	return nil
}

// signOn has award's provider sign in on its queue (layout 11), awaited
// as a task run is: a provider that leaves its queue unserved and whose
// agent is gone is returned as *lostProvider, for the job to fail over
// instead of waiting out the signing activity's 24 h. It sets in's spec
// digest and provider, as the control plane checks them.
func (j *job) signOn(ctx workflow.Context, award NegotiateOutput, in *AttestInput) (SignedStage, error) {
	in.SpecDigest, in.Provider = j.plan.DocumentDigest, award.Provider
	signed, err := SignStage.Run(signCtx(ctx, award.Queue), *in)
	return j.awaitSign(ctx, award, *in, in.Stage, signed, err)
}

// awaitSign follows up a SignStage of in on award's queue whose attempt
// gave signed, err: while it goes unpicked, providerLost decides whether
// to ask again or give the provider up as lost before it signed what.
func (j *job) awaitSign(ctx workflow.Context, award NegotiateOutput, in AttestInput, what string, signed SignedStage, err error) (SignedStage, error) {
	for waits := 1; err != nil && unpicked(err); waits++ {
		if err = providerLost(ctx, j.in.JobID, award, &lostProvider{provider: award.Provider, signing: what}, waits); err == nil {
			signed, err = SignStage.Run(signCtx(ctx, award.Queue), in)
		}
	}
	return signed, err
}

// unpicked reports an activity that no worker picked up in time.
func unpicked(err error) bool {
	var te *temporal.TimeoutError
	return errors.As(err, &te) && te.TimeoutType() == enums.TIMEOUT_TYPE_SCHEDULE_TO_START
}

// runTasksFailover runs the job's tasks on the awarded provider agent and,
// each time that provider is lost, on the provider a renegotiation
// without the lost ones awards, from the start.
func (j *job) runTasksFailover(ctx workflow.Context) error {
	if j.split() {
		return j.runSplit(ctx)
	}
	for {
		for _, t := range j.plan.Tasks {
			j.tasks[t.Name] = TaskStatus{State: TaskPending}
		}
		r := j.newRunner(j.award, j.tasks)
		err := r.run(ctx, j.plan.Tasks)
		j.comp = append(j.comp, r.comp...)
		var lost *lostProvider
		if !errors.As(err, &lost) {
			if err != nil {
				return err
			}
			ref, err := r.seal(ctx)
			if err != nil {
				return err
			}
			j.results, j.usage = []string{ref}, sumUsage(j.tasks)
			return nil
		}
		if err := j.failover(ctx, lost); err != nil {
			return err
		}
	}
}

// newRunner is a layout-6 runner of the job's tasks on award's provider.
func (j *job) newRunner(award NegotiateOutput, tasks map[string]TaskStatus) *runner {
	return &runner{jobID: j.in.JobID, layout: j.layout, plan: j.planIn, award: award, tasks: tasks,
		failover: award.Queue != "", runs: j.runs}
}

// failover abandons the lost provider: it is penalized and excluded, the
// market runs again without every provider lost so far, and the held
// escrow is reassigned to the winner, which the tasks run on next.
func (j *job) failover(ctx workflow.Context, lost *lostProvider) error {
	if len(j.failovers) >= maxFailovers {
		return fail(ClassExecution, fmt.Errorf("%w (after %d failovers)", lost, len(j.failovers)))
	}
	j.excluded[lost.provider] = "lost mid-job: " + lost.reason
	n := len(j.failovers) + 1
	j.log.Info("provider lost: failing over", "job_id", j.in.JobID, "provider", lost.provider, "run_id", lost.runID, "reason", lost.reason)
	out, err := control(ctx, j.layout, Renegotiate, RenegotiateInput{
		JobID: j.in.JobID, PlanInput: j.planIn, Exclude: j.excluded, Lost: lost.provider, LostReason: lost.reason, N: n,
	}, 5*time.Minute)
	if err != nil {
		return classify(ctx, fmt.Errorf("failover from %s: %w", lost.provider, err), ClassNoOffers)
	}
	if err := j.reassign(ctx, out.Award.Provider, "failover: "+lost.Error()); err != nil {
		return err
	}
	j.failovers = append(j.failovers, j.failoverRecord(ctx, lost, out, nil))
	out.Award.Record = nil // the failover record names the award; the offers stay out of later inputs
	j.award = out.Award
	j.cost.Price = out.Award.Price
	return nil
}

// failoverRecord is the record of a failover from lost to out's award
// (of tasks, a split job's part); from layout 11 it carries the terms the
// replacement agreed to.
func (j *job) failoverRecord(ctx workflow.Context, lost *lostProvider, out RenegotiateOutput, tasks []string) Failover {
	aw := out.Award
	f := Failover{Lost: lost.provider, RunID: lost.runID, At: workflow.Now(ctx), Reason: lost.reason,
		Provider: aw.Provider, Price: aw.Price, Currency: aw.Currency, Reputation: out.Reputation, Tasks: tasks}
	if j.layout >= layoutSignWatched && aw.SLA != nil {
		terms := *aw.SLA
		f.SLA = &terms
	}
	return f
}

// reassign moves the held escrow from the job's provider to another.
func (j *job) reassign(ctx workflow.Context, to, reason string) error {
	j.reassigns++
	_, err := control(ctx, j.layout, Reassign, ReassignInput{
		JobID: j.in.JobID, From: j.award.Provider, To: to, N: j.reassigns, Reason: reason,
	}, 2*time.Minute)
	if err != nil {
		return classify(ctx, fmt.Errorf("reassign escrow to %s: %w", to, err), ClassInternal)
	}
	return nil
}

// Spot checks (layout 6).

// drawSpotCheck decides from the job ID alone whether a job with spot-check
// probability p is checked: a replay, or a retry of the decision, draws the
// same.
func drawSpotCheck(jobID string, p float64) bool {
	if !(p > 0) {
		return false
	}
	h := sha256.Sum256([]byte("accord/spot-check/" + jobID))
	x := float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53) // uniform in [0, 1)
	return x < p
}

// spotCheck runs the drawn job's tasks on a second provider and compares
// the outputs digests with the job's; a mismatch is decided by a third
// run, and the minority is slashed. When the job's own provider is the
// minority the job is reassigned to the checker, whose results it keeps.
func (j *job) spotCheck(ctx workflow.Context) error {
	if j.layout < layoutFailover || !drawSpotCheck(j.in.JobID, j.plan.SpotCheck) {
		return nil
	}
	primary := spotRun(predicate.SpotPrimary, j.award, j.tasks)
	sc := &SpotCheck{Probability: j.plan.SpotCheck, Runs: []predicate.SpotRun{primary}, Paid: j.award.Provider}
	j.spot = sc
	exclude := map[string]string{j.award.Provider: "ran the job"}
	for p, why := range j.excluded {
		exclude[p] = why
	}
	check, err := j.checkRun(ctx, predicate.SpotCheckRun, exclude)
	if err != nil {
		return err
	}
	sc.Runs = append(sc.Runs, check.run)
	if check.run.Failed != "" {
		sc.Verdict = predicate.SpotNoQuorum
		return nil
	}
	if check.run.OutputsDigest == primary.OutputsDigest {
		sc.Verdict, sc.Majority = predicate.SpotAgree, primary.OutputsDigest
		return nil
	}
	exclude[check.award.Provider] = "ran the spot check"
	tie, err := j.checkRun(ctx, predicate.SpotTiebreak, exclude)
	if err != nil {
		return err
	}
	sc.Runs = append(sc.Runs, tie.run)
	switch {
	case tie.run.Failed == "" && tie.run.OutputsDigest == primary.OutputsDigest:
		sc.Verdict, sc.Majority = predicate.SpotUpheld, primary.OutputsDigest
		return j.slashMinority(ctx, check.award)
	case tie.run.Failed == "" && tie.run.OutputsDigest == check.run.OutputsDigest:
		sc.Verdict, sc.Majority = predicate.SpotReversed, check.run.OutputsDigest
		cheat := j.award
		if err := j.slashMinority(ctx, cheat); err != nil {
			return err
		}
		if err := j.reassign(ctx, check.award.Provider, "spot check: outputs of "+cheat.Provider+" in the minority"); err != nil {
			return err
		}
		j.award, j.tasks, j.results, j.usage = check.award, check.tasks, []string{check.ref}, sumUsage(check.tasks)
		j.cost.Price = check.award.Price
		sc.Paid = check.award.Provider
		return nil
	default:
		sc.Verdict = predicate.SpotNoQuorum
		return nil
	}
}

// checked is one spot-check run: its record, the award it ran under, its
// tasks and their sealed results.
type checked struct {
	run   predicate.SpotRun
	award NegotiateOutput
	tasks map[string]TaskStatus
	ref   string
}

// checkRun negotiates a provider outside exclude and runs every task there.
// No provider left, or a run that fails, is recorded in the run (Failed):
// the check is then undecided, and nobody is slashed on it.
func (j *job) checkRun(ctx workflow.Context, role string, exclude map[string]string) (checked, error) {
	out, err := control(ctx, j.layout, Renegotiate, RenegotiateInput{
		JobID: j.in.JobID, PlanInput: j.planIn, Exclude: exclude,
	}, 5*time.Minute)
	if err != nil {
		if ctx.Err() != nil {
			return checked{}, fail(ClassCancelled, err)
		}
		return checked{run: predicate.SpotRun{Role: role, Failed: "no provider to run it: " + errMessage(err)}}, nil
	}
	out.Award.Record = nil
	c := checked{award: out.Award, tasks: map[string]TaskStatus{}}
	for _, t := range j.plan.Tasks {
		c.tasks[t.Name] = TaskStatus{State: TaskPending}
	}
	r := j.newRunner(out.Award, c.tasks)
	err = r.run(ctx, j.plan.Tasks)
	j.comp = append(j.comp, r.comp...)
	c.run = spotRun(role, out.Award, c.tasks)
	if err != nil {
		if ctx.Err() != nil {
			return checked{}, fail(ClassCancelled, err)
		}
		c.run.Failed = errMessage(err)
		return c, nil
	}
	if c.ref, err = r.seal(ctx); err != nil {
		return checked{}, err
	}
	if j.layout >= layoutSpotSigned && c.award.Queue != "" {
		// The run's statement links the job's execution envelope (the
		// last attestation queued): the run it checks.
		var previous string
		if j.attTail != nil {
			if err := j.attTail.Get(ctx, &previous); err != nil {
				return checked{}, fail(ClassInternal, fmt.Errorf("execution attestation: %w", err))
			}
		}
		if c.run.Signed, err = j.signSpotRun(ctx, c, previous); err != nil {
			if ctx.Err() != nil {
				return checked{}, fail(ClassCancelled, err)
			}
			c.run.Failed = "the checker did not sign its run: " + errMessage(err)
		}
	}
	return c, nil
}

// signSpotRun has the checker sign its own run (layout 9): SignStage on its
// queue over an execution statement of the run's sealed results, marked
// with the run's role and linked to previous, the job's execution
// envelope. The signer checks every task is a run it recorded.
func (j *job) signSpotRun(ctx workflow.Context, c checked, previous string) (json.RawMessage, error) {
	pred, err := json.Marshal(predicate.Execution{Header: j.header(), Provider: c.award.Provider,
		Runtime: c.award.Runtime, SpotRole: c.run.Role})
	if err != nil {
		return nil, fmt.Errorf("encode %s run: %w", c.run.Role, err)
	}
	in := AttestInput{
		JobID: j.in.JobID, Stage: predicate.StageExecution, Previous: previous, Predicate: pred, Results: []string{c.ref},
		SpecDigest: j.plan.DocumentDigest, Provider: c.award.Provider,
	}
	var signed SignedStage
	if j.layout >= layoutSignWatched {
		// A checker lost before it signs does not sign (layout 11).
		signed, err = j.signOn(ctx, c.award, &in)
	} else {
		signed, err = SignStage.Run(attestCtx(ctx, c.award.Queue), in)
	}
	if err != nil {
		return nil, fmt.Errorf("provider %s signs its %s run: %w", c.award.Provider, c.run.Role, err)
	}
	return json.RawMessage(signed.Envelope), nil
}

// slashMinority carries out the verdict against the provider of award.
func (j *job) slashMinority(ctx workflow.Context, award NegotiateOutput) error {
	out, err := control(ctx, j.layout, SlashProvider, SlashInput{
		JobID: j.in.JobID, Provider: award.Provider, Terms: award.SLA,
		Reason: "spot check: outputs in the minority of three runs",
	}, 2*time.Minute)
	if err != nil {
		return classify(ctx, fmt.Errorf("slash %s: %w", award.Provider, err), ClassInternal)
	}
	j.spot.Minority, j.spot.Slashed, j.spot.Currency = award.Provider, out.Slashed, out.Currency
	return nil
}

// spotRun records one run of the job's tasks: run IDs, outputs and the
// digest over all outputs ("task:path=sha256" lines, sorted).
func spotRun(role string, award NegotiateOutput, tasks map[string]TaskStatus) predicate.SpotRun {
	run := predicate.SpotRun{Role: role, Provider: award.Provider, Price: award.Price, RunIDs: map[string]string{},
		Outputs: map[string][]OutputArtifact{}, Usage: map[string]Usage{}}
	for _, name := range sortedKeys(tasks) {
		t := tasks[name]
		run.RunIDs[name] = t.RunID
		run.Usage[name] = t.Usage
		if len(t.Outputs) > 0 {
			run.Outputs[name] = t.Outputs
		}
	}
	run.OutputsDigest = predicate.OutputsDigest(run.Outputs)
	return run
}

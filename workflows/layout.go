package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// The job workflow's layouts. A recorded history is evidence of released
// behaviour: a change to the commands the workflow issues (which
// activities, local or not, in what order, child workflows, timers) is made
// only behind workflow.GetVersion(changeLayout, …), so that jobs in flight
// during an upgrade replay the commands they started with. The rule and the
// list live in docs/workflows.md; testdata/ keeps every layout's histories.
const (
	changeLayout = "job-layout"

	// layout 0 (workflow.DefaultVersion): histories recorded before
	// versioning: every activity on a task queue, the compiled plan in
	// every input, StartTask and WaitTask per attempt, every task in the
	// job workflow itself.
	//
	// layoutByRef (1): the plan and task results pass by reference
	// (artifact store digests); compile, admit, negotiate, place, settle
	// and result sealing are local activities; one RunTask per attempt;
	// jobs of more than BatchSize tasks run their tasks in child workflows
	// of BatchSize tasks each; verification is skipped when there are no
	// tests.
	layoutByRef workflow.Version = 1

	// layoutStopTests (2): a verification that fails or is cancelled stops
	// its acceptance-test containers (StopTests), as execution stops its
	// task containers.
	layoutStopTests workflow.Version = 2

	// layoutApprovers (3): an approval is the approve update, accepted
	// only at the gate and only from an identity in approval.approvers,
	// and recorded in the placement attestation (the approve signal is
	// ignored). A failure or cancellation after execution finished settles
	// the metered work under the agreed terms instead of refunding the
	// whole escrow.
	layoutApprovers workflow.Version = 3

	// layoutPublish (4): a verified job whose tasks publish models runs
	// the PublishModels activity after the verification attestation is
	// logged and before settlement; a refused publication fails the job
	// (class publish) and its work is settled as in layout 3.
	layoutPublish workflow.Version = 4

	// layoutProviderQueues (5): when the award names a provider agent's
	// queue (NegotiateOutput.Queue), every execution activity of a task
	// (RunTask and the StopTask compensation) runs on that queue, and the
	// execution attestation is signed there by the provider (SignStage)
	// before the control plane checks and logs it (Attest with Signed).
	// An award without a queue runs as in layout 4.
	layoutProviderQueues workflow.Version = 5

	// layoutFailover (6): a task on a provider agent's queue waits at most
	// ProviderLossTimeout to be picked up (ScheduleToStart); then the
	// ProviderLive activity asks whether the agent still heartbeats. A lost
	// agent is abandoned: Renegotiate (without every lost provider, which
	// it penalizes), Reassign the escrow to the new provider, and run every
	// task again there; the execution attestation lists the failovers. A
	// spec with verification.spot_check draws, from the job ID, whether
	// the job's tasks also run on a second provider after the execution
	// attestation; differing output digests are decided by a third run,
	// the minority is slashed (SlashProvider) and, when it is the job's
	// provider, the job is reassigned to the majority's. The verification
	// attestation carries the spot check.
	layoutFailover workflow.Version = 6

	// layoutProviderPlacement (7): the placement acceptance of a job
	// awarded to a provider agent is signed on the agent's queue by the
	// provider's key (SignStage), like its execution: the provider attests
	// that it accepted the placement (provider, pool, hold) it is named in.
	layoutProviderPlacement workflow.Version = 7

	// layoutAgentBuyer (8): a plan whose buyer is an agent
	// (negotiation.buyer: agent) negotiates by the BargainSnapshot
	// activity (the sellers, taken once), then per round publishes the
	// sellers' offers in the status (JobStatus.Bargain), waits at most the
	// plan's round timeout (a timer) for the counter update, and asks the
	// BargainRound activity for the sellers' responses; an agreement is
	// the award (its record lists every round), silence or the deadline
	// fails the job (class no_offers). Other plans negotiate as in
	// layout 7.
	layoutAgentBuyer workflow.Version = 8

	// Layout 9 makes two changes, released together:
	//
	// layoutBatchClearing (9): a plan in batch mode (negotiation.mode:
	// batch) negotiates by queueing itself (EnqueueClearing, a local
	// activity) and waiting, at most the plan's batch wait (a timer), for
	// the clearing-award signal of the periodic market clearing
	// (MarketClearing), taking only an award that names the job; when the
	// wait ends first it leaves the queue (DequeueClearing) and fails
	// (class no_offers) with the last clearing's reasons. Other plans
	// negotiate as in layout 8.
	layoutBatchClearing workflow.Version = 9
	//
	// layoutSpotSigned (9): each spot-check run on a provider agent (check
	// and tiebreak) that gave outputs is signed by its own provider: after
	// the run's results are sealed, SignStage on the checker's queue signs
	// an execution statement of that run (SpotRole set), kept in the
	// run's record (SpotRun.Signed) inside the verification attestation.
	// A checker that refuses to sign makes its run fail (nobody is slashed
	// on it).
	layoutSpotSigned workflow.Version = 9

	// layoutSplit (10): an award in parts (NegotiateOutput.Parts: a spec
	// with placement.split, awarded to several provider agents) runs each
	// task on its part's agent, with the outputs of dependencies another
	// part ran in RunTaskInput.Upstream. Each part's provider signs its
	// placement acceptance and, over its own tasks' sealed results, its
	// execution statement (SignStage on its queue); the placement and
	// execution stages are then the operator's statements listing those
	// signed parts. A lost part's provider is replaced by renegotiating
	// that part's tasks alone (RenegotiateInput.Tasks, without the other
	// parts' providers), and its tasks and every task downstream of them
	// run again; the escrow is reassigned only when the lost part is the
	// one it is held under. Settle pays each part for its own tasks
	// (SettleInput.Parts). Awards without parts run as in layout 9.
	layoutSplit workflow.Version = 10

	// layoutSignWatched (11): a provider agent's signature is awaited as
	// its task runs are: SignStage on its queue goes unpicked after
	// ProviderLossTimeout (ScheduleToStart), then ProviderLive decides
	// whether the agent is lost. The provider signs its placement
	// acceptance before the placement is attested; one lost first is
	// failed over (Renegotiate, Reassign) and its replacement signs, the
	// placement naming the failovers (Placement.Failovers). A provider
	// lost before it signs the execution of a whole job is failed over and
	// every task runs again on the replacement, which signs; a split part
	// fails over likewise and its tasks run again when no other part's
	// task depends on them (else the job fails: the other parts' providers
	// have signed over those results). A spot-check checker lost before it
	// signs its run does not sign. In layout 10 each waited out the
	// signing activity's 24 h.
	layoutSignWatched workflow.Version = 11

	layoutLatest = layoutSignWatched
)

// CurrentLayout is the layout new jobs run; recorded histories are named
// after it (testdata/job_NAME_layoutN.json).
const CurrentLayout = int(layoutLatest)

// byRef reports whether the job runs layout 1 or later.
func (j *job) byRef() bool { return j.layout >= layoutByRef }

// DefaultWaitWindow is how long a task-waiting activity blocks before giving
// its slot back and being rescheduled.
const DefaultWaitWindow = 30 * time.Second

// defaultTaskDuration bounds a task without max_duration.
const defaultTaskDuration = 24 * time.Hour

// Retry policies. Control-plane activities retry transient failures a few
// times; attestations retry for as long as the log is down (never dropped);
// compensations retry until they succeed.
var (
	controlRetry = &temporal.RetryPolicy{
		InitialInterval:    500 * time.Millisecond,
		BackoffCoefficient: 2,
		MaximumInterval:    10 * time.Second,
		MaximumAttempts:    5,
		NonRetryableErrorTypes: []string{
			ErrTypeInvalidSpec, ErrTypePolicy, ErrTypeNoOffers, ErrTypeInsufficient, ErrTypeExecution,
		},
	}
	attestRetry = &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Minute,
	}
	compensateRetry = &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    30 * time.Second,
	}
	startRetry = &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        15 * time.Second,
		MaximumAttempts:        5,
		NonRetryableErrorTypes: []string{ErrTypeExecution, ErrTypeInvalidSpec},
	}
	// publishRetry retries a registry that is down; a refusal
	// (ErrTypePublish) or a bad plan is final.
	publishRetry = &temporal.RetryPolicy{
		InitialInterval:        2 * time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        time.Minute,
		MaximumAttempts:        10,
		NonRetryableErrorTypes: []string{ErrTypePublish, ErrTypeInvalidSpec, ErrTypeExecution},
	}
	// waitRetry reschedules a waiting activity after each window
	// (ErrTypeStillRunning) and after a lost worker (heartbeat timeout);
	// ScheduleToClose bounds it.
	waitRetry = &temporal.RetryPolicy{
		InitialInterval:        200 * time.Millisecond,
		BackoffCoefficient:     1,
		MaximumInterval:        time.Second,
		NonRetryableErrorTypes: []string{ErrTypeExecution, ErrTypeInvalidSpec},
	}
)

// control runs a control-plane step: a local activity from layout 1 on (no
// task-queue round trip for a step of milliseconds), an activity on the
// control queue before.
func control[I, O any](ctx workflow.Context, layout workflow.Version, a Activity[I, O], in I, timeout time.Duration) (O, error) {
	if layout >= layoutByRef {
		return a.RunLocal(localCtx(ctx, timeout), in)
	}
	return a.Run(controlCtx(ctx, timeout), in)
}

func localCtx(ctx workflow.Context, timeout time.Duration) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout:    timeout,
		ScheduleToCloseTimeout: 3 * timeout,
		RetryPolicy:            controlRetry,
	})
}

func controlCtx(ctx workflow.Context, timeout time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           TaskQueueControl,
		StartToCloseTimeout: timeout,
		RetryPolicy:         controlRetry,
	})
}

func attestCtx(ctx workflow.Context, queue string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              queue,
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy:            attestRetry,
	})
}

// signCtx is SignStage on a provider agent's queue, unpicked after
// ProviderLossTimeout (layout 11) so that the workflow can ask whether the
// agent is lost.
func signCtx(ctx workflow.Context, queue string) workflow.Context {
	ctx = attestCtx(ctx, queue)
	o := workflow.GetActivityOptions(ctx)
	o.ScheduleToStartTimeout = ProviderLossTimeout
	return workflow.WithActivityOptions(ctx, o)
}

func compensateCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              TaskQueueControl,
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy:            compensateRetry,
	})
}

// execQueue is the task queue of a task's execution activities: the award's
// provider agent (layout 5), else the shared execution queue.
func execQueue(award NegotiateOutput) string {
	if award.Queue != "" {
		return award.Queue
	}
	return TaskQueueExecution
}

func compensateCtxExec(ctx workflow.Context, queue string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              queue,
		StartToCloseTimeout:    2 * time.Minute,
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy:            compensateRetry,
	})
}

func startCtx(ctx workflow.Context, queue string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           queue,
		StartToCloseTimeout: 10 * time.Minute, // image import and unpack
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         startRetry,
	})
}

// waitCtx bounds a waiting activity (WaitTask, RunTask): each attempt holds
// a slot for one window (plus image preparation and output collection);
// the task's max duration bounds all of them together.
func waitCtx(ctx workflow.Context, queue string, t PlanTask, window time.Duration) workflow.Context {
	d := t.MaxDuration
	if d <= 0 {
		d = defaultTaskDuration
	}
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           queue,
		StartToCloseTimeout: window + 10*time.Minute,
		HeartbeatTimeout:    30 * time.Second, // a loaded host's heartbeats come late

		ScheduleToCloseTimeout: d + 20*time.Minute,
		RetryPolicy:            waitRetry,
	})
}

func verifyCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           TaskQueueExecution,
		StartToCloseTimeout: 30 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         startRetry,
	})
}

// providerCtx bounds a RunTask on a provider agent's queue (layout 6) as
// waitCtx does, and also how long each attempt may wait to be picked up:
// an agent that is gone never picks it up.
func providerCtx(ctx workflow.Context, queue string, t PlanTask, window time.Duration) workflow.Context {
	ctx = waitCtx(ctx, queue, t, window)
	o := workflow.GetActivityOptions(ctx)
	o.ScheduleToStartTimeout = ProviderLossTimeout
	return workflow.WithActivityOptions(ctx, o)
}

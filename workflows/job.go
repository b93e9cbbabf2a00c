// Package workflows holds Accord's Temporal workflows. The job workflow turns
// a spec into a verified, paid-for compute job: compile → admit → negotiate →
// (approval) → place → execute → verify → settle, with a chained attestation
// after each stage and saga compensation (stop containers, refund escrow) on
// failure or cancellation after placement.
//
// Workflows import only Temporal's workflow packages and the contract types
// in this package: no I/O, no clock, no randomness. Activities are referred
// to by name (see job_contracts.go) and implemented in package activities.
package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Options tune the workflow's activity timeouts. The zero value is the
// production default; tests shorten the wait window.
type Options struct {
	// WaitWindow bounds how long one WaitTask activity holds a worker slot.
	WaitWindow time.Duration
}

// DefaultWaitWindow is how long a WaitTask activity blocks before giving its
// slot back and being rescheduled.
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
	// waitRetry reschedules WaitTask after each window (ErrTypeStillRunning)
	// and after a lost worker (heartbeat timeout); ScheduleToClose bounds it.
	waitRetry = &temporal.RetryPolicy{
		InitialInterval:        200 * time.Millisecond,
		BackoffCoefficient:     1,
		MaximumInterval:        time.Second,
		NonRetryableErrorTypes: []string{ErrTypeExecution},
	}
)

// Job is the job workflow.
func Job(ctx workflow.Context, in JobInput) (JobResult, error) {
	return JobWithOptions(ctx, in, Options{})
}

// JobWithOptions is Job with tuning options; the worker registers Job.
func JobWithOptions(ctx workflow.Context, in JobInput, opts Options) (JobResult, error) {
	if opts.WaitWindow <= 0 {
		opts.WaitWindow = DefaultWaitWindow
	}
	j := &job{
		in:     in,
		opts:   opts,
		status: StatusRunning,
		stage:  StageCompile,
		tasks:  map[string]TaskStatus{},
		stages: map[string]StageTiming{},
		log:    workflow.GetLogger(ctx),
	}
	j.started = workflow.Now(ctx)
	if err := j.registerHandlers(ctx); err != nil {
		return JobResult{}, err
	}
	ctx, j.cancel = workflow.WithCancel(ctx)
	j.listenSignals(ctx)

	err := j.run(ctx)
	aerr := j.awaitAttestations(ctx)
	return j.finish(ctx, err, aerr)
}

type job struct {
	in      JobInput
	opts    Options
	log     interface{ Info(string, ...interface{}) }
	cancel  workflow.CancelFunc
	started time.Time

	status    string
	stage     string
	plan      PlanSummary
	planJSON  json.RawMessage
	award     NegotiateOutput
	placement PlaceOutput
	tasks     map[string]TaskStatus
	stages    map[string]StageTiming
	cost      Cost
	tests     []TestResult
	approved  bool
	cancelled bool
	attTail   workflow.Future // the last queued attestation: its envelope digest
	atts      []AttestationRef
	settled   bool
	comp      []string
	paid      int64
	refunded  int64
	// running holds run IDs started and not yet known to be finished; the
	// stop-containers compensation stops them.
	running map[string]string // runID -> runtime kind
}

// failure is a classified job failure.
type failure struct {
	class string
	err   error
}

func (f *failure) Error() string { return f.class + ": " + f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func fail(class string, err error) error { return &failure{class: class, err: err} }

func (j *job) registerHandlers(ctx workflow.Context) error {
	handlers := map[string]interface{}{
		QueryStage:  func() (string, error) { return j.stage, nil },
		QueryTasks:  func() (map[string]TaskStatus, error) { return j.tasks, nil },
		QueryCost:   func() (Cost, error) { return j.cost, nil },
		QueryStatus: func() (JobStatus, error) { return j.snapshot(), nil },
	}
	for _, name := range []string{QueryStage, QueryTasks, QueryCost, QueryStatus} {
		if err := workflow.SetQueryHandler(ctx, name, handlers[name]); err != nil {
			return fmt.Errorf("workflows: query %s: %w", name, err)
		}
	}
	return nil
}

func (j *job) snapshot() JobStatus {
	return JobStatus{
		JobID: j.in.JobID, Status: j.status, Stage: j.stage, Spec: j.plan.Name, Tenant: j.plan.Tenant,
		Cost: j.cost, Tasks: j.tasks, Stages: j.stages, Approved: j.approved,
	}
}

// listenSignals turns the approve and cancel signals into state changes.
// Cancel cancels the job's context, which unwinds the running stage and
// runs the compensations.
func (j *job) listenSignals(ctx workflow.Context) {
	approveCh := workflow.GetSignalChannel(ctx, SignalApprove)
	cancelCh := workflow.GetSignalChannel(ctx, SignalCancel)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(approveCh, func(c workflow.ReceiveChannel, _ bool) {
				var who string
				c.Receive(ctx, &who)
				j.approved = true
			})
			sel.AddReceive(cancelCh, func(c workflow.ReceiveChannel, _ bool) {
				var reason string
				c.Receive(ctx, &reason)
				j.cancelled = true
				j.cancel()
			})
			sel.Select(ctx)
			if ctx.Err() != nil {
				return
			}
		}
	})
}

func (j *job) enter(ctx workflow.Context, stage string) {
	now := workflow.Now(ctx)
	if prev, ok := j.stages[j.stage]; ok && prev.End.IsZero() {
		prev.End = now
		j.stages[j.stage] = prev
		j.stageMetric(ctx, j.stage, now.Sub(prev.Start))
	}
	j.stage = stage
	if stage != StageDone {
		j.stages[stage] = StageTiming{Start: now}
	}
}

func (j *job) setStatus(ctx workflow.Context, status string) {
	j.status = status
	_ = workflow.UpsertTypedSearchAttributes(ctx, temporal.NewSearchAttributeKeyKeyword(SearchAttrStatus).ValueSet(status))
}

// run executes the stages. Compensations are deferred closures on the named
// err: each runs only when a later stage failed or the job was cancelled.
func (j *job) run(ctx workflow.Context) (err error) {
	// compile
	j.enter(ctx, StageCompile)
	var compiled CompileOutput
	if err := workflow.ExecuteActivity(controlCtx(ctx, time.Minute), ActivityCompile,
		CompileInput{JobID: j.in.JobID, SpecPath: j.in.SpecPath, DocumentDigest: j.in.DocumentDigest}).Get(ctx, &compiled); err != nil {
		return classify(ctx, err, ClassInvalidSpec)
	}
	j.plan, j.planJSON = compiled.Plan, compiled.PlanJSON
	j.cost.Currency = j.plan.Currency
	_ = workflow.UpsertTypedSearchAttributes(ctx,
		temporal.NewSearchAttributeKeyKeyword(SearchAttrTenant).ValueSet(j.plan.Tenant),
		temporal.NewSearchAttributeKeyKeyword(SearchAttrSpec).ValueSet(j.plan.Name))
	for _, t := range j.plan.Tasks {
		j.tasks[t.Name] = TaskStatus{State: TaskPending}
	}
	if err := j.attest(ctx, "spec", []Subject{{Name: j.plan.Name, Digest: j.plan.DocumentDigest}}, map[string]any{
		"name": j.plan.Name, "version": j.plan.Version, "tenant": j.plan.Tenant,
		"document_digest": j.plan.DocumentDigest, "contract_digest": j.plan.ContractDigest,
		"tasks": taskNames(j.plan.Tasks), "max_cost": j.plan.MaxCost, "currency": j.plan.Currency,
	}); err != nil {
		return err
	}

	// admit
	j.enter(ctx, StageAdmit)
	var adm AdmitOutput
	if err := workflow.ExecuteActivity(controlCtx(ctx, time.Minute), ActivityAdmit,
		AdmitInput{JobID: j.in.JobID, PlanJSON: j.planJSON, SpecPath: j.in.SpecPath}).Get(ctx, &adm); err != nil {
		return classify(ctx, err, ClassPolicy)
	}
	if err := j.attest(ctx, "admission", nil, map[string]any{
		"allowed": adm.Allowed, "reason": adm.Reason, "decision": rawOrNull(adm.Decision),
	}); err != nil {
		return err
	}
	if !adm.Allowed {
		return fail(ClassPolicy, fmt.Errorf("admission rejected: %s", adm.Reason))
	}
	// From here on a failure or cancellation releases what the job holds:
	// its quota reservation and, once placed, its escrow. One idempotent
	// activity does both (releasing a never-held escrow posts nothing).
	defer func() {
		if err == nil {
			return
		}
		var out ReleaseOutput
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		if cerr := workflow.ExecuteActivity(compensateCtx(dctx), ActivityRelease, ReleaseInput{
			JobID: j.in.JobID, Tenant: j.plan.Tenant, Placement: j.placement, Reason: err.Error(),
		}).Get(dctx, &out); cerr != nil {
			err = errors.Join(err, fmt.Errorf("compensation release: %w", cerr))
			return
		}
		j.refunded += out.Refunded
		j.cost.Held = 0
		j.comp = append(j.comp, "release")
	}()

	// negotiate
	j.enter(ctx, StageNegotiate)
	if err := workflow.ExecuteActivity(controlCtx(ctx, 5*time.Minute), ActivityNegotiate,
		NegotiateInput{JobID: j.in.JobID, PlanJSON: j.planJSON}).Get(ctx, &j.award); err != nil {
		return classify(ctx, err, ClassNoOffers)
	}
	j.cost.Price, j.cost.Currency = j.award.Price, j.award.Currency
	if err := j.attest(ctx, "negotiation", nil, map[string]any{
		"provider": j.award.Provider, "pool": j.award.Pool, "runtime": j.award.Runtime,
		"price": j.award.Price, "currency": j.award.Currency, "record": rawOrNull(j.award.Record),
	}); err != nil {
		return err
	}

	// approval gate
	if j.plan.ApprovalRequired && (j.plan.ApprovalAbove <= 0 || j.award.Price > j.plan.ApprovalAbove) {
		j.enter(ctx, StageApproval)
		j.setStatus(ctx, StatusAwaitingApproval)
		if err := workflow.Await(ctx, func() bool { return j.approved }); err != nil {
			return fail(ClassCancelled, errors.New("cancelled while awaiting approval"))
		}
		j.setStatus(ctx, StatusRunning)
	}

	// place: reserve and hold escrow; from here on failures compensate.
	j.enter(ctx, StagePlace)
	if err := workflow.ExecuteActivity(controlCtx(ctx, 2*time.Minute), ActivityPlace, PlaceInput{
		JobID: j.in.JobID, Tenant: j.plan.Tenant, PlanJSON: j.planJSON, Award: j.award,
	}).Get(ctx, &j.placement); err != nil {
		return classify(ctx, err, ClassInternal)
	}
	j.cost.Held = j.placement.Held
	if err := j.attest(ctx, "placement", nil, map[string]any{
		"provider": j.award.Provider, "pool": j.award.Pool, "node": j.placement.Node,
		"reservation": j.placement.Reservation, "hold_id": j.placement.HoldID,
		"held": j.placement.Held, "currency": j.placement.Currency, "record": rawOrNull(j.placement.Record),
	}); err != nil {
		return err
	}

	// execute
	j.enter(ctx, StageExecute)
	j.running = map[string]string{}
	defer func() {
		if err == nil || len(j.running) == 0 {
			return
		}
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		ids := make([]string, 0, len(j.running))
		for id := range j.running {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		var errs []error
		for _, id := range ids {
			if cerr := workflow.ExecuteActivity(compensateCtxExec(dctx), ActivityStopTask,
				StopTaskInput{RunID: id, Runtime: j.running[id]}).Get(dctx, nil); cerr != nil {
				errs = append(errs, cerr)
				continue
			}
			delete(j.running, id)
			j.comp = append(j.comp, "stop:"+id)
		}
		if len(errs) > 0 {
			err = errors.Join(append([]error{err}, errs...)...)
		}
	}()
	execStart := workflow.Now(ctx)
	if err := j.execute(ctx); err != nil {
		return err
	}
	execEnd := workflow.Now(ctx)
	var subjects []Subject
	for _, t := range j.plan.Tasks {
		for _, o := range j.tasks[t.Name].Outputs {
			subjects = append(subjects, Subject{Name: t.Name + ":" + o.Path, Digest: "sha256:" + o.SHA256})
		}
	}
	if err := j.attest(ctx, "execution", subjects, map[string]any{
		"tasks": j.tasks, "runtime": j.award.Runtime, "provider": j.award.Provider,
	}); err != nil {
		return err
	}

	// verify
	j.enter(ctx, StageVerify)
	var ver VerifyOutput
	if err := workflow.ExecuteActivity(verifyCtx(ctx), ActivityVerify, VerifyInput{
		JobID: j.in.JobID, PlanJSON: j.planJSON, Award: j.award, Tasks: j.tasks,
	}).Get(ctx, &ver); err != nil {
		return classify(ctx, err, ClassVerification)
	}
	j.tests = ver.Tests
	if err := j.attest(ctx, "verification", subjects, map[string]any{
		"passed": ver.Passed, "tests": ver.Tests,
	}); err != nil {
		return err
	}

	// settle: pays (or refunds, per the SLA) even when verification failed,
	// so escrow never stays open; the job then ends as failed. Money moves
	// only once every earlier stage's attestation is logged.
	j.enter(ctx, StageSettle)
	if err := j.awaitAttestations(ctx); err != nil {
		return fail(ClassInternal, err)
	}
	var st SettleOutput
	if err := workflow.ExecuteActivity(controlCtx(ctx, 2*time.Minute), ActivitySettle, SettleInput{
		JobID: j.in.JobID, Tenant: j.plan.Tenant, PlanJSON: j.planJSON, Award: j.award,
		Placement: j.placement, Tasks: j.tasks, Verified: ver.Passed, Started: execStart, Finished: execEnd,
	}).Get(ctx, &st); err != nil {
		return classify(ctx, err, ClassInternal)
	}
	j.paid, j.refunded = st.Paid, st.Refunded
	j.cost.Paid, j.cost.Held = st.Paid, 0
	j.settled = true
	if err := j.attest(ctx, "settlement", nil, map[string]any{
		"paid": st.Paid, "refunded": st.Refunded, "currency": st.Currency, "record": rawOrNull(st.Record),
	}); err != nil {
		// Settled money is final: a lost attestation must not refund it.
		j.log.Info("settlement attestation failed", "job_id", j.in.JobID, "error", err)
		return nil
	}
	if !ver.Passed {
		// Escrow is closed by settlement; no compensation should run, so the
		// failure is reported through j.tests instead of err.
		return nil
	}
	return nil
}

// execute runs the DAG: each task in its own workflow goroutine, waiting for
// its dependencies; the first task to fail for good cancels the rest.
func (j *job) execute(ctx workflow.Context) error {
	ectx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	finished := map[string]bool{}
	var firstErr error
	for _, t := range j.plan.Tasks {
		workflow.Go(ectx, func(gctx workflow.Context) {
			defer func() { finished[t.Name] = true }()
			err := workflow.Await(gctx, func() bool {
				for _, d := range t.DependsOn {
					if !finished[d] {
						return false
					}
				}
				return true
			})
			if err != nil {
				j.setTask(t.Name, func(s *TaskStatus) { s.State = TaskCancelled })
				return
			}
			for _, d := range t.DependsOn {
				if j.tasks[d].State != TaskSucceeded {
					j.setTask(t.Name, func(s *TaskStatus) {
						s.State, s.Reason = TaskSkipped, "dependency "+d+" did not succeed"
					})
					return
				}
			}
			if err := j.runTask(gctx, t); err != nil {
				if firstErr == nil {
					firstErr = err
				}
				cancel()
			}
		})
	}
	if err := workflow.Await(ctx, func() bool { return len(finished) == len(j.plan.Tasks) }); err != nil {
		return fail(ClassCancelled, errors.New("cancelled during execution"))
	}
	if firstErr != nil {
		return firstErr
	}
	if ctx.Err() != nil || j.cancelled {
		return fail(ClassCancelled, errors.New("cancelled during execution"))
	}
	return nil
}

func (j *job) setTask(name string, f func(*TaskStatus)) {
	s := j.tasks[name]
	f(&s)
	j.tasks[name] = s
}

// runTask runs one task with the spec's retry policy: each attempt is a new
// container (run ID <job>.<task>.<attempt>), backoff between attempts in
// workflow time.
func (j *job) runTask(ctx workflow.Context, t PlanTask) error {
	attempts := max(t.Attempts, 1)
	backoff := t.Backoff
	var last error
	for attempt := 1; attempt <= attempts; attempt++ {
		if attempt > 1 && backoff > 0 {
			if err := workflow.Sleep(ctx, backoff); err != nil {
				j.setTask(t.Name, func(s *TaskStatus) { s.State = TaskCancelled })
				return fail(ClassCancelled, errors.New("cancelled"))
			}
			backoff *= 2
			if t.MaxBackoff > 0 && backoff > t.MaxBackoff {
				backoff = t.MaxBackoff
			}
		}
		runID := RunID(j.in.JobID, t.Name, attempt)
		j.setTask(t.Name, func(s *TaskStatus) {
			s.State, s.Attempt, s.RunID, s.Reason, s.ExitCode = TaskRunning, attempt, runID, "", 0
		})
		var started StartTaskOutput
		j.running[runID] = j.award.Runtime
		err := workflow.ExecuteActivity(startCtx(ctx), ActivityStartTask, StartTaskInput{
			JobID: j.in.JobID, Task: t.Name, Attempt: attempt, RunID: runID, PlanJSON: j.planJSON, Award: j.award,
		}).Get(ctx, &started)
		if err == nil {
			var out WaitTaskOutput
			err = workflow.ExecuteActivity(waitCtx(ctx, t, j.opts.WaitWindow), ActivityWaitTask, WaitTaskInput{
				JobID: j.in.JobID, Task: t.Name, RunID: runID, Runtime: j.award.Runtime, Window: j.opts.WaitWindow,
			}).Get(ctx, &out)
			if err == nil {
				delete(j.running, runID) // WaitTask collected and cleaned it up
				j.setTask(t.Name, func(s *TaskStatus) {
					s.ExitCode, s.Reason, s.Usage, s.Outputs = out.ExitCode, out.Reason, out.Usage, out.Outputs
					s.ImageDigest = started.ImageDigest
					if !out.StartedAt.IsZero() {
						st, fin := out.StartedAt, out.FinishedAt
						s.StartedAt, s.FinishedAt = &st, &fin
					}
				})
				if out.State == "exited" && out.ExitCode == 0 {
					j.setTask(t.Name, func(s *TaskStatus) { s.State = TaskSucceeded })
					return nil
				}
				last = fmt.Errorf("task %s attempt %d: %s exit %d %s", t.Name, attempt, out.State, out.ExitCode, out.Reason)
				j.setTask(t.Name, func(s *TaskStatus) { s.State = TaskFailed })
				continue
			}
		}
		if ctx.Err() != nil || temporal.IsCanceledError(err) {
			j.setTask(t.Name, func(s *TaskStatus) { s.State = TaskCancelled })
			return fail(ClassCancelled, errors.New("cancelled"))
		}
		last = fmt.Errorf("task %s attempt %d: %w", t.Name, attempt, err)
		j.setTask(t.Name, func(s *TaskStatus) { s.State, s.Reason = TaskFailed, errMessage(err) })
	}
	return fail(ClassExecution, last)
}

// attest queues a stage statement. It is signed and logged in the
// background, chained to the previous stage's envelope, while the job moves
// on: attestations stay in stage order but leave the critical path. A
// failed attestation stops the job at the next stage boundary (the next
// attest call) and every queued one is awaited before the job ends. They
// run on a disconnected context: a finished stage is attested even when the
// job is then cancelled.
func (j *job) attest(ctx workflow.Context, stage string, subjects []Subject, predicate map[string]any) error {
	if err := j.attestErr(ctx); err != nil {
		return err
	}
	predicate["job_id"] = j.in.JobID
	b, err := json.Marshal(predicate)
	if err != nil {
		return fail(ClassInternal, fmt.Errorf("encode %s predicate: %w", stage, err))
	}
	prev := j.attTail
	f, set := workflow.NewFuture(ctx)
	actx, _ := workflow.NewDisconnectedContext(ctx)
	workflow.Go(actx, func(gctx workflow.Context) {
		var previous string
		if prev != nil {
			if err := prev.Get(gctx, &previous); err != nil {
				set.Set(nil, err)
				return
			}
		}
		var out AttestOutput
		if err := workflow.ExecuteActivity(attestCtx(gctx), ActivityAttest, AttestInput{
			JobID: j.in.JobID, Stage: stage, Previous: previous, Subjects: subjects, Predicate: b,
		}).Get(gctx, &out); err != nil {
			set.Set(nil, fmt.Errorf("attest %s: %w", stage, err))
			return
		}
		j.atts = append(j.atts, AttestationRef{Stage: stage, Digest: out.Digest, LogIndex: out.LogIndex})
		set.Set(out.Digest, nil)
	})
	j.attTail = f
	return nil
}

// attestErr reports an attestation that already failed, without waiting.
func (j *job) attestErr(ctx workflow.Context) error {
	if j.attTail == nil || !j.attTail.IsReady() {
		return nil
	}
	if err := j.attTail.Get(ctx, nil); err != nil {
		return fail(ClassInternal, err)
	}
	return nil
}

// awaitAttestations waits for every queued attestation.
func (j *job) awaitAttestations(ctx workflow.Context) error {
	if j.attTail == nil {
		return nil
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	return j.attTail.Get(dctx, nil)
}

// finish builds the result, records metrics and the final search attribute.
// aerr is a failed attestation: it fails a job that had not settled yet;
// settled money stands and the failure is reported in Error.
func (j *job) finish(ctx workflow.Context, err, aerr error) (JobResult, error) {
	if aerr != nil && err == nil && !j.settled {
		err = fail(ClassInternal, aerr)
	}
	failedStage := j.stage
	j.enter(ctx, StageDone)
	res := JobResult{
		JobID: j.in.JobID, Stage: failedStage, Spec: j.plan.Name, Tenant: j.plan.Tenant,
		Provider: j.award.Provider, Price: j.award.Price, Paid: j.paid, Refunded: j.refunded,
		Currency: j.cost.Currency, Tasks: j.tasks, Tests: j.tests, Attestations: j.atts,
		Stages: j.stages, Compensated: j.comp,
	}
	var f *failure
	switch {
	case err == nil && testsFailed(j.tests):
		res.Status, res.Class, res.Error = StatusFailed, ClassVerification, "acceptance tests failed"
	case err == nil:
		res.Status, res.Stage = StatusSettled, StageDone
	case j.cancelled || errors.As(err, &f) && f.class == ClassCancelled || ctx.Err() != nil:
		res.Status, res.Class, res.Error = StatusCancelled, ClassCancelled, err.Error()
	case errors.As(err, &f):
		res.Status, res.Class, res.Error = StatusFailed, f.class, err.Error()
	default:
		res.Status, res.Class, res.Error = StatusFailed, ClassInternal, err.Error()
	}
	// The workflow context may be cancelled; record the end state anyway.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	j.setStatus(dctx, res.Status)
	m := workflow.GetMetricsHandler(dctx)
	m.WithTags(map[string]string{"stage": res.Stage, "outcome": res.Status}).Counter("accord_jobs_total").Inc(1)
	if res.Paid > 0 {
		m.WithTags(map[string]string{"currency": res.Currency}).Counter("accord_spend_minor_units_total").Inc(res.Paid)
	}
	if aerr != nil && res.Error == "" {
		res.Error = "attestation: " + aerr.Error()
	}
	j.log.Info("job finished", "job_id", j.in.JobID, "status", res.Status, "class", res.Class)
	return res, nil
}

func (j *job) stageMetric(ctx workflow.Context, stage string, d time.Duration) {
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"stage": stage}).Timer("accord_stage_latency").Record(d)
}

func testsFailed(ts []TestResult) bool {
	for _, t := range ts {
		if !t.Passed {
			return true
		}
	}
	return false
}

// classify maps an activity error to a job failure. Application errors of a
// known type keep their class; cancellation is cancellation; anything else
// takes the stage's default class.
func classify(ctx workflow.Context, err error, def string) error {
	if ctx.Err() != nil || temporal.IsCanceledError(err) {
		return fail(ClassCancelled, err)
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		switch app.Type() {
		case ErrTypeInvalidSpec:
			return fail(ClassInvalidSpec, err)
		case ErrTypePolicy:
			return fail(ClassPolicy, err)
		case ErrTypeNoOffers:
			return fail(ClassNoOffers, err)
		case ErrTypeExecution:
			return fail(ClassExecution, err)
		case ErrTypeInsufficient:
			return fail(ClassPolicy, err)
		}
	}
	if def == ClassInvalidSpec || def == ClassPolicy || def == ClassNoOffers {
		// The stage itself broke (timeouts, crashes), not the job's input.
		return fail(ClassInternal, err)
	}
	return fail(def, err)
}

func errMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}

func taskNames(ts []PlanTask) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

func rawOrNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

func controlCtx(ctx workflow.Context, timeout time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           TaskQueueControl,
		StartToCloseTimeout: timeout,
		RetryPolicy:         controlRetry,
	})
}

func attestCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              TaskQueueControl,
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy:            attestRetry,
	})
}

func compensateCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              TaskQueueControl,
		StartToCloseTimeout:    time.Minute,
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy:            compensateRetry,
	})
}

func compensateCtxExec(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              TaskQueueExecution,
		StartToCloseTimeout:    2 * time.Minute,
		ScheduleToCloseTimeout: 24 * time.Hour,
		RetryPolicy:            compensateRetry,
	})
}

func startCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           TaskQueueExecution,
		StartToCloseTimeout: 10 * time.Minute, // image import and unpack
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         startRetry,
	})
}

func waitCtx(ctx workflow.Context, t PlanTask, window time.Duration) workflow.Context {
	d := t.MaxDuration
	if d <= 0 {
		d = defaultTaskDuration
	}
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              TaskQueueExecution,
		StartToCloseTimeout:    window + 5*time.Minute, // plus output collection
		HeartbeatTimeout:       10 * time.Second,
		ScheduleToCloseTimeout: d + 10*time.Minute,
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

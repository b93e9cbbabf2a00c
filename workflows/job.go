// Package workflows holds Accord's Temporal workflows. The job workflow turns
// a spec into a verified, paid-for compute job: compile → admit → negotiate →
// (approval) → place → execute → verify → settle, with a chained attestation
// after each stage and saga compensation (stop containers, refund escrow) on
// failure or cancellation after placement.
//
// Workflows import only Temporal's workflow packages and contract types (this
// package's, provenance/predicate's, runtimes' Usage): no I/O, no clock, no
// randomness. Activities are typed references (Activity) implemented in
// package activities.
//
// The workflow's commands change only behind a version (see layout.go and
// docs/workflows.md); every released version's recorded histories live in
// testdata/ and are replayed by the tests.
package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/accordmesh/accord/provenance/predicate"
)

// Job is the job workflow.
func Job(ctx workflow.Context, in JobInput) (JobResult, error) {
	j := &job{
		in:     in,
		layout: workflow.GetVersion(ctx, changeLayout, workflow.DefaultVersion, layoutLatest),
		status: StatusRunning,
		stage:  StageCompile,
		tasks:  map[string]TaskStatus{},
		stages: map[string]StageTiming{},
		log:    workflow.GetLogger(ctx),
	}
	if j.layout >= layoutFailover {
		j.excluded, j.runs = map[string]string{}, map[string]int{}
	}
	if err := j.registerHandlers(ctx); err != nil {
		return JobResult{}, err
	}
	if err := j.registerApproval(ctx); err != nil {
		return JobResult{}, err
	}
	if err := j.registerCounter(ctx); err != nil {
		return JobResult{}, err
	}
	ctx, j.cancel = workflow.WithCancel(ctx)
	j.listenSignals(ctx)

	err := j.run(ctx)
	aerr := j.awaitAttestations(ctx)
	return j.finish(ctx, err, aerr)
}

type job struct {
	in     JobInput
	layout workflow.Version
	log    interface{ Info(string, ...interface{}) }
	cancel workflow.CancelFunc

	status     string
	stage      string
	plan       PlanSummary
	planIn     PlanInput
	award      NegotiateOutput
	placement  PlaceOutput
	tasks      map[string]TaskStatus
	results    []string // sealed task results (layout 1)
	usage      Usage    // total metered usage (layout 1)
	stages     map[string]StageTiming
	cost       Cost
	tests      []TestResult
	approved   bool
	approvedBy *predicate.Approval // the accepted approval (layout 3)
	published  []PublishedModel    // models pushed (layout 4)
	cancelled  bool
	attTail    workflow.Future // the last queued attestation: its envelope digest
	atts       []AttestationRef
	settled    bool
	comp       []string
	paid       int64
	refunded   int64
	placedAt   time.Time
	execStart  time.Time
	execEnd    time.Time
	// Layout 6: the providers lost (failovers) and excluded from later
	// negotiations, each task's run count, the escrow's reassignments and
	// the spot check, if the job drew one.
	failovers []Failover
	excluded  map[string]string
	runs      map[string]int
	reassigns int
	spot      *SpotCheck
	// Layout 8: the agent-played bargain.
	bargain bargainState
	// Layout 9: the clearing queue, while a batch-mode job waits there.
	clearing *ClearingStatus
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
		QueryTasks:  func() (map[string]TaskStatus, error) { return listTasks(j.tasks), nil },
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
		Cost: j.cost, Tasks: listTasks(j.tasks), TaskCounts: countTasks(j.tasks), Stages: j.stages, Approved: j.approved,
		Bargain: j.bargain.status, Clearing: j.clearing, Parts: j.award.Parts,
	}
}

// listTasks bounds a task listing: every task up to MaxListedTasks, else
// only the tasks that did not succeed (at most MaxListedTasks, by name).
func listTasks(tasks map[string]TaskStatus) map[string]TaskStatus {
	if len(tasks) <= MaxListedTasks {
		return tasks
	}
	out := map[string]TaskStatus{}
	for _, name := range sortedKeys(tasks) {
		if t := tasks[name]; t.State != TaskSucceeded && len(out) < MaxListedTasks {
			out[name] = t
		}
	}
	return out
}

func countTasks(tasks map[string]TaskStatus) map[string]int {
	out := map[string]int{}
	for _, t := range tasks {
		out[t.State]++
	}
	return out
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
				if j.layout >= layoutApprovers {
					// A signal cannot be refused: approvals are updates.
					j.log.Info("approve signal ignored: approvals are checked updates", "job_id", j.in.JobID)
					return
				}
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

// header starts every stage predicate; the recorder fills in the rest.
func (j *job) header() predicate.Header { return predicate.Header{JobID: j.in.JobID} }

// run executes the stages in order. Compensations are deferred closures on
// the named err: each runs only when a later stage failed or the job was
// cancelled.
func (j *job) run(ctx workflow.Context) (err error) {
	if err := j.compile(ctx); err != nil {
		return err
	}
	if err := j.admit(ctx); err != nil {
		return err
	}
	// From here on a failure or cancellation releases what the job holds:
	// its quota reservation and, once placed, its escrow.
	defer j.release(ctx, &err)
	if err := j.negotiate(ctx); err != nil {
		return err
	}
	if err := j.approval(ctx); err != nil {
		return err
	}
	if err := j.place(ctx); err != nil {
		return err
	}
	if err := j.execute(ctx); err != nil {
		return err
	}
	if err := j.spotCheck(ctx); err != nil {
		return err
	}
	passed, err := j.verify(ctx)
	if err != nil {
		return err
	}
	if passed && j.layout >= layoutPublish && j.plan.Publishes > 0 {
		if err := j.publish(ctx); err != nil {
			return err
		}
	}
	return j.settle(ctx, passed)
}

func (j *job) compile(ctx workflow.Context) error {
	j.enter(ctx, StageCompile)
	in := CompileInput{JobID: j.in.JobID, SpecPath: j.in.SpecPath, DocumentDigest: j.in.DocumentDigest, ByRef: j.byRef()}
	compiled, err := control(ctx, j.layout, Compile, in, time.Minute)
	if err != nil {
		return classify(ctx, err, ClassInvalidSpec)
	}
	j.plan, j.planIn = compiled.Plan, PlanInput{PlanRef: compiled.PlanRef, PlanJSON: compiled.PlanJSON}
	j.cost.Currency = j.plan.Currency
	_ = workflow.UpsertTypedSearchAttributes(ctx,
		temporal.NewSearchAttributeKeyKeyword(SearchAttrTenant).ValueSet(j.plan.Tenant),
		temporal.NewSearchAttributeKeyKeyword(SearchAttrSpec).ValueSet(j.plan.Name))
	for _, t := range j.plan.Tasks {
		j.tasks[t.Name] = TaskStatus{State: TaskPending}
	}
	return j.attest(ctx, predicate.StageSpec, []Subject{{Name: j.plan.Name, Digest: j.plan.DocumentDigest}}, predicate.Spec{
		Header: j.header(), Name: j.plan.Name, Version: j.plan.Version, Tenant: j.plan.Tenant,
		DocumentDigest: j.plan.DocumentDigest, ContractDigest: j.plan.ContractDigest,
		Tasks: taskNames(j.plan.Tasks), MaxCost: j.plan.MaxCost, Currency: j.plan.Currency,
		Models: j.plan.Models,
	}, nil)
}

func (j *job) admit(ctx workflow.Context) error {
	j.enter(ctx, StageAdmit)
	adm, err := control(ctx, j.layout, Admit, AdmitInput{JobID: j.in.JobID, PlanInput: j.planIn, SpecPath: j.in.SpecPath}, time.Minute)
	if err != nil {
		return classify(ctx, err, ClassPolicy)
	}
	if err := j.attest(ctx, predicate.StageAdmission, nil, predicate.Admission{
		Header: j.header(), Allowed: adm.Allowed, Reason: adm.Reason, Decision: rawOrNull(adm.Decision),
	}, nil); err != nil {
		return err
	}
	if !adm.Allowed {
		return fail(ClassPolicy, fmt.Errorf("admission rejected: %s", adm.Reason))
	}
	return nil
}

// release is the compensation for admission and placement: one idempotent
// activity releases the quota reservation and refunds any escrow (releasing
// a never-held escrow posts nothing). From layout 3 on, work that finished
// executing is settled instead (settleWork), and refunded only when that
// settlement is refused for good.
func (j *job) release(ctx workflow.Context, err *error) {
	if *err == nil {
		return
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if j.layout >= layoutApprovers && !j.execEnd.IsZero() && !j.settled {
		serr := j.settleWork(dctx, *err)
		if serr == nil {
			return
		}
		*err = errors.Join(*err, fmt.Errorf("compensation settle: %w", serr))
	}
	out, cerr := Release.Run(compensateCtx(dctx), ReleaseInput{JobID: j.in.JobID, Reason: (*err).Error()})
	if cerr != nil {
		*err = errors.Join(*err, fmt.Errorf("compensation release: %w", cerr))
		return
	}
	j.refunded += out.Refunded
	j.cost.Held = 0
	j.comp = append(j.comp, "release")
}

// settleWork pays for a job's executed work after a later failure or
// cancellation (the tests failed to run, the tenant cancelled during
// verification, the ledger was down at settle): the metered usage under
// the agreed terms, as an unverified-but-not-failed job. Like settle, it
// needs every earlier attestation logged. It retries like
// every compensation, so a ledger that is down for a while delays the
// payment instead of refunding it; the ledger's key makes it idempotent
// with an earlier settle attempt.
func (j *job) settleWork(ctx workflow.Context, cause error) error {
	// Money moves only on logged evidence: without the earlier stages'
	// attestations the work cannot be shown to have run, so it is refunded.
	if err := j.awaitAttestations(ctx); err != nil {
		return err
	}
	u := j.usage
	in := SettleInput{
		JobID: j.in.JobID, PlanInput: j.planIn, Award: j.award, Verified: true, Usage: &u,
		Placed: j.placedAt, Started: j.execStart, Finished: j.execEnd,
	}
	if j.split() {
		in.Parts = j.partsWork()
	}
	st, err := Settle.Run(compensateCtx(ctx), in)
	if err != nil {
		return err
	}
	j.paid, j.refunded = st.Paid, st.Refunded
	j.cost.Paid, j.cost.Held = st.Paid, 0
	j.settled = true
	j.comp = append(j.comp, "settle-work")
	if err := j.attest(ctx, predicate.StageSettlement, nil, predicate.Settlement{
		Header: j.header(), Paid: st.Paid, Refunded: st.Refunded, Currency: st.Currency, Record: rawOrNull(st.Record),
		Reason: "work done: settled after " + workDoneCause(cause),
	}, nil); err != nil {
		j.log.Info("settlement attestation failed", "job_id", j.in.JobID, "error", err, "cause", cause)
	}
	return nil
}

// workDoneCause names why a job that executed did not settle normally.
func workDoneCause(err error) string {
	var f *failure
	if errors.As(err, &f) {
		return f.class
	}
	return ClassInternal
}

func (j *job) negotiate(ctx workflow.Context) error {
	j.enter(ctx, StageNegotiate)
	var award NegotiateOutput
	var err error
	if j.layout >= layoutAgentBuyer && j.plan.AgentBuyer {
		if award, err = j.negotiateAgent(ctx); err != nil {
			return err
		}
	} else if j.layout >= layoutBatchClearing && j.plan.Batch {
		if award, err = j.negotiateBatch(ctx); err != nil {
			return err
		}
	} else if award, err = control(ctx, j.layout, Negotiate, NegotiateInput{JobID: j.in.JobID, PlanInput: j.planIn}, 5*time.Minute); err != nil {
		return classify(ctx, err, ClassNoOffers)
	}
	if j.layout < layoutProviderQueues {
		// An upgraded negotiator may name a queue; this job's layout
		// predates routing by it.
		award.Queue = ""
	}
	if len(award.Parts) > 0 && j.layout < layoutSplit {
		return fail(ClassNoOffers, fmt.Errorf("awarded in %d parts, but this job's layout (%d) runs a job on one provider", len(award.Parts), j.layout))
	}
	j.award = award
	j.cost.Price, j.cost.Currency, j.cost.PriceExplanation = award.Price, award.Currency, explainAward(award)
	err = j.attest(ctx, predicate.StageNegotiation, nil, predicate.Negotiation{
		Header: j.header(), Provider: award.Provider, Pool: award.Pool, Runtime: award.Runtime,
		Price: award.Price, Currency: award.Currency, Record: rawOrNull(award.Record), Parts: negotiatedParts(award),
	}, nil)
	if j.byRef() {
		// The record (every offer and bid) is evidence for the attestation
		// alone: later inputs carry the award without it.
		j.award.Record = nil
	}
	return err
}

// place reserves and holds escrow; from here on failures compensate.
func (j *job) place(ctx workflow.Context) error {
	j.enter(ctx, StagePlace)
	pl, err := control(ctx, j.layout, Place, PlaceInput{
		JobID: j.in.JobID, Tenant: j.plan.Tenant, PlanInput: j.planIn, Award: j.award,
	}, 2*time.Minute)
	if err != nil {
		return classify(ctx, err, ClassInternal)
	}
	j.placement = pl
	j.placedAt = workflow.Now(ctx)
	j.cost.Held = pl.Held
	if j.layout >= layoutSignWatched && j.providerSigns(predicate.StagePlacement) {
		return j.placeSigned(ctx)
	}
	var parts []predicate.SignedPart
	switch {
	case j.split() && j.layout >= layoutSignWatched:
		if parts, err = j.placePartsSigned(ctx); err != nil {
			return err
		}
	case j.split():
		if parts, err = j.placeParts(ctx, pl); err != nil {
			return err
		}
	}
	pred := j.placementPredicate()
	pred.Parts = parts
	if j.layout >= layoutSignWatched {
		pred.Failovers = j.failovers
	}
	return j.attest(ctx, predicate.StagePlacement, nil, pred, nil)
}

// placementPredicate is the placement statement of the job's award; from
// layout 11 it says when the escrow was held.
func (j *job) placementPredicate() predicate.Placement {
	pl := j.placement
	p := predicate.Placement{
		Header: j.header(), Provider: j.award.Provider, Pool: j.award.Pool, Node: pl.Node,
		Reservation: pl.Reservation, HoldID: pl.HoldID, Held: pl.Held, Currency: pl.Currency, Record: rawOrNull(pl.Record),
		Approval: j.approvedBy,
	}
	if j.layout >= layoutSignWatched {
		p.At = j.placedAt.UTC()
	}
	return p
}

// placeSigned has the awarded provider agent accept the placement before
// it is attested (layout 11). A provider lost first is failed over: the
// replacement accepts a placement on its own pool that names the
// failovers.
func (j *job) placeSigned(ctx workflow.Context) error {
	previous, err := j.previousDigest(ctx)
	if err != nil {
		return err
	}
	for {
		pred := j.placementPredicate()
		pred.Failovers = j.failovers
		b, err := json.Marshal(pred)
		if err != nil {
			return fail(ClassInternal, fmt.Errorf("encode placement predicate: %w", err))
		}
		in := AttestInput{JobID: j.in.JobID, Stage: predicate.StagePlacement, Previous: previous, Predicate: b}
		signed, err := j.signOn(ctx, j.award, &in)
		var lost *lostProvider
		if errors.As(err, &lost) {
			if err := j.failover(ctx, lost); err != nil {
				return err
			}
			j.movePlacement()
			continue
		}
		if err != nil {
			return classify(ctx, fmt.Errorf("provider %s accepts the placement: %w", j.award.Provider, err), ClassExecution)
		}
		return j.attestSigned(ctx, in, signed)
	}
}

// movePlacement places the job on its award's pool after a failover
// before the placement was attested (layout 11): the escrow's hold stays.
func (j *job) movePlacement() {
	moved := PlacementOn(j.in.JobID, j.award, j.placement.Hold)
	j.placement.Reservation, j.placement.Node, j.placement.Record = moved.Reservation, moved.Node, moved.Record
}

// execute runs the tasks (batch.go) and attests what ran.
func (j *job) execute(ctx workflow.Context) error {
	j.enter(ctx, StageExecute)
	j.execStart = workflow.Now(ctx)
	if err := j.runTasks(ctx); err != nil {
		return err
	}
	if j.layout >= layoutSignWatched && (j.split() || j.providerSigns(predicate.StageExecution)) {
		return j.executeSigned(ctx)
	}
	end := workflow.Now(ctx)
	pred := j.executionPredicate()
	if !j.byRef() {
		pred.Tasks = j.tasks
	}
	if j.split() {
		// Work counts as done (execEnd: settled, not refunded, on a later
		// failure) only once every provider has signed its part.
		var err error
		if pred.Parts, err = j.executeParts(ctx); err != nil {
			return err
		}
	}
	j.execEnd = end
	return j.attest(ctx, predicate.StageExecution, j.outputSubjects(), pred, j.results)
}

// executionPredicate is the execution statement of the job's award and
// its failovers so far.
func (j *job) executionPredicate() predicate.Execution {
	return predicate.Execution{Header: j.header(), Runtime: j.award.Runtime, Provider: j.award.Provider, Failovers: j.failovers}
}

// outputSubjects are the outputs as attestation subjects (layout 0; in
// layout 1 the attest activity reads them from the sealed results).
func (j *job) outputSubjects() []Subject {
	if j.byRef() {
		return nil
	}
	var subjects []Subject
	for _, t := range j.plan.Tasks {
		for _, o := range j.tasks[t.Name].Outputs {
			subjects = append(subjects, Subject{Name: t.Name + ":" + o.Path, Digest: "sha256:" + o.SHA256})
		}
	}
	return subjects
}

// verify runs the acceptance tests (layout 1 skips the activity when the
// spec has none) and attests the outcome.
func (j *job) verify(ctx workflow.Context) (passed bool, err error) {
	j.enter(ctx, StageVerify)
	ver := VerifyOutput{Passed: true}
	if !j.byRef() || j.plan.HasTests {
		in := VerifyInput{JobID: j.in.JobID, PlanInput: j.planIn, Award: j.award, Results: j.results}
		if !j.byRef() {
			in.Tasks = j.tasks
		}
		if j.layout >= layoutStopTests {
			defer j.stopTests(ctx, &err)
		}
		if ver, err = Verify.Run(verifyCtx(ctx), in); err != nil {
			return false, classify(ctx, err, ClassVerification)
		}
	}
	j.tests = ver.Tests
	return ver.Passed, j.attest(ctx, predicate.StageVerification, j.outputSubjects(), predicate.Verification{
		Header: j.header(), Passed: ver.Passed, Tests: ver.Tests, SpotCheck: j.spot,
	}, j.results)
}

// stopTests is the compensation for a failed or cancelled verification:
// its test containers must not run on, unpaid.
func (j *job) stopTests(ctx workflow.Context, err *error) {
	if *err == nil || j.plan.Tests == 0 {
		return
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if _, cerr := StopTests.Run(compensateCtxExec(dctx, TaskQueueExecution), StopTestsInput{
		JobID: j.in.JobID, Runtime: j.award.Runtime, Tests: j.plan.Tests,
	}); cerr != nil {
		*err = errors.Join(*err, fmt.Errorf("compensation stop tests: %w", cerr))
		return
	}
	j.comp = append(j.comp, "stop-tests")
}

// settle pays (or refunds, per the SLA) even when verification failed, so
// escrow never stays open; the job then ends as failed through j.tests.
// Money moves only once every earlier stage's attestation is logged.
func (j *job) settle(ctx workflow.Context, verified bool) error {
	j.enter(ctx, StageSettle)
	if err := j.awaitAttestations(ctx); err != nil {
		return fail(ClassInternal, err)
	}
	in := SettleInput{JobID: j.in.JobID, PlanInput: j.planIn, Award: j.award, Verified: verified,
		Placed: j.placedAt, Started: j.execStart, Finished: j.execEnd}
	if j.byRef() {
		u := j.usage
		in.Usage = &u
	} else {
		in.Tasks = j.tasks
	}
	if j.split() {
		in.Parts = j.partsWork()
	}
	st, err := control(ctx, j.layout, Settle, in, 2*time.Minute)
	if err != nil {
		return classify(ctx, err, ClassInternal)
	}
	j.paid, j.refunded = st.Paid, st.Refunded
	j.cost.Paid, j.cost.Held = st.Paid, 0
	j.settled = true
	if err := j.attest(ctx, predicate.StageSettlement, nil, predicate.Settlement{
		Header: j.header(), Paid: st.Paid, Refunded: st.Refunded, Currency: st.Currency, Record: rawOrNull(st.Record),
	}, nil); err != nil {
		// Settled money is final: a lost attestation must not refund it.
		j.log.Info("settlement attestation failed", "job_id", j.in.JobID, "error", err)
	}
	return nil
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
		Currency: j.cost.Currency, Tasks: listTasks(j.tasks), Tests: j.tests, Attestations: j.atts,
		Stages: j.stages, Compensated: j.comp, Published: j.published,
		Failovers: j.failovers, SpotCheck: j.spot, PriceExplanation: explainAward(j.award), Parts: j.award.Parts,
	}
	if j.byRef() {
		res.TaskCounts = countTasks(j.tasks)
	}
	res.Status, res.Class, res.Error = j.outcome(ctx, err)
	if res.Status == StatusSettled {
		res.Stage = StageDone
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

// outcome is the job's status, failure class and error message.
func (j *job) outcome(ctx workflow.Context, err error) (status, class, msg string) {
	var f *failure
	switch {
	case err == nil && testsFailed(j.tests):
		return StatusFailed, ClassVerification, "acceptance tests failed"
	case err == nil:
		return StatusSettled, "", ""
	case j.cancelled || errors.As(err, &f) && f.class == ClassCancelled || ctx.Err() != nil:
		return StatusCancelled, ClassCancelled, err.Error()
	case errors.As(err, &f):
		return StatusFailed, f.class, err.Error()
	default:
		return StatusFailed, ClassInternal, err.Error()
	}
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
		if class, ok := errClasses[app.Type()]; ok {
			return fail(class, err)
		}
	}
	if def == ClassInvalidSpec || def == ClassPolicy || def == ClassNoOffers {
		// The stage itself broke (timeouts, crashes), not the job's input.
		return fail(ClassInternal, err)
	}
	return fail(def, err)
}

// errClasses maps the activities' application error types to classes.
var errClasses = map[string]string{
	ErrTypeInvalidSpec:  ClassInvalidSpec,
	ErrTypePolicy:       ClassPolicy,
	ErrTypeNoOffers:     ClassNoOffers,
	ErrTypeExecution:    ClassExecution,
	ErrTypeInsufficient: ClassFunds,
	ErrTypePublish:      ClassPublish,
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

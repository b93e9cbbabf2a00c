package workflows

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// BatchSize is the most tasks one workflow execution runs (layout 1). A job
// with more runs them in child workflows (JobBatch) of BatchSize tasks in
// topological order, so that no execution's history nears Temporal's
// warning thresholds (10,240 events, 10 MiB): a task attempt costs about 6
// events and 1.5 KB, so a batch of 500 single-attempt tasks about 3,000
// events, and the job itself a handful per batch. Time adds no events: a
// long task's waits are retries of one activity, which history does not
// record one by one, so a job that runs for days needs no continue-as-new.
const BatchSize = 500

// maxInFlight caps the task attempts one execution runs at once, well under
// Temporal's limit of 2,000 pending activities per execution.
const maxInFlight = 256

// runner runs a set of tasks (a whole job, or one batch of it) as a DAG:
// each task in its own workflow goroutine, waiting for its dependencies; the
// first task to fail for good cancels the rest, and the attempts still
// running are stopped before run returns.
type runner struct {
	jobID    string
	layout   workflow.Version
	plan     PlanInput
	award    NegotiateOutput
	tasks    map[string]TaskStatus      // this set's tasks (the job's own map in-process)
	upstream map[string]string          // final states of dependencies outside the set
	running  map[string]NegotiateOutput // run ID -> the award it runs under, started and not known finished
	inFlight int
	comp     []string
	// failover (layout 6, a provider agent's queue): a task that its
	// provider does not pick up is checked for loss, and a lost provider
	// ends the run with a *lostProvider error.
	failover bool
	// runs numbers each task's runs across failovers and spot checks
	// (layout 6); nil: the run number is the attempt.
	runs map[string]int
}

// lostProvider ends a runner's run when its provider is gone: the job
// abandons it (failover) instead of failing the task.
type lostProvider struct {
	provider string
	runID    string
	signing  string // or the stage it had to sign (layout 11)
	reason   string
}

func (e *lostProvider) Error() string {
	if e.runID == "" && e.signing != "" {
		return "provider " + e.provider + " lost before it signed the " + e.signing + ": " + e.reason
	}
	return "provider " + e.provider + " lost during run " + e.runID + ": " + e.reason
}

// run runs order (topologically sorted). Its stop compensation runs on any
// failure or cancellation, on a disconnected context.
func (r *runner) run(ctx workflow.Context, order []PlanTask) (err error) {
	r.running = map[string]NegotiateOutput{}
	defer r.stopRunning(ctx, &err)
	ectx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	in := map[string]bool{}
	for _, t := range order {
		in[t.Name] = true
	}
	finished := map[string]bool{}
	var firstErr error
	for _, t := range order {
		workflow.Go(ectx, func(gctx workflow.Context) {
			defer func() { finished[t.Name] = true }()
			if err := r.awaitDeps(gctx, t, in, finished); err != nil {
				r.set(t.Name, func(s *TaskStatus) { s.State = TaskCancelled })
				return
			}
			if d, ok := r.failedDep(t); ok {
				r.set(t.Name, func(s *TaskStatus) { s.State, s.Reason = TaskSkipped, "dependency "+d+" did not succeed" })
				return
			}
			if err := r.runTask(gctx, t); err != nil {
				if firstErr == nil {
					firstErr = err
				}
				cancel()
			}
		})
	}
	if err := workflow.Await(ctx, func() bool { return len(finished) == len(order) }); err != nil {
		return fail(ClassCancelled, errors.New("cancelled during execution"))
	}
	if firstErr != nil {
		return firstErr
	}
	if ctx.Err() != nil {
		return fail(ClassCancelled, errors.New("cancelled during execution"))
	}
	return nil
}

func (r *runner) awaitDeps(ctx workflow.Context, t PlanTask, in, finished map[string]bool) error {
	return workflow.Await(ctx, func() bool {
		for _, d := range t.DependsOn {
			if in[d] && !finished[d] {
				return false
			}
		}
		return true
	})
}

// failedDep names a dependency that did not succeed.
func (r *runner) failedDep(t PlanTask) (string, bool) {
	for _, d := range t.DependsOn {
		state, ok := r.upstream[d]
		if s, in := r.tasks[d]; in {
			state, ok = s.State, true
		}
		if !ok || state != TaskSucceeded {
			return d, true
		}
	}
	return "", false
}

func (r *runner) set(name string, f func(*TaskStatus)) {
	s := r.tasks[name]
	f(&s)
	r.tasks[name] = s
}

// stopRunning is the compensation for started attempts: stop every run not
// known to be finished.
func (r *runner) stopRunning(ctx workflow.Context, err *error) {
	if *err == nil || len(r.running) == 0 {
		return
	}
	var lost *lostProvider
	if errors.As(*err, &lost) {
		// Nobody serves the lost provider's queue: a stop would wait
		// there for a day. Its runs are abandoned, and unpaid; a split
		// job's runs on other providers are stopped below.
		for _, id := range sortedKeys(r.running) {
			if r.running[id].Provider == lost.provider {
				r.comp = append(r.comp, "abandon:"+id)
				delete(r.running, id)
			}
		}
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	var errs []error
	for _, id := range sortedKeys(r.running) {
		a := r.running[id]
		if _, cerr := StopTask.Run(compensateCtxExec(dctx, execQueue(a)), StopTaskInput{RunID: id, Runtime: a.Runtime}); cerr != nil {
			errs = append(errs, cerr)
			continue
		}
		delete(r.running, id)
		r.comp = append(r.comp, "stop:"+id)
	}
	if len(errs) > 0 {
		*err = errors.Join(append([]error{*err}, errs...)...)
	}
}

// runTask runs one task with the spec's retry policy: each attempt is a new
// container (run ID <job>.<task>.<attempt>), backoff between attempts in
// workflow time.
func (r *runner) runTask(ctx workflow.Context, t PlanTask) error {
	attempts := max(t.Attempts, 1)
	backoff := t.Backoff
	var last error
	for attempt := 1; attempt <= attempts; attempt++ {
		if attempt > 1 && backoff > 0 {
			if err := workflow.Sleep(ctx, backoff); err != nil {
				r.set(t.Name, func(s *TaskStatus) { s.State = TaskCancelled })
				return fail(ClassCancelled, errors.New("cancelled"))
			}
			backoff *= 2
			if t.MaxBackoff > 0 && backoff > t.MaxBackoff {
				backoff = t.MaxBackoff
			}
		}
		out, err := r.attempt(ctx, t, attempt)
		if err == nil {
			if out.State == "exited" && out.ExitCode == 0 {
				r.set(t.Name, func(s *TaskStatus) { s.State = TaskSucceeded })
				return nil
			}
			last = fmt.Errorf("task %s attempt %d: %s exit %d %s", t.Name, attempt, out.State, out.ExitCode, out.Reason)
			r.set(t.Name, func(s *TaskStatus) { s.State = TaskFailed })
			continue
		}
		if ctx.Err() != nil || temporal.IsCanceledError(err) {
			r.set(t.Name, func(s *TaskStatus) { s.State = TaskCancelled })
			return fail(ClassCancelled, errors.New("cancelled"))
		}
		var lost *lostProvider
		if errors.As(err, &lost) {
			r.set(t.Name, func(s *TaskStatus) { s.State, s.Reason = TaskCancelled, lost.Error() })
			return lost
		}
		last = fmt.Errorf("task %s attempt %d: %w", t.Name, attempt, err)
		r.set(t.Name, func(s *TaskStatus) { s.State, s.Reason = TaskFailed, errMessage(err) })
	}
	return fail(ClassExecution, last)
}

// attempt runs one attempt and records its outcome in the task's status.
func (r *runner) attempt(ctx workflow.Context, t PlanTask, attempt int) (WaitTaskOutput, error) {
	if err := workflow.Await(ctx, func() bool { return r.inFlight < maxInFlight }); err != nil {
		return WaitTaskOutput{}, err
	}
	r.inFlight++
	defer func() { r.inFlight-- }()
	runID := RunID(r.jobID, t.Name, r.runNo(t.Name, attempt))
	r.set(t.Name, func(s *TaskStatus) {
		s.State, s.Attempt, s.RunID, s.Reason, s.ExitCode = TaskRunning, attempt, runID, "", 0
	})
	r.running[runID] = r.awardOf(t.Name)
	out, err := r.startAndWait(ctx, t, attempt, runID)
	if err != nil {
		return out, err
	}
	delete(r.running, runID) // the waiting activity collected and cleaned it up
	r.set(t.Name, func(s *TaskStatus) {
		s.ExitCode, s.Reason, s.Usage, s.Outputs = out.ExitCode, out.Reason, out.Usage, out.Outputs
		s.ImageDigest = out.ImageDigest
		if !out.StartedAt.IsZero() {
			st, fin := out.StartedAt, out.FinishedAt
			s.StartedAt, s.FinishedAt = &st, &fin
		}
	})
	return out, nil
}

// startAndWait is one RunTask (layout 1), or StartTask then WaitTask.
func (r *runner) startAndWait(ctx workflow.Context, t PlanTask, attempt int, runID string) (WaitTaskOutput, error) {
	if r.failover {
		return r.runOnProvider(ctx, t, attempt, runID)
	}
	if r.layout >= layoutByRef {
		return RunTask.Run(waitCtx(ctx, execQueue(r.award), t, DefaultWaitWindow), RunTaskInput{
			JobID: r.jobID, Task: t.Name, Attempt: attempt, RunID: runID, PlanInput: r.plan,
			Award: awardFor(r.award, []PlanTask{t}), Window: DefaultWaitWindow,
		})
	}
	started, err := StartTask.Run(startCtx(ctx, execQueue(r.award)), StartTaskInput{
		JobID: r.jobID, Task: t.Name, Attempt: attempt, RunID: runID, PlanInput: r.plan, Award: r.award,
	})
	if err != nil {
		return WaitTaskOutput{}, err
	}
	out, err := WaitTask.Run(waitCtx(ctx, execQueue(r.award), t, DefaultWaitWindow), WaitTaskInput{
		JobID: r.jobID, Task: t.Name, RunID: runID, Runtime: r.award.Runtime, Window: DefaultWaitWindow,
	})
	out.ImageDigest = started.ImageDigest
	return out, err
}

// seal stores the set's results and returns their digest (layout 1).
func (r *runner) seal(ctx workflow.Context) (string, error) {
	out, err := SealResults.RunLocal(localCtx(ctx, time.Minute), SealResultsInput{JobID: r.jobID, Tasks: r.tasks})
	if err != nil {
		return "", fail(ClassInternal, fmt.Errorf("seal results: %w", err))
	}
	return out.Ref, nil
}

// runTasks runs the job's tasks: in this execution up to BatchSize tasks
// (and always in layout 0), else in JobBatch children.
func (j *job) runTasks(ctx workflow.Context) error {
	if j.byRef() && len(j.plan.Tasks) > BatchSize {
		return j.runBatches(ctx)
	}
	if j.layout >= layoutFailover {
		return j.runTasksFailover(ctx)
	}
	r := &runner{jobID: j.in.JobID, layout: j.layout, plan: j.planIn, award: j.award, tasks: j.tasks}
	err := r.run(ctx, j.plan.Tasks)
	j.comp = append(j.comp, r.comp...)
	if err != nil || !j.byRef() {
		return err
	}
	ref, err := r.seal(ctx)
	if err != nil {
		return err
	}
	j.results, j.usage = []string{ref}, sumUsage(j.tasks)
	return nil
}

// runBatches runs the tasks in children of BatchSize tasks in topological
// order; a batch starts once every batch it depends on has finished, so
// independent batches run side by side. The first failed batch cancels the
// rest; each child stops its own running attempts.
func (j *job) runBatches(ctx workflow.Context) error {
	batches := chunk(j.plan.Tasks, BatchSize)
	deps := batchDeps(batches)
	done := make([]bool, len(batches))
	refs := make([]string, len(batches))
	var usage Usage
	ectx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	var firstErr error
	for i, b := range batches {
		workflow.Go(ectx, func(gctx workflow.Context) {
			defer func() { done[i] = true }()
			if err := workflow.Await(gctx, func() bool { return allDone(done, deps[i]) }); err != nil {
				return
			}
			res, err := j.runBatch(gctx, i, b)
			if err == nil && res.Failure != "" {
				err = fail(res.Class, errors.New(res.Failure))
			}
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				cancel()
				return
			}
			refs[i] = res.Ref
			usage = usage.Add(res.Usage)
		})
	}
	if err := workflow.Await(ctx, func() bool { return !slices.Contains(done, false) }); err != nil || ctx.Err() != nil {
		return fail(ClassCancelled, errors.New("cancelled during execution"))
	}
	if firstErr != nil {
		return firstErr
	}
	j.results, j.usage = refs, usage
	return nil
}

// runBatch runs batch i as a child workflow and merges its results.
func (j *job) runBatch(ctx workflow.Context, i int, tasks []PlanTask) (BatchResult, error) {
	in := BatchInput{JobID: j.in.JobID, PlanInput: j.planIn, Award: awardFor(j.award, tasks), Tasks: tasks, Upstream: map[string]string{}}
	for _, t := range tasks {
		for _, d := range t.DependsOn {
			if s, ok := j.tasks[d]; ok && s.State != TaskPending {
				in.Upstream[d] = s.State
			}
		}
	}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:          j.in.JobID + ".batch." + strconv.Itoa(i),
		TaskQueue:           TaskQueueControl,
		WaitForCancellation: true, // the child stops its containers before the job compensates
		ParentClosePolicy:   enums.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
	})
	var res BatchResult
	err := workflow.ExecuteChildWorkflow(cctx, BatchWorkflowName, in).Get(ctx, &res)
	for name, s := range res.Tasks {
		j.tasks[name] = s
	}
	j.comp = append(j.comp, res.Compensated...)
	if err != nil {
		return res, classify(ctx, err, ClassExecution)
	}
	return res, nil
}

// JobBatch is the child workflow that runs one batch of a large job's tasks
// (layout 1). Its result carries the tasks' statuses, the digest of their
// sealed results, and the failure, if any, as data.
func JobBatch(ctx workflow.Context, in BatchInput) (BatchResult, error) {
	r := &runner{
		jobID: in.JobID, layout: layoutLatest, plan: in.PlanInput, award: in.Award,
		tasks: map[string]TaskStatus{}, upstream: in.Upstream,
	}
	for _, t := range in.Tasks {
		r.tasks[t.Name] = TaskStatus{State: TaskPending}
	}
	err := r.run(ctx, in.Tasks)
	res := BatchResult{Tasks: brief(r.tasks), Usage: sumUsage(r.tasks), Compensated: r.comp}
	if err != nil {
		var f *failure
		res.Class, res.Failure = ClassInternal, err.Error()
		if errors.As(err, &f) {
			res.Class = f.class
		}
		return res, nil
	}
	if res.Ref, err = r.seal(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// maxReason bounds a task's failure reason in a batch's result.
const maxReason = 512

// brief keeps what the job needs of each task's status to schedule and
// report it; outputs, usage and times stay in the sealed results.
func brief(tasks map[string]TaskStatus) map[string]TaskStatus {
	out := make(map[string]TaskStatus, len(tasks))
	for name, t := range tasks {
		if len(t.Reason) > maxReason {
			t.Reason = t.Reason[:maxReason]
		}
		out[name] = TaskStatus{State: t.State, Attempt: t.Attempt, RunID: t.RunID, ExitCode: t.ExitCode, Reason: t.Reason}
	}
	return out
}

// awardFor is the award as the given tasks need it: the devices offered to
// them alone, so no input grows with the size of the whole job.
func awardFor(a NegotiateOutput, tasks []PlanTask) NegotiateOutput {
	if len(a.Devices) == 0 {
		return a
	}
	want := map[string]bool{}
	for _, t := range tasks {
		want[t.Name] = true
	}
	out := a
	out.Devices = nil
	for _, d := range a.Devices {
		if want[d.Task] {
			out.Devices = append(out.Devices, d)
		}
	}
	return out
}

// chunk splits tasks (topologically sorted) into consecutive batches.
func chunk(tasks []PlanTask, size int) [][]PlanTask {
	var out [][]PlanTask
	for len(tasks) > size {
		out = append(out, tasks[:size])
		tasks = tasks[size:]
	}
	return append(out, tasks)
}

// batchDeps lists, for each batch, the earlier batches its tasks depend on.
func batchDeps(batches [][]PlanTask) [][]int {
	where := map[string]int{}
	for i, b := range batches {
		for _, t := range b {
			where[t.Name] = i
		}
	}
	out := make([][]int, len(batches))
	for i, b := range batches {
		for _, t := range b {
			for _, d := range t.DependsOn {
				if k, ok := where[d]; ok && k != i && !slices.Contains(out[i], k) {
					out[i] = append(out[i], k)
				}
			}
		}
		sort.Ints(out[i])
	}
	return out
}

// allDone reports whether the batches listed are done.
func allDone(done []bool, which []int) bool {
	for _, k := range which {
		if !done[k] {
			return false
		}
	}
	return true
}

func sumUsage(tasks map[string]TaskStatus) Usage {
	var u Usage
	for _, name := range sortedKeys(tasks) { // a fixed order keeps float sums deterministic
		u = u.Add(tasks[name].Usage)
	}
	return u
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

package workflows

import (
	"context"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Activity is a typed reference to an activity: the name it is registered
// under and, in its type parameters, its one input and one output. The
// workflow calls it with Execute or ExecuteLocal and the worker binds the
// implementation with Register, so the compiler checks both sides against
// the same definition while the workflow still imports no implementation.
type Activity[I, O any] struct {
	Name string
}

// Execute schedules the activity on the task queue of ctx's activity options.
func (a Activity[I, O]) Execute(ctx workflow.Context, in I) Future[O] {
	return Future[O]{f: workflow.ExecuteActivity(ctx, a.Name, in)}
}

// ExecuteLocal runs the activity as a local activity in the workflow
// worker's process: no task-queue round trip, for cheap control steps.
func (a Activity[I, O]) ExecuteLocal(ctx workflow.Context, in I) Future[O] {
	return Future[O]{f: workflow.ExecuteLocalActivity(ctx, a.Name, in)}
}

// Run executes the activity and waits for its result.
func (a Activity[I, O]) Run(ctx workflow.Context, in I) (O, error) {
	return a.Execute(ctx, in).Get(ctx)
}

// RunLocal executes the activity locally and waits for its result.
func (a Activity[I, O]) RunLocal(ctx workflow.Context, in I) (O, error) {
	return a.ExecuteLocal(ctx, in).Get(ctx)
}

// Register binds fn as the activity's implementation on r.
func (a Activity[I, O]) Register(r worker.ActivityRegistry, fn func(context.Context, I) (O, error)) {
	r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: a.Name})
}

// Future is a pending activity result of type O.
type Future[O any] struct {
	f workflow.Future
}

// Get waits for the result.
func (f Future[O]) Get(ctx workflow.Context) (O, error) {
	var out O
	err := f.f.Get(ctx, &out)
	return out, err
}

// IsReady reports whether the result is available.
func (f Future[O]) IsReady() bool { return f.f.IsReady() }

// Register registers the job workflow, its batch child and the market
// clearing on w (the control task queue's worker).
func Register(w worker.WorkflowRegistry) {
	w.RegisterWorkflowWithOptions(Job, workflow.RegisterOptions{Name: JobWorkflowName})
	w.RegisterWorkflowWithOptions(JobBatch, workflow.RegisterOptions{Name: BatchWorkflowName})
	w.RegisterWorkflowWithOptions(MarketClearing, workflow.RegisterOptions{Name: ClearingWorkflowName})
}

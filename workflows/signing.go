package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/accordmesh/accord/provenance/predicate"
)

// Watched signatures (layout 11). A provider agent signs its placement
// acceptance and its execution statement on its own queue; from layout 11
// the workflow waits for that signature as it waits for a task run, and a
// provider lost before it signs is failed over rather than waited on for
// the signing activity's 24 h. Signatures are made before their stage is
// queued for logging, so that the stage names the provider that signed.

// executeSigned has the providers sign the execution (a whole job's
// provider, or each part's) before it is attested, and only then counts
// the work as done. A provider lost first is failed over, and what it ran
// runs again on its replacement.
func (j *job) executeSigned(ctx workflow.Context) error {
	previous, err := j.previousDigest(ctx)
	if err != nil {
		return err
	}
	if j.split() {
		return j.executePartsSigned(ctx, previous)
	}
	for {
		end := workflow.Now(ctx)
		b, err := json.Marshal(j.executionPredicate())
		if err != nil {
			return fail(ClassInternal, fmt.Errorf("encode execution predicate: %w", err))
		}
		in := AttestInput{JobID: j.in.JobID, Stage: predicate.StageExecution, Previous: previous, Predicate: b, Results: j.results}
		signed, err := j.signOn(ctx, j.award, &in)
		var lost *lostProvider
		if errors.As(err, &lost) {
			if err := j.failover(ctx, lost); err != nil {
				return err
			}
			if err := j.runTasks(ctx); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return classify(ctx, fmt.Errorf("provider %s signs the execution: %w", j.award.Provider, err), ClassExecution)
		}
		j.execEnd = end
		return j.attestSigned(ctx, in, signed)
	}
}

// executePartsSigned has each part's provider sign the execution of its
// own tasks, then attests the operator's statement listing them.
func (j *job) executePartsSigned(ctx workflow.Context, previous string) error {
	for {
		end := workflow.Now(ctx)
		parts, lost, err := j.signPartsWatched(ctx, predicate.StageExecution, previous, j.executionPart, j.results)
		if err != nil {
			return err
		}
		if lost == nil {
			j.execEnd = end
			pred := j.executionPredicate()
			pred.Parts = parts
			return j.attest(ctx, predicate.StageExecution, nil, pred, j.results)
		}
		if err := j.rerunPart(ctx, lost); err != nil {
			return err
		}
	}
}

// rerunPart fails over the part of a provider lost before it signed its
// execution and runs that part's tasks again on the replacement, when no
// other part's task depends on them: the other parts' providers sign over
// the results they read. Otherwise the job fails.
func (j *job) rerunPart(ctx workflow.Context, lost *lostProvider) error {
	i := slices.IndexFunc(j.award.Parts, func(p AwardPart) bool { return p.Provider == lost.provider })
	if i < 0 {
		return fail(ClassInternal, fmt.Errorf("%w: no part of the job runs on %s", lost, lost.provider))
	}
	mine := j.award.Parts[i].Tasks
	again := j.rerun(mine)
	for _, t := range again {
		if !slices.Contains(mine, t.Name) {
			return fail(ClassExecution, fmt.Errorf("%w; task %s of another part depends on its tasks, so they cannot run again", lost, t.Name))
		}
	}
	if _, err := j.failoverPart(ctx, lost); err != nil {
		return err
	}
	for _, t := range again {
		j.tasks[t.Name] = TaskStatus{State: TaskPending}
	}
	if err := j.runParts(ctx, again); err != nil {
		return err
	}
	ref, err := j.sealPart(ctx, j.award.Parts[i])
	if err != nil {
		return err
	}
	j.results[i], j.usage = ref, sumUsage(j.tasks)
	return nil
}

// placePartsSigned has each part's provider accept its part of the
// placement; a part whose provider is lost first is failed over, and its
// replacement accepts it.
func (j *job) placePartsSigned(ctx workflow.Context) ([]predicate.SignedPart, error) {
	previous, err := j.previousDigest(ctx)
	if err != nil {
		return nil, err
	}
	for {
		parts, lost, err := j.signPartsWatched(ctx, predicate.StagePlacement, previous, j.placementPart(j.placement), nil)
		if err != nil || lost == nil {
			return parts, err
		}
		if _, err := j.failoverPart(ctx, lost); err != nil {
			return nil, err
		}
		j.movePlacement()
	}
}

// signPartsWatched has each part's provider sign its own statement of
// stage (pred builds it; results, when set, are each part's sealed
// results), chained to previous and awaited as task runs are. It returns
// the signed parts, or the first provider lost before it signed. A
// provider that signed before keeps its first envelope, so signing the
// unchanged parts again after a failover gives the same parts.
func (j *job) signPartsWatched(ctx workflow.Context, stage, previous string, pred func(p AwardPart) any, results []string) ([]predicate.SignedPart, *lostProvider, error) {
	ins, err := j.partInputs(stage, previous, pred, results)
	if err != nil {
		return nil, nil, err
	}
	futures := make([]Future[SignedStage], len(ins))
	for i, in := range ins {
		futures[i] = SignStage.Execute(signCtx(ctx, j.award.Parts[i].Queue), in)
	}
	parts := make([]predicate.SignedPart, len(futures))
	var first *lostProvider
	var failed error
	for i, f := range futures {
		p := j.award.Parts[i]
		signed, err := f.Get(ctx)
		signed, err = j.awaitSign(ctx, j.award.Part(i), ins[i], stage+" part", signed, err)
		var lost *lostProvider
		switch {
		case errors.As(err, &lost):
			if first == nil {
				first = lost
			}
		case err != nil && failed == nil:
			failed = classify(ctx, fmt.Errorf("provider %s signs its %s part: %w", p.Provider, stage, err), ClassExecution)
		}
		parts[i] = predicate.SignedPart{Provider: p.Provider, Tasks: p.Tasks, Envelope: json.RawMessage(signed.Envelope)}
	}
	if failed != nil {
		return nil, nil, failed
	}
	if first != nil {
		return nil, first, nil
	}
	return parts, nil, nil
}

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
		b, err := json.Marshal(predicate.Execution{Header: j.header(), Runtime: j.award.Runtime, Provider: j.award.Provider, Failovers: j.failovers})
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
		parts, lost, err := j.signPartsWatched(ctx, predicate.StageExecution, previous, func(p AwardPart) any {
			return predicate.Execution{Header: j.header(), Provider: p.Provider, Runtime: p.Runtime, PartTasks: p.Tasks}
		}, j.results)
		if err != nil {
			return err
		}
		if lost == nil {
			j.execEnd = end
			return j.attest(ctx, predicate.StageExecution, nil, predicate.Execution{Header: j.header(),
				Runtime: j.award.Runtime, Provider: j.award.Provider, Failovers: j.failovers, Parts: parts}, j.results)
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
		pl := j.placement
		parts, lost, err := j.signPartsWatched(ctx, predicate.StagePlacement, previous, func(p AwardPart) any {
			return predicate.Placement{Header: j.header(), Provider: p.Provider, Pool: p.Pool, HoldID: pl.HoldID,
				Held: pl.Held, Currency: pl.Currency, PartTasks: p.Tasks}
		}, nil)
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
	ins := make([]AttestInput, len(j.award.Parts))
	futures := make([]Future[SignedStage], len(j.award.Parts))
	for i, p := range j.award.Parts {
		b, err := json.Marshal(pred(p))
		if err != nil {
			return nil, nil, fail(ClassInternal, fmt.Errorf("encode %s part of %s: %w", stage, p.Provider, err))
		}
		ins[i] = AttestInput{JobID: j.in.JobID, Stage: stage, Previous: previous, Predicate: b,
			SpecDigest: j.plan.DocumentDigest, Provider: p.Provider}
		if results != nil {
			ins[i].Results = []string{results[i]}
		}
		futures[i] = SignStage.Execute(signCtx(ctx, p.Queue), ins[i])
	}
	parts := make([]predicate.SignedPart, len(futures))
	var first *lostProvider
	var failed error
	for i, f := range futures {
		p := j.award.Parts[i]
		signed, err := f.Get(ctx)
		for waits := 1; err != nil && unpicked(err); waits++ {
			if err = providerLost(ctx, j.in.JobID, j.award.Part(i), &lostProvider{provider: p.Provider, signing: stage + " part"}, waits); err == nil {
				signed, err = SignStage.Run(signCtx(ctx, p.Queue), ins[i])
			}
		}
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

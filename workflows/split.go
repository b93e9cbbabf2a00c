package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/accordmesh/accord/provenance/predicate"
)

// Split jobs (layout 10). A spec with placement.split may be awarded in
// parts, one per provider agent (NegotiateOutput.Parts). Each task runs on
// its part's agent and reads the outputs of dependencies another part ran
// from the artifact store; each provider signs its own placement
// acceptance and execution statement, which the operator's stage
// statements list; settlement pays each part for its own tasks.

// split reports whether the job runs in parts.
func (j *job) split() bool { return j.layout >= layoutSplit && len(j.award.Parts) > 0 }

// awardOf is the award task runs under: its part's in a split job.
func (r *runner) awardOf(task string) NegotiateOutput {
	if i := r.award.PartOf(task); i >= 0 {
		return r.award.Part(i)
	}
	return r.award
}

// upstreamOutputs are the outputs of t's dependencies that another part of
// a split job collected: its agent fetches them before t starts.
func (r *runner) upstreamOutputs(t PlanTask) map[string][]OutputArtifact {
	if len(r.award.Parts) == 0 {
		return nil
	}
	mine := r.award.PartOf(t.Name)
	var out map[string][]OutputArtifact
	for _, d := range t.DependsOn {
		s, ok := r.tasks[d]
		if !ok || len(s.Outputs) == 0 || r.award.PartOf(d) == mine {
			continue
		}
		if out == nil {
			out = map[string][]OutputArtifact{}
		}
		out[d] = s.Outputs
	}
	return out
}

// runSplit runs a split job's tasks, each on its part's agent, and seals
// each part's results.
func (j *job) runSplit(ctx workflow.Context) error {
	for _, t := range j.plan.Tasks {
		j.tasks[t.Name] = TaskStatus{State: TaskPending}
	}
	if err := j.runParts(ctx, j.plan.Tasks); err != nil {
		return err
	}
	return j.sealParts(ctx)
}

// runParts runs order (pending tasks, in plan order) on their parts'
// agents. When a part's provider is lost, that part is renegotiated and
// its tasks, with every task downstream of them, run again; the other
// parts' finished tasks stand.
func (j *job) runParts(ctx workflow.Context, order []PlanTask) error {
	for {
		r := j.newRunner(j.award, j.tasks)
		err := r.run(ctx, order)
		j.comp = append(j.comp, r.comp...)
		var lost *lostProvider
		if !errors.As(err, &lost) {
			return err
		}
		moved, err := j.failoverPart(ctx, lost)
		if err != nil {
			return err
		}
		order = j.rerun(moved)
		for _, t := range order {
			j.tasks[t.Name] = TaskStatus{State: TaskPending}
		}
	}
}

// rerun is what runs again after a part failover, in plan order: the moved
// part's tasks, every task downstream of them, and every task that did
// not succeed (cancelled when the loss stopped the run).
func (j *job) rerun(moved []string) []PlanTask {
	again := map[string]bool{}
	for _, name := range moved {
		again[name] = true
	}
	var out []PlanTask
	for _, t := range j.plan.Tasks { // topological: dependencies first
		if again[t.Name] || j.tasks[t.Name].State != TaskSucceeded || slices.ContainsFunc(t.DependsOn, func(d string) bool { return again[d] }) {
			again[t.Name] = true
			out = append(out, t)
		}
	}
	return out
}

// failoverPart replaces the lost provider's part: it is penalized and
// excluded, the part's tasks are renegotiated alone without it and
// without the other parts' providers, and the escrow follows when the part
// is the one it is held under. It returns the part's tasks.
func (j *job) failoverPart(ctx workflow.Context, lost *lostProvider) ([]string, error) {
	i := slices.IndexFunc(j.award.Parts, func(p AwardPart) bool { return p.Provider == lost.provider })
	if i < 0 {
		return nil, fail(ClassInternal, fmt.Errorf("%w: no part of the job runs on %s", lost, lost.provider))
	}
	if len(j.failovers) >= maxFailovers {
		return nil, fail(ClassExecution, fmt.Errorf("%w (after %d failovers)", lost, len(j.failovers)))
	}
	j.excluded[lost.provider] = "lost mid-job: " + lost.reason
	exclude := map[string]string{}
	for p, why := range j.excluded {
		exclude[p] = why
	}
	var keep []string
	for k, p := range j.award.Parts {
		if k != i {
			exclude[p.Provider], keep = "runs another part of the job", append(keep, p.Provider)
		}
	}
	part := j.award.Parts[i]
	n := len(j.failovers) + 1
	j.log.Info("provider lost: failing its part over", "job_id", j.in.JobID, "provider", lost.provider, "tasks", part.Tasks, "reason", lost.reason)
	out, err := control(ctx, j.layout, Renegotiate, RenegotiateInput{
		JobID: j.in.JobID, PlanInput: j.planIn, Exclude: exclude, Lost: lost.provider, LostReason: lost.reason, N: n,
		Tasks: part.Tasks, Keep: keep,
	}, 5*time.Minute)
	if err != nil {
		return nil, classify(ctx, fmt.Errorf("failover of %v from %s: %w", part.Tasks, lost.provider, err), ClassNoOffers)
	}
	aw := out.Award
	if i == 0 {
		if err := j.reassign(ctx, aw.Provider, "failover: "+lost.Error()); err != nil {
			return nil, err
		}
	}
	j.failovers = append(j.failovers, j.failoverRecord(ctx, lost, out, part.Tasks))
	j.award.Parts[i] = AwardPart{Provider: aw.Provider, Pool: aw.Pool, Runtime: aw.Runtime, Queue: aw.Queue,
		Tasks: part.Tasks, Price: aw.Price, Devices: aw.Devices, SLA: aw.SLA, Explanation: aw.Explanation}
	j.setSplitAward(j.award.Parts)
	return part.Tasks, nil
}

// setSplitAward makes parts the job's award: the first part's provider,
// queue and terms, the parts' summed price.
func (j *job) setSplitAward(parts []AwardPart) {
	lead := NegotiateOutput{Parts: parts, Currency: j.award.Currency}.Part(0)
	lead.Parts, lead.Price = parts, 0
	for _, p := range parts {
		lead.Price += p.Price
	}
	j.award = lead
	j.cost.Price = lead.Price
}

// sealParts seals each part's task results on its own, so that each
// provider signs over exactly its tasks.
func (j *job) sealParts(ctx workflow.Context) error {
	j.results = nil
	for _, p := range j.award.Parts {
		ref, err := j.sealPart(ctx, p)
		if err != nil {
			return err
		}
		j.results = append(j.results, ref)
	}
	j.usage = sumUsage(j.tasks)
	return nil
}

// sealPart seals the results of p's tasks.
func (j *job) sealPart(ctx workflow.Context, p AwardPart) (string, error) {
	tasks := map[string]TaskStatus{}
	for _, name := range p.Tasks {
		tasks[name] = j.tasks[name]
	}
	out, err := SealResults.RunLocal(localCtx(ctx, time.Minute), SealResultsInput{JobID: j.in.JobID, Tasks: tasks})
	if err != nil {
		return "", fail(ClassInternal, fmt.Errorf("seal results of %s: %w", p.Provider, err))
	}
	return out.Ref, nil
}

// signParts has each part's provider sign its own statement of stage:
// SignStage on its queue, chained to the same previous envelope as the
// stage (the last attestation queued). pred builds a part's predicate;
// results, when set, are each part's sealed results.
func (j *job) signParts(ctx workflow.Context, stage string, pred func(p AwardPart) any, results []string) ([]predicate.SignedPart, error) {
	previous, err := j.previousDigest(ctx)
	if err != nil {
		return nil, err
	}
	ins, err := j.partInputs(stage, previous, pred, results)
	if err != nil {
		return nil, err
	}
	futures := make([]Future[SignedStage], len(ins))
	for i, in := range ins {
		futures[i] = SignStage.Execute(attestCtx(ctx, j.award.Parts[i].Queue), in)
	}
	parts := make([]predicate.SignedPart, len(futures))
	for i, f := range futures {
		p := j.award.Parts[i]
		signed, err := f.Get(ctx)
		if err != nil {
			return nil, classify(ctx, fmt.Errorf("provider %s signs its %s part: %w", p.Provider, stage, err), ClassExecution)
		}
		parts[i] = predicate.SignedPart{Provider: p.Provider, Tasks: p.Tasks, Envelope: json.RawMessage(signed.Envelope)}
	}
	return parts, nil
}

// partInputs are the SignStage inputs of each part's statement of stage,
// chained to previous: pred builds a part's predicate; results, when set,
// are each part's sealed results.
func (j *job) partInputs(stage, previous string, pred func(p AwardPart) any, results []string) ([]AttestInput, error) {
	ins := make([]AttestInput, len(j.award.Parts))
	for i, p := range j.award.Parts {
		b, err := json.Marshal(pred(p))
		if err != nil {
			return nil, fail(ClassInternal, fmt.Errorf("encode %s part of %s: %w", stage, p.Provider, err))
		}
		ins[i] = AttestInput{JobID: j.in.JobID, Stage: stage, Previous: previous, Predicate: b,
			SpecDigest: j.plan.DocumentDigest, Provider: p.Provider}
		if results != nil {
			ins[i].Results = []string{results[i]}
		}
	}
	return ins, nil
}

// placementPart builds a part's placement acceptance under pl's hold.
func (j *job) placementPart(pl PlaceOutput) func(p AwardPart) any {
	return func(p AwardPart) any {
		return predicate.Placement{Header: j.header(), Provider: p.Provider, Pool: p.Pool, HoldID: pl.HoldID,
			Held: pl.Held, Currency: pl.Currency, PartTasks: p.Tasks}
	}
}

// executionPart builds a part's execution statement of its own tasks.
func (j *job) executionPart(p AwardPart) any {
	return predicate.Execution{Header: j.header(), Provider: p.Provider, Runtime: p.Runtime, PartTasks: p.Tasks}
}

// placeParts has each provider accept its part of the placement.
func (j *job) placeParts(ctx workflow.Context, pl PlaceOutput) ([]predicate.SignedPart, error) {
	return j.signParts(ctx, predicate.StagePlacement, j.placementPart(pl), nil)
}

// executeParts has each provider sign the execution of its own tasks.
func (j *job) executeParts(ctx workflow.Context) ([]predicate.SignedPart, error) {
	return j.signParts(ctx, predicate.StageExecution, j.executionPart, j.results)
}

// partsWork is each part's metered work for settlement: its tasks' usage
// and run time.
func (j *job) partsWork() []SettlePart {
	var out []SettlePart
	for _, p := range j.award.Parts {
		var w SettlePart
		for _, name := range p.Tasks {
			t := j.tasks[name]
			w.Usage = w.Usage.Add(t.Usage)
			if t.StartedAt != nil && (w.Started.IsZero() || t.StartedAt.Before(w.Started)) {
				w.Started = *t.StartedAt
			}
			if t.FinishedAt != nil && t.FinishedAt.After(w.Finished) {
				w.Finished = *t.FinishedAt
			}
		}
		out = append(out, w)
	}
	return out
}

// negotiatedParts are a split award's parts as the negotiation attests
// them; none for a job on one provider.
func negotiatedParts(a NegotiateOutput) []predicate.Part {
	var out []predicate.Part
	for _, p := range a.Parts {
		out = append(out, predicate.Part{Provider: p.Provider, Pool: p.Pool, Runtime: p.Runtime, Tasks: p.Tasks, Price: p.Price})
	}
	return out
}

// explainAward says why the job's price is what it is: the award's
// explanation, or each part's, by provider.
func explainAward(a NegotiateOutput) string {
	if len(a.Parts) == 0 {
		return a.Explanation
	}
	why := fmt.Sprintf("split over %d providers", len(a.Parts))
	for _, p := range a.Parts {
		why += fmt.Sprintf("; %s (%s): %s", p.Provider, strings.Join(p.Tasks, ", "), p.Explanation)
	}
	return why
}

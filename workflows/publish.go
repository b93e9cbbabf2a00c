package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/accordmesh/accord/provenance/predicate"
)

// publish pushes the models the job's tasks publish (layout 4). It runs
// once the job verified and every attestation so far is logged: a model's
// lineage cites the verification attestation's log entry, so that entry
// must exist. The activity runs where the collected outputs are (the
// execution queue, like Verify) and is idempotent: a retry finds the
// versions it already pushed.
func (j *job) publish(ctx workflow.Context) error {
	j.enter(ctx, StagePublish)
	if err := j.awaitAttestations(ctx); err != nil {
		return fail(ClassInternal, err)
	}
	rec := PublishedReceipt{SpecDigest: j.plan.DocumentDigest, LogIndex: -1}
	for _, a := range j.atts {
		if a.Stage == predicate.StageVerification {
			rec.Attestation, rec.LogIndex = a.Digest, a.LogIndex
		}
	}
	if rec.LogIndex < 0 {
		return fail(ClassInternal, errors.New("publish: the verification attestation is not logged"))
	}
	out, err := Publish.Run(publishCtx(ctx), PublishInput{
		JobID: j.in.JobID, PlanInput: j.planIn, Results: j.results, Receipt: rec,
	})
	if err != nil {
		return classify(ctx, err, ClassPublish)
	}
	j.published = out.Models
	return nil
}

// publishCtx runs PublishModels on the execution queue: pushing a model
// streams every file of it to the registry, so it heartbeats, and a
// registry that is down is retried for a while before the job gives up.
func publishCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           TaskQueueExecution,
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    2 * time.Minute,
		RetryPolicy:         publishRetry,
	})
}

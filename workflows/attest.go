package workflows

import (
	"encoding/json"
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/accordmesh/accord/provenance/predicate"
)

// attest queues a stage statement. It is signed and logged in the
// background, chained to the previous stage's envelope, while the job moves
// on: attestations stay in stage order but leave the critical path. A
// failed attestation stops the job at the next stage boundary (the next
// attest call) and every queued one is awaited before the job ends. They
// run on a disconnected context: a finished stage is attested even when the
// job is then cancelled. pred is the stage's predicate (package predicate);
// results are sealed task results the activity adds to it.
func (j *job) attest(ctx workflow.Context, stage string, subjects []Subject, pred any, results []string) error {
	b, err := json.Marshal(pred)
	if err != nil {
		return fail(ClassInternal, fmt.Errorf("encode %s predicate: %w", stage, err))
	}
	return j.queueAttest(ctx, AttestInput{JobID: j.in.JobID, Stage: stage, Subjects: subjects, Predicate: b, Results: results})
}

// attestSigned queues a stage that its provider already signed (layout
// 11): in as it was signed, chained to the same previous envelope; the
// control plane checks the envelope and logs it.
func (j *job) attestSigned(ctx workflow.Context, in AttestInput, signed SignedStage) error {
	in.Signed = &signed
	return j.queueAttest(ctx, in)
}

// queueAttest queues in, chained to the last queued attestation.
func (j *job) queueAttest(ctx workflow.Context, in AttestInput) error {
	if err := j.attestErr(ctx); err != nil {
		return err
	}
	prev := j.attTail
	f, set := workflow.NewFuture(ctx)
	actx, _ := workflow.NewDisconnectedContext(ctx)
	workflow.Go(actx, func(gctx workflow.Context) {
		if prev != nil {
			var previous string
			if err := prev.Get(gctx, &previous); err != nil {
				set.Set(nil, err)
				return
			}
			if in.Signed == nil {
				in.Previous = previous
			}
		}
		out, err := j.attestStage(gctx, in)
		if err != nil {
			set.Set(nil, fmt.Errorf("attest %s: %w", in.Stage, err))
			return
		}
		j.atts = append(j.atts, AttestationRef{Stage: in.Stage, Digest: out.Digest, LogIndex: out.LogIndex})
		set.Set(out.Digest, nil)
	})
	j.attTail = f
	return nil
}

// previousDigest waits for the last queued attestation: the envelope a
// stage signed now is chained to ("" for the first).
func (j *job) previousDigest(ctx workflow.Context) (string, error) {
	var previous string
	if j.attTail != nil {
		if err := j.attTail.Get(ctx, &previous); err != nil {
			return "", fail(ClassInternal, err)
		}
	}
	return previous, nil
}

// attestStage signs and logs one stage. From layout 5 the execution stage
// of a task run by a provider agent is signed on the agent's queue by the
// provider's key (SignStage), and from layoutProviderPlacement its
// placement acceptance too; the control plane then checks that envelope
// against the provider's trusted key and logs it (Attest with Signed); from
// layout 11 the provider has signed before the stage is queued (in.Signed
// set). Every other stage is signed and logged on the control queue.
func (j *job) attestStage(ctx workflow.Context, in AttestInput) (AttestOutput, error) {
	if in.Signed != nil || !j.providerSigns(in.Stage) {
		return Attest.Run(attestCtx(ctx, TaskQueueControl), in)
	}
	in.SpecDigest, in.Provider = j.plan.DocumentDigest, j.award.Provider
	signed, err := SignStage.Run(attestCtx(ctx, j.award.Queue), in)
	if err != nil {
		return AttestOutput{}, fmt.Errorf("provider %s signs: %w", j.award.Provider, err)
	}
	in.Signed = &signed
	return Attest.Run(attestCtx(ctx, TaskQueueControl), in)
}

// providerSigns reports whether the awarded provider agent signs stage.
func (j *job) providerSigns(stage string) bool {
	switch {
	case j.award.Queue == "" || j.layout < layoutProviderQueues || j.split():
		// A split job's providers sign their parts (split.go); the
		// stage, which lists them, is the operator's.
		return false
	case stage == predicate.StageExecution:
		return true
	case stage == predicate.StagePlacement:
		return j.layout >= layoutProviderPlacement
	}
	return false
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

// rawOrNull keeps an absent record explicit in a predicate.
func rawOrNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/accordmesh/accord/provenance/predicate"
)

// registerApproval installs the approve update (layout 3). Its validator
// runs before the update is accepted into history, so a refused approval
// leaves no trace in the job and the caller gets the reason.
func (j *job) registerApproval(ctx workflow.Context) error {
	if j.layout < layoutApprovers {
		return nil
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateApprove,
		func(ctx workflow.Context, in ApproveInput) (ApproveOutput, error) {
			j.approved = true
			j.approvedBy = &predicate.Approval{By: in.By, Reason: in.Reason, At: workflow.Now(ctx)}
			j.log.Info("approved", "job_id", j.in.JobID, "by", in.By)
			return ApproveOutput{Approver: in.By}, nil
		},
		workflow.UpdateHandlerOptions{Validator: j.validateApproval},
	)
	if err != nil {
		return fmt.Errorf("workflows: update %s: %w", UpdateApprove, err)
	}
	return nil
}

// validateApproval accepts an approval only at the gate, once, from an
// identity the spec names in approval.approvers. The submitter is no
// exception: it approves its own job only when the spec lists it.
func (j *job) validateApproval(in ApproveInput) error {
	switch {
	case j.approved:
		return rejectApproval(ErrTypeNotAwaitingApproval, "job %s is already approved", j.in.JobID)
	case j.stage != StageApproval:
		return rejectApproval(ErrTypeNotAwaitingApproval, "job %s is not awaiting approval (stage %s)", j.in.JobID, j.stage)
	case strings.TrimSpace(in.By) == "":
		return rejectApproval(ErrTypeNotApprover, "an approval needs the approver's identity")
	case !slices.Contains(j.plan.Approvers, in.By):
		return rejectApproval(ErrTypeNotApprover, "%q is not one of job %s's approvers (approval.approvers)", in.By, j.in.JobID)
	case len(in.Reason) > MaxApprovalReason:
		return rejectApproval(ErrTypeNotApprover, "approval reason is %d bytes, over the %d-byte limit", len(in.Reason), MaxApprovalReason)
	}
	return nil
}

func rejectApproval(typ, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), typ, nil)
}

// approval waits at the gate when the spec asks for one and the price is
// above its threshold.
func (j *job) approval(ctx workflow.Context) error {
	if !j.plan.ApprovalRequired || j.plan.ApprovalAbove > 0 && j.award.Price <= j.plan.ApprovalAbove {
		return nil
	}
	j.enter(ctx, StageApproval)
	j.setStatus(ctx, StatusAwaitingApproval)
	if err := workflow.Await(ctx, func() bool { return j.approved }); err != nil {
		return fail(ClassCancelled, errors.New("cancelled while awaiting approval"))
	}
	j.setStatus(ctx, StatusRunning)
	return nil
}

package jobclient

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/accordmesh/accord/settlement/sweep"
)

// States tells the escrow sweeper whether a job's workflow still runs
// (sweep.JobStates over Temporal): the latest run of the workflow whose ID
// is the job ID is running, closed (completed, failed, cancelled,
// terminated, timed out, continued as new with no running successor), or
// not found (never started here, or removed by the namespace's retention).
type States struct {
	Client client.Client
}

// JobState implements sweep.JobStates.
func (s States) JobState(ctx context.Context, jobID string) (sweep.State, error) {
	desc, err := s.Client.DescribeWorkflowExecution(ctx, jobID, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return sweep.NotFound, nil
	}
	if err != nil {
		return "", fmt.Errorf("jobclient: describe %s: %w", jobID, err)
	}
	if desc.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return sweep.Running, nil
	}
	return sweep.Closed, nil
}

package jobclient

import (
	"context"
	"errors"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/accordmesh/accord/settlement/sweep"
)

// describeClient answers DescribeWorkflowExecution with a status or an error.
type describeClient struct {
	client.Client // other methods are not called
	status        enumspb.WorkflowExecutionStatus
	err           error
}

func (d describeClient) DescribeWorkflowExecution(context.Context, string, string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	if d.err != nil {
		return nil, d.err
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{
		WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{Status: d.status},
	}, nil
}

// Running is running; every ended status is closed; an unknown workflow is
// not found; other errors are errors (the sweep then leaves the job alone).
func TestStates(t *testing.T) {
	for _, c := range []struct {
		client describeClient
		want   sweep.State
	}{
		{describeClient{status: enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING}, sweep.Running},
		{describeClient{status: enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED}, sweep.Closed},
		{describeClient{status: enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED}, sweep.Closed},
		{describeClient{status: enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT}, sweep.Closed},
		{describeClient{err: serviceerror.NewNotFound("gone")}, sweep.NotFound},
	} {
		got, err := States{Client: c.client}.JobState(context.Background(), "job-1")
		if err != nil || got != c.want {
			t.Errorf("status %v / %v: got %q, %v; want %q", c.client.status, c.client.err, got, err, c.want)
		}
	}
	unavailable := serviceerror.NewUnavailable("down")
	if _, err := (States{Client: describeClient{err: unavailable}}).JobState(context.Background(), "job-1"); !errors.Is(err, unavailable) {
		t.Errorf("unavailable: %v, want it wrapped", err)
	}
}

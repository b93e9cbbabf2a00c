// Package jobclient is the client side of Accord's jobs on a Temporal
// cluster: submit a spec as a job workflow, read its status (by query while
// it runs, from its result once it ends), watch its progress, list jobs by
// search attributes, cancel it, pass its approval gate, and map a result to
// the CLI's exit code.
package jobclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// ErrNoJob reports an unknown job ID.
var ErrNoJob = errors.New("jobclient: no such job")

// NewJobID returns a fresh job ID: job-<UTC time>-<random hex>, no dots
// (run IDs append .task.attempt).
func NewJobID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "job-" + time.Now().UTC().Format("20060102t150405") + "-" + hex.EncodeToString(b[:])
}

// Submission is a started job.
type Submission struct {
	JobID  string `json:"job_id"`
	RunID  string `json:"run_id"`
	Spec   string `json:"spec"`
	Tenant string `json:"tenant"`
}

// Submit validates the spec locally (so a broken spec fails fast with its
// errors), fixes its document digest, and starts the job workflow. The spec
// path must be readable by the worker too (one host, or a shared path).
func Submit(ctx context.Context, c client.Client, specPath, jobID string) (Submission, error) {
	abs, err := filepath.Abs(specPath)
	if err != nil {
		return Submission{}, fmt.Errorf("jobclient: spec path: %w", err)
	}
	doc, err := os.ReadFile(abs)
	if err != nil {
		return Submission{}, cli.WithCode(cli.ExitInvalidSpec, fmt.Errorf("jobclient: read spec: %w", err))
	}
	s, err := specs.Load(abs)
	if err != nil {
		return Submission{}, cli.WithCode(cli.ExitInvalidSpec, err)
	}
	if jobID == "" {
		jobID = NewJobID()
	}
	if strings.ContainsAny(jobID, "./ ") {
		return Submission{}, cli.WithCode(cli.ExitUsage, fmt.Errorf("jobclient: job ID %q must not contain '.', '/' or spaces", jobID))
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    jobID,
		TaskQueue:             workflows.TaskQueueControl,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrTenant).ValueSet(s.Tenant),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrSpec).ValueSet(s.Name),
			temporal.NewSearchAttributeKeyKeyword(workflows.SearchAttrStatus).ValueSet(workflows.StatusPending),
		),
	}, workflows.JobWorkflowName, workflows.JobInput{
		JobID: jobID, SpecPath: abs, DocumentDigest: provenance.Digest(doc),
	})
	if err != nil {
		return Submission{}, fmt.Errorf("jobclient: start job: %w", err)
	}
	return Submission{JobID: jobID, RunID: run.GetRunID(), Spec: s.Name, Tenant: s.Tenant}, nil
}

// Status returns a job's live status (by query) or, for a finished job, the
// status from its result.
func Status(ctx context.Context, c client.Client, jobID string) (workflows.JobStatus, error) {
	desc, err := c.DescribeWorkflowExecution(ctx, jobID, "")
	if err != nil {
		return workflows.JobStatus{}, notFound(jobID, err)
	}
	if desc.WorkflowExecutionInfo.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		v, err := c.QueryWorkflow(ctx, jobID, "", workflows.QueryStatus)
		if err != nil {
			return workflows.JobStatus{}, fmt.Errorf("jobclient: query %s: %w", jobID, err)
		}
		var st workflows.JobStatus
		if err := v.Get(&st); err != nil {
			return workflows.JobStatus{}, fmt.Errorf("jobclient: decode status: %w", err)
		}
		return st, nil
	}
	res, err := Result(ctx, c, jobID)
	if err != nil {
		return workflows.JobStatus{JobID: jobID, Status: strings.ToLower(desc.WorkflowExecutionInfo.GetStatus().String())}, err
	}
	return StatusOf(res), nil
}

// StatusOf converts a result to a status.
func StatusOf(res workflows.JobResult) workflows.JobStatus {
	return workflows.JobStatus{
		JobID: res.JobID, Status: res.Status, Stage: res.Stage, Spec: res.Spec, Tenant: res.Tenant,
		Cost:  workflows.Cost{Price: res.Price, Paid: res.Paid, Currency: res.Currency},
		Tasks: res.Tasks, Stages: res.Stages,
	}
}

// Result waits for a job's result.
func Result(ctx context.Context, c client.Client, jobID string) (workflows.JobResult, error) {
	var res workflows.JobResult
	if err := c.GetWorkflow(ctx, jobID, "").Get(ctx, &res); err != nil {
		var canceled *temporal.CanceledError
		if errors.As(err, &canceled) {
			return workflows.JobResult{JobID: jobID, Status: workflows.StatusCancelled, Class: workflows.ClassCancelled, Error: err.Error()}, nil
		}
		return workflows.JobResult{JobID: jobID, Status: workflows.StatusFailed, Class: workflows.ClassInternal, Error: err.Error()},
			notFound(jobID, err)
	}
	return res, nil
}

// Watch reports the job's status each time it changes (stage, task states)
// until the job ends, then returns its result. Polls by query every period.
// When ctx ends first it returns ctx's error and no result.
func Watch(ctx context.Context, c client.Client, jobID string, period time.Duration, fn func(workflows.JobStatus)) (workflows.JobResult, error) {
	type outcome struct {
		res workflows.JobResult
		err error
	}
	// Buffered: the waiter never blocks (nor leaks) when Watch has returned
	// on ctx, and the result is only ever read after it arrives.
	done := make(chan outcome, 1)
	go func() {
		res, err := Result(ctx, c, jobID)
		done <- outcome{res, err}
	}()
	t := time.NewTicker(period)
	defer t.Stop()
	last := ""
	for {
		select {
		case o := <-done:
			if ctx.Err() != nil {
				// Cancelled: the waiter's answer is the cancellation's, not the job's.
				return workflows.JobResult{}, ctx.Err()
			}
			if fn != nil && o.err == nil {
				fn(StatusOf(o.res))
			}
			return o.res, o.err
		case <-ctx.Done():
			return workflows.JobResult{}, ctx.Err()
		case <-t.C:
			if fn == nil {
				continue
			}
			v, err := c.QueryWorkflow(ctx, jobID, "", workflows.QueryStatus)
			if err != nil {
				continue // finished between ticks, or not started yet
			}
			var st workflows.JobStatus
			if v.Get(&st) != nil {
				continue
			}
			if key := statusKey(st); key != last {
				last = key
				fn(st)
			}
		}
	}
}

// statusKey identifies what Watch reports: the status, the stage and each
// task's state and attempt, in task-name order so that unchanged progress
// has the same key.
func statusKey(st workflows.JobStatus) string {
	var b strings.Builder
	b.WriteString(st.Status + "/" + st.Stage)
	for _, name := range slices.Sorted(maps.Keys(st.Tasks)) {
		t := st.Tasks[name]
		fmt.Fprintf(&b, "/%s=%s:%d", name, t.State, t.Attempt)
	}
	return b.String()
}

// Cancel asks a job to cancel: it unwinds and runs its compensations.
func Cancel(ctx context.Context, c client.Client, jobID, reason string) error {
	if err := c.SignalWorkflow(ctx, jobID, "", workflows.SignalCancel, reason); err != nil {
		return notFound(jobID, err)
	}
	return nil
}

// Approval refusals: the workflow's validator refused the approval.
var (
	// ErrNotApprover: the identity is not in the spec's approval.approvers.
	ErrNotApprover = errors.New("jobclient: not an approver of this job")
	// ErrNotAwaitingApproval: the job is not at its approval gate.
	ErrNotAwaitingApproval = errors.New("jobclient: job is not awaiting approval")
)

// Approve asks to pass a job's approval gate as in.By. The job's workflow
// decides: it accepts an approval only at the gate and only from an
// identity in approval.approvers, and otherwise the error wraps
// ErrNotApprover or ErrNotAwaitingApproval with the workflow's reason. A
// job started before approvals were checked (layout < 3) has no approve
// update and gets the approve signal it waits for.
func Approve(ctx context.Context, c client.Client, jobID string, in workflows.ApproveInput) error {
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: jobID, UpdateName: workflows.UpdateApprove, Args: []any{in},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		var out workflows.ApproveOutput
		err = h.Get(ctx, &out)
	}
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &app) && app.Type() == workflows.ErrTypeNotApprover:
		return fmt.Errorf("%w: %s", ErrNotApprover, app.Message())
	case errors.As(err, &app) && app.Type() == workflows.ErrTypeNotAwaitingApproval:
		return fmt.Errorf("%w: %s", ErrNotAwaitingApproval, app.Message())
	case strings.Contains(err.Error(), "unknown update"):
		if err := c.SignalWorkflow(ctx, jobID, "", workflows.SignalApprove, in.By); err != nil {
			return notFound(jobID, err)
		}
		return nil
	}
	return notFound(jobID, err)
}

// Filter selects jobs for List; empty fields match everything.
type Filter struct {
	Tenant, Status, Spec string
	Limit                int
}

// JobSummary is one row of List.
type JobSummary struct {
	JobID   string    `json:"job_id"`
	Spec    string    `json:"spec"`
	Tenant  string    `json:"tenant"`
	Status  string    `json:"status"`
	Started time.Time `json:"started"`
	Closed  time.Time `json:"closed,omitzero"`
}

// List lists jobs, newest first, filtered by search attributes.
func List(ctx context.Context, c client.Client, f Filter) ([]JobSummary, error) {
	q := []string{fmt.Sprintf("WorkflowType = '%s'", workflows.JobWorkflowName)}
	for attr, v := range map[string]string{
		workflows.SearchAttrTenant: f.Tenant, workflows.SearchAttrStatus: f.Status, workflows.SearchAttrSpec: f.Spec,
	} {
		if v == "" {
			continue
		}
		if strings.ContainsAny(v, `'"\`) {
			return nil, cli.WithCode(cli.ExitUsage, fmt.Errorf("jobclient: filter value %q has quotes", v))
		}
		q = append(q, fmt.Sprintf("%s = '%s'", attr, v))
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var out []JobSummary
	var token []byte
	for len(out) < f.Limit {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: strings.Join(q, " AND "), PageSize: int32(min(f.Limit, 1000)), NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("jobclient: list jobs: %w", err)
		}
		for _, e := range resp.Executions {
			s := JobSummary{JobID: e.GetExecution().GetWorkflowId(), Started: e.GetStartTime().AsTime()}
			if e.GetCloseTime() != nil {
				s.Closed = e.GetCloseTime().AsTime()
			}
			sa := e.GetSearchAttributes().GetIndexedFields()
			s.Tenant = keyword(sa[workflows.SearchAttrTenant].GetData())
			s.Spec = keyword(sa[workflows.SearchAttrSpec].GetData())
			s.Status = keyword(sa[workflows.SearchAttrStatus].GetData())
			out = append(out, s)
		}
		token = resp.NextPageToken
		if len(token) == 0 {
			break
		}
	}
	if len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// keyword decodes a JSON-encoded keyword payload ("\"acme\"").
func keyword(b []byte) string {
	return strings.Trim(string(b), `"`)
}

func notFound(jobID string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return cli.WithCode(cli.ExitUsage, fmt.Errorf("%w: %s", ErrNoJob, jobID))
	}
	return err
}

// ExitCode maps a job result to the CLI's exit code.
func ExitCode(res workflows.JobResult) int {
	switch {
	case res.Status == workflows.StatusSettled:
		return cli.ExitOK
	case res.Status == workflows.StatusCancelled || res.Class == workflows.ClassCancelled:
		return cli.ExitCancelled
	}
	switch res.Class {
	case workflows.ClassInvalidSpec:
		return cli.ExitInvalidSpec
	case workflows.ClassPolicy:
		return cli.ExitPolicy
	case workflows.ClassNoOffers:
		return cli.ExitNoOffers
	case workflows.ClassExecution:
		return cli.ExitExecution
	case workflows.ClassVerification:
		return cli.ExitVerification
	case workflows.ClassFunds:
		return cli.ExitFunds
	}
	return cli.ExitError
}

// Counter-offer refusals: the workflow's validator refused the move.
var (
	// ErrNotBargaining: the job is not waiting for its buyer agent's move
	// (not bargaining, not yet, or a move for this round was taken).
	ErrNotBargaining = errors.New("jobclient: job is not waiting for a counter-offer")
	// ErrBadMove: a price outside (0, budget], an acceptance of a provider
	// without a current offer, both or neither, or no identity.
	ErrBadMove = errors.New("jobclient: counter-offer refused")
)

// Counter makes the buyer agent's move in a bargaining job
// (negotiation.buyer: agent) and returns the sellers' response: their next
// offers, or the bargain's end. The job's workflow refuses a move it
// cannot take, and the error wraps ErrNotBargaining or ErrBadMove with its
// reason; a job started before agent buyers (layout < 8) has no counter
// update and answers ErrNotBargaining.
func Counter(ctx context.Context, c client.Client, jobID string, in workflows.CounterInput) (workflows.CounterOutput, error) {
	var out workflows.CounterOutput
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: jobID, UpdateName: workflows.UpdateCounter, Args: []any{in},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, &out)
	}
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		return out, nil
	case errors.As(err, &app) && app.Type() == workflows.ErrTypeNotBargaining:
		return out, fmt.Errorf("%w: %s", ErrNotBargaining, app.Message())
	case errors.As(err, &app) && app.Type() == workflows.ErrTypeBadMove:
		return out, fmt.Errorf("%w: %s", ErrBadMove, app.Message())
	case strings.Contains(err.Error(), "unknown update"):
		return out, fmt.Errorf("%w: job %s does not bargain with an agent", ErrNotBargaining, jobID)
	}
	return out, notFound(jobID, err)
}

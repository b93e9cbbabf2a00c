// Package deployclient starts and steers deployment workflows: what
// `accord deploy` and the integration tests call.
package deployclient

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/accordmesh/accord/services"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// Sentinel errors.
var (
	ErrNotService    = errors.New("deploy: the spec has no \"## Service\" section")
	ErrNoDeployment  = errors.New("deploy: no such deployment")
	ErrBadDeployment = errors.New("deploy: deployment names are 1 to 32 lower-case letters, digits and -")
)

// WorkflowID is the workflow of deployment id.
func WorkflowID(id string) string { return "deployment-" + id }

// Load reads a service spec and makes an oci-archive image path absolute
// (relative to the working directory, as specs.Load rebases it).
func Load(path string) (*specs.Spec, error) {
	s, err := specs.Load(path)
	if err != nil {
		return nil, err
	}
	if s.Service == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotService, path)
	}
	if p, ok := strings.CutPrefix(s.Service.Image, "oci-archive:"); ok && !filepath.IsAbs(p) {
		abs, err := filepath.Abs(filepath.Join(filepath.Dir(path), p))
		if err != nil {
			return nil, fmt.Errorf("deploy: image path: %w", err)
		}
		s.Service.Image = "oci-archive:" + abs
	}
	return s, nil
}

// Started names a started deployment.
type Started struct {
	Deployment string `json:"deployment"`
	WorkflowID string `json:"workflow_id"`
	RunID      string `json:"run_id"`
}

// Deploy starts a deployment of s under id (default: the endpoint name).
func Deploy(ctx context.Context, c client.Client, s *specs.Spec, id string) (Started, error) {
	if s.Service == nil {
		return Started{}, ErrNotService
	}
	if id == "" {
		id = s.Service.Endpoint
	}
	if !services.DeploymentIDPattern.MatchString(id) {
		return Started{}, fmt.Errorf("%w: %q", ErrBadDeployment, id)
	}
	digest, _ := specs.ContractDigest(s)
	in := workflows.DeploymentInput{ID: id, Tenant: s.Tenant, Currency: s.Budget.Currency, Budget: s.Budget.MaxPrice,
		Release: workflows.ServiceRelease{Version: s.Version, SpecDigest: digest, Service: *s.Service}}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: WorkflowID(id), TaskQueue: workflows.TaskQueueControl,
	}, workflows.DeploymentWorkflowName, in)
	if err != nil {
		return Started{}, fmt.Errorf("deploy: start %s: %w", id, err)
	}
	return Started{Deployment: id, WorkflowID: run.GetID(), RunID: run.GetRunID()}, nil
}

// Status queries a deployment's state.
func Status(ctx context.Context, c client.Client, id string) (workflows.DeploymentState, error) {
	var st workflows.DeploymentState
	v, err := c.QueryWorkflow(ctx, WorkflowID(id), "", workflows.QueryDeployment)
	if err != nil {
		return st, notFound(id, err)
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("deploy: status %s: %w", id, err)
	}
	return st, nil
}

func notFound(id string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%w: %s", ErrNoDeployment, id)
	}
	return fmt.Errorf("deploy: %s: %w", id, err)
}

// Update sends a new release of the service to deployment id.
func Update(ctx context.Context, c client.Client, id string, s *specs.Spec) error {
	if s.Service == nil {
		return ErrNotService
	}
	digest, _ := specs.ContractDigest(s)
	return signal(ctx, c, id, workflows.SignalDeployUpdate, workflows.UpdateRequest{Version: s.Version, SpecDigest: digest, Service: *s.Service})
}

// Rollback asks deployment id to roll back its canary or last promotion.
func Rollback(ctx context.Context, c client.Client, id, reason string) error {
	return signal(ctx, c, id, workflows.SignalDeployRollback, workflows.ReasonRequest{Reason: reason})
}

// Stop drains and stops deployment id.
func Stop(ctx context.Context, c client.Client, id, reason string) error {
	return signal(ctx, c, id, workflows.SignalDeployStop, workflows.ReasonRequest{Reason: reason})
}

func signal(ctx context.Context, c client.Client, id, name string, arg any) error {
	if err := c.SignalWorkflow(ctx, WorkflowID(id), "", name, arg); err != nil {
		return notFound(id, err)
	}
	return nil
}

// Wait blocks until deployment id's workflow ends and returns its final state.
func Wait(ctx context.Context, c client.Client, id string) (workflows.DeploymentState, error) {
	var st workflows.DeploymentState
	if err := c.GetWorkflow(ctx, WorkflowID(id), "").Get(ctx, &st); err != nil {
		return st, notFound(id, err)
	}
	return st, nil
}

package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.temporal.io/sdk/temporal"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// Outputs move between machines through the artifact store: a provider
// agent pushes every output it collects (Activities.Outputs, over HTTP),
// the control plane grants the agent awarded a job what it must read
// (Activities.Grants), and a worker that did not collect a task's outputs
// (the buyer's verifier, the publisher) materializes them from the store
// by the digests of the sealed results, verified.

// OutputStore receives a provider agent's collected outputs;
// artifacts.HTTP implements it. PutOutput is idempotent
// (content-addressed) and answers the digest the store computed.
type OutputStore interface {
	PutOutput(ctx context.Context, jobID, path string) (artifacts.BlobResponse, error)
}

// AgentGrants records, on the control plane, what the provider agent
// awarded a job may read from the artifact store over HTTP;
// artifacts.Local implements it. Both calls are idempotent.
type AgentGrants interface {
	// AwardJobTo records the agents of providers as the ones running
	// job for tenant, replacing an earlier award.
	AwardJobTo(jobID, tenant string, providers []string) error
	// GrantJob lets the job's agent read digest, and with asInput use it
	// as the job's tenant's input; ErrNoAward for a job no agent runs.
	GrantJob(ctx context.Context, jobID, digest string, asInput bool) error
}

// pushOutputs sends a run's collected outputs to a.Outputs and checks
// that the store holds the digests that were collected. A refusal (the job
// is not this agent's, an output over the store's limit) is permanent;
// anything else is retried with the wait, which collects again from the
// exited container.
func (a *Activities) pushOutputs(ctx context.Context, jobID, task string, outs []workflows.OutputArtifact) error {
	if a.Outputs == nil {
		return nil
	}
	dir := a.OutputsDir(jobID, task)
	for _, o := range outs {
		res, err := a.Outputs.PutOutput(ctx, jobID, filepath.Join(dir, filepath.FromSlash(o.Path)))
		if err != nil {
			err = fmt.Errorf("push output %s of %s: %w", o.Path, task, err)
			if errors.Is(err, artifacts.ErrNotFound) || errors.Is(err, artifacts.ErrNoAward) ||
				errors.Is(err, artifacts.ErrRefused) || errors.Is(err, artifacts.ErrTooLarge) {
				return permanent(workflows.ErrTypeExecution, err)
			}
			return err
		}
		if res.Digest != "sha256:"+o.SHA256 || res.Size != o.Size {
			return permanent(workflows.ErrTypeExecution, fmt.Errorf("push output %s of %s: stored %s (%d bytes), collected sha256:%s (%d bytes)",
				o.Path, task, res.Digest, res.Size, o.SHA256, o.Size))
		}
	}
	return nil
}

// grantAgent records, at placement or renegotiation, what the agents
// awarded the job read: the plan and the inputs and images (tasks' and
// tests') that the tenant owns. They are the award's provider, or each
// part's of a split award, and keep (a split job's other parts, when one
// part is renegotiated). An artifact the tenant does not own is not
// granted, and the agent refuses the task as a worker sharing the store
// would.
func (a *Activities) grantAgent(ctx context.Context, in workflows.PlaceInput, plan *specs.Plan, keep ...string) error {
	if a.Grants == nil || in.Award.Queue == "" {
		return nil
	}
	provs := []string{in.Award.Provider}
	if len(in.Award.Parts) > 0 {
		provs = nil
		for _, p := range in.Award.Parts {
			provs = append(provs, p.Provider)
		}
	}
	for _, k := range keep {
		if !slices.Contains(provs, k) {
			provs = append(provs, k)
		}
	}
	if err := a.Grants.AwardJobTo(in.JobID, plan.Tenant, provs); err != nil {
		return fmt.Errorf("grant %s to %s: record award: %w", in.JobID, in.Award.Provider, err)
	}
	if in.PlanRef != "" {
		if err := a.Grants.GrantJob(ctx, in.JobID, in.PlanRef, false); err != nil {
			return fmt.Errorf("grant %s to %s: plan: %w", in.JobID, in.Award.Provider, err)
		}
	}
	if a.Inputs == nil {
		return nil
	}
	for _, d := range planArtifacts(plan) {
		ok, err := a.Inputs.Owns(plan.Tenant, d)
		if err != nil {
			return fmt.Errorf("grant %s to %s: %w", in.JobID, in.Award.Provider, err)
		}
		if !ok {
			continue
		}
		if err := a.Grants.GrantJob(ctx, in.JobID, d, true); err != nil {
			return fmt.Errorf("grant %s to %s: input %s: %w", in.JobID, in.Award.Provider, d, err)
		}
	}
	return nil
}

// planArtifacts lists the artifact digests a plan names as inputs and
// images, each once.
func planArtifacts(plan *specs.Plan) []string {
	seen := map[string]bool{}
	var out []string
	add := func(d string) {
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	image := func(s string) string { d, _ := strings.CutPrefix(s, specs.ArtifactImagePrefix); return d }
	for _, t := range plan.Tasks {
		if strings.HasPrefix(t.Image, specs.ArtifactImagePrefix) {
			add(image(t.Image))
		}
		for _, in := range t.Inputs {
			add(in.Artifact)
		}
	}
	if plan.Spec != nil {
		for _, t := range plan.Spec.Verification.Tests {
			if strings.HasPrefix(t.Image, specs.ArtifactImagePrefix) {
				add(image(t.Image))
			}
		}
	}
	return out
}

// grantSealed lets the job's agent read its sealed results (it signs the
// execution statement over them). A job no agent runs needs no grant.
func (a *Activities) grantSealed(ctx context.Context, jobID, ref string) error {
	if a.Grants == nil {
		return nil
	}
	err := a.Grants.GrantJob(ctx, jobID, ref, false)
	if err != nil && !errors.Is(err, artifacts.ErrNoAward) {
		return fmt.Errorf("seal results: grant %s: %w", ref, err)
	}
	return nil
}

// localOutputs makes a task's outputs available under OutputsDir on this
// worker: when another machine collected them (a provider agent), each is
// materialized from the store by the digest the sealed results give,
// verified, and the directory appears at once (renamed into place). An
// output path from the results is hostile input: it must be a local
// relative path, and files are created through an os.Root.
func (a *Activities) localOutputs(ctx context.Context, jobID, task string, outs []workflows.OutputArtifact) error {
	dir := a.OutputsDir(jobID, task)
	if _, err := os.Lstat(dir); err == nil || len(outs) == 0 || a.Inputs == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("outputs of %s: %w", task, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".fetch-"+task+"-*")
	if err != nil {
		return fmt.Errorf("outputs of %s: %w", task, err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	stop := heartbeat(ctx, "fetching outputs of "+task)
	err = a.fillOutputs(ctx, tmp, outs)
	stop()
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.NonRetryable() {
		// Keep the classification on top, where Temporal reads it.
		return permanent(ae.Type(), fmt.Errorf("outputs of %s: %w", task, err))
	}
	if err != nil {
		return fmt.Errorf("outputs of %s: %w", task, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Lstat(dir); serr == nil {
			return nil // another attempt's copy won; the bytes are the same
		}
		return fmt.Errorf("outputs of %s: %w", task, err)
	}
	return nil
}

func (a *Activities) fillOutputs(ctx context.Context, dir string, outs []workflows.OutputArtifact) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, o := range outs {
		if !filepath.IsLocal(filepath.FromSlash(o.Path)) || strings.Contains(o.Path, `\`) {
			return permanent(workflows.ErrTypeExecution, fmt.Errorf("output path %q is not a relative path", o.Path))
		}
		src, err := a.Inputs.Materialize(ctx, "sha256:"+o.SHA256, a.inputsDir())
		if err != nil {
			return blobErr("output "+o.Path, err)
		}
		if d := filepath.Dir(filepath.FromSlash(o.Path)); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if err := copyInto(root, o.Path, src); err != nil {
			return fmt.Errorf("output %s: %w", o.Path, err)
		}
	}
	return nil
}

// copyInto copies the verified file src to name under root.
func copyInto(root *os.Root, name, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("materialized %s is not a regular file", filepath.Base(src))
	}
	out, err := root.OpenFile(filepath.FromSlash(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

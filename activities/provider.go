package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"go.temporal.io/sdk/worker"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/workflows"
)

// StageSigner signs a stage statement with its holder's key without
// logging it (a provider agent's execution attestation, which the control
// plane checks and logs). Idempotent by (job, stage).
type StageSigner interface {
	Sign(ctx context.Context, in workflows.AttestInput) (workflows.SignedStage, error)
}

// ErrNotRun reports a statement naming a run this provider did not
// execute, or one whose recorded outcome differs: the provider refuses to
// sign it.
var ErrNotRun = errors.New("activities: run not executed here as stated")

// RegisterProvider registers a provider agent's activities on w (its task
// queue, workflows.ExecQueue(name)): the execution activities and the
// signing of its execution attestations.
func (a *Activities) RegisterProvider(w worker.ActivityRegistry) {
	a.RegisterExecution(w)
	workflows.SignStage.Register(w, a.SignStage)
}

// SignStage signs the execution statement of a job whose tasks ran here
// with this provider's key (a.Signer). Every task in the sealed results
// must be a run this worker recorded, with the same state, exit code and
// outputs: a provider signs for what it ran and nothing else. Idempotent:
// the signer keeps the first envelope of (job, stage).
func (a *Activities) SignStage(ctx context.Context, in workflows.AttestInput) (workflows.SignedStage, error) {
	if a.Signer == nil {
		return workflows.SignedStage{}, permanent(workflows.ErrTypeExecution, errors.New("sign stage: this worker holds no signing key"))
	}
	if err := a.acceptsPlacement(in); err != nil {
		return workflows.SignedStage{}, permanent(workflows.ErrTypeExecution, err)
	}
	if len(in.Results) > 0 {
		tasks, err := a.results(ctx, in.Results)
		if err != nil {
			return workflows.SignedStage{}, err
		}
		if err := a.ranHere(in.JobID, tasks); err != nil {
			return workflows.SignedStage{}, permanent(workflows.ErrTypeExecution, err)
		}
		if in, err = a.withResults(ctx, in); err != nil {
			return workflows.SignedStage{}, err
		}
	}
	out, err := a.Signer.Sign(ctx, in)
	if err != nil {
		return workflows.SignedStage{}, fmt.Errorf("sign %s %s: %w", in.JobID, in.Stage, err)
	}
	return out, nil
}

// acceptsPlacement checks a placement statement before the provider signs
// it: it must name this provider (ProviderName) as the awarded one. Other
// stages pass.
func (a *Activities) acceptsPlacement(in workflows.AttestInput) error {
	if in.Stage != provenance.StagePlacement {
		return nil
	}
	var p struct {
		Provider string `json:"provider"`
	}
	if err := json.Unmarshal(in.Predicate, &p); err != nil {
		return fmt.Errorf("placement statement: %w", err)
	}
	if a.ProviderName == "" || p.Provider != a.ProviderName || in.Provider != a.ProviderName {
		return fmt.Errorf("%w: the placement names provider %q (award %q); this agent is %q", ErrNotRun, p.Provider, in.Provider, a.ProviderName)
	}
	return nil
}

// ranHere checks each succeeded or failed task's final run against this
// worker's recorded result.
func (a *Activities) ranHere(jobID string, tasks map[string]workflows.TaskStatus) error {
	for _, name := range sortedNames(tasks) {
		t := tasks[name]
		if t.RunID == "" || (t.State != workflows.TaskSucceeded && t.State != workflows.TaskFailed) {
			continue
		}
		if jobOf(t.RunID) != jobID {
			return fmt.Errorf("%w: task %s names run %s of another job", ErrNotRun, name, t.RunID)
		}
		got, ok := a.readResult(jobID, t.RunID)
		if !ok {
			return fmt.Errorf("%w: no record of run %s", ErrNotRun, t.RunID)
		}
		if got.ExitCode != t.ExitCode || !sameOutputs(got.Outputs, t.Outputs) {
			return fmt.Errorf("%w: run %s recorded exit %d with %d outputs, the statement says exit %d with %d",
				ErrNotRun, t.RunID, got.ExitCode, len(got.Outputs), t.ExitCode, len(t.Outputs))
		}
	}
	return nil
}

func sameOutputs(a, b []workflows.OutputArtifact) bool {
	return slices.EqualFunc(a, b, func(x, y workflows.OutputArtifact) bool {
		return x.Path == y.Path && x.SHA256 == y.SHA256 && x.Size == y.Size
	})
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Sign implements StageSigner with the recorder's key.
func (r RecorderAttestor) Sign(ctx context.Context, in workflows.AttestInput) (workflows.SignedStage, error) {
	att, err := r.R.Sign(ctx, attestRequest(in))
	if err != nil {
		return workflows.SignedStage{}, err
	}
	return workflows.SignedStage{Envelope: att.Envelope, Digest: att.Digest, SignerPublicKey: att.SignerPublicKey}, nil
}

// record checks and logs a stage another party signed (in.Signed): its
// key must be trusted for provider:<in.Provider>.
func (r RecorderAttestor) record(ctx context.Context, in workflows.AttestInput) (*provenance.Attestation, error) {
	if r.Trust == nil {
		return nil, permanent(workflows.ErrTypeExecution, errors.New("attest: no trust store to check a provider's signature"))
	}
	ts, err := r.Trust()
	if err != nil {
		return nil, fmt.Errorf("attest: trust store: %w", err)
	}
	scope := provenance.ScopeProviderPrefix + in.Provider
	allowed := func(keyID string) bool { return in.Provider != "" && ts.Allowed(keyID, scope) }
	att, err := r.R.Record(ctx, attestRequest(in), provenance.Signed{Envelope: in.Signed.Envelope, SignerPublicKey: in.Signed.SignerPublicKey}, allowed)
	if errors.Is(err, provenance.ErrSigner) {
		return nil, permanent(workflows.ErrTypeExecution, err)
	}
	return att, err
}

func attestRequest(in workflows.AttestInput) provenance.AttestRequest {
	req := provenance.AttestRequest{JobID: in.JobID, Stage: in.Stage, Previous: in.Previous, Predicate: in.Predicate, SpecDigest: in.SpecDigest}
	for _, s := range in.Subjects {
		req.Subjects = append(req.Subjects, provenance.Subject{Name: s.Name, Digest: s.Digest})
	}
	return req
}

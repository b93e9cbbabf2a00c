// Package activities implements the job workflow's activities: thin methods
// on a struct that holds Accord's domain components behind small ports (one
// per concern). Each method converts contract types (package workflows) to
// domain calls and classifies domain errors for Temporal: permanent failures
// become non-retryable application errors of a type the workflow maps to a
// failure class; everything else is retried by the activity's policy.
//
// Every activity is idempotent so that a retry after a worker crash neither
// repeats a side effect nor loses one; each method's doc says how.
package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/internal/keylock"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/settlement/sla"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// Compiler loads and compiles a spec file.
type Compiler interface {
	Compile(ctx context.Context, path string) (*specs.Plan, []byte, error)
}

// Admitter decides whether a job may run. A rejection is Allowed=false with
// a reason, not an error; errors are for failing to decide.
type Admitter interface {
	Admit(ctx context.Context, jobID string, plan *specs.Plan, document, signature []byte) (allowed bool, reason string, record any, err error)
}

// Negotiator runs the market for a job and returns the award. When no
// provider can bid it returns an error wrapping ErrNoOffers.
type Negotiator interface {
	Negotiate(ctx context.Context, jobID string, plan *specs.Plan) (Award, error)
}

// Award is the negotiation's outcome.
type Award struct {
	Provider string
	Pool     string
	Runtime  string // runtime kind in Activities.Runtimes
	Price    int64
	Currency string
	Record   any // offers, bids, winners, payments: the negotiation attestation
	// Devices are the exact node and GPUs the provider gives each task, when
	// it names them (Nomad pools); empty lets the runtime choose.
	Devices []TaskDevices
	// SLA are the money terms the provider agreed to (nil: none recorded).
	SLA *sla.Terms
	// Queue is the provider agent's task queue (workflows.ExecQueue);
	// empty for providers the shared execution queue runs.
	Queue string
	// Explanation says why the price is what it is, for people.
	Explanation string
	// Tasks are the tasks of a part of a split award; empty: every task.
	Tasks []string
	// Parts splits the job over several provider agents
	// (placement.split): the fields above are then the first part's, but
	// Price is the parts' sum.
	Parts []Award
}

// TaskDevices is the node and GPU instance IDs a provider offered a task.
type TaskDevices = workflows.TaskDevices

// Ledger holds, releases and settles a job's money. Every call is
// idempotent by job ID (and attempt).
type Ledger interface {
	// Cover reports, without holding anything, an error wrapping
	// ErrInsufficient when the tenant cannot fund a hold of amount.
	Cover(ctx context.Context, tenant, currency string, amount int64) error
	// CheckShares refuses royalties and the platform fee that add up to
	// more than the price.
	CheckShares(plan *specs.Plan) error
	Hold(ctx context.Context, req HoldRequest) (held int64, holdID string, record any, err error)
	Release(ctx context.Context, jobID string) (refunded int64, err error)
	Settle(ctx context.Context, req SettleRequest) (paid, refunded int64, record any, err error)
}

// HoldRequest is the escrow hold at placement.
type HoldRequest struct {
	JobID, Tenant, Provider, Currency string
	Price, Cap                        int64
}

// SettleRequest is the settlement of a held job.
type SettleRequest struct {
	JobID     string
	Provider  string
	Plan      *specs.Plan
	Price     int64
	Usage     workflows.Usage
	Succeeded bool
	Outcome   Outcome
	// SLA are the terms the provider agreed to in negotiation (the award's);
	// nil holds it to the spec's terms with no stake at risk.
	SLA *sla.Terms
	// Parts settles a split job: each provider for its own tasks, under
	// its own terms (Provider, Price, Usage, SLA and Outcome above are then
	// unused).
	Parts []SettlePart
}

// SettlePart is one provider's part of a split job at settlement.
type SettlePart struct {
	Provider string
	Price    int64
	Usage    workflows.Usage
	SLA      *sla.Terms
	Outcome  Outcome
}

// Outcome is the measured timing of the job (workflow time): when it was
// placed (zero: Started) and when execution started and finished.
type Outcome struct {
	Placed, Started, Finished time.Time
}

// Quota holds tenants' quota reservations made at admission: released when
// a job fails or is cancelled, replaced by actual use at settlement. Both
// are idempotent by job ID (policies.Store implements it).
type Quota interface {
	Release(ctx context.Context, jobID string) error
	Consume(ctx context.Context, jobID string, spend int64, gpuHours float64) error
}

// Attestor signs a stage statement chained to the previous one and logs it.
// Idempotent by (job, stage): a retry returns the first envelope's entry.
type Attestor interface {
	Attest(ctx context.Context, in workflows.AttestInput) (workflows.AttestOutput, error)
}

// Sentinel errors ports wrap so that activities can classify them.
var (
	ErrNoOffers     = errors.New("activities: no offers")
	ErrInsufficient = errors.New("activities: insufficient funds")
)

// Activities holds the components every activity calls.
type Activities struct {
	Compiler   Compiler
	Admitter   Admitter
	Negotiator Negotiator
	Ledger     Ledger
	Quota      Quota // optional
	Attestor   Attestor
	// Signer signs this worker's own stages for another party to log: a
	// provider agent's key (SignStage); nil refuses to sign.
	Signer StageSigner
	// Artifacts holds what the workflow passes by reference: compiled plans
	// and sealed task results.
	Artifacts artifacts.Store
	// Runtimes by kind (Award.Runtime).
	Runtimes map[string]runtimes.Runtime
	// OpenRuntime opens a kind missing from Runtimes (a pool attached after
	// the worker started); nil means only Runtimes. Opened runtimes are kept.
	OpenRuntime func(ctx context.Context, kind string) (runtimes.Runtime, error)
	// VerifyRuntime, when set, is the runtime kind that runs acceptance-test
	// containers, so the buyer's worker checks a provider's outputs itself
	// (and tests run even where the award's runtime cannot mount the
	// collected outputs, as on Nomad); empty means the award's runtime.
	VerifyRuntime string
	// TestDuration bounds each acceptance-test container (default
	// DefaultTestDuration).
	TestDuration time.Duration
	// Tracker, when set, is told which runs start and end on which runtime
	// (pools refuse to detach while tasks run there).
	Tracker TaskTracker
	// JobsDir holds per-job directories: collected outputs and task logs.
	JobsDir string
	// Inputs fetches the artifacts tenants name as inputs and images
	// (artifact: sha256:…); nil refuses such tasks.
	Inputs InputStore
	// Outputs, on a provider agent, receives every collected output, so
	// that parties on other machines read it by digest; nil keeps outputs
	// on this host only (they are in the store's directory already).
	Outputs OutputStore
	// Grants, on the control plane, records what the provider agent
	// awarded a job may read from the artifact store over HTTP; nil
	// records nothing.
	Grants AgentGrants
	// InputsDir is where artifacts are materialized (default "inputs"
	// beside JobsDir).
	InputsDir string
	// HostInputs are the absolute directories under which a task may mount
	// a host path input or import an oci-archive: image: the operator's
	// --host-inputs. Empty allows no host path at all (a shared worker).
	HostInputs []string
	// Models is the model registry: resolving and pricing the models a
	// plan uses (control), fetching them for tasks and publishing outputs
	// (execution). Nil refuses jobs that use or publish models.
	Models ModelExchange
	// Providers is the provider agents' registry: liveness and reputation
	// for failover and spot checks (layout 6); nil refuses them.
	Providers ProviderRegistry
	// ProviderName is the provider agent this worker is (empty on the
	// control plane): it signs only placements that name it.
	ProviderName string
	// Clearing is the market's clearing queue (batch-mode jobs, layout 9);
	// nil refuses batch-mode jobs.
	Clearing ClearingQueue
	Log      *slog.Logger

	mu        sync.Mutex
	plans     map[string]*specs.Plan // plan digest -> decoded plan, read-only
	prepared  map[string]string      // prepareKey -> image digest
	preparing keylock.Locks          // by prepareKey, held while preparing
}

// RegisterControl registers the control-plane activities on w (task queue
// workflows.TaskQueueControl).
func (a *Activities) RegisterControl(w worker.ActivityRegistry) {
	workflows.Compile.Register(w, a.Compile)
	workflows.Admit.Register(w, a.Admit)
	workflows.Negotiate.Register(w, a.Negotiate)
	workflows.BargainSnapshot.Register(w, a.BargainSnapshot)
	workflows.BargainRound.Register(w, a.BargainRound)
	workflows.Place.Register(w, a.Place)
	workflows.Release.Register(w, a.Release)
	workflows.Settle.Register(w, a.Settle)
	workflows.Attest.Register(w, a.Attest)
	workflows.SealResults.Register(w, a.SealResults)
	workflows.EnqueueClearing.Register(w, a.EnqueueClearing)
	workflows.DequeueClearing.Register(w, a.DequeueClearing)
	workflows.ClearMarket.Register(w, a.ClearMarket)
	a.RegisterFailover(w)
}

// RegisterExecution registers the execution activities on w (task queue
// workflows.TaskQueueExecution), on the machines that host the runtimes.
func (a *Activities) RegisterExecution(w worker.ActivityRegistry) {
	workflows.StartTask.Register(w, a.StartTask)
	workflows.WaitTask.Register(w, a.WaitTask)
	workflows.RunTask.Register(w, a.RunTask)
	workflows.StopTask.Register(w, a.StopTask)
	workflows.StopTests.Register(w, a.StopTests)
	workflows.Verify.Register(w, a.Verify)
	workflows.Publish.Register(w, a.PublishModels)
}

func (a *Activities) logger(ctx context.Context, jobID string) *slog.Logger {
	l := a.Log
	if l == nil {
		l = slog.Default()
	}
	l = l.With("job_id", jobID)
	if activity.IsActivity(ctx) {
		info := activity.GetInfo(ctx)
		l = l.With("activity", info.ActivityType.Name, "attempt", info.Attempt)
	}
	return l
}

func (a *Activities) jobDir(jobID string) string { return filepath.Join(a.JobsDir, jobID) }

// TaskTracker records the runs on each runtime. Both calls are idempotent
// by (runtime, run ID); TaskStarted may refuse (a draining pool).
type TaskTracker interface {
	TaskStarted(ctx context.Context, runtime, runID string) error
	TaskFinished(ctx context.Context, runtime, runID string) error
}

func (a *Activities) runtime(ctx context.Context, kind string) (runtimes.Runtime, error) {
	a.mu.Lock()
	rt, ok := a.Runtimes[kind]
	a.mu.Unlock()
	if ok {
		return rt, nil
	}
	if a.OpenRuntime != nil {
		rt, err := a.OpenRuntime(ctx, kind)
		if err == nil {
			a.mu.Lock()
			defer a.mu.Unlock()
			if have, ok := a.Runtimes[kind]; ok {
				return have, nil
			}
			if a.Runtimes == nil {
				a.Runtimes = map[string]runtimes.Runtime{}
			}
			a.Runtimes[kind] = rt
			return rt, nil
		}
		if !errors.Is(err, runtimes.ErrNotFound) {
			return nil, fmt.Errorf("open runtime %q: %w", kind, err)
		}
	}
	return nil, temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("no runtime %q on this worker", kind), workflows.ErrTypeExecution, nil)
}

// maxBlob bounds what an activity reads back from the artifact store.
const maxBlob = 256 << 20

// plan resolves the plan an activity works on: by reference from the
// artifact store (layout 1), or inline (layout 0).
func (a *Activities) plan(ctx context.Context, in workflows.PlanInput) (*specs.Plan, error) {
	if in.PlanRef == "" {
		return decodePlan(in.PlanJSON)
	}
	if a.Artifacts == nil {
		return nil, permanent(workflows.ErrTypeInvalidSpec, errors.New("plan by reference but no artifact store"))
	}
	a.mu.Lock()
	p, ok := a.plans[in.PlanRef]
	a.mu.Unlock()
	if ok {
		return p, nil
	}
	raw, err := a.Artifacts.Get(ctx, in.PlanRef, maxBlob)
	if err != nil {
		return nil, blobErr("plan", err)
	}
	if p, err = decodePlan(raw); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.plans) >= maxCachedPlans {
		clear(a.plans) // plans are small in number and cheap to read again
	}
	if a.plans == nil {
		a.plans = map[string]*specs.Plan{}
	}
	a.plans[in.PlanRef] = p
	return p, nil
}

// maxCachedPlans bounds the decoded plans kept: every attempt of a large
// job's tasks reads the same plan, which can be megabytes of JSON.
const maxCachedPlans = 32

// results reads sealed task results back, merged.
func (a *Activities) results(ctx context.Context, refs []string) (map[string]workflows.TaskStatus, error) {
	out := map[string]workflows.TaskStatus{}
	for _, ref := range refs {
		if a.Artifacts == nil {
			return nil, permanent(workflows.ErrTypeInvalidSpec, errors.New("sealed results but no artifact store"))
		}
		raw, err := a.Artifacts.Get(ctx, ref, maxBlob)
		if err != nil {
			return nil, blobErr("task results", err)
		}
		var part map[string]workflows.TaskStatus
		if err := json.Unmarshal(raw, &part); err != nil {
			return nil, permanent(workflows.ErrTypeExecution, fmt.Errorf("task results %s: %w", ref, err))
		}
		for k, v := range part {
			out[k] = v
		}
	}
	return out, nil
}

// blobErr classifies an artifact store error: a missing, corrupt or
// malformed blob will not heal by retrying; I/O errors may.
func blobErr(what string, err error) error {
	if errors.Is(err, artifacts.ErrNotFound) || errors.Is(err, artifacts.ErrCorrupt) ||
		errors.Is(err, artifacts.ErrDigest) || errors.Is(err, artifacts.ErrTooLarge) {
		return permanent(workflows.ErrTypeExecution, fmt.Errorf("%s: %w", what, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

func decodePlan(raw json.RawMessage) (*specs.Plan, error) {
	var p specs.Plan
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, temporal.NewNonRetryableApplicationError("decode plan: "+err.Error(), workflows.ErrTypeInvalidSpec, err)
	}
	if p.Spec == nil {
		return nil, temporal.NewNonRetryableApplicationError("plan has no spec", workflows.ErrTypeInvalidSpec, nil)
	}
	return &p, nil
}

func record(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(fmt.Sprintf("%q", "unencodable record: "+err.Error()))
	}
	return b
}

func permanent(errType string, err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), errType, err)
}

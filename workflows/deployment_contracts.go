package workflows

import (
	"context"
	"errors"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/accordmesh/accord/services"
	"github.com/accordmesh/accord/specs"
)

// The deployment workflow's contract: a new workflow type with its own
// versioning (deploymentChange, below), so the job workflow's layouts and
// histories are untouched.

// DeploymentWorkflowName is the registered name of the deployment workflow.
const DeploymentWorkflowName = "accord.Deployment"

// TaskQueueServices is where a services host (the machine that runs the
// replicas and the endpoint proxies) polls the deployment activities.
const TaskQueueServices = "accord-services"

// Signals and queries of a deployment.
const (
	SignalDeployUpdate   = "deploy-update"
	SignalDeployRollback = "deploy-rollback"
	SignalDeployStop     = "deploy-stop"
	QueryDeployment      = "deployment"
)

// Deployment phases.
const (
	PhaseStarting = "starting" // replicas starting, not all ready yet
	PhaseServing  = "serving"
	PhaseCanary   = "canary"    // an update's canary takes its share
	PhasePromote  = "promoting" // the new version replaces the old
	PhaseGrace    = "grace"     // escrow could not be topped up
	PhaseStopping = "stopping"
	PhaseStopped  = "stopped"
)

// ServiceRelease is one version of a deployment's service.
type ServiceRelease struct {
	N          int           `json:"n"`       // 1, 2, ... per deployment; labels replicas r<N>
	Version    string        `json:"version"` // the spec's version
	SpecDigest string        `json:"spec_digest,omitempty"`
	Service    specs.Service `json:"service"`
	Created    time.Time     `json:"created"`
	// Model is the service's registry model as resolved for this release
	// (layout 3): pinned by digest, verified, priced per inference.
	Model *services.ModelPin `json:"model,omitempty"`
}

// Label is the release's version label in routes and measurements.
func (r ServiceRelease) Label() string { return "r" + strconv.Itoa(r.N) }

// DeploymentInput starts (or, with State, continues) a deployment.
type DeploymentInput struct {
	ID       string         `json:"id"`
	Tenant   string         `json:"tenant"`
	Currency string         `json:"currency"`
	Budget   int64          `json:"budget"` // the most the deployment may cost over its life
	Release  ServiceRelease `json:"release"`
	// State is the carried state of a continued run (continue-as-new).
	State *DeploymentState `json:"state,omitempty"`
}

// ReplicaState is one replica as the workflow tracks it.
type ReplicaState struct {
	ID       string    `json:"id"`
	Release  int       `json:"release"`
	Slot     int       `json:"slot"`
	Gen      int       `json:"gen"`
	Addr     string    `json:"addr"`
	Canary   bool      `json:"canary,omitempty"`
	Retiring bool      `json:"retiring,omitempty"` // an old release's replica kept until the new one is ready
	State    string    `json:"state"`
	Ready    bool      `json:"ready"`
	Served   bool      `json:"served,omitempty"` // has been ready at least once
	OKs      int       `json:"oks"`              // consecutive readiness successes
	Fails    int       `json:"fails"`            // consecutive readiness failures
	Dead     int       `json:"dead"`             // consecutive liveness failures
	Restarts int       `json:"restarts"`         // in this deployment's life
	Started  time.Time `json:"started"`
}

// Event is one entry of the deployment's log.
type Event struct {
	At   time.Time `json:"at"`
	Kind string    `json:"kind"`
	Msg  string    `json:"msg"`
}

// RolloutResult is an update's verdict.
type RolloutResult struct {
	Release  int            `json:"release"`
	Promoted bool           `json:"promoted"`
	Reason   string         `json:"reason"`
	Canary   services.Stats `json:"canary"`
	At       time.Time      `json:"at"`
}

// SLAWindow is one SLA measurement window and its verdict.
type SLAWindow struct {
	N        int            `json:"n"`
	Period   int            `json:"period"`
	Stats    services.Stats `json:"stats"`
	Unrouted int64          `json:"unrouted"`
	Breached bool           `json:"breached"`
	Reasons  []string       `json:"reasons,omitempty"`
}

// DeploymentState is everything a deployment carries across
// continue-as-new, and what `accord deploy status` shows.
type DeploymentState struct {
	ID       string `json:"id"`
	Tenant   string `json:"tenant"`
	Currency string `json:"currency"`
	Budget   int64  `json:"budget"`
	Phase    string `json:"phase"`
	Endpoint string `json:"endpoint"`
	// Rate is the negotiated price per replica-hour.
	Rate     int64           `json:"replica_hour"`
	Stable   ServiceRelease  `json:"stable"`
	Canary   *ServiceRelease `json:"canary,omitempty"`
	Previous *ServiceRelease `json:"previous,omitempty"` // what a rollback after promotion returns to
	Releases int             `json:"releases"`
	NextGen  int             `json:"next_gen"` // replica generation counter: IDs are never reused
	Replicas []ReplicaState  `json:"replicas"`
	Routes   services.Routes `json:"routes"`

	CanaryStarted time.Time `json:"canary_started,omitempty"` // first ready: the gate window opens
	CanaryCreated time.Time `json:"canary_created,omitempty"`

	Period         int       `json:"period"`
	PeriodStart    time.Time `json:"period_start"`
	PeriodMillis   int64     `json:"period_replica_ms"`
	PeriodBreached bool      `json:"period_breached,omitempty"`
	PeriodReasons  []string  `json:"period_reasons,omitempty"`
	Held           int64     `json:"held"`
	Spent          int64     `json:"spent"`
	Refunded       int64     `json:"sla_refunded"`
	Settled        int       `json:"settled"` // periods settled over the deployment's life
	Slashed        int64     `json:"slashed"`
	GraceUntil     time.Time `json:"grace_until,omitempty"`

	Window      int       `json:"window"`
	WindowStart time.Time `json:"window_start"`

	// Pins are the models of the releases that may have served requests
	// in the open billing period, by release label (layout 3): what the
	// period's inferences pay. ModelFees is what they paid over the
	// deployment's life, LastModelFees in the last period priced.
	Pins          map[string]services.ModelPin `json:"model_pins,omitempty"`
	ModelFees     int64                        `json:"model_fees"`
	LastModelFees int64                        `json:"last_model_fees,omitempty"`

	// Attested is the last attested event's seq (layout 2: every event
	// that moves money or traffic is signed and logged, chained);
	// AttestTail is its envelope digest, which the next event links.
	Attested   int    `json:"attested"`
	AttestTail string `json:"attest_tail,omitempty"`

	LastTick time.Time `json:"last_tick"`
	Ticks    int       `json:"ticks"`
	Runs     int       `json:"runs"` // continue-as-new count

	Events      []Event                     `json:"events"`
	Settlements []services.PeriodSettlement `json:"settlements"`
	Windows     []SLAWindow                 `json:"windows"`
	Rollouts    []RolloutResult             `json:"rollouts"`
	StopReason  string                      `json:"stop_reason,omitempty"`
}

// Bounds on what the state keeps (older entries are dropped; the ledger
// and the attestations keep everything).
const (
	maxEvents      = 200
	maxSettlements = 100
	maxWindows     = 100
	maxRollouts    = 50
)

// UpdateRequest is the deploy-update signal.
type UpdateRequest struct {
	Version    string        `json:"version"`
	SpecDigest string        `json:"spec_digest,omitempty"`
	Service    specs.Service `json:"service"`
}

// ReasonRequest is the rollback and stop signals.
type ReasonRequest struct {
	Reason string `json:"reason"`
	By     string `json:"by,omitempty"`
}

// The deployment activities, run by a services host (services.Host).
var (
	OpenEndpoint  = Activity[services.EndpointRequest, services.EndpointInfo]{Name: "deploy.OpenEndpoint"}
	CloseEndpoint = Activity[services.EndpointRequest, services.EndpointInfo]{Name: "deploy.CloseEndpoint"}
	StartReplica  = Activity[services.ReplicaRequest, services.ReplicaInfo]{Name: "deploy.StartReplica"}
	StopReplicas  = Activity[services.StopRequest, services.StopResult]{Name: "deploy.StopReplicas"}
	CheckReplicas = Activity[services.CheckRequest, []services.Health]{Name: "deploy.CheckReplicas"}
	RouteEndpoint = Activity[services.RouteRequest, services.Routes]{Name: "deploy.Route"}
	MeasureWindow = Activity[services.MeasureRequest, services.Window]{Name: "deploy.Measure"}
	HoldPeriod    = Activity[services.HoldPeriodRequest, services.HoldPeriodResult]{Name: "deploy.HoldPeriod"}
	SettlePeriod  = Activity[services.SettlePeriodRequest, services.PeriodSettlement]{Name: "deploy.SettlePeriod"}
	// AttestEvent signs and logs one deployment event (layout 2).
	AttestEvent = Activity[services.AttestRequest, services.AttestResult]{Name: "deploy.Attest"}
	// ResolveModel pins, verifies, fetches and prices a release's model
	// (layout 3).
	ResolveModel = Activity[services.ResolveModelRequest, services.ModelPin]{Name: "deploy.ResolveModel"}
)

// RegisterDeployment registers the deployment workflow on w.
func RegisterDeployment(w worker.WorkflowRegistry) {
	w.RegisterWorkflowWithOptions(Deployment, workflow.RegisterOptions{Name: DeploymentWorkflowName})
}

// RegisterDeploymentActivities binds the deployment activities to h.
func RegisterDeploymentActivities(r worker.ActivityRegistry, h *services.Host) {
	OpenEndpoint.Register(r, h.OpenEndpoint)
	CloseEndpoint.Register(r, h.CloseEndpoint)
	StartReplica.Register(r, h.StartReplica)
	StopReplicas.Register(r, h.StopReplicas)
	CheckReplicas.Register(r, h.CheckReplicas)
	RouteEndpoint.Register(r, h.Route)
	MeasureWindow.Register(r, h.Measure)
	HoldPeriod.Register(r, h.HoldPeriod)
	SettlePeriod.Register(r, h.SettlePeriod)
	AttestEvent.Register(r, h.Attest)
	ResolveModel.Register(r, final(h.ResolveModel))
}

// ErrTypeModelRefused marks a model that did not resolve, verify or price:
// not retried.
const ErrTypeModelRefused = "ModelRefused"

// final marks a refused model or an invalid request non-retryable.
func final[I, O any](fn func(context.Context, I) (O, error)) func(context.Context, I) (O, error) {
	return func(ctx context.Context, in I) (O, error) {
		out, err := fn(ctx, in)
		if errors.Is(err, services.ErrModelRefused) || errors.Is(err, services.ErrInvalid) {
			return out, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeModelRefused, err)
		}
		return out, err
	}
}

package workflows

import (
	"encoding/json"
	"strconv"
	"time"
)

// The contract of the job workflow: task queues, names, and one input and one
// output type per activity. Everything here is plain JSON so that histories
// stay readable and replayable across versions of the domain packages.

// Task queues, one per concern: control-plane activities (compile, admit,
// negotiate, ledger, attestations) and execution (containers), so execution
// can run on the machines that host the runtime.
const (
	TaskQueueControl   = "accord-control"
	TaskQueueExecution = "accord-execution"
)

// JobWorkflowName is the registered name of the job workflow.
const JobWorkflowName = "accord.Job"

// Signal and query names.
const (
	SignalApprove = "approve"
	SignalCancel  = "cancel"
	QueryStage    = "stage"
	QueryTasks    = "tasks"
	QueryCost     = "cost"
	QueryStatus   = "status"
)

// Search attributes the job workflow sets; all are Keyword attributes that
// the embedded server registers and `accord list` filters on.
const (
	SearchAttrTenant = "AccordTenant"
	SearchAttrSpec   = "AccordSpec"
	SearchAttrStatus = "AccordStatus"
)

// Stages, in order.
const (
	StageCompile   = "compile"
	StageAdmit     = "admit"
	StageNegotiate = "negotiate"
	StageApproval  = "approval"
	StagePlace     = "place"
	StageExecute   = "execute"
	StageVerify    = "verify"
	StageSettle    = "settle"
	StageDone      = "done"
)

// Job statuses (lower-case; the JSON `status` of every job command).
const (
	StatusPending          = "pending"
	StatusRunning          = "running"
	StatusAwaitingApproval = "awaiting_approval"
	StatusSettled          = "settled"
	StatusFailed           = "failed"
	StatusCancelled        = "cancelled"
)

// Failure classes, mapped to exit codes by the CLI.
const (
	ClassInvalidSpec  = "invalid_spec"
	ClassPolicy       = "policy"
	ClassNoOffers     = "no_offers"
	ClassExecution    = "execution"
	ClassVerification = "verification"
	ClassCancelled    = "cancelled"
	ClassInternal     = "internal"
)

// Application error types that activities return as non-retryable failures;
// the workflow maps them to failure classes.
const (
	ErrTypeInvalidSpec  = "AccordInvalidSpec"
	ErrTypePolicy       = "AccordPolicy"
	ErrTypeNoOffers     = "AccordNoOffers"
	ErrTypeInsufficient = "AccordInsufficientFunds"
	ErrTypeExecution    = "AccordExecution"
	ErrTypeStillRunning = "AccordStillRunning"
)

// Task states reported by the tasks query.
const (
	TaskPending   = "pending"
	TaskRunning   = "running"
	TaskSucceeded = "succeeded"
	TaskFailed    = "failed"
	TaskSkipped   = "skipped"
	TaskCancelled = "cancelled"
)

// JobInput starts a job. SpecPath is absolute on the worker's host; the
// starter reads the document to fix its digest, so a spec edited after
// submission is rejected rather than silently run.
type JobInput struct {
	JobID          string `json:"job_id"`
	SpecPath       string `json:"spec_path"`
	DocumentDigest string `json:"document_digest,omitempty"`
	Submitter      string `json:"submitter,omitempty"`
}

// JobResult is the workflow's result.
type JobResult struct {
	JobID        string                 `json:"job_id"`
	Status       string                 `json:"status"`
	Class        string                 `json:"class,omitempty"`
	Error        string                 `json:"error,omitempty"`
	Stage        string                 `json:"stage"`
	Spec         string                 `json:"spec,omitempty"`
	Tenant       string                 `json:"tenant,omitempty"`
	Provider     string                 `json:"provider,omitempty"`
	Price        int64                  `json:"price"`
	Paid         int64                  `json:"paid"`
	Refunded     int64                  `json:"refunded"`
	Currency     string                 `json:"currency,omitempty"`
	Tasks        map[string]TaskStatus  `json:"tasks,omitempty"`
	Tests        []TestResult           `json:"tests,omitempty"`
	Attestations []AttestationRef       `json:"attestations,omitempty"`
	Stages       map[string]StageTiming `json:"stages,omitempty"`
	Compensated  []string               `json:"compensated,omitempty"`
}

// StageTiming records when a stage started and ended (workflow time).
type StageTiming struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
}

// JobStatus answers the status query: a live view of the job.
type JobStatus struct {
	JobID    string                 `json:"job_id"`
	Status   string                 `json:"status"`
	Stage    string                 `json:"stage"`
	Spec     string                 `json:"spec,omitempty"`
	Tenant   string                 `json:"tenant,omitempty"`
	Cost     Cost                   `json:"cost"`
	Tasks    map[string]TaskStatus  `json:"tasks,omitempty"`
	Stages   map[string]StageTiming `json:"stages,omitempty"`
	Approved bool                   `json:"approved,omitempty"`
}

// Cost is the cost so far: the negotiated price once known, what is held in
// escrow, and what has been paid.
type Cost struct {
	Price    int64  `json:"price"`
	Held     int64  `json:"held"`
	Paid     int64  `json:"paid"`
	Currency string `json:"currency,omitempty"`
}

// TaskStatus is one task's progress.
type TaskStatus struct {
	State    string           `json:"state"`
	Attempt  int              `json:"attempt"`
	RunID    string           `json:"run_id,omitempty"`
	ExitCode int              `json:"exit_code"`
	Reason   string           `json:"reason,omitempty"`
	Outputs  []OutputArtifact `json:"outputs,omitempty"`
	Usage    Usage            `json:"usage"`
	// ImageDigest, StartedAt and FinishedAt describe the last attempt's
	// container (runtime clock).
	ImageDigest string     `json:"image_digest,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
}

// OutputArtifact is a collected output file.
type OutputArtifact struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	Local  string `json:"local,omitempty"`
}

// Usage is metered consumption.
type Usage struct {
	WallSeconds  float64 `json:"wall_seconds"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	PeakMemBytes int64   `json:"peak_mem_bytes"`
	MemGBSeconds float64 `json:"mem_gb_seconds"`
	GPUSeconds   float64 `json:"gpu_seconds"`
}

// PlanTask is the part of a compiled task the workflow needs to schedule it.
type PlanTask struct {
	Name        string        `json:"name"`
	DependsOn   []string      `json:"depends_on,omitempty"`
	Attempts    int           `json:"attempts"`
	Backoff     time.Duration `json:"backoff_ns"`
	MaxBackoff  time.Duration `json:"max_backoff_ns,omitempty"`
	MaxDuration time.Duration `json:"max_duration_ns"`
}

// PlanSummary is what the workflow sees of a compiled plan.
type PlanSummary struct {
	Name             string        `json:"name"`
	Version          string        `json:"version"`
	Tenant           string        `json:"tenant"`
	DocumentDigest   string        `json:"document_digest"`
	ContractDigest   string        `json:"contract_digest"`
	Tasks            []PlanTask    `json:"tasks"` // topological order
	MaxCost          int64         `json:"max_cost"`
	Currency         string        `json:"currency"`
	Deadline         time.Duration `json:"deadline_ns,omitempty"`
	ApprovalRequired bool          `json:"approval_required,omitempty"`
	ApprovalAbove    int64         `json:"approval_above,omitempty"`
	HasTests         bool          `json:"has_tests,omitempty"`
}

// CompileInput / CompileOutput: load, compose, validate and compile the spec.
type CompileInput struct {
	JobID          string `json:"job_id"`
	SpecPath       string `json:"spec_path"`
	DocumentDigest string `json:"document_digest,omitempty"`
}

type CompileOutput struct {
	Plan PlanSummary `json:"plan"`
	// PlanJSON is the full compiled plan, opaque to the workflow and handed to
	// the activities that need it.
	PlanJSON json.RawMessage `json:"plan_json"`
}

// AdmitInput / AdmitOutput: admission policy.
type AdmitInput struct {
	JobID    string          `json:"job_id"`
	PlanJSON json.RawMessage `json:"plan_json"`
	// SpecPath is the submitted document; its detached signature, if any,
	// is SpecPath + ".sig" (`accord spec sign`).
	SpecPath string `json:"spec_path,omitempty"`
}

type AdmitOutput struct {
	Allowed  bool            `json:"allowed"`
	Reason   string          `json:"reason,omitempty"`
	Decision json.RawMessage `json:"decision,omitempty"` // for the admission attestation
}

// NegotiateInput / NegotiateOutput: run the market.
type NegotiateInput struct {
	JobID    string          `json:"job_id"`
	PlanJSON json.RawMessage `json:"plan_json"`
}

type NegotiateOutput struct {
	Provider string `json:"provider"`
	Pool     string `json:"pool"`
	Runtime  string `json:"runtime"` // runtime kind that executes the tasks
	Price    int64  `json:"price"`
	Currency string `json:"currency"`
	// Record is the negotiation's evidence (offers, bids, winners, prices).
	Record json.RawMessage `json:"record,omitempty"`
	// Devices are the node and GPU instance IDs the provider offered each
	// task (Nomad pools); empty when the runtime chooses.
	Devices []TaskDevices `json:"devices,omitempty"`
}

// TaskDevices is the node and GPU instance IDs offered for one task.
type TaskDevices struct {
	Task       string   `json:"task"`
	Node       string   `json:"node,omitempty"`
	GPUDevices []string `json:"gpu_devices,omitempty"`
}

// PlaceInput / PlaceOutput: reserve capacity and hold escrow.
type PlaceInput struct {
	JobID    string          `json:"job_id"`
	Tenant   string          `json:"tenant"`
	PlanJSON json.RawMessage `json:"plan_json"`
	Award    NegotiateOutput `json:"award"`
}

type PlaceOutput struct {
	Reservation string          `json:"reservation"`
	HoldID      string          `json:"hold_id"`
	Held        int64           `json:"held"`
	Currency    string          `json:"currency"`
	Node        string          `json:"node,omitempty"`
	Record      json.RawMessage `json:"record,omitempty"`
}

// ReleaseInput / ReleaseOutput: compensation for Place (refund escrow,
// release the reservation). Idempotent by job ID.
type ReleaseInput struct {
	JobID     string      `json:"job_id"`
	Tenant    string      `json:"tenant"`
	Placement PlaceOutput `json:"placement"`
	Reason    string      `json:"reason"`
}

type ReleaseOutput struct {
	Refunded int64 `json:"refunded"`
}

// StartTaskInput / StartTaskOutput: start one attempt of one task.
type StartTaskInput struct {
	JobID    string          `json:"job_id"`
	Task     string          `json:"task"`
	Attempt  int             `json:"attempt"`
	RunID    string          `json:"run_id"` // <job>.<task>.<attempt>
	PlanJSON json.RawMessage `json:"plan_json"`
	Award    NegotiateOutput `json:"award"`
}

type StartTaskOutput struct {
	RunID       string `json:"run_id"`
	ImageDigest string `json:"image_digest,omitempty"`
	Node        string `json:"node,omitempty"`
}

// WaitTaskInput / WaitTaskOutput: wait for an attempt to end, collect its
// outputs and logs, clean it up. While the container runs the activity
// heartbeats; after Window it gives its slot back with a retryable
// ErrTypeStillRunning error and Temporal schedules the next wait.
type WaitTaskInput struct {
	JobID   string          `json:"job_id"`
	Task    string          `json:"task"`
	RunID   string          `json:"run_id"`
	Runtime string          `json:"runtime"`
	Window  time.Duration   `json:"window_ns"`
	Plan    json.RawMessage `json:"plan_json,omitempty"`
}

type WaitTaskOutput struct {
	State       string           `json:"state"` // runtimes.State
	ExitCode    int              `json:"exit_code"`
	Reason      string           `json:"reason,omitempty"`
	Node        string           `json:"node,omitempty"`
	Outputs     []OutputArtifact `json:"outputs,omitempty"`
	Usage       Usage            `json:"usage"`
	ImageDigest string           `json:"image_digest,omitempty"`
	StartedAt   time.Time        `json:"started_at,omitzero"`
	FinishedAt  time.Time        `json:"finished_at,omitzero"`
}

// StopTaskInput / StopTaskOutput: compensation for StartTask. Idempotent:
// stopping and cleaning up an unknown or finished run is a no-op.
type StopTaskInput struct {
	RunID   string `json:"run_id"`
	Runtime string `json:"runtime"`
}

type StopTaskOutput struct {
	Stopped bool `json:"stopped"`
}

// VerifyInput / VerifyOutput: acceptance tests over the collected outputs.
type VerifyInput struct {
	JobID    string                `json:"job_id"`
	PlanJSON json.RawMessage       `json:"plan_json"`
	Award    NegotiateOutput       `json:"award"`
	Tasks    map[string]TaskStatus `json:"tasks"`
}

type VerifyOutput struct {
	Passed bool         `json:"passed"`
	Tests  []TestResult `json:"tests"`
}

// TestResult is one acceptance test's outcome.
type TestResult struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail,omitempty"`
}

// SettleInput / SettleOutput: pay the provider from escrow per the price and
// metered usage, fees, royalties, SLA; refund the rest.
type SettleInput struct {
	JobID     string                `json:"job_id"`
	Tenant    string                `json:"tenant"`
	PlanJSON  json.RawMessage       `json:"plan_json"`
	Award     NegotiateOutput       `json:"award"`
	Placement PlaceOutput           `json:"placement"`
	Tasks     map[string]TaskStatus `json:"tasks"`
	Verified  bool                  `json:"verified"`
	Started   time.Time             `json:"started"`
	Finished  time.Time             `json:"finished"`
}

type SettleOutput struct {
	Paid     int64           `json:"paid"`
	Refunded int64           `json:"refunded"`
	Currency string          `json:"currency"`
	Record   json.RawMessage `json:"record,omitempty"` // postings, for the attestation
}

// AttestInput / AttestOutput: sign a stage statement chained to the previous
// one and append it to the transparency log. Idempotent by (job, stage).
type AttestInput struct {
	JobID     string          `json:"job_id"`
	Stage     string          `json:"stage"`
	Previous  string          `json:"previous,omitempty"` // digest of the previous envelope
	Subjects  []Subject       `json:"subjects,omitempty"`
	Predicate json.RawMessage `json:"predicate"`
}

// Subject is an artifact an attestation is about.
type Subject struct {
	Name   string `json:"name"`
	Digest string `json:"digest"` // sha256:<hex>
}

type AttestOutput struct {
	Digest   string `json:"digest"`
	LogIndex int64  `json:"log_index"`
}

// AttestationRef is one stage's attestation in the job result.
type AttestationRef struct {
	Stage    string `json:"stage"`
	Digest   string `json:"digest"`
	LogIndex int64  `json:"log_index"`
}

// Activity names. The workflow refers to activities by name so that it does
// not import their implementations; activities.Register binds them.
const (
	ActivityCompile   = "Compile"
	ActivityAdmit     = "Admit"
	ActivityNegotiate = "Negotiate"
	ActivityPlace     = "Place"
	ActivityRelease   = "Release"
	ActivityStartTask = "StartTask"
	ActivityWaitTask  = "WaitTask"
	ActivityStopTask  = "StopTask"
	ActivityVerify    = "Verify"
	ActivitySettle    = "Settle"
	ActivityAttest    = "Attest"
)

// RunID names one attempt of one task: <job>.<task>.<attempt>.
func RunID(jobID, task string, attempt int) string {
	return jobID + "." + task + "." + strconv.Itoa(attempt)
}

package workflows

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"

	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/settlement/sla"
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

// ExecQueuePrefix starts every provider agent's task queue.
const ExecQueuePrefix = "accord-exec-"

// ExecQueue is the task queue a provider agent polls (layout 5): every
// execution activity of a task awarded to it, and the signing of its
// execution attestation. provider is a valid provider name (names.Provider),
// so the queue name needs no escaping.
func ExecQueue(provider string) string { return ExecQueuePrefix + provider }

// JobWorkflowName is the registered name of the job workflow;
// BatchWorkflowName is its child that runs one batch of a large job's tasks.
const (
	JobWorkflowName   = "accord.Job"
	BatchWorkflowName = "accord.JobBatch"
)

// Signal, update and query names. From layout 3 on an approval is the
// update UpdateApprove, checked by the workflow before it is accepted; the
// approve signal is what earlier layouts wait for.
const (
	SignalApprove = "approve"
	UpdateApprove = "approve"
	// UpdateCounter is the buyer agent's move in an agent-played bargain
	// (layout 8).
	UpdateCounter = "counter"
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
	StagePublish   = "publish"
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
	// ClassFunds: the tenant's balance cannot cover the job's escrow.
	ClassFunds = "insufficient_funds"
	// ClassPublish: the job verified but publishing its models failed
	// (layout 4); its work is paid.
	ClassPublish = "publish"
)

// Application error types that activities return as non-retryable failures;
// the workflow maps them to failure classes.
const (
	ErrTypeInvalidSpec  = "AccordInvalidSpec"
	ErrTypePolicy       = "AccordPolicy"
	ErrTypeNoOffers     = "AccordNoOffers"
	ErrTypeInsufficient = "AccordInsufficientFunds"
	ErrTypeExecution    = "AccordExecution"
	// ErrTypePublish: the registry refused a model the job publishes (a
	// version that exists with other content, a change class the facts
	// contradict).
	ErrTypePublish      = "AccordPublish"
	ErrTypeStillRunning = "AccordStillRunning"
	// ErrTypeNotApprover rejects an approval from an identity that is not
	// in the spec's approval.approvers.
	ErrTypeNotApprover = "AccordNotApprover"
	// ErrTypeNotAwaitingApproval rejects an approval of a job that is not
	// at its approval gate (not there yet, already approved, or past it).
	ErrTypeNotAwaitingApproval = "AccordNotAwaitingApproval"
	// ErrTypeNotBargaining rejects a counter-offer to a job that is not
	// waiting for its buyer agent's move.
	ErrTypeNotBargaining = "AccordNotBargaining"
	// ErrTypeBadMove rejects a counter-offer the bargain cannot take: a
	// price outside (0, budget], an acceptance of a provider without a
	// current offer, no identity.
	ErrTypeBadMove = "AccordBadMove"
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
}

// ApproveInput is the approve update's argument: who approves (the
// identity of the caller's token or key, set by the API or CLI, never by
// the caller's own words) and why.
type ApproveInput struct {
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
}

// ApproveOutput is the approve update's result.
type ApproveOutput struct {
	Approver string `json:"approver"`
}

// MaxApprovalReason bounds an approval's reason, in bytes.
const MaxApprovalReason = 1024

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
	TaskCounts   map[string]int         `json:"task_counts,omitempty"`
	Tests        []TestResult           `json:"tests,omitempty"`
	Attestations []AttestationRef       `json:"attestations,omitempty"`
	Stages       map[string]StageTiming `json:"stages,omitempty"`
	Compensated  []string               `json:"compensated,omitempty"`
	// PriceExplanation says why the price is what it is.
	PriceExplanation string `json:"price_explanation,omitempty"`
	// Parts are a split job's parts as they ran (layout 10): each
	// provider, its tasks and its price. Provider is then the first's.
	Parts []AwardPart `json:"parts,omitempty"`
	// Published are the model versions the job pushed (layout 4).
	Published []PublishedModel `json:"published,omitempty"`
	// Failovers are the providers lost mid-job, and SpotCheck the job's
	// spot check, if it drew one (layout 6).
	Failovers []Failover `json:"failovers,omitempty"`
	SpotCheck *SpotCheck `json:"spot_check,omitempty"`
}

// StageTiming records when a stage started and ended (workflow time).
type StageTiming struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
}

// JobStatus answers the status query: a live view of the job.
type JobStatus struct {
	JobID  string                `json:"job_id"`
	Status string                `json:"status"`
	Stage  string                `json:"stage"`
	Spec   string                `json:"spec,omitempty"`
	Tenant string                `json:"tenant,omitempty"`
	Cost   Cost                  `json:"cost"`
	Tasks  map[string]TaskStatus `json:"tasks,omitempty"`
	// TaskCounts counts tasks by state; with more than MaxListedTasks
	// tasks, Tasks lists only those not succeeded (at most MaxListedTasks).
	TaskCounts map[string]int         `json:"task_counts,omitempty"`
	Stages     map[string]StageTiming `json:"stages,omitempty"`
	Approved   bool                   `json:"approved,omitempty"`
	// Bargain is the sellers' current offers while the job waits for its
	// buyer agent's move (layout 8).
	Bargain *BargainStatus `json:"bargain,omitempty"`
	// Clearing is where a batch-mode job stands in the clearing queue
	// while it waits (layout 9).
	Clearing *ClearingStatus `json:"clearing,omitempty"`
	// Parts are a split job's parts once negotiated (layout 10).
	Parts []AwardPart `json:"parts,omitempty"`
}

// BargainStatus is a bargaining job's round: the buyer agent's move
// number, the last move the deadline allows, when the round times out,
// and each seller's current offer.
type BargainStatus struct {
	Round         int            `json:"round"`
	DeadlineRound int            `json:"deadline_round"`
	Budget        int64          `json:"budget_minor"`
	Currency      string         `json:"currency"`
	Timeout       time.Time      `json:"timeout"`
	Offers        []BargainOffer `json:"offers"`
}

// BargainOffer is one seller's current offer.
type BargainOffer struct {
	Provider string `json:"provider"`
	Price    int64  `json:"price_minor"`
}

// CounterInput is the buyer agent's move (the counter update): a
// counter-offer Price, or Accept naming the provider whose current offer
// it takes. By is the identity making the move.
type CounterInput struct {
	By     string `json:"by"`
	Price  int64  `json:"price_minor,omitempty"`
	Accept string `json:"accept,omitempty"`
}

// CounterOutput is the sellers' response to a move: the next round's
// offers, or the bargain's end (Agreed names the provider; none: no
// agreement).
type CounterOutput struct {
	Round  int            `json:"round"`
	Over   bool           `json:"over"`
	Agreed string         `json:"agreed,omitempty"`
	Price  int64          `json:"price_minor,omitempty"`
	Offers []BargainOffer `json:"offers,omitempty"`
}

// MaxCounterBy bounds a counter-offer's identity.
const MaxCounterBy = 256

// BargainSnapshotOutput is the sellers of an agent-played bargain, taken
// once (market.Sellers as JSON: the workflow only passes it on).
type BargainSnapshotOutput struct {
	Sellers json.RawMessage `json:"sellers"`
}

// BargainRoundInput / BargainRoundOutput: replay the bargain's moves
// against the snapshot; the sellers' offers now, or the bargain's end
// (Award on agreement, its Record every round).
type BargainRoundInput struct {
	JobID string `json:"job_id"`
	PlanInput
	Sellers json.RawMessage `json:"sellers"`
	Moves   []CounterInput  `json:"moves"`
}

type BargainRoundOutput struct {
	Round         int              `json:"round"`
	DeadlineRound int              `json:"deadline_round"`
	Budget        int64            `json:"budget_minor"`
	Currency      string           `json:"currency"`
	Offers        []BargainOffer   `json:"offers"`
	Over          bool             `json:"over"`
	Award         *NegotiateOutput `json:"award,omitempty"`
}

// MaxListedTasks bounds the tasks a status or result lists one by one.
const MaxListedTasks = 200

// Cost is the cost so far: the negotiated price once known, what is held in
// escrow, and what has been paid.
type Cost struct {
	Price    int64  `json:"price"`
	Held     int64  `json:"held"`
	Paid     int64  `json:"paid"`
	Currency string `json:"currency,omitempty"`
	// PriceExplanation says why the price is what it is.
	PriceExplanation string `json:"price_explanation,omitempty"`
}

// TaskStatus is one task's progress: the execution predicate's TaskRun,
// one definition for the workflow, the attestation and the audit.
type TaskStatus = predicate.TaskRun

// OutputArtifact is a collected output file (bare hex SHA256).
type OutputArtifact = predicate.OutputArtifact

// Usage is metered consumption.
type Usage = runtimes.Usage

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
	Name             string     `json:"name"`
	Version          string     `json:"version"`
	Tenant           string     `json:"tenant"`
	DocumentDigest   string     `json:"document_digest"`
	ContractDigest   string     `json:"contract_digest"`
	Tasks            []PlanTask `json:"tasks"` // topological order
	MaxCost          int64      `json:"max_cost"`
	Currency         string     `json:"currency"`
	ApprovalRequired bool       `json:"approval_required,omitempty"`
	ApprovalAbove    int64      `json:"approval_above,omitempty"`
	// Approvers are the identities that may pass the approval gate
	// (layout 3).
	Approvers []string `json:"approvers,omitempty"`
	// HasTests tells the workflow whether there is anything to verify;
	// Tests is how many acceptance tests there are (layout 2).
	HasTests bool `json:"has_tests,omitempty"`
	Tests    int  `json:"tests,omitempty"`
	// Publishes is how many models the job publishes once verified
	// (layout 4).
	Publishes int `json:"publishes,omitempty"`
	// SpotCheck is the probability that the job's tasks also run on a
	// second provider (verification.spot_check, layout 6).
	SpotCheck float64 `json:"spot_check,omitempty"`
	// Models are the registry models the tasks use, as pinned and priced.
	Models []predicate.ModelUse `json:"models,omitempty"`
	// AgentBuyer: an agent plays the buyer in alternating offers, with
	// RoundTimeout for each move (negotiation.buyer: agent, layout 8).
	AgentBuyer   bool          `json:"agent_buyer,omitempty"`
	RoundTimeout time.Duration `json:"round_timeout,omitempty"`
	// Batch: the job waits for the periodic market clearing, at most
	// BatchWait (negotiation.mode: batch, layout 9).
	Batch     bool          `json:"batch,omitempty"`
	BatchWait time.Duration `json:"batch_wait,omitempty"`
}

// PlanInput names the compiled plan an activity works on: PlanRef, the
// plan's digest in the artifact store (the workflow's layout 1), or, in
// histories of layout 0, PlanJSON, the plan itself.
type PlanInput struct {
	PlanRef  string          `json:"plan_ref,omitempty"`
	PlanJSON json.RawMessage `json:"plan_json,omitempty"`
}

// CompileInput / CompileOutput: load, compose, validate and compile the spec.
type CompileInput struct {
	JobID          string `json:"job_id"`
	SpecPath       string `json:"spec_path"`
	DocumentDigest string `json:"document_digest,omitempty"`
	// ByRef asks for the plan by reference (PlanRef) only; layout 0 jobs
	// still in flight leave it false and get PlanJSON.
	ByRef bool `json:"by_ref,omitempty"`
}

type CompileOutput struct {
	Plan PlanSummary `json:"plan"`
	// PlanRef is the full compiled plan's digest in the artifact store.
	PlanRef string `json:"plan_ref,omitempty"`
	// PlanJSON is the full plan itself, for layout 0 only.
	PlanJSON json.RawMessage `json:"plan_json,omitempty"`
}

// AdmitInput / AdmitOutput: admission policy.
type AdmitInput struct {
	JobID string `json:"job_id"`
	PlanInput
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
	JobID string `json:"job_id"`
	PlanInput
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
	// SLA are the money terms the provider agreed to in negotiation; the
	// settle stage holds it to them (absent: the spec's, with no stake).
	SLA *sla.Terms `json:"sla,omitempty"`
	// Queue is the winning provider agent's task queue (ExecQueue), where
	// its tasks run and its execution attestation is signed (layout 5);
	// empty: the shared execution queue.
	Queue string `json:"queue,omitempty"`
	// Explanation says why the price is what it is, for people ("paid
	// 1.00 USD: the buyer's reserve; no competing offer").
	Explanation string `json:"explanation,omitempty"`
	// Parts splits the job over several provider agents (layout 10,
	// placement.split): each part runs its Tasks on its provider. The
	// fields above are then the first part's (the escrow is held under
	// its provider), but Price is the parts' sum. Empty: one provider
	// runs every task.
	Parts []AwardPart `json:"parts,omitempty"`
}

// AwardPart is one provider's part of a split award.
type AwardPart struct {
	Provider string        `json:"provider"`
	Pool     string        `json:"pool,omitempty"`
	Runtime  string        `json:"runtime"`
	Queue    string        `json:"queue"`
	Tasks    []string      `json:"tasks"`
	Price    int64         `json:"price"`
	Devices  []TaskDevices `json:"devices,omitempty"`
	SLA      *sla.Terms    `json:"sla,omitempty"`
	// Explanation says why the part's price is what it is.
	Explanation string `json:"explanation,omitempty"`
}

// Part is part i of a split award as an award of its own: its provider,
// queue, price, devices and terms.
func (a NegotiateOutput) Part(i int) NegotiateOutput {
	p := a.Parts[i]
	return NegotiateOutput{Provider: p.Provider, Pool: p.Pool, Runtime: p.Runtime, Price: p.Price, Currency: a.Currency,
		Devices: p.Devices, SLA: p.SLA, Queue: p.Queue, Explanation: p.Explanation}
}

// PartOf is the index of the part that runs task, or -1.
func (a NegotiateOutput) PartOf(task string) int {
	for i, p := range a.Parts {
		if slices.Contains(p.Tasks, task) {
			return i
		}
	}
	return -1
}

// TaskDevices is the node and GPU instance IDs offered for one task.
type TaskDevices struct {
	Task       string   `json:"task"`
	Node       string   `json:"node,omitempty"`
	GPUDevices []string `json:"gpu_devices,omitempty"`
}

// PlaceInput / PlaceOutput: reserve capacity and hold escrow.
type PlaceInput struct {
	JobID  string `json:"job_id"`
	Tenant string `json:"tenant"`
	PlanInput
	Award NegotiateOutput `json:"award"`
}

type PlaceOutput struct {
	Reservation string          `json:"reservation"`
	HoldID      string          `json:"hold_id"`
	Held        int64           `json:"held"`
	Currency    string          `json:"currency"`
	Node        string          `json:"node,omitempty"`
	Record      json.RawMessage `json:"record,omitempty"`
	// Hold is the ledger's hold record alone, for the placement on a
	// replacement provider (layout 11).
	Hold json.RawMessage `json:"hold,omitempty"`
}

// PlacementOn is where award places a job: the reservation and node on
// its pool, and the record the placement attests (the ledger's hold, with
// the exact devices when the offer named them). Place and a placement
// failover (layout 11) share it.
func PlacementOn(jobID string, award NegotiateOutput, hold json.RawMessage) PlaceOutput {
	out := PlaceOutput{Reservation: jobID + "@" + award.Pool, Node: award.Pool, Currency: award.Currency, Record: hold, Hold: hold}
	if len(award.Devices) > 0 {
		rec, err := json.Marshal(map[string]any{"hold": hold, "devices": award.Devices})
		if err == nil {
			out.Record = rec
		}
	}
	return out
}

// ReleaseInput / ReleaseOutput: compensation for Place (refund escrow,
// release the reservation). Idempotent by job ID.
type ReleaseInput struct {
	JobID  string `json:"job_id"`
	Reason string `json:"reason"`
}

type ReleaseOutput struct {
	Refunded int64 `json:"refunded"`
}

// StartTaskInput / StartTaskOutput: start one attempt of one task.
type StartTaskInput struct {
	JobID   string `json:"job_id"`
	Task    string `json:"task"`
	Attempt int    `json:"attempt"`
	RunID   string `json:"run_id"` // <job>.<task>.<attempt>
	PlanInput
	Award NegotiateOutput `json:"award"`
}

type StartTaskOutput struct {
	RunID       string `json:"run_id"`
	ImageDigest string `json:"image_digest,omitempty"`
}

// WaitTaskInput / WaitTaskOutput: wait for an attempt to end, collect its
// outputs and logs, clean it up. While the container runs the activity
// heartbeats; after Window it gives its slot back with a retryable
// ErrTypeStillRunning error and Temporal schedules the next wait.
type WaitTaskInput struct {
	JobID   string        `json:"job_id"`
	Task    string        `json:"task"`
	RunID   string        `json:"run_id"`
	Runtime string        `json:"runtime"`
	Window  time.Duration `json:"window_ns"`
}

type WaitTaskOutput struct {
	State       string           `json:"state"` // runtimes.State
	ExitCode    int              `json:"exit_code"`
	Reason      string           `json:"reason,omitempty"`
	Outputs     []OutputArtifact `json:"outputs,omitempty"`
	Usage       Usage            `json:"usage"`
	ImageDigest string           `json:"image_digest,omitempty"` // RunTask only
	StartedAt   time.Time        `json:"started_at,omitzero"`
	FinishedAt  time.Time        `json:"finished_at,omitzero"`
}

// RunTaskInput / RunTaskOutput: start one attempt of one task (or re-attach
// to it) and wait for it to end, collect its outputs and log and clean it
// up: StartTask and WaitTask in one activity (layout 1). After Window it
// gives its slot back with a retryable ErrTypeStillRunning error and the
// retry re-attaches. Idempotent by run ID.
type RunTaskInput struct {
	JobID   string `json:"job_id"`
	Task    string `json:"task"`
	Attempt int    `json:"attempt"`
	RunID   string `json:"run_id"`
	PlanInput
	Award  NegotiateOutput `json:"award"`
	Window time.Duration   `json:"window_ns"`
	// Upstream are the outputs of the task's dependencies that another
	// provider collected (layout 10, a split job): the agent fetches them
	// from the artifact store, digest-verified, before the task starts.
	Upstream map[string][]OutputArtifact `json:"upstream,omitempty"`
}

type RunTaskOutput = WaitTaskOutput

// SealResultsInput / SealResultsOutput: store a batch of task results in the
// artifact store (layout 1), so verification, settlement and the execution
// attestation read them by digest instead of through the history.
// Idempotent: the digest is a pure function of the results.
type SealResultsInput struct {
	JobID string                `json:"job_id"`
	Tasks map[string]TaskStatus `json:"tasks"`
}

type SealResultsOutput struct {
	Ref string `json:"ref"`
}

// StopTaskInput / StopTaskOutput: compensation for StartTask. Idempotent:
// stopping and cleaning up an unknown or finished run is a no-op.
type StopTaskInput struct {
	RunID   string `json:"run_id"`
	Runtime string `json:"runtime"`
}

type StopTaskOutput struct{}

// StopTestsInput / StopTestsOutput: compensation for Verify (layout 2): stop
// and remove the acceptance-test containers <job>.verify.<n>, n < Tests, on
// the worker's verification runtime (Runtime is the award's, used when the
// worker has none of its own). Idempotent: a missing container is a no-op.
type StopTestsInput struct {
	JobID   string `json:"job_id"`
	Runtime string `json:"runtime"`
	Tests   int    `json:"tests"`
}

type StopTestsOutput struct{}

// VerifyInput / VerifyOutput: acceptance tests over the collected outputs.
type VerifyInput struct {
	JobID string `json:"job_id"`
	PlanInput
	Award NegotiateOutput `json:"award"`
	// Results are the sealed task results (layout 1); Tasks the results
	// themselves (layout 0).
	Results []string              `json:"results,omitempty"`
	Tasks   map[string]TaskStatus `json:"tasks,omitempty"`
}

type VerifyOutput struct {
	Passed bool         `json:"passed"`
	Tests  []TestResult `json:"tests"`
}

// TestResult is one acceptance test's outcome.
type TestResult = predicate.TestResult

// SettleInput / SettleOutput: pay the provider from escrow per the price and
// metered usage, fees, royalties, SLA; refund the rest.
type SettleInput struct {
	JobID string `json:"job_id"`
	PlanInput
	Award NegotiateOutput `json:"award"`
	// Usage is the job's total metered usage (layout 1); layout 0 sends
	// Tasks and the activity adds their usage up.
	Usage    *Usage                `json:"usage,omitempty"`
	Tasks    map[string]TaskStatus `json:"tasks,omitempty"`
	Verified bool                  `json:"verified"`
	Placed   time.Time             `json:"placed,omitzero"` // escrow held: the SLA deadline's clock starts
	Started  time.Time             `json:"started"`
	Finished time.Time             `json:"finished"`
	// Parts are a split job's parts (layout 10), in Award.Parts' order:
	// each is charged for its own tasks' usage and held to its own terms
	// over its own tasks' run time.
	Parts []SettlePart `json:"parts,omitempty"`
}

// SettlePart is the metered work of one part of a split job.
type SettlePart struct {
	Usage    Usage     `json:"usage"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
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
	// Results are sealed task results (layout 1): their outputs become
	// subjects, and the execution stage's predicate lists the tasks.
	Results []string `json:"results,omitempty"`
	// SpecDigest is the job's spec document digest, for a signer that
	// does not hold the job's spec attestation (a provider agent, layout 5).
	SpecDigest string `json:"spec_digest,omitempty"`
	// Provider, with Signed, is the provider whose key must have signed
	// the envelope (trust scope provider:<name>).
	Provider string `json:"provider,omitempty"`
	// Signed is the stage's envelope as another party signed it (the
	// provider agent's SignStage, layout 5): the control plane checks and
	// logs it instead of signing the stage itself.
	Signed *SignedStage `json:"signed,omitempty"`
}

// SignedStage is a stage statement signed by the party that must sign it
// (SignStage's output): the DSSE envelope exactly as signed, its digest and
// the signer's public key (PEM).
type SignedStage struct {
	Envelope        []byte `json:"envelope"`
	Digest          string `json:"digest"`
	SignerPublicKey string `json:"signer_public_key"`
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

// BatchInput / BatchResult: the JobBatch child workflow, which runs one batch
// of a large job's tasks (layout 1). Upstream holds the final states of the
// tasks outside the batch that tasks in it depend on.
type BatchInput struct {
	JobID string `json:"job_id"`
	PlanInput
	Award    NegotiateOutput   `json:"award"`
	Tasks    []PlanTask        `json:"tasks"`
	Upstream map[string]string `json:"upstream,omitempty"`
}

// BatchResult reports a batch: every task's status in brief (state,
// attempt, exit code, reason: the rest is in the sealed results), their total
// usage, the digest of the sealed results when all succeeded, else the
// failure and its class.
type BatchResult struct {
	Tasks       map[string]TaskStatus `json:"tasks"`
	Usage       Usage                 `json:"usage"`
	Ref         string                `json:"ref,omitempty"`
	Failure     string                `json:"failure,omitempty"`
	Class       string                `json:"class,omitempty"`
	Compensated []string              `json:"compensated,omitempty"`
}

// The activities, as typed references (see Activity). Their names are part
// of recorded histories and never change.
var (
	Compile     = Activity[CompileInput, CompileOutput]{Name: "Compile"}
	Admit       = Activity[AdmitInput, AdmitOutput]{Name: "Admit"}
	Negotiate   = Activity[NegotiateInput, NegotiateOutput]{Name: "Negotiate"}
	Place       = Activity[PlaceInput, PlaceOutput]{Name: "Place"}
	Release     = Activity[ReleaseInput, ReleaseOutput]{Name: "Release"}
	StartTask   = Activity[StartTaskInput, StartTaskOutput]{Name: "StartTask"}
	WaitTask    = Activity[WaitTaskInput, WaitTaskOutput]{Name: "WaitTask"}
	RunTask     = Activity[RunTaskInput, RunTaskOutput]{Name: "RunTask"}
	StopTask    = Activity[StopTaskInput, StopTaskOutput]{Name: "StopTask"}
	StopTests   = Activity[StopTestsInput, StopTestsOutput]{Name: "StopTests"}
	SealResults = Activity[SealResultsInput, SealResultsOutput]{Name: "SealResults"}
	Verify      = Activity[VerifyInput, VerifyOutput]{Name: "Verify"}
	Settle      = Activity[SettleInput, SettleOutput]{Name: "Settle"}
	Attest      = Activity[AttestInput, AttestOutput]{Name: "Attest"}
	// SignStage signs a stage statement with the key of the party the
	// activity's queue belongs to, without logging it (layout 5: a
	// provider agent's execution attestation).
	SignStage = Activity[AttestInput, SignedStage]{Name: "SignStage"}
	Publish   = Activity[PublishInput, PublishOutput]{Name: "PublishModels"}
	// BargainSnapshot and BargainRound play an agent-bought bargain
	// (layout 8).
	BargainSnapshot = Activity[NegotiateInput, BargainSnapshotOutput]{Name: "BargainSnapshot"}
	BargainRound    = Activity[BargainRoundInput, BargainRoundOutput]{Name: "BargainRound"}
)

// RunID names one attempt of one task: <job>.<task>.<attempt>.
func RunID(jobID, task string, attempt int) string {
	return jobID + "." + task + "." + strconv.Itoa(attempt)
}

// PublishInput / PublishOutput: push the outputs a verified job publishes
// as new model versions (layout 4). Receipt names the job's verification
// attestation, which the new versions' lineage records. Idempotent: a
// version already pushed with the same content is success.
type PublishInput struct {
	JobID string `json:"job_id"`
	PlanInput
	Results []string         `json:"results,omitempty"` // sealed task results
	Receipt PublishedReceipt `json:"receipt"`
}

// PublishedReceipt is the evidence a published model's lineage cites.
type PublishedReceipt struct {
	SpecDigest  string `json:"spec_digest"`
	Attestation string `json:"attestation"` // the verification attestation's digest
	LogIndex    int64  `json:"log_index"`
}

type PublishOutput struct {
	Models []PublishedModel `json:"models"`
}

// PublishedModel is one pushed model version.
type PublishedModel struct {
	Task   string `json:"task"`
	Ref    string `json:"ref"`    // name@version
	Digest string `json:"digest"` // OCI manifest digest
	// LogIndex is the model signature's transparency-log index.
	LogIndex int64 `json:"log_index"`
}

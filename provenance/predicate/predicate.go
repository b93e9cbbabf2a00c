// Package predicate defines the predicates of Accord's stage attestations:
// one Go type per stage, the single definition that the job workflow fills
// in and the provenance package signs, logs and audits. It holds types only
// (no I/O), so the deterministic workflow code can import it.
//
// Each stage's predicate type URI is Type(stage): Prefix + stage + "/v1".
package predicate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/settlement/sla"
)

// Stage names, in chain order.
const (
	StageSpec         = "spec"
	StageAdmission    = "admission"
	StageNegotiation  = "negotiation"
	StagePlacement    = "placement"
	StageExecution    = "execution"
	StageVerification = "verification"
	StageSettlement   = "settlement"
)

// Stages lists the stages in the order a job's chain must follow.
var Stages = []string{StageSpec, StageAdmission, StageNegotiation, StagePlacement, StageExecution, StageVerification, StageSettlement}

// Prefix begins every Accord predicate type; the full type is
// Prefix + stage + "/v1".
const Prefix = "https://accord.dev/attestation/"

// Type returns the versioned predicate type URI of a stage.
func Type(stage string) string { return Prefix + stage + "/v1" }

// StageIndex returns the stage's position in Stages, or -1.
func StageIndex(stage string) int { return slices.Index(Stages, stage) }

// Header is the part of every stage predicate that makes the chain: the
// job, the stage, the digest of the previous stage's envelope (empty for
// spec) and the spec document digest.
type Header struct {
	JobID      string `json:"job_id"`
	Stage      string `json:"stage"`
	Previous   string `json:"previous,omitempty"`
	SpecDigest string `json:"spec_digest,omitempty"`
}

// Spec: the job's spec (https://accord.dev/attestation/spec/v1).
type Spec struct {
	Header
	Name           string   `json:"name,omitempty"`
	Version        string   `json:"version,omitempty"`
	Tenant         string   `json:"tenant,omitempty"`
	DocumentDigest string   `json:"document_digest"`
	ContractDigest string   `json:"contract_digest,omitempty"`
	Tasks          []string `json:"tasks,omitempty"`
	MaxCost        int64    `json:"max_cost,omitempty"`
	Currency       string   `json:"currency,omitempty"`
	// SignatureKeyID is the key that signed the spec document, if signed.
	SignatureKeyID string `json:"signature_key_id,omitempty"`
	// Models are the registry models the tasks use, pinned when the job
	// was compiled, with the price of each use.
	Models []ModelUse `json:"models,omitempty"`
}

// ModelUse is one task's use of a registry model.
type ModelUse struct {
	Task     string `json:"task"`
	Model    string `json:"model"`  // name@version
	Digest   string `json:"digest"` // the model's OCI manifest digest
	Use      string `json:"use"`    // inference or fine_tune
	Price    int64  `json:"price"`
	Currency string `json:"currency"`
}

// Admission: the policy decision.
type Admission struct {
	Header
	Allowed  bool            `json:"allowed"`
	Reason   string          `json:"reason,omitempty"`
	Decision json.RawMessage `json:"decision,omitempty"`
}

// Negotiation: the auction's result; Record holds offers, bids,
// winners and payments as the market reports them.
type Negotiation struct {
	Header
	Provider string          `json:"provider"`
	Pool     string          `json:"pool,omitempty"`
	Runtime  string          `json:"runtime,omitempty"`
	Price    int64           `json:"price"`
	Currency string          `json:"currency"`
	Record   json.RawMessage `json:"record,omitempty"`
	// Parts splits the job over several providers (job layout 10,
	// placement.split): each runs the tasks its part names, for the
	// part's price. Provider is then the first part's (the one the
	// escrow is held under) and Price the parts' sum; empty when one
	// provider runs every task.
	Parts []Part `json:"parts,omitempty"`
}

// Part is one provider's share of a split job: the tasks it runs and what
// it is paid for them.
type Part struct {
	Provider string   `json:"provider"`
	Pool     string   `json:"pool,omitempty"`
	Runtime  string   `json:"runtime,omitempty"`
	Tasks    []string `json:"tasks"`
	Price    int64    `json:"price"`
}

// SignedPart is a provider's own signed statement of its part of a split
// job's placement or execution stage (job layout 10): a DSSE envelope
// (JSON) of a statement for that stage, chained to the same previous
// envelope as the stage itself, whose predicate names the provider and
// the part's tasks (PartTasks). The stage's own statement, which lists
// the parts, is the operator's.
type SignedPart struct {
	Provider string          `json:"provider"`
	Tasks    []string        `json:"tasks"`
	Envelope json.RawMessage `json:"envelope"`
}

// Placement: where the job was placed and what escrow holds.
type Placement struct {
	Header
	Provider    string          `json:"provider"`
	Pool        string          `json:"pool,omitempty"`
	Node        string          `json:"node,omitempty"`
	GPUIDs      []string        `json:"gpu_ids,omitempty"`
	Reservation string          `json:"reservation,omitempty"`
	HoldID      string          `json:"hold_id,omitempty"`
	Held        int64           `json:"held"`
	Currency    string          `json:"currency"`
	Record      json.RawMessage `json:"record,omitempty"`
	// Approval is who passed the job's approval gate, if it had one.
	Approval *Approval `json:"approval,omitempty"`
	// Parts are the providers' signed acceptances of a split job's parts
	// (job layout 10): the operator's placement statement lists them.
	Parts []SignedPart `json:"parts,omitempty"`
	// PartTasks are the tasks of the part a provider's signed acceptance
	// is for (inside a SignedPart only).
	PartTasks []string `json:"part_tasks,omitempty"`
	// Failovers are the providers lost before they accepted the placement
	// (job layout 11), in order: Provider (or a split job's part) is the
	// last replacement. The execution's failovers begin with them.
	Failovers []Failover `json:"failovers,omitempty"`
	// At is when the escrow was held (job layout 11): an SLA deadline's
	// clock starts there.
	At time.Time `json:"at,omitzero"`
}

// Approval is an accepted approval: an identity named in the spec's
// approval.approvers, its reason, and when the workflow accepted it.
type Approval struct {
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Execution: what ran (SLSA-provenance-like), per task.
type Execution struct {
	Header
	Provider string             `json:"provider,omitempty"`
	Runtime  string             `json:"runtime,omitempty"`
	Tasks    map[string]TaskRun `json:"tasks"`
	// Failovers are the providers lost while the job executed, in order
	// (job layout 6): the tasks then ran on the provider each failover
	// names, and Provider is the last one's.
	Failovers []Failover `json:"failovers,omitempty"`
	// SpotRole marks the statement a spot check's checker signs over its
	// own run (SpotCheckRun or SpotTiebreak, job layout 9): evidence
	// inside the verification's SpotRun, never the job's execution stage.
	SpotRole string `json:"spot_role,omitempty"`
	// Parts are the providers' signed execution statements of a split
	// job's parts (job layout 10), each over its own tasks' outputs; the
	// operator's execution statement lists them, with every output as
	// its subjects.
	Parts []SignedPart `json:"parts,omitempty"`
	// PartTasks are the tasks of the part a provider's signed execution
	// statement is for (inside a SignedPart only).
	PartTasks []string `json:"part_tasks,omitempty"`
}

// Failover records a provider abandoned mid-execution: which one, when
// (workflow time), why, and the provider a renegotiation without every lost
// provider awarded the job to. The lost provider is paid nothing for the
// abandoned run.
type Failover struct {
	Lost     string    `json:"lost"`
	RunID    string    `json:"run_id,omitempty"` // the run it did not finish
	At       time.Time `json:"at"`
	Reason   string    `json:"reason"`
	Provider string    `json:"provider"` // the replacement
	Price    int64     `json:"price"`
	Currency string    `json:"currency,omitempty"`
	// Reputation is the lost provider's reputation after the loss.
	Reputation float64 `json:"reputation"`
	// Tasks are, in a split job (job layout 10), the tasks of the part
	// that failed over: only they move to Provider. Empty: every task.
	Tasks []string `json:"tasks,omitempty"`
	// SLA are the money terms the replacement agreed to in the
	// renegotiation (job layout 11); nil: none recorded.
	SLA *sla.Terms `json:"sla,omitempty"`
}

// TaskRun is one task's final attempt.
type TaskRun struct {
	State       string           `json:"state,omitempty"`
	Attempt     int              `json:"attempt,omitempty"`
	RunID       string           `json:"run_id,omitempty"`
	ImageDigest string           `json:"image_digest,omitempty"`
	Command     []string         `json:"command,omitempty"`
	EnvDigest   string           `json:"env_digest,omitempty"`
	Resources   json.RawMessage  `json:"resources,omitempty"`
	StartedAt   *time.Time       `json:"started_at,omitempty"`
	FinishedAt  *time.Time       `json:"finished_at,omitempty"`
	ExitCode    int              `json:"exit_code"`
	Reason      string           `json:"reason,omitempty"`
	Outputs     []OutputArtifact `json:"outputs,omitempty"`
	Usage       Usage            `json:"usage"`
}

// OutputArtifact is a collected output file; SHA256 is bare hex.
type OutputArtifact struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size,omitempty"`
}

// Usage is measured consumption: the runtime's meter, one definition.
type Usage = runtimes.Usage

// Verification: acceptance tests and results. The statement's
// subjects are the output digests the tests ran against.
type Verification struct {
	Header
	Passed bool         `json:"passed"`
	Tests  []TestResult `json:"tests"`
	// SpotCheck is the spot check of a job that drew one (job layout 6):
	// every run compared and the verdict.
	SpotCheck *SpotCheck `json:"spot_check,omitempty"`
}

// Spot-check verdicts.
const (
	SpotAgree    = "agree"     // the check run's outputs match the job's
	SpotUpheld   = "upheld"    // disputed; the third run sided with the job's provider
	SpotReversed = "reversed"  // disputed; the third run sided with the checker
	SpotNoQuorum = "no_quorum" // disputed; all three runs differ: nobody is slashed
)

// SpotCheck is a spot check: with Probability (drawn from the job ID) the
// job's tasks ran again on a second provider and the output digests were
// compared; a mismatch was decided by a third run. The provider in the
// minority (Minority) is not paid and Slashed is taken from its bond under
// the terms it agreed; the job settles with Paid.
type SpotCheck struct {
	Probability float64   `json:"probability"`
	Runs        []SpotRun `json:"runs"`
	Verdict     string    `json:"verdict"`
	Majority    string    `json:"majority,omitempty"` // the agreed outputs digest
	Minority    string    `json:"minority,omitempty"` // provider
	Slashed     int64     `json:"slashed,omitempty"`
	Currency    string    `json:"currency,omitempty"`
	Paid        string    `json:"paid,omitempty"` // provider the job settles with
}

// Spot-check run roles.
const (
	SpotPrimary  = "primary"
	SpotCheckRun = "check"
	SpotTiebreak = "tiebreak"
)

// SpotRun is one run of the job's tasks in a spot check: who ran it, each
// task's run ID and outputs, and OutputsDigest, the digest over every
// task's outputs ("task:path=sha256" lines, sorted).
type SpotRun struct {
	Role          string                      `json:"role"`
	Provider      string                      `json:"provider"`
	RunIDs        map[string]string           `json:"run_ids"`
	Outputs       map[string][]OutputArtifact `json:"outputs,omitempty"`
	OutputsDigest string                      `json:"outputs_digest"`
	// Usage is each task's metered usage, and Price the price its
	// provider was awarded: what the job is billed when it settles with
	// this run (a reversed verdict).
	Usage  map[string]Usage `json:"usage,omitempty"`
	Price  int64            `json:"price,omitempty"`
	Failed string           `json:"failed,omitempty"` // why the run gave no outputs
	// Signed is the DSSE envelope of the execution statement (SpotRole
	// set) that the run's provider signed over it with its own key (check
	// and tiebreak runs on provider agents, job layout 9): an auditor
	// checks it against the provider's trusted key and Outputs.
	Signed json.RawMessage `json:"signed,omitempty"`
}

// OutputsDigest is a spot-check run's SpotRun.OutputsDigest: the sha256
// of its outputs as "task:path=sha256" lines (hex in lower case), sorted
// and joined by newlines.
func OutputsDigest(outputs map[string][]OutputArtifact) string {
	var lines []string
	for task, os := range outputs {
		for _, o := range os {
			lines = append(lines, task+":"+o.Path+"="+strings.ToLower(o.SHA256))
		}
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestResult is one acceptance test.
type TestResult struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail,omitempty"`
}

// Settlement: what was paid and refunded; Record holds the
// ledger's settlement (postings included).
type Settlement struct {
	Header
	Paid     int64  `json:"paid"`
	Refunded int64  `json:"refunded"`
	Currency string `json:"currency"`
	// Usage and Rates, when present, let the audit recompute the metered
	// charge from the usage measured in the execution stage.
	Usage  *MeteredUsage   `json:"usage,omitempty"`
	Rates  *Rates          `json:"rates,omitempty"`
	Record json.RawMessage `json:"record,omitempty"`
	// Reason says why a job settled other than through its workflow's
	// settle stage: "swept: workflow closed" (the escrow sweeper), "work
	// done: settled after cancelled" (a failure or cancel after execution);
	// empty for the workflow's settle stage.
	Reason string `json:"reason,omitempty"`
}

// MeteredUsage is usage in integer milli-units (settlement.Usage's JSON).
type MeteredUsage struct {
	WallMillis  int64 `json:"wall_ms"`
	CPUMillis   int64 `json:"cpu_ms"`
	MemGBMillis int64 `json:"mem_gb_ms"`
	GPUMillis   int64 `json:"gpu_ms"`
}

// Rates are prices in minor units per hour (settlement.Rates' JSON).
type Rates struct {
	WallPerHour  int64 `json:"wall_per_hour"`
	CPUPerHour   int64 `json:"cpu_per_hour"`
	MemGBPerHour int64 `json:"mem_gb_per_hour"`
	GPUPerHour   int64 `json:"gpu_per_hour"`
}

// SettlementRecord is the part of the ledger's settlement record the audit
// cross-checks (settlement.Settlement's JSON).
type SettlementRecord struct {
	Provider    string         `json:"provider"`
	Currency    string         `json:"currency"`
	Held        int64          `json:"held"`
	Usage       *MeteredUsage  `json:"usage,omitempty"` // what the metered charge was computed from
	Rates       *Rates         `json:"rates,omitempty"`
	Metered     MeteredCharges `json:"metered"`
	Charge      int64          `json:"charge"`
	Capped      bool           `json:"capped,omitempty"`
	SLARefund   int64          `json:"sla_refund"`
	Payable     int64          `json:"payable"`
	ProviderPay int64          `json:"provider_pay"`
	PlatformFee int64          `json:"platform_fee"`
	Royalties   []Royalty      `json:"royalties,omitempty"`
	// ModelFees are the model fees paid from the escrow before the
	// charge, each split among model owners; ModelFeeTotal is their sum.
	ModelFees []struct {
		Model  string `json:"model"`
		Shares []struct {
			Account string `json:"account"`
			Amount  int64  `json:"amount"`
		} `json:"shares"`
	} `json:"model_fees,omitempty"`
	ModelFeeTotal int64 `json:"model_fee_total,omitempty"`
	Refund        int64 `json:"refund"`
	Slashed       int64 `json:"slashed"`
	// Parts are a split job's parts (job layout 10), one per final part
	// provider, each charged and paid as a whole job would be; the
	// amounts above are then their sums (royalties summed per account).
	Parts []SettlementPart `json:"parts,omitempty"`
}

// MeteredCharges is metered usage priced at a provider's rates
// (settlement.Charges' JSON).
type MeteredCharges struct {
	Wall  int64 `json:"wall"`
	CPU   int64 `json:"cpu"`
	Mem   int64 `json:"mem"`
	GPU   int64 `json:"gpu"`
	Total int64 `json:"total"`
}

// Royalty is a royalty paid to a model owner's account.
type Royalty struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// SettlementPart is the part of a split job's settlement record for one
// provider that the audit cross-checks (settlement.PartSettlement's JSON).
type SettlementPart struct {
	Provider    string         `json:"provider"`
	Price       int64          `json:"price"`
	Usage       MeteredUsage   `json:"usage"`
	Rates       Rates          `json:"rates"`
	Metered     MeteredCharges `json:"metered"`
	Charge      int64          `json:"charge"`
	Capped      bool           `json:"capped,omitempty"`
	SLARefund   int64          `json:"sla_refund"`
	Payable     int64          `json:"payable"`
	ProviderPay int64          `json:"provider_pay"`
	PlatformFee int64          `json:"platform_fee"`
	Royalties   []Royalty      `json:"royalties,omitempty"`
	Slashed     int64          `json:"slashed"`
}

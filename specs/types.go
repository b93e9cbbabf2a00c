package specs

import "time"

// Spec is the machine content of a spec document after parsing, composition
// (extends, imports) and unit normalisation. Its JSON form, with keys sorted,
// is the canonical contract that the contract digest covers; prose and
// source positions are not part of it.
type Spec struct {
	APIVersion   string            `json:"accord"`
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	Tenant       string            `json:"tenant"`
	Owner        string            `json:"owner,omitempty"`
	Description  string            `json:"description,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Tags         []string          `json:"tags,omitempty"`
	Tasks        []Task            `json:"tasks"`
	Placement    Placement         `json:"placement"`
	Budget       Budget            `json:"budget"`
	Negotiation  Negotiation       `json:"negotiation"`
	Verification Verification      `json:"verification"`
	Settlement   Settlement        `json:"settlement"`
	Approval     Approval          `json:"approval"`
	// Service, when set, makes the spec a deployment (see Service).
	Service *Service `json:"service,omitempty"`

	// Source is where the spec came from; not part of the contract.
	Source Source `json:"-"`
}

// Source records the document a spec was read from and where each compiled
// field came from, so that every error and plan annotation can name file:line.
type Source struct {
	File           string         // path as given
	DocumentDigest string         // "sha256:<hex>" of the exact bytes
	Positions      map[string]Pos // field path (e.g. "tasks.train.resources.memory") -> origin
	// Documents lists every file composed into the spec (the file itself,
	// what it extends and what it imports) with the digest of its bytes.
	Documents []Document
}

// Pos is a position in a spec file. Line and Col are 1-based.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

// Task is one container to run.
type Task struct {
	Name       string            `json:"name"`
	Image      string            `json:"image"` // OCI reference with @sha256 digest, "artifact:sha256:<hex>" or "oci-archive:PATH"
	Command    []string          `json:"command,omitempty"`
	Args       []string          `json:"args,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	WorkingDir string            `json:"working_dir,omitempty"`
	DependsOn  []string          `json:"depends_on,omitempty"`
	Inputs     []Input           `json:"inputs,omitempty"`
	Outputs    []Output          `json:"outputs,omitempty"`
	Resources  Resources         `json:"resources"`
	Retry      Retry             `json:"retry"`
	// Group names the co-location group (placement.locality), if any.
	Group string `json:"group,omitempty"`
	// Models are registry models the task reads, mounted read-only.
	Models []ModelUse `json:"models,omitempty"`
	// Publish pushes outputs as new model versions once the job verifies.
	Publish []Publish `json:"publish,omitempty"`
}

// ModelUse is a model from the registry that a task reads: the highest
// version of Name matching Version, mounted read-only at As. The control
// plane pins Ref and Digest when it compiles the job, so the plan (and
// the attestations) name exactly what ran; the provider pulls that digest
// and verifies its signature and files before the task starts.
type ModelUse struct {
	Name    string `json:"name"`
	Version string `json:"version"` // constraint: 1.2.3, ^1.2, ~1.2.3
	As      string `json:"as"`      // absolute path inside the container
	Ref     string `json:"ref,omitempty"`
	Digest  string `json:"digest,omitempty"` // OCI manifest digest
}

// Publish pushes a task's output directory (or file) as a new version of
// a model once the job's acceptance tests pass. Its lineage names the
// models the task used (with Relation) and the job's receipt; its owner is
// the job's tenant.
type Publish struct {
	Output      string      `json:"output"` // a collected output path or directory prefix ("model/")
	Name        string      `json:"name"`
	Version     string      `json:"version"`            // MAJOR.MINOR.PATCH
	Change      string      `json:"change"`             // patch, behaviour (default) or data
	Relation    string      `json:"relation,omitempty"` // to the used models: finetune (default), adapter, merge, quantized, distilled
	License     string      `json:"license"`            // SPDX expression
	Description string      `json:"description,omitempty"`
	Tags        []string    `json:"tags,omitempty"`
	Prices      ModelPrices `json:"prices"`
	// RoyaltyBP is the share of the new model's income owed to each model
	// the task used (its lineage parents), in basis points.
	RoyaltyBP int `json:"royalty_basis_points,omitempty"`
}

// ModelPrices are a published model's usage prices, integer minor units.
type ModelPrices struct {
	Currency      string `json:"currency,omitempty"`
	PerInference  int64  `json:"per_inference,omitempty"`
	PerFineTune   int64  `json:"per_fine_tune,omitempty"`
	PerDeployment int64  `json:"per_deployment,omitempty"`
}

// Input is a read-only file or directory made visible to a task: exactly
// one of an artifact the tenant pushed ("sha256:<hex>"), an output of an
// upstream task ("task:path"), or a host path (operators only: a worker
// mounts host paths only under its --host-inputs roots). SHA256 pins the
// content of a path or from input.
type Input struct {
	Name     string `json:"name"`
	Path     string `json:"path,omitempty"`     // host path
	From     string `json:"from,omitempty"`     // "<task>:<output path>"
	Artifact string `json:"artifact,omitempty"` // "sha256:<hex>" in the artifact store
	Target   string `json:"target"`             // path inside the container
	SHA256   string `json:"sha256,omitempty"`
}

// ArtifactImagePrefix marks an image given as an OCI archive stored in the
// artifact store: "artifact:sha256:<hex>".
const ArtifactImagePrefix = "artifact:"

// Output is a file a task must produce in its output directory.
type Output struct {
	Path   string `json:"path"`             // relative to the output directory
	SHA256 string `json:"sha256,omitempty"` // expected digest, if known
}

// Resources is a task's envelope, normalised: millicores, bytes, durations.
type Resources struct {
	MilliCPU    int64         `json:"cpu_millis"`
	MemoryBytes int64         `json:"memory_bytes"`
	DiskBytes   int64         `json:"disk_bytes,omitempty"`
	GPU         GPU           `json:"gpu"`
	MaxDuration time.Duration `json:"max_duration_ns"`
}

// GPU is a task's accelerator request.
type GPU struct {
	Count          int    `json:"count"`
	Model          string `json:"model,omitempty"`
	MinMemoryBytes int64  `json:"min_memory_bytes,omitempty"`
}

// Retry is a task's retry policy.
type Retry struct {
	Attempts   int           `json:"attempts"`
	Backoff    time.Duration `json:"backoff_ns"`
	MaxBackoff time.Duration `json:"max_backoff_ns,omitempty"`
}

// Placement constrains where tasks may run.
type Placement struct {
	Regions            []string   `json:"regions,omitempty"`
	Residency          []string   `json:"residency,omitempty"` // data-residency jurisdictions, e.g. "EU"
	AllowProviders     []string   `json:"allow_providers,omitempty"`
	DenyProviders      []string   `json:"deny_providers,omitempty"`
	TEE                string     `json:"tee,omitempty"` // "", "any", "sev-snp", "tdx", "nvidia-cc"
	RequireAttestation bool       `json:"require_attestation,omitempty"`
	Colocate           [][]string `json:"colocate,omitempty"` // groups of task names placed together
	// Split lets the market award the job's tasks to several providers
	// (each co-location group still on one): each provider then runs,
	// signs and is paid for its own part, and a task reads another
	// provider's outputs through the artifact store. Without it a job
	// runs whole on one provider.
	Split bool `json:"split,omitempty"`
}

// Budget caps what the job may cost and when it must finish.
type Budget struct {
	MaxPrice int64         `json:"max_price"` // integer minor units of Currency
	Currency string        `json:"currency"`  // ISO 4217 code or token symbol
	Deadline time.Duration `json:"deadline_ns,omitempty"`
	// Preference trades cost against latency: 0 cheapest, 1 fastest.
	Preference float64 `json:"preference"`
}

// Negotiation selects the market protocol.
type Negotiation struct {
	// Protocol is ProtocolAuction (the default), ProtocolAlternating or
	// ProtocolStacked.
	Protocol string `json:"protocol"`
	// Reserve is the buyer's outside option in minor units: the most an
	// auction pays for the job (0: the market's default share of the
	// budget); alternating offers open at it.
	Reserve int64 `json:"reserve,omitempty"`
	// Pricing is how an auction sets the winner's price: PricingVCG (the
	// default, also when empty), PricingFirst or PricingSecond. Empty when
	// the spec does not say, so that specs written before it keep their
	// contract digest.
	Pricing string `json:"pricing,omitempty"`
	// Rounds is the deadline of a bargain (alternating offers: offers;
	// stacked alternating offers: rounds in which every party moves once,
	// shared by all of them).
	Rounds int `json:"rounds,omitempty"`
	// Discount is the buyer's per-round discount factor for alternating
	// offers, bilateral or stacked.
	Discount float64 `json:"discount,omitempty"`
	// Buyer is who plays the buyer's side of alternating offers: BuyerAuto
	// (the market's concession tactic; also when empty) or BuyerAgent (an
	// external agent's counter-offers, over the API or MCP). Empty when the
	// spec does not say, so that earlier specs keep their contract digest.
	Buyer string `json:"buyer,omitempty"`
	// RoundTimeout bounds how long a bargaining job waits for the buyer
	// agent's move in each round (buyer agent only; DefaultRoundTimeout).
	RoundTimeout time.Duration `json:"round_timeout,omitempty"`
	// Mode is when the job is cleared: ModeImmediate (its own auction at
	// once; also when empty) or ModeBatch (queued and cleared with other
	// queued jobs by the periodic market clearing). Empty when the spec
	// does not say, so that earlier specs keep their contract digest.
	Mode string `json:"mode,omitempty"`
	// BatchWait bounds how long a batch-mode job waits to be cleared
	// before it fails as no offers (batch mode only; DefaultBatchWait).
	BatchWait time.Duration `json:"batch_wait,omitempty"`
}

// Market protocols (negotiation.protocol).
const (
	// ProtocolAuction is the sealed-bid combinatorial auction.
	ProtocolAuction = "auction"
	// ProtocolAlternating is bilateral alternating offers: the buyer
	// bargains with each provider over the whole job.
	ProtocolAlternating = "alternating-offers"
	// ProtocolStacked is the stacked alternating offers protocol (SAOP,
	// Aydoğan et al. 2017): the buyer and the providers of an allocation of
	// the job's co-location groups take turns under one deadline.
	ProtocolStacked = "stacked-alternating-offers"
)

// Bargains reports whether the protocol agrees on prices by offers and
// counter-offers (bilateral or stacked) rather than by sealed bids.
func (n Negotiation) Bargains() bool {
	return n.Protocol == ProtocolAlternating || n.Protocol == ProtocolStacked
}

// When a job is cleared (negotiation.mode).
const (
	ModeImmediate = "immediate"
	ModeBatch     = "batch"
)

// Batch reports whether the job waits for the periodic market clearing.
func (n Negotiation) Batch() bool { return n.Mode == ModeBatch }

// Bounds of negotiation.batch_wait. The default leaves room for a few
// clearings at the default interval (one minute) and a slow solve.
const (
	DefaultBatchWait = 10 * time.Minute
	MinBatchWait     = 10 * time.Second
	MaxBatchWait     = 24 * time.Hour
)

// Who plays the buyer in alternating offers (negotiation.buyer).
const (
	BuyerAuto  = "auto"
	BuyerAgent = "agent"
)

// AgentBuyer reports whether an external agent plays the buyer.
func (n Negotiation) AgentBuyer() bool {
	return n.Protocol == ProtocolAlternating && n.Buyer == BuyerAgent
}

// Bounds of negotiation.round_timeout.
const (
	DefaultRoundTimeout = 2 * time.Minute
	MinRoundTimeout     = time.Second
	MaxRoundTimeout     = 24 * time.Hour
)

// Auction pricing rules (negotiation.pricing).
const (
	// PricingVCG pays each winner its Clarke-pivot (VCG) price, at most the
	// buyer's reserve: truthful asks are a dominant strategy.
	PricingVCG = "vcg"
	// PricingFirst pays each winner its own ask.
	PricingFirst = "first-price"
	// PricingSecond pays each winner the next-best offer for its job, at
	// most the buyer's reserve and at least its own ask.
	PricingSecond = "second-price"
)

// PricingRule is the auction pricing rule: Pricing, or PricingVCG when the
// spec leaves it out.
func (n Negotiation) PricingRule() string {
	if n.Pricing == "" {
		return PricingVCG
	}
	return n.Pricing
}

// Verification holds acceptance tests run after execution, and the
// probability of a spot check.
type Verification struct {
	Tests []Test `json:"tests,omitempty"`
	// SpotCheck is the probability, in [0, 1], that the job's tasks are
	// also run on a second provider and their output digests compared
	// (decided from the job ID, so a replay decides the same). Setting it
	// states that the tasks are deterministic: the same inputs give the
	// same output bytes. A mismatch opens a dispute that a third run
	// decides; the provider in the minority is not paid and is slashed
	// under its agreed SLA terms.
	SpotCheck float64 `json:"spot_check,omitempty"`
}

// Test is one acceptance test.
type Test struct {
	Name          string            `json:"name"`
	Task          string            `json:"task"`            // whose outputs it checks
	Image         string            `json:"image,omitempty"` // verifier image; default the task's
	Command       []string          `json:"command,omitempty"`
	ExpectExit    int               `json:"expect_exit"`
	ExpectOutputs map[string]string `json:"expect_outputs,omitempty"` // output path -> sha256
	Metrics       []Threshold       `json:"metrics,omitempty"`
}

// Threshold compares a number in a JSON output file against a bound.
type Threshold struct {
	File   string  `json:"file"`   // output path of a JSON file
	Metric string  `json:"metric"` // dotted path into it, e.g. "eval.accuracy"
	Op     string  `json:"op"`     // one of < <= > >= == !=
	Value  float64 `json:"value"`
}

// Settlement holds the payment terms.
type Settlement struct {
	PayOnSuccess bool      `json:"pay_on_success"`
	SLA          SLA       `json:"sla"`
	Royalties    []Royalty `json:"royalties,omitempty"`
}

// SLA is the service level the tenant asks a provider to be held to. Only
// providers whose offered terms cover it bid (market.SLAOffer).
type SLA struct {
	Deadline      time.Duration `json:"deadline_ns,omitempty"`     // from placement to the end of execution
	MaxDuration   time.Duration `json:"max_duration_ns,omitempty"` // of execution
	RefundPercent int           `json:"refund_percent,omitempty"`  // of the charge, to the tenant on breach
	SlashPercent  int           `json:"slash_percent,omitempty"`   // of the provider's per-job stake on breach
	// Stake is the least per-job stake (minor units) a provider must put
	// at risk to bid; 0 asks for none.
	Stake int64 `json:"stake,omitempty"`
}

// Royalty pays a share of the settled price to a model owner.
type Royalty struct {
	Account     string `json:"account"`
	BasisPoints int    `json:"basis_points"` // 1/100 of a percent
}

// Approval is the human approval gate.
type Approval struct {
	Required   bool     `json:"required,omitempty"`
	AbovePrice int64    `json:"above_price,omitempty"` // gate only when the price exceeds this
	Approvers  []string `json:"approvers,omitempty"`
}

// Plan is a compiled spec: what the workflow executes.
type Plan struct {
	Name           string        `json:"name"`
	Version        string        `json:"version"`
	Tenant         string        `json:"tenant"`
	DocumentDigest string        `json:"document_digest"` // sha256:<hex> of the exact bytes
	ContractDigest string        `json:"contract_digest"` // sha256:<hex> of the canonical JSON
	Tasks          []PlanTask    `json:"tasks"`           // topological order
	CriticalPath   []string      `json:"critical_path"`
	CriticalTime   time.Duration `json:"critical_path_ns"`
	MaxCost        int64         `json:"max_cost"` // upper estimate, minor units
	Currency       string        `json:"currency"`
	Spec           *Spec         `json:"spec"`

	// Levels is the number of DAG levels (the longest chain in tasks).
	Levels int `json:"levels"`
	// Envelope is the worst-case resource use: every task, every attempt,
	// running for its full max_duration.
	Envelope Envelope `json:"envelope"`
	// ReferenceCost prices Envelope at the reference rates (RefPrice*);
	// a sanity check on the budget, not a bound (see MaxCost).
	ReferenceCost int64 `json:"reference_cost"`
	// Documents lists every file composed into the spec with its digest.
	Documents []Document `json:"documents"`
	// ModelFees are what the registry models the tasks use cost, pinned
	// when the control plane resolved them (see ModelUse): the tenant
	// agrees to them by submitting the spec, and settlement pays them.
	ModelFees []ModelFee `json:"model_fees,omitempty"`
}

// ModelFee is one task's use of one model: the model's usage price for
// that use, split between the model's owner and its ancestors' owners
// (royalties up the lineage).
type ModelFee struct {
	Task     string       `json:"task"`
	Model    string       `json:"model"`  // name@version
	Digest   string       `json:"digest"` // OCI manifest digest
	Use      string       `json:"use"`    // inference, or fine_tune when the task publishes a derivative
	Currency string       `json:"currency"`
	Price    int64        `json:"price"`
	Shares   []ModelShare `json:"shares,omitempty"`
}

// ModelShare is the part of a ModelFee paid to one owner.
type ModelShare struct {
	Owner  string `json:"owner"` // tenant paid (ledger account owner:<tenant>)
	Model  string `json:"model"` // the model whose owner this pays
	Amount int64  `json:"amount"`
}

// ModelFeeTotal is the sum of the plan's model fees.
func (p *Plan) ModelFeeTotal() int64 {
	var n int64
	for _, f := range p.ModelFees {
		n += f.Price
	}
	return n
}

// ComputeBudget is what the job may pay providers: the budget less the
// model fees, which come out of the same escrow.
func (p *Plan) ComputeBudget() int64 {
	if p.Spec == nil {
		return 0
	}
	return p.Spec.Budget.MaxPrice - p.ModelFeeTotal()
}

// Envelope is a worst-case resource total, rounded up, saturating at the
// largest int64.
type Envelope struct {
	TaskSeconds      int64 `json:"task_seconds"`
	CPUCoreSeconds   int64 `json:"cpu_core_seconds"`
	MemoryGiBSeconds int64 `json:"memory_gib_seconds"`
	GPUSeconds       int64 `json:"gpu_seconds"`
}

// PlanTask annotates a task with its place in the DAG.
type PlanTask struct {
	Task
	Level    int      `json:"level"`              // 0 for tasks with no dependencies
	Critical bool     `json:"critical"`           // on the critical path
	Trust    []string `json:"trust,omitempty"`    // trust annotations: TEE, attestation, signed inputs
	Consumes []string `json:"consumes,omitempty"` // "task:path" data-flow edges in
	Origin   Pos      `json:"origin"`
}

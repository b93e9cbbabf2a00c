package predicate

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// A deployment's attestations form their own chain, one statement per
// event, under the predicate type Type(StageDeployment). Each event's stage
// name is DeploymentStage(seq): "deployment.000001", "deployment.000002",
// …; seq 1 is the start event and links no previous envelope, every later
// one links the envelope of seq-1.

// StageDeployment is the predicate type name of deployment events.
const StageDeployment = "deployment"

// Deployment event kinds.
const (
	DeployStart    = "start"    // negotiated terms and the placed endpoint
	DeployHold     = "hold"     // a billing period's escrow held
	DeploySettle   = "settle"   // a billing period settled
	DeployWindow   = "window"   // an SLA window measured and judged
	DeployCanary   = "canary"   // an update's canary takes traffic: its gate window opens
	DeployGate     = "gate"     // a canary's gate window judged, with the measured figures
	DeployPromote  = "promote"  // the canary's release made stable
	DeployRollback = "rollback" // a canary dropped, or a return to the previous release
	DeployStop     = "stop"     // the deployment stopped; its last event
)

// DeploymentStage names the seq-th event of a deployment's chain (seq ≥ 1).
func DeploymentStage(seq int) string { return fmt.Sprintf("%s.%06d", StageDeployment, seq) }

// DeploymentSeq parses a DeploymentStage name; ok is false for any other
// string.
func DeploymentSeq(stage string) (seq int, ok bool) {
	rest, found := strings.CutPrefix(stage, StageDeployment+".")
	if !found || len(rest) != 6 {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 || rest[0] == '+' || rest[0] == '-' {
		return 0, false
	}
	return n, true
}

// Deployment: one event of a deployment
// (https://accord.dev/attestation/deployment/v1). Exactly the field named
// by Event is set (none for promote and rollback besides the release).
type Deployment struct {
	Header
	Seq     int       `json:"seq"`
	Event   string    `json:"event"`
	At      time.Time `json:"at"`
	Release int       `json:"release,omitempty"` // the release the event concerns (r<N>)
	Version string    `json:"version,omitempty"` // that release's spec version
	Reason  string    `json:"reason,omitempty"`
	// Model is the release's registry model (deployment layout 3), on the
	// start event (release 1) and on each canary event (its release).
	Model *ServedModel `json:"model,omitempty"`

	Start  *DeploymentStart  `json:"start,omitempty"`
	Hold   *PeriodHold       `json:"hold,omitempty"`
	Settle *PeriodSettlement `json:"settle,omitempty"`
	Window *SLAWindow        `json:"window,omitempty"`
	Canary *CanaryStart      `json:"canary,omitempty"`
	Gate   *GateVerdict      `json:"gate,omitempty"`
	Stop   *DeploymentStop   `json:"stop,omitempty"`
}

// DeploymentStart is what was negotiated and where it was placed.
type DeploymentStart struct {
	Tenant   string `json:"tenant"`
	Provider string `json:"provider,omitempty"`
	Currency string `json:"currency"`
	Budget   int64  `json:"budget"`
	Endpoint string `json:"endpoint"` // the endpoint's name
	Address  string `json:"address"`  // where its proxy listens
	Replicas int    `json:"replicas"`
	// ReplicaHour is the negotiated price per replica-hour (minor units).
	ReplicaHour int64         `json:"replica_hour"`
	Period      time.Duration `json:"period_ns"`
	Grace       time.Duration `json:"grace_ns"`
	SLA         SLATerms      `json:"sla"`
}

// SLATerms are a deployment's SLA as agreed.
type SLATerms struct {
	AvailabilityBP int           `json:"availability_basis_points"`
	P95Latency     time.Duration `json:"p95_latency_ns,omitempty"`
	Window         time.Duration `json:"window_ns"`
	RefundPercent  int           `json:"refund_percent"`
	SlashPercent   int           `json:"slash_percent"`
	Stake          int64         `json:"stake"`
}

// PeriodHold is one billing period's escrow hold.
type PeriodHold struct {
	Period      int    `json:"period"`
	Job         string `json:"job"` // the period's ledger job
	Price       int64  `json:"price"`
	MarginBP    int64  `json:"margin_bp"`
	Held        int64  `json:"held"`
	Transaction int64  `json:"transaction,omitempty"`
}

// PeriodSettlement is one billing period's settlement: the metered
// replica time and rate (the charge is ceil(replica_ms × replica_hour /
// 3.6e6) capped at held), the SLA verdict and what the ledger posted.
type PeriodSettlement struct {
	Period        int      `json:"period"`
	Job           string   `json:"job"`
	ReplicaMillis int64    `json:"replica_ms"`
	ReplicaHour   int64    `json:"replica_hour"`
	Breached      bool     `json:"breached,omitempty"`
	Reasons       []string `json:"reasons,omitempty"`
	RefundPercent int      `json:"refund_percent,omitempty"`
	SlashPercent  int      `json:"slash_percent,omitempty"`
	Stake         int64    `json:"stake,omitempty"`
	Held          int64    `json:"held"`
	Charge        int64    `json:"charge"`
	SLARefund     int64    `json:"sla_refund"`
	ProviderPay   int64    `json:"provider_pay"`
	PlatformFee   int64    `json:"platform_fee"`
	Refund        int64    `json:"refund"`
	Slashed       int64    `json:"slashed"`
	Transaction   int64    `json:"transaction"`
	Key           string   `json:"key"` // the ledger's idempotency key
	// Inferences are the period's per-inference model fees as owed (each
	// release's successful requests × its model's price, every owner paid
	// requests × its share of one inference); ModelFees as paid from the
	// escrow before the charge (cut, in order, to what it held: Capped),
	// ModelFeeTotal their sum. The charge is then capped at held less
	// the fees, and the refund is held less fees less payable.
	Inferences    []InferenceFee `json:"inferences,omitempty"`
	ModelFees     []PaidModelFee `json:"model_fees,omitempty"`
	ModelFeeTotal int64          `json:"model_fee_total,omitempty"`
	Capped        bool           `json:"capped,omitempty"`
}

// ServedModel is a release's registry model: the constraint the spec
// named, the version and digest it resolved to (verified), where replicas
// mount it, and one inference's price split up its verified lineage.
type ServedModel struct {
	Name         string       `json:"name"`
	Constraint   string       `json:"constraint"`
	Ref          string       `json:"ref"`
	Digest       string       `json:"digest"`
	As           string       `json:"as"`
	Currency     string       `json:"currency,omitempty"`
	PerInference int64        `json:"per_inference"`
	Shares       []ModelShare `json:"shares,omitempty"`
}

// ModelShare is one owner's part of a model fee.
type ModelShare struct {
	Owner  string `json:"owner"`
	Model  string `json:"model"`
	Amount int64  `json:"amount"`
}

// InferenceFee is one release's inferences in a period: requests × price,
// Shares being one inference's split.
type InferenceFee struct {
	Release  string       `json:"release"`
	Model    string       `json:"model"`
	Digest   string       `json:"digest"`
	Requests int64        `json:"requests"`
	Price    int64        `json:"price"`
	Shares   []ModelShare `json:"shares,omitempty"`
}

// PaidModelFee is one release's inference fee as paid.
type PaidModelFee struct {
	Release string       `json:"release"`
	Model   string       `json:"model"`
	Digest  string       `json:"digest"`
	Shares  []ModelShare `json:"shares,omitempty"`
}

// Measured is a window of the proxy's measurements.
type Measured struct {
	Requests  int64         `json:"requests"`
	Errors    int64         `json:"errors"`
	SuccessBP int64         `json:"success_basis_points"`
	P50       time.Duration `json:"p50_ns"`
	P95       time.Duration `json:"p95_ns"`
	P99       time.Duration `json:"p99_ns"`
	Start     time.Time     `json:"start"`
	End       time.Time     `json:"end"`
}

// SLAWindow is one SLA window: the measurements, the terms and the
// verdict (breached when availability or p95 missed the terms; a window
// without requests breaches nothing).
type SLAWindow struct {
	N        int      `json:"n"`
	Period   int      `json:"period"`
	Measured Measured `json:"measured"`
	Unrouted int64    `json:"unrouted"`
	Terms    SLATerms `json:"terms"`
	Breached bool     `json:"breached"`
	Reasons  []string `json:"reasons,omitempty"`
}

// CanaryStart is a canary taking its share of the traffic.
type CanaryStart struct {
	Percent  int           `json:"percent"`
	Duration time.Duration `json:"duration_ns"` // the gate window
	Gates    Gates         `json:"gates"`
}

// Gates are a rollout's promotion gates.
type Gates struct {
	MinRequests  int           `json:"min_requests"`
	MinSuccessBP int           `json:"min_success_basis_points"`
	MaxP95       time.Duration `json:"max_p95_ns,omitempty"`
}

// GateVerdict is a canary's gate window judged: passed when it had at
// least min_requests, success ≥ min_success and p95 ≤ max_p95.
type GateVerdict struct {
	Measured Measured `json:"measured"`
	Gates    Gates    `json:"gates"`
	Passed   bool     `json:"passed"`
}

// DeploymentStop is how the deployment ended.
type DeploymentStop struct {
	Spent    int64 `json:"spent"`
	Refunded int64 `json:"sla_refunded"`
	Slashed  int64 `json:"slashed"`
	Periods  int   `json:"periods"` // billing periods settled over its life
}

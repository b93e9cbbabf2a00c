package provenance

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	ita "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
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

// PredicateTypePrefix begins every Accord predicate type; the full type is
// PredicateTypePrefix + stage + "/v1".
const PredicateTypePrefix = "https://accord.dev/attestation/"

// PredicateType returns the versioned predicate type URI of a stage.
func PredicateType(stage string) string { return PredicateTypePrefix + stage + "/v1" }

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

// SpecPredicate: the job's spec (https://accord.dev/attestation/spec/v1).
type SpecPredicate struct {
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
}

// AdmissionPredicate: the policy decision.
type AdmissionPredicate struct {
	Header
	Allowed  bool            `json:"allowed"`
	Reason   string          `json:"reason,omitempty"`
	Decision json.RawMessage `json:"decision,omitempty"`
}

// NegotiationPredicate: the auction's result; Record holds offers, bids,
// winners and payments as the market reports them.
type NegotiationPredicate struct {
	Header
	Provider string          `json:"provider"`
	Pool     string          `json:"pool,omitempty"`
	Runtime  string          `json:"runtime,omitempty"`
	Price    int64           `json:"price"`
	Currency string          `json:"currency"`
	Record   json.RawMessage `json:"record,omitempty"`
}

// PlacementPredicate: where the job was placed and what escrow holds.
type PlacementPredicate struct {
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
}

// ExecutionPredicate: what ran (SLSA-provenance-like), per task.
type ExecutionPredicate struct {
	Header
	Provider string             `json:"provider,omitempty"`
	Runtime  string             `json:"runtime,omitempty"`
	Tasks    map[string]TaskRun `json:"tasks"`
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

// Usage is measured consumption.
type Usage struct {
	WallSeconds  float64 `json:"wall_seconds"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	PeakMemBytes int64   `json:"peak_mem_bytes,omitempty"`
	MemGBSeconds float64 `json:"mem_gb_seconds,omitempty"`
	GPUSeconds   float64 `json:"gpu_seconds,omitempty"`
}

// VerificationPredicate: acceptance tests and results. The statement's
// subjects are the output digests the tests ran against.
type VerificationPredicate struct {
	Header
	Passed bool         `json:"passed"`
	Tests  []TestResult `json:"tests"`
}

// TestResult is one acceptance test.
type TestResult struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail,omitempty"`
}

// SettlementPredicate: what was paid and refunded; Record holds the
// ledger's settlement (postings included).
type SettlementPredicate struct {
	Header
	Paid     int64  `json:"paid"`
	Refunded int64  `json:"refunded"`
	Currency string `json:"currency"`
	// Usage and Rates, when present, let the audit recompute the metered
	// charge from the usage measured in the execution stage.
	Usage  *MeteredUsage   `json:"usage,omitempty"`
	Rates  *Rates          `json:"rates,omitempty"`
	Record json.RawMessage `json:"record,omitempty"`
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
	Provider string        `json:"provider"`
	Currency string        `json:"currency"`
	Held     int64         `json:"held"`
	Usage    *MeteredUsage `json:"usage,omitempty"` // what the metered charge was computed from
	Rates    *Rates        `json:"rates,omitempty"`
	Metered  struct {
		Wall  int64 `json:"wall"`
		CPU   int64 `json:"cpu"`
		Mem   int64 `json:"mem"`
		GPU   int64 `json:"gpu"`
		Total int64 `json:"total"`
	} `json:"metered"`
	Charge      int64 `json:"charge"`
	Capped      bool  `json:"capped,omitempty"`
	SLARefund   int64 `json:"sla_refund"`
	Payable     int64 `json:"payable"`
	ProviderPay int64 `json:"provider_pay"`
	PlatformFee int64 `json:"platform_fee"`
	Royalties   []struct {
		Account string `json:"account"`
		Amount  int64  `json:"amount"`
	} `json:"royalties,omitempty"`
	Refund  int64 `json:"refund"`
	Slashed int64 `json:"slashed"`
}

// Statement is a parsed in-toto Statement v1 as Accord writes it.
type Statement struct {
	Type          string          `json:"_type"`
	Subject       []RawSubject    `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

// RawSubject is an in-toto subject.
type RawSubject struct {
	Name   string            `json:"name,omitempty"`
	Digest map[string]string `json:"digest"`
}

// Subjects returns the sha256 subjects as Subject values.
func (s *Statement) Subjects() []Subject {
	var out []Subject
	for _, r := range s.Subject {
		if d, ok := r.Digest["sha256"]; ok {
			out = append(out, Subject{Name: r.Name, Digest: "sha256:" + d})
		}
	}
	return out
}

// Header decodes the predicate's chain header.
func (s *Statement) Header() (Header, error) {
	var h Header
	if err := json.Unmarshal(s.Predicate, &h); err != nil {
		return h, fmt.Errorf("%w: predicate header: %v", ErrBadStatement, err)
	}
	return h, nil
}

// DecodePredicate decodes the predicate into v (a *XxxPredicate).
func (s *Statement) DecodePredicate(v any) error {
	if err := json.Unmarshal(s.Predicate, v); err != nil {
		return fmt.Errorf("%w: %s predicate: %v", ErrBadStatement, s.PredicateType, err)
	}
	return nil
}

var sha256Re = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ValidDigest reports whether d is "sha256:<64 lower-case hex>".
func ValidDigest(d string) bool { return sha256Re.MatchString(d) }

// BuildStatement makes the statement bytes for one stage. The predicate is a
// JSON object; the header fields (job_id, stage, previous, spec_digest) are
// set from h, and a job_id already in the predicate must agree. Subjects get
// the job subject first. The output is deterministic (sorted keys) and
// validated with the in-toto attestation library.
func BuildStatement(h Header, subjects []Subject, predicate json.RawMessage) ([]byte, error) {
	if StageIndex(h.Stage) < 0 {
		return nil, fmt.Errorf("%w: unknown stage %q", ErrBadStatement, h.Stage)
	}
	if err := checkJobID(h.JobID); err != nil {
		return nil, err
	}
	if h.Stage == StageSpec && h.Previous != "" {
		return nil, fmt.Errorf("%w: spec stage has no previous stage", ErrBadStatement)
	}
	if h.Stage != StageSpec && !ValidDigest(h.Previous) {
		return nil, fmt.Errorf("%w: stage %s: previous digest %q is not sha256:<hex>", ErrBadStatement, h.Stage, h.Previous)
	}
	if h.SpecDigest != "" && !ValidDigest(h.SpecDigest) {
		return nil, fmt.Errorf("%w: spec digest %q is not sha256:<hex>", ErrBadStatement, h.SpecDigest)
	}
	fields := map[string]json.RawMessage{}
	if len(predicate) > 0 && string(predicate) != "null" {
		if err := json.Unmarshal(predicate, &fields); err != nil {
			return nil, fmt.Errorf("%w: predicate is not a JSON object: %v", ErrBadStatement, err)
		}
	}
	if raw, ok := fields["job_id"]; ok {
		var id string
		if err := json.Unmarshal(raw, &id); err != nil || id != h.JobID {
			return nil, fmt.Errorf("%w: predicate job_id %s does not match job %s", ErrBadStatement, raw, h.JobID)
		}
	}
	set := func(k, v string) {
		if v == "" {
			delete(fields, k)
			return
		}
		b, _ := json.Marshal(v)
		fields[k] = b
	}
	set("job_id", h.JobID)
	set("stage", h.Stage)
	set("previous", h.Previous)
	set("spec_digest", h.SpecDigest)

	subs := []RawSubject{jsonSubject(JobSubject(h.JobID))}
	seen := map[string]bool{subs[0].Name + subs[0].Digest["sha256"]: true}
	for _, s := range subjects {
		if !ValidDigest(s.Digest) {
			return nil, fmt.Errorf("%w: subject %q digest %q is not sha256:<hex>", ErrBadStatement, s.Name, s.Digest)
		}
		r := jsonSubject(s)
		if k := r.Name + r.Digest["sha256"]; !seen[k] {
			seen[k] = true
			subs = append(subs, r)
		}
	}
	pred, err := json.Marshal(fields) // map keys are sorted: deterministic
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadStatement, err)
	}
	st := Statement{Type: ita.StatementTypeUri, Subject: subs, PredicateType: PredicateType(h.Stage), Predicate: pred}
	b, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadStatement, err)
	}
	if _, err := ParseStatement(b); err != nil {
		return nil, err
	}
	return b, nil
}

// checkJobID accepts 1-256 bytes of printable UTF-8.
func checkJobID(id string) error {
	if id == "" || len(id) > 256 || !utf8.ValidString(id) {
		return fmt.Errorf("%w: job ID must be 1-256 bytes of UTF-8", ErrBadStatement)
	}
	for _, r := range id {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: job ID %q has a non-printable character", ErrBadStatement, id)
		}
	}
	return nil
}

func jsonSubject(s Subject) RawSubject {
	alg, hexd, _ := strings.Cut(s.Digest, ":")
	return RawSubject{Name: s.Name, Digest: map[string]string{alg: hexd}}
}

// ParseStatement decodes statement bytes and validates them against the
// in-toto Statement v1 rules.
func ParseStatement(b []byte) (*Statement, error) {
	var pb ita.Statement
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, &pb); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadStatement, err)
	}
	if err := pb.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadStatement, err)
	}
	var st Statement
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadStatement, err)
	}
	return &st, nil
}

package provenance

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	ita "github.com/in-toto/attestation/go/v1"

	"github.com/accordmesh/accord/provenance/predicate"
	"google.golang.org/protobuf/encoding/protojson"
)

// Stage names, in chain order (predicate.Stages).
const (
	StageSpec         = predicate.StageSpec
	StageAdmission    = predicate.StageAdmission
	StageNegotiation  = predicate.StageNegotiation
	StagePlacement    = predicate.StagePlacement
	StageExecution    = predicate.StageExecution
	StageVerification = predicate.StageVerification
	StageSettlement   = predicate.StageSettlement
)

// Stages lists the stages in the order a job's chain must follow.
var Stages = predicate.Stages

// PredicateTypePrefix begins every Accord predicate type.
const PredicateTypePrefix = predicate.Prefix

// PredicateType returns the versioned predicate type URI of a stage; every
// deployment event (DeploymentStage) has the deployment predicate type.
func PredicateType(stage string) string {
	if _, ok := predicate.DeploymentSeq(stage); ok {
		return predicate.Type(StageDeployment)
	}
	return predicate.Type(stage)
}

// StageDeployment is the predicate type name of deployment events; each
// event's stage is DeploymentStage(seq).
const StageDeployment = predicate.StageDeployment

// DeploymentPredicate is a deployment event's predicate.
type DeploymentPredicate = predicate.Deployment

// DeploymentStage names the seq-th event of a deployment's chain.
func DeploymentStage(seq int) string { return predicate.DeploymentStage(seq) }

// DeploymentSeq parses a DeploymentStage name.
func DeploymentSeq(stage string) (int, bool) { return predicate.DeploymentSeq(stage) }

// knownStage accepts a job stage or a deployment event.
func knownStage(stage string) bool {
	_, dep := predicate.DeploymentSeq(stage)
	return dep || StageIndex(stage) >= 0
}

// chainStart reports whether stage begins a chain (links no previous
// envelope): a job's spec stage or a deployment's first event.
func chainStart(stage string) bool {
	seq, dep := predicate.DeploymentSeq(stage)
	return stage == StageSpec || (dep && seq == 1)
}

// StageIndex returns the stage's position in Stages, or -1.
func StageIndex(stage string) int { return predicate.StageIndex(stage) }

// The predicate types are defined once, in package predicate; these names
// are the same types.
type (
	Header                = predicate.Header
	SpecPredicate         = predicate.Spec
	AdmissionPredicate    = predicate.Admission
	NegotiationPredicate  = predicate.Negotiation
	PlacementPredicate    = predicate.Placement
	ExecutionPredicate    = predicate.Execution
	VerificationPredicate = predicate.Verification
	SettlementPredicate   = predicate.Settlement
	TaskRun               = predicate.TaskRun
	OutputArtifact        = predicate.OutputArtifact
	Usage                 = predicate.Usage
	TestResult            = predicate.TestResult
	MeteredUsage          = predicate.MeteredUsage
	Rates                 = predicate.Rates
	SettlementRecord      = predicate.SettlementRecord
	Measured              = predicate.Measured
)

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
	if !knownStage(h.Stage) {
		return nil, fmt.Errorf("%w: unknown stage %q", ErrBadStatement, h.Stage)
	}
	if err := checkJobID(h.JobID); err != nil {
		return nil, err
	}
	if chainStart(h.Stage) && h.Previous != "" {
		return nil, fmt.Errorf("%w: stage %s has no previous stage", ErrBadStatement, h.Stage)
	}
	if !chainStart(h.Stage) && !ValidDigest(h.Previous) {
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

package policies

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"

	"github.com/accordmesh/accord/specs"
)

// envs holds one CEL environment per stage; each declares the variables
// that kind of rule may read.
var envs = map[Stage]*cel.Env{
	StageAdmission: mustEnv(
		cel.Variable("spec", cel.DynType),   // the canonical spec (JSON field names)
		cel.Variable("plan", cel.DynType),   // {max_cost, currency, gpu_hours, tasks, critical_path_ns}
		cel.Variable("tenant", cel.DynType), // {name, spend_remaining, gpu_hours_remaining, currency}
		cel.Variable("signer", cel.DynType), // {signed: bool, key_id: string}
		cel.Variable("images", cel.ListType(cel.StringType)),
	),
	StagePlacement: mustEnv(
		cel.Variable("spec", cel.DynType),
		cel.Variable("provider", cel.DynType), // {name, pool, region, tee, reputation, gpus: [{model, memory_bytes}]}
	),
	StageAudit: mustEnv(
		cel.Variable("job", cel.DynType),                     // {id, tenant, spec_digest}
		cel.Variable("stages", cel.ListType(cel.StringType)), // stages with a verified attestation
		cel.Variable("attestations", cel.ListType(cel.DynType)),
	),
}

func mustEnv(opts ...cel.EnvOption) *cel.Env {
	env, err := cel.NewEnv(opts...)
	if err != nil {
		panic(fmt.Sprintf("policies: CEL environment: %v", err))
	}
	return env
}

// Decision is the outcome of one rule on one subject.
type Decision struct {
	Policy      string `json:"policy"`
	Version     int    `json:"version"`
	Digest      string `json:"policy_digest"`
	Rule        string `json:"rule"`
	Stage       Stage  `json:"stage"`
	InputDigest string `json:"input_digest"`
	Allowed     bool   `json:"allowed"`
	Reason      string `json:"reason,omitempty"`
}

// Result is every decision for a subject and the verdict.
type Result struct {
	Allowed   bool       `json:"allowed"`
	Decisions []Decision `json:"decisions"`
}

// Reasons lists why the subject was denied.
func (r Result) Reasons() []string {
	var out []string
	for _, d := range r.Decisions {
		if !d.Allowed {
			out = append(out, fmt.Sprintf("%s/%s: %s", d.Policy, d.Rule, d.Reason))
		}
	}
	return out
}

// Err returns nil when allowed, else an error wrapping ErrDenied with every reason.
func (r Result) Err() error {
	if r.Allowed {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrDenied, strings.Join(r.Reasons(), "; "))
}

// Evaluate runs every rule of stage from the policies that apply to tenant
// against input. Evaluation is pure: the same set and input give the same
// result, so a retried admission activity decides the same way.
func (s *Set) Evaluate(stage Stage, tenant string, input map[string]any) Result {
	res := Result{Allowed: true}
	digest := InputDigest(input)
	for _, p := range s.For(tenant) {
		for _, r := range p.Rules {
			if r.Stage != stage {
				continue
			}
			d := Decision{Policy: p.Name, Version: p.Version, Digest: p.Digest, Rule: r.Name, Stage: stage, InputDigest: digest}
			d.Allowed, d.Reason = r.eval(input)
			if !d.Allowed {
				res.Allowed = false
			}
			res.Decisions = append(res.Decisions, d)
		}
	}
	return res
}

func (r *Rule) eval(input map[string]any) (bool, string) {
	out, _, err := r.prg.Eval(input)
	if err != nil {
		return false, "evaluation error: " + err.Error()
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Sprintf("rule returned %s, not bool", out.Type())
	}
	if !b {
		if r.Message != "" {
			return false, r.Message
		}
		return false, "expression is false: " + r.Expr
	}
	return true, ""
}

// InputDigest is sha256 over the canonical JSON of an input (sorted keys).
func InputDigest(input map[string]any) string {
	b, err := json.Marshal(input)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// jsonValue turns a Go value into the plain maps and slices CEL reads, with
// the JSON field names as keys.
func jsonValue(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil
	}
	return out
}

// TenantView is what an admission rule sees of the tenant.
type TenantView struct {
	Name              string  `json:"name"`
	SpendRemaining    int64   `json:"spend_remaining"`
	GPUHoursRemaining float64 `json:"gpu_hours_remaining"`
	Currency          string  `json:"currency"`
}

// Signer is what an admission rule sees of the spec's signature.
type Signer struct {
	Signed bool   `json:"signed"`
	KeyID  string `json:"key_id,omitempty"`
}

// AdmissionInput builds the variables of an admission rule.
func AdmissionInput(plan *specs.Plan, tenant TenantView, signer Signer) map[string]any {
	var images []string
	for _, t := range plan.Tasks {
		images = append(images, t.Image)
	}
	if images == nil {
		images = []string{}
	}
	planView := map[string]any{
		"max_cost":         plan.MaxCost,
		"currency":         plan.Currency,
		"gpu_hours":        GPUHours(plan),
		"tasks":            len(plan.Tasks),
		"critical_path_ns": int64(plan.CriticalTime),
	}
	return map[string]any{
		"spec":   jsonValue(plan.Spec),
		"plan":   jsonValue(planView),
		"tenant": jsonValue(tenant),
		"signer": jsonValue(signer),
		"images": images,
	}
}

// ProviderView is what a placement rule sees of a provider's bid.
type ProviderView struct {
	Name       string    `json:"name"`
	Pool       string    `json:"pool,omitempty"`
	Region     string    `json:"region"`
	TEE        string    `json:"tee,omitempty"`
	Reputation float64   `json:"reputation"`
	GPUs       []GPUView `json:"gpus"`
}

// GPUView is one GPU a provider offers.
type GPUView struct {
	Model       string `json:"model"`
	MemoryBytes int64  `json:"memory_bytes"`
}

// PlacementInput builds the variables of a placement rule.
func PlacementInput(spec *specs.Spec, p ProviderView) map[string]any {
	if p.GPUs == nil {
		p.GPUs = []GPUView{}
	}
	return map[string]any{"spec": jsonValue(spec), "provider": jsonValue(p)}
}

// AttestationView is what an audit rule sees of one attestation.
type AttestationView struct {
	Stage         string `json:"stage"`
	PredicateType string `json:"predicate_type"`
	KeyID         string `json:"key_id"`
	Logged        bool   `json:"logged"`
}

// AuditInput builds the variables of an audit rule.
func AuditInput(jobID, tenant, specDigest string, atts []AttestationView) map[string]any {
	stages := []string{}
	for _, a := range atts {
		stages = append(stages, a.Stage)
	}
	if atts == nil {
		atts = []AttestationView{}
	}
	return map[string]any{
		"job":          map[string]any{"id": jobID, "tenant": tenant, "spec_digest": specDigest},
		"stages":       stages,
		"attestations": jsonValue(atts),
	}
}

// GPUHours is the most GPU time a plan can use: GPUs × max duration summed over tasks.
func GPUHours(plan *specs.Plan) float64 {
	var h float64
	for _, t := range plan.Tasks {
		h += float64(t.Resources.GPU.Count) * t.Resources.MaxDuration.Hours()
	}
	return h
}

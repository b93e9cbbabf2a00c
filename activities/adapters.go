package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// SpecCompiler is the Compiler over package specs. Paths in the spec (OCI
// archives, input files) are made absolute, since the plan travels as JSON
// without the spec's source file.
type SpecCompiler struct{}

// Compile implements Compiler. It reads files only.
func (SpecCompiler) Compile(_ context.Context, path string) (*specs.Plan, []byte, error) {
	s, err := specs.Load(path)
	if err != nil {
		return nil, nil, err
	}
	plan, err := specs.Compile(s)
	if err != nil {
		return nil, nil, err
	}
	resolve := func(image string) string {
		if p, ok := s.ArchivePath(image); ok {
			if abs, err := filepath.Abs(p); err == nil {
				return "oci-archive:" + abs
			}
		}
		return image
	}
	for i := range plan.Tasks {
		t := &plan.Tasks[i]
		t.Image = resolve(t.Image)
		for j := range t.Inputs {
			if t.Inputs[j].Path != "" {
				t.Inputs[j].Path, _ = filepath.Abs(s.Resolve(t.Inputs[j].Path))
			}
		}
	}
	if plan.Spec != nil {
		for i := range plan.Spec.Tasks {
			plan.Spec.Tasks[i].Image = resolve(plan.Spec.Tasks[i].Image)
		}
		for i := range plan.Spec.Verification.Tests {
			if img := plan.Spec.Verification.Tests[i].Image; img != "" {
				plan.Spec.Verification.Tests[i].Image = resolve(img)
			}
		}
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("activities: read spec: %w", err)
	}
	return plan, doc, nil
}

// PolicyAdmitter is the Admitter over package policies.
type PolicyAdmitter struct {
	A *policies.Admitter
}

// Admit implements Admitter. A denial (ErrDenied, ErrUnsigned,
// ErrQuotaExceeded) is a result, not an error. Idempotent by job ID (the
// quota reservation is keyed by job).
func (p PolicyAdmitter) Admit(ctx context.Context, jobID string, plan *specs.Plan, document, signature []byte) (bool, string, any, error) {
	adm, err := p.A.Admit(ctx, policies.AdmitRequest{JobID: jobID, Plan: plan, Document: document, Signature: signature})
	if err != nil && !adm.Allowed && isDenial(err) {
		reason := adm.Reason
		if reason == "" {
			reason = err.Error()
		}
		return false, reason, adm, nil
	}
	if err != nil {
		return false, "", nil, err
	}
	return adm.Allowed, adm.Reason, adm, nil
}

func isDenial(err error) bool {
	return errors.Is(err, policies.ErrDenied) || errors.Is(err, policies.ErrUnsigned) ||
		errors.Is(err, policies.ErrQuotaExceeded) || errors.Is(err, policies.ErrUnknownTenant)
}

// SettlementLedger is the Ledger over package settlement.
type SettlementLedger struct {
	L *settlement.Ledger
	// MarginBP is held on top of the price for metered usage.
	MarginBP int64
	// FeeBP is the platform fee.
	FeeBP int64
	// Rates prices metered usage per provider; nil means price only.
	Rates func(provider string) settlement.Rates
}

// Hold implements Ledger: idempotent by settlement.Key(job, "hold", 1).
func (s SettlementLedger) Hold(ctx context.Context, r HoldRequest) (int64, string, any, error) {
	esc, err := s.L.Hold(ctx, settlement.HoldRequest{
		Job: r.JobID, Tenant: r.Tenant, Provider: r.Provider, Currency: r.Currency,
		Price: r.Price, MarginBP: s.MarginBP, Cap: r.Cap, Attempt: 1,
	})
	if err != nil {
		if errors.Is(err, settlement.ErrInsufficientFunds) || errors.Is(err, settlement.ErrOverBudget) {
			return 0, "", nil, fmt.Errorf("%w: %w", ErrInsufficient, err)
		}
		return 0, "", nil, err
	}
	return esc.Amount, settlement.Key(r.JobID, "hold", 1), esc, nil
}

// Cover implements Ledger: read-only.
func (s SettlementLedger) Cover(ctx context.Context, tenant, currency string, amount int64) error {
	c, err := s.L.CanCover(ctx, tenant, currency, amount)
	if err != nil {
		return err
	}
	if err := c.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrInsufficient, err)
	}
	return nil
}

// Release implements Ledger: idempotent; a never-held or released job
// posts nothing.
func (s SettlementLedger) Release(ctx context.Context, jobID string) (int64, error) {
	tx, err := s.L.Release(ctx, settlement.ReleaseRequest{Job: jobID, Attempt: 1})
	if err != nil {
		return 0, err
	}
	var refunded int64
	for _, p := range tx.Postings {
		if strings.HasPrefix(p.Account, settlement.KindTenant+":") && p.Amount > 0 {
			refunded += p.Amount
		}
	}
	return refunded, nil
}

// Settle implements Ledger: idempotent by settlement.Key(job, "settle", 1).
func (s SettlementLedger) Settle(ctx context.Context, r SettleRequest) (int64, int64, any, error) {
	u, err := settlement.UsageFromSeconds(r.Usage.WallSeconds, r.Usage.CPUSeconds, r.Usage.MemGBSeconds, r.Usage.GPUSeconds)
	if err != nil {
		return 0, 0, nil, err
	}
	sp := r.Plan.Spec
	req := settlement.SettleRequest{
		Job: r.JobID, Attempt: 1, Succeeded: r.Succeeded, PayOnSuccess: sp.Settlement.PayOnSuccess,
		Price: r.Price, Usage: u, FeeBP: s.FeeBP,
		SLA: settlement.SLATerms{
			Deadline: sp.Settlement.SLA.Deadline, MaxDuration: sp.Settlement.SLA.MaxDuration,
			RefundPercent: sp.Settlement.SLA.RefundPercent, SlashPercent: sp.Settlement.SLA.SlashPercent,
		},
		Outcome: settlement.Outcome{
			Submitted: r.Outcome.Started, Finished: r.Outcome.Finished,
			Duration: r.Outcome.Finished.Sub(r.Outcome.Started), VerificationFailed: !r.Succeeded,
		},
	}
	if s.Rates != nil {
		req.Rates = s.Rates(r.Provider)
	}
	for _, ro := range sp.Settlement.Royalties {
		req.Royalties = append(req.Royalties, settlement.Royalty{Account: ro.Account, BasisPoints: int64(ro.BasisPoints)})
	}
	st, err := s.L.Settle(ctx, req)
	if err != nil {
		return 0, 0, nil, err
	}
	return st.Payable, st.Refund, st, nil
}

// RecorderAttestor is the Attestor over provenance.Recorder.
type RecorderAttestor struct {
	R *provenance.Recorder
}

// Attest implements Attestor: idempotent by (job, stage); the envelope is
// stored before upload and reused on retry.
func (r RecorderAttestor) Attest(ctx context.Context, in workflows.AttestInput) (workflows.AttestOutput, error) {
	req := provenance.AttestRequest{JobID: in.JobID, Stage: in.Stage, Previous: in.Previous, Predicate: in.Predicate}
	for _, s := range in.Subjects {
		req.Subjects = append(req.Subjects, provenance.Subject{Name: s.Name, Digest: s.Digest})
	}
	att, err := r.R.Attest(ctx, req)
	if err != nil {
		return workflows.AttestOutput{}, err
	}
	out := workflows.AttestOutput{Digest: att.Digest, LogIndex: -1}
	if att.Entry != nil && att.Entry.LogIndex != nil {
		out.LogIndex = *att.Entry.LogIndex
	}
	return out, nil
}

// MarketNegotiator is the Negotiator over package market: the sealed-bid
// combinatorial auction with VCG prices (or alternating offers when the spec
// asks) among the providers, each of which maps to a runtime kind on this
// worker. The tenant's placement policies are applied to every provider's
// profile before the market runs.
type MarketNegotiator struct {
	// Providers returns the sellers at negotiation time.
	Providers func(ctx context.Context) ([]market.Provider, error)
	// Runtime maps a winning provider to the runtime kind that executes its
	// tasks; nil or an unknown provider means DefaultRuntime.
	Runtime        map[string]string
	DefaultRuntime string
	// RuntimeFor, when set, maps providers missing from Runtime (pools
	// attached while the worker runs) to their runtime kind; "" means none.
	RuntimeFor func(provider string) string
	// Placement is the tenant's placement policy for a spec (usually
	// policies.Set.PlacementFilter); nil admits every provider.
	Placement func(spec *specs.Spec) func(policies.ProviderView) (bool, string)
	// Assign names the exact devices a winning provider gives each task
	// (nil, or a nil return, means the runtime chooses).
	Assign func(ctx context.Context, provider string, plan *specs.Plan) ([]TaskDevices, error)
}

// Negotiate implements Negotiator. It is a pure function of the plan, the
// policies and the providers' current profiles, so a retry is harmless. No
// offers or no agreement wraps ErrNoOffers with the market's diagnostics,
// including the providers the placement policies excluded and why.
func (m MarketNegotiator) Negotiate(ctx context.Context, jobID string, plan *specs.Plan) (Award, error) {
	provs, err := m.Providers(ctx)
	if err != nil {
		return Award{}, fmt.Errorf("activities: providers: %w", err)
	}
	provs, excluded, err := m.filter(ctx, jobID, plan, provs)
	if err != nil {
		return Award{}, err
	}
	if len(provs) == 0 && len(excluded) > 0 {
		return Award{}, fmt.Errorf("%w: every provider was excluded by placement policy: %s", ErrNoOffers, explain(excluded))
	}
	res, err := market.Negotiate(ctx, plan, provs, market.Options{Job: jobID})
	if res != nil {
		res.Diagnostics = append(res.Diagnostics, excluded...)
	}
	if errors.Is(err, market.ErrNoOffers) || errors.Is(err, market.ErrNoAgreement) {
		var why []market.Diagnostic
		if res != nil {
			why = res.Diagnostics
		} else {
			why = excluded
		}
		return Award{}, fmt.Errorf("%w: %w: %s", ErrNoOffers, err, explain(why))
	}
	if err != nil {
		return Award{}, err
	}
	if len(res.Awards) == 0 {
		return Award{}, fmt.Errorf("%w: the market cleared no award", ErrNoOffers)
	}
	aw := res.Awards[0]
	rt := m.Runtime[aw.Provider]
	if rt == "" && m.RuntimeFor != nil {
		rt = m.RuntimeFor(aw.Provider)
	}
	if rt == "" {
		rt = m.DefaultRuntime
	}
	out := Award{Provider: aw.Provider, Pool: aw.Provider, Runtime: rt, Price: aw.Price, Currency: res.Currency, Record: res}
	if m.Assign != nil {
		if out.Devices, err = m.Assign(ctx, aw.Provider, plan); err != nil {
			return Award{}, fmt.Errorf("activities: assign devices on %s: %w", aw.Provider, err)
		}
	}
	return out, nil
}

// filter reads every provider's profile once and keeps those the tenant's
// placement rules allow; the others come back as diagnostics with
// constraint "policy" and the rules' reasons.
func (m MarketNegotiator) filter(ctx context.Context, jobID string, plan *specs.Plan, provs []market.Provider) ([]market.Provider, []market.Diagnostic, error) {
	if m.Placement == nil || plan.Spec == nil {
		return provs, nil, nil
	}
	allow := m.Placement(plan.Spec)
	var kept []market.Provider
	var excluded []market.Diagnostic
	for _, pr := range provs {
		p, err := pr.Profile(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("activities: provider profile: %w", err)
		}
		if ok, why := allow(ProviderView(p)); !ok {
			excluded = append(excluded, market.Diagnostic{Provider: p.Name, Job: jobID, Constraint: "policy", Detail: why})
			continue
		}
		kept = append(kept, &market.Static{P: p})
	}
	return kept, excluded, nil
}

// ProviderView is what a placement rule sees of a provider's profile.
func ProviderView(p market.Profile) policies.ProviderView {
	v := policies.ProviderView{Name: p.Name, Pool: p.Name, Region: p.Region, Reputation: p.Reputation}
	if len(p.TEE) > 0 {
		v.TEE = p.TEE[0]
	}
	for _, g := range p.Free.GPUs {
		for range g.Count {
			v.GPUs = append(v.GPUs, policies.GPUView{Model: g.Model, MemoryBytes: g.MemoryBytes})
		}
	}
	return v
}

func explain(ds []market.Diagnostic) string {
	var why []string
	for _, d := range ds {
		why = append(why, fmt.Sprintf("%s: %s (%s)", d.Provider, d.Detail, d.Constraint))
	}
	return strings.Join(why, "; ")
}

// readSigned reads the submitted spec document and its detached signature
// (path + ".sig", absent when unsigned). The document must still be the one
// submitted: a spec edited after submission is refused, permanently.
func readSigned(path, digest string) (doc, sig []byte, err error) {
	if path == "" {
		return nil, nil, nil
	}
	doc, err = os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("activities: read spec: %w", err)
	}
	if digest != "" && provenance.Digest(doc) != digest {
		return nil, nil, permanent(workflows.ErrTypeInvalidSpec,
			fmt.Errorf("activities: %s changed since it was compiled (digest %s, want %s)", path, provenance.Digest(doc), digest))
	}
	sig, err = os.ReadFile(path + provenance.SpecSignatureExt)
	if errors.Is(err, os.ErrNotExist) {
		return doc, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("activities: read spec signature: %w", err)
	}
	return doc, sig, nil
}

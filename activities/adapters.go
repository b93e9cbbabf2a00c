package activities

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

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
func (p PolicyAdmitter) Admit(ctx context.Context, jobID string, plan *specs.Plan, document []byte) (bool, string, any, error) {
	adm, err := p.A.Admit(ctx, policies.AdmitRequest{JobID: jobID, Plan: plan, Document: document})
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

// LocalMarket is an interim Negotiator with one provider, the local pool,
// bidding its reference cost (specs.RefPrice* rates over each task's
// resources and max duration, at least the spec's reserve). It stands in
// until the market package's negotiation is wired in; it never bids above
// the budget and reports why when it cannot bid.
type LocalMarket struct {
	Provider string // default "local"
	Runtime  string // default "containerd"
}

// Negotiate implements Negotiator.
func (m LocalMarket) Negotiate(_ context.Context, jobID string, plan *specs.Plan) (Award, error) {
	prov, rt := m.Provider, m.Runtime
	if prov == "" {
		prov = "local"
	}
	if rt == "" {
		rt = "containerd"
	}
	sp := plan.Spec
	for _, t := range plan.Tasks {
		if t.Resources.GPU.Count > 0 {
			return Award{}, fmt.Errorf("%w: provider %s has no GPUs (task %s asks for %d)", ErrNoOffers, prov, t.Name, t.Resources.GPU.Count)
		}
	}
	for _, d := range sp.Placement.DenyProviders {
		if d == prov {
			return Award{}, fmt.Errorf("%w: provider %s is denied by placement", ErrNoOffers, prov)
		}
	}
	if len(sp.Placement.AllowProviders) > 0 && !contains(sp.Placement.AllowProviders, prov) {
		return Award{}, fmt.Errorf("%w: provider %s is not in placement.allow_providers", ErrNoOffers, prov)
	}
	var cost float64
	for _, t := range plan.Tasks {
		h := t.Resources.MaxDuration.Hours()
		cost += h * (float64(t.Resources.MilliCPU)/1000*specs.RefPriceCoreHour +
			float64(t.Resources.MemoryBytes)/(1<<30)*specs.RefPriceGiBHour)
	}
	price := max(int64(math.Ceil(cost)), sp.Negotiation.Reserve, 1)
	if sp.Budget.MaxPrice > 0 && price > sp.Budget.MaxPrice {
		return Award{}, fmt.Errorf("%w: provider %s asks %d %s, above the budget %d", ErrNoOffers, prov, price, sp.Budget.Currency, sp.Budget.MaxPrice)
	}
	return Award{
		Provider: prov, Pool: prov, Runtime: rt, Price: price, Currency: sp.Budget.Currency,
		Record: map[string]any{"protocol": "local-reference-price", "offers": []map[string]any{{"provider": prov, "price": price}}},
	}, nil
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

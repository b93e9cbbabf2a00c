package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/accordmesh/accord/internal/bounded"
	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/broker"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/settlement/sla"
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
	sp := r.Plan.Spec
	req := settlement.SettleRequest{
		Job: r.JobID, Attempt: 1, Succeeded: r.Succeeded, PayOnSuccess: sp.Settlement.PayOnSuccess, FeeBP: s.FeeBP,
	}
	if len(r.Parts) == 0 {
		u, err := settlement.UsageFromSeconds(r.Usage.WallSeconds, r.Usage.CPUSeconds, r.Usage.MemGBSeconds, r.Usage.GPUSeconds)
		if err != nil {
			return 0, 0, nil, err
		}
		req.Price, req.Usage, req.SLA, req.Outcome = r.Price, u, agreedTerms(r.Plan, r.SLA), outcome(r.Outcome, r.Succeeded)
		if s.Rates != nil {
			req.Rates = s.Rates(r.Provider)
		}
	}
	for _, p := range r.Parts {
		u, err := settlement.UsageFromSeconds(p.Usage.WallSeconds, p.Usage.CPUSeconds, p.Usage.MemGBSeconds, p.Usage.GPUSeconds)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("part of %s: %w", p.Provider, err)
		}
		part := settlement.SettlePart{Provider: p.Provider, Price: p.Price, Usage: u,
			SLA: agreedTerms(r.Plan, p.SLA), Outcome: outcome(p.Outcome, r.Succeeded)}
		if s.Rates != nil {
			part.Rates = s.Rates(p.Provider)
		}
		req.Parts = append(req.Parts, part)
	}
	for _, ro := range sp.Settlement.Royalties {
		req.Royalties = append(req.Royalties, settlement.Royalty{Account: ro.Account, BasisPoints: int64(ro.BasisPoints)})
	}
	req.ModelFees = modelFees(r.Plan)
	st, err := s.L.Settle(ctx, req)
	if err != nil {
		return 0, 0, nil, err
	}
	return st.Paid(), st.Refund, st, nil
}

// outcome is the SLA's view of the measured timing.
func outcome(o Outcome, succeeded bool) settlement.Outcome {
	placed := o.Placed
	if placed.IsZero() {
		placed = o.Started // execution starts as soon as the job is placed
	}
	return settlement.Outcome{Placed: placed, Finished: o.Finished, Duration: o.Finished.Sub(o.Started), VerificationFailed: !succeeded}
}

// modelFees are the plan's pinned model fees as the ledger pays them: each
// share to the owner's account, naming the model whose owner it pays.
func modelFees(plan *specs.Plan) []settlement.ModelFee {
	var out []settlement.ModelFee
	for _, f := range plan.ModelFees {
		mf := settlement.ModelFee{Model: f.Model, Digest: f.Digest, Use: f.Use}
		for _, sh := range f.Shares {
			mf.Shares = append(mf.Shares, settlement.Payment{Account: settlement.OwnerAccount(sh.Owner), Amount: sh.Amount, Model: sh.Model})
		}
		out = append(out, mf)
	}
	return out
}

// agreedTerms are the SLA terms the provider agreed to in negotiation. A
// request without them (a job negotiated before awards carried terms) is
// held to the spec's deadline, duration and refund with no stake, so that
// nothing the provider did not agree to is ever slashed.
func agreedTerms(plan *specs.Plan, agreed *sla.Terms) settlement.SLATerms {
	if agreed != nil {
		return *agreed
	}
	t := plan.Spec.Settlement.SLA
	return settlement.SLATerms{Deadline: t.Deadline, MaxDuration: t.MaxDuration, RefundPercent: t.RefundPercent, SlashPercent: t.SlashPercent}
}

// CheckShares reports a spec whose royalties and the platform fee add up to
// more than 100 % of a charge (settlement.CheckShares), so that admission
// refuses it before anything runs rather than settlement after.
func (s SettlementLedger) CheckShares(plan *specs.Plan) error {
	var roy []settlement.Royalty
	for _, ro := range plan.Spec.Settlement.Royalties {
		roy = append(roy, settlement.Royalty{Account: ro.Account, BasisPoints: int64(ro.BasisPoints)})
	}
	if err := settlement.CheckShares(s.FeeBP, roy); err != nil {
		return err
	}
	return settlement.CheckModelFees(modelFees(plan))
}

// RecorderAttestor is the Attestor over provenance.Recorder (and, on a
// provider agent, the StageSigner). Trust, on the control plane, is the
// trust store that a provider's signed stage is checked against.
type RecorderAttestor struct {
	R     *provenance.Recorder
	Trust func() (*provenance.TrustStore, error)
}

// Attest implements Attestor: idempotent by (job, stage); the envelope is
// stored before upload and reused on retry. A stage another party signed
// (in.Signed) is checked and logged instead of signed here.
func (r RecorderAttestor) Attest(ctx context.Context, in workflows.AttestInput) (workflows.AttestOutput, error) {
	if err := r.checkParts(ctx, in); err != nil {
		return workflows.AttestOutput{}, err
	}
	var att *provenance.Attestation
	var err error
	if in.Signed != nil {
		att, err = r.record(ctx, in)
	} else {
		att, err = r.R.Attest(ctx, attestRequest(in))
	}
	if err != nil {
		return workflows.AttestOutput{}, err
	}
	out := workflows.AttestOutput{Digest: att.Digest, LogIndex: -1}
	if att.Entry != nil && att.Entry.LogIndex != nil {
		out.LogIndex = *att.Entry.LogIndex
	}
	return out, nil
}

// checkParts checks the providers' signed parts a split job's placement
// or execution statement lists (job layout 10) against the trust store
// before the operator signs over them: a part its provider did not sign,
// or that is not for this job, stage and place in the chain, is refused
// for good and nothing is logged.
func (r RecorderAttestor) checkParts(ctx context.Context, in workflows.AttestInput) error {
	if in.Stage != provenance.StagePlacement && in.Stage != provenance.StageExecution {
		return nil
	}
	var p struct {
		Parts []predicate.SignedPart `json:"parts"`
	}
	if err := json.Unmarshal(in.Predicate, &p); err != nil || len(p.Parts) == 0 {
		return nil // the recorder refuses a malformed predicate itself
	}
	if r.Trust == nil {
		return permanent(workflows.ErrTypeExecution, errors.New("attest: no trust store to check the providers' parts"))
	}
	ts, err := r.Trust()
	if err != nil {
		return fmt.Errorf("attest: trust store: %w", err)
	}
	for _, sp := range p.Parts {
		if _, err := provenance.CheckPart(ctx, ts, in.JobID, in.Stage, in.Previous, sp); err != nil {
			return permanent(workflows.ErrTypeExecution, err)
		}
	}
	return nil
}

// MarketNegotiator is the Negotiator over market/broker: it turns the
// broker's award into the activity's and its "no offers" or "no agreement"
// into ErrNoOffers, which the negotiate activity reports as a job outcome.
type MarketNegotiator struct {
	Broker broker.Broker
	// Queue names the task queue of a provider run by its own agent
	// (workflows.ExecQueue); nil or "" means the shared execution queue.
	Queue func(provider string) string
}

// Negotiate implements Negotiator; a retry is harmless (see broker.Broker).
func (m MarketNegotiator) Negotiate(ctx context.Context, jobID string, plan *specs.Plan) (Award, error) {
	return m.negotiate(ctx, jobID, plan, nil)
}

func (m MarketNegotiator) negotiate(ctx context.Context, jobID string, plan *specs.Plan, exclude map[string]string) (Award, error) {
	aw, err := m.Broker.NegotiateExcluding(ctx, jobID, plan, exclude)
	if err == nil && !m.agentsOnly(aw) {
		// A part must be signed by its own provider's agent: among
		// providers this worker runs, the job is placed whole.
		aw, err = m.Broker.NegotiateExcluding(ctx, jobID, WholePlan(plan, nil), exclude)
	}
	if errors.Is(err, market.ErrNoOffers) || errors.Is(err, market.ErrNoAgreement) {
		return Award{}, fmt.Errorf("%w: %w", ErrNoOffers, err)
	}
	if err != nil {
		return Award{}, err
	}
	return m.award(aw), nil
}

// WholePlan is plan as a job placed whole on one provider (no
// placement.split), limited to tasks when tasks is not empty (a split
// job's part, renegotiated after its provider was lost): dependencies on
// other tasks are dropped, as those ran elsewhere.
func WholePlan(plan *specs.Plan, tasks []string) *specs.Plan {
	out := *plan
	if plan.Spec != nil {
		sp := *plan.Spec
		sp.Placement.Split = false
		out.Spec = &sp
	}
	if len(tasks) == 0 {
		return &out
	}
	out.Tasks = nil
	for _, t := range plan.Tasks {
		if !slices.Contains(tasks, t.Name) {
			continue
		}
		t.DependsOn = slices.DeleteFunc(slices.Clone(t.DependsOn), func(d string) bool { return !slices.Contains(tasks, d) })
		out.Tasks = append(out.Tasks, t)
	}
	return &out
}

// award turns the broker's award into the activity's.
func (m MarketNegotiator) award(aw broker.Award) Award {
	out := Award{Provider: aw.Provider, Pool: aw.Provider, Runtime: aw.Runtime, Price: aw.Price, Currency: aw.Currency, Record: aw.Result, SLA: aw.SLA, Tasks: aw.Tasks}
	if m.Queue != nil {
		out.Queue = m.Queue(aw.Provider)
	}
	if aw.Result != nil {
		for _, a := range aw.Result.Awards {
			if a.Provider == aw.Provider && a.Explanation != "" {
				out.Explanation = a.Explanation
				break
			}
		}
	}
	for _, d := range aw.Devices {
		out.Devices = append(out.Devices, TaskDevices{Task: d.Task, Node: d.Node, GPUDevices: d.GPUDevices})
	}
	for _, p := range aw.Parts {
		out.Parts = append(out.Parts, m.award(p))
	}
	if len(out.Parts) > 0 {
		out.Price = aw.Price
	}
	return out
}

// agentsOnly reports whether every part of a split award (none, for a
// whole one) runs on a provider agent: only an agent signs its own part.
func (m MarketNegotiator) agentsOnly(aw broker.Award) bool {
	for _, p := range aw.Parts {
		if m.Queue == nil || m.Queue(p.Provider) == "" {
			return false
		}
	}
	return true
}

// Snapshot implements Bargainer: the broker's sellers for an agent-played
// bargain.
func (m MarketNegotiator) Snapshot(ctx context.Context, jobID string, plan *specs.Plan) (*market.Sellers, error) {
	s, err := m.Broker.Snapshot(ctx, jobID, plan)
	if errors.Is(err, market.ErrNoOffers) {
		return nil, fmt.Errorf("%w: %w", ErrNoOffers, err)
	}
	return s, err
}

// Agreed implements Bargainer: the award of a bargain that ended in
// agreement, with the runtime and devices the broker gives the winner.
func (m MarketNegotiator) Agreed(ctx context.Context, plan *specs.Plan, res *market.Result) (Award, error) {
	aw, err := m.Broker.Awarded(ctx, plan, res)
	if err != nil {
		return Award{}, err
	}
	return m.award(aw), nil
}

// maxSignature bounds a spec's detached signature (a DSSE envelope over
// the composed bundle's digests).
const maxSignature = 1 << 20

// readSigned reads the submitted spec document and its detached signature
// (path + ".sig", absent when unsigned). The document must still be the one
// submitted: a spec edited after submission is refused, permanently.
func readSigned(path, digest string) (doc, sig []byte, err error) {
	if path == "" {
		return nil, nil, nil
	}
	doc, err = bounded.ReadFile(path, specs.MaxFileSize)
	if err != nil {
		return nil, nil, fmt.Errorf("activities: read spec: %w", err)
	}
	if digest != "" && provenance.Digest(doc) != digest {
		return nil, nil, permanent(workflows.ErrTypeInvalidSpec,
			fmt.Errorf("activities: %s changed since it was compiled (digest %s, want %s)", path, provenance.Digest(doc), digest))
	}
	sig, err = bounded.ReadFile(path+provenance.SpecSignatureExt, maxSignature)
	if errors.Is(err, os.ErrNotExist) {
		return doc, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("activities: read spec signature: %w", err)
	}
	return doc, sig, nil
}

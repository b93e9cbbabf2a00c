package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// Compile loads, composes, validates and compiles the spec at in.SpecPath.
// It has no side effects. An invalid spec, or one whose bytes changed since
// submission, is a permanent ErrTypeInvalidSpec failure.
func (a *Activities) Compile(ctx context.Context, in workflows.CompileInput) (workflows.CompileOutput, error) {
	plan, _, err := a.Compiler.Compile(ctx, in.SpecPath)
	if err != nil {
		if errors.Is(err, specs.ErrInvalid) {
			return workflows.CompileOutput{}, permanent(workflows.ErrTypeInvalidSpec, err)
		}
		return workflows.CompileOutput{}, fmt.Errorf("compile %s: %w", in.SpecPath, err)
	}
	if in.DocumentDigest != "" && plan.DocumentDigest != in.DocumentDigest {
		return workflows.CompileOutput{}, permanent(workflows.ErrTypeInvalidSpec, fmt.Errorf(
			"spec %s changed since submission: digest %s, submitted %s", in.SpecPath, plan.DocumentDigest, in.DocumentDigest))
	}
	if err := a.resolveModels(ctx, plan); err != nil {
		return workflows.CompileOutput{}, err
	}
	raw, err := json.Marshal(plan)
	if err != nil {
		return workflows.CompileOutput{}, permanent(workflows.ErrTypeInvalidSpec, fmt.Errorf("encode plan: %w", err))
	}
	out := workflows.CompileOutput{Plan: Summarize(plan)}
	if !in.ByRef {
		out.PlanJSON = raw
	} else if a.Artifacts == nil {
		return workflows.CompileOutput{}, permanent(workflows.ErrTypeInvalidSpec, errors.New("compile: no artifact store for the plan"))
	} else if out.PlanRef, err = a.Artifacts.Put(ctx, raw); err != nil {
		return workflows.CompileOutput{}, fmt.Errorf("store plan: %w", err)
	}
	a.logger(ctx, in.JobID).Info("compiled", "spec", plan.Name, "tasks", len(plan.Tasks), "plan", out.PlanRef)
	return out, nil
}

// Summarize extracts what the workflow schedules from a plan.
func Summarize(p *specs.Plan) workflows.PlanSummary {
	s := workflows.PlanSummary{
		Name: p.Name, Version: p.Version, Tenant: p.Tenant,
		DocumentDigest: p.DocumentDigest, ContractDigest: p.ContractDigest,
		MaxCost: p.MaxCost, Currency: p.Currency,
	}
	if p.Spec != nil {
		s.ApprovalRequired = p.Spec.Approval.Required
		s.ApprovalAbove = p.Spec.Approval.AbovePrice
		s.Approvers = p.Spec.Approval.Approvers
		s.Tests = len(p.Spec.Verification.Tests)
		s.SpotCheck = p.Spec.Verification.SpotCheck
		if p.Spec.Negotiation.AgentBuyer() {
			s.AgentBuyer, s.RoundTimeout = true, p.Spec.Negotiation.RoundTimeout
		}
		if p.Spec.Negotiation.Batch() {
			s.Batch, s.BatchWait = true, p.Spec.Negotiation.BatchWait
		}
		s.HasTests = s.Tests > 0
		for _, t := range p.Spec.Tasks {
			s.Publishes += len(t.Publish)
		}
		if s.Currency == "" {
			s.Currency = p.Spec.Budget.Currency
		}
	}
	for _, f := range p.ModelFees {
		s.Models = append(s.Models, predicate.ModelUse{Task: f.Task, Model: f.Model, Digest: f.Digest, Use: f.Use, Price: f.Price, Currency: f.Currency})
	}
	for _, t := range p.Tasks {
		// A task also waits for every task whose outputs it consumes.
		deps := append([]string(nil), t.DependsOn...)
		for _, in := range t.Inputs {
			if up, _, err := specs.ParseFrom(in.From); err == nil && !slices.Contains(deps, up) {
				deps = append(deps, up)
			}
		}
		s.Tasks = append(s.Tasks, workflows.PlanTask{
			Name: t.Name, DependsOn: deps, Attempts: t.Retry.Attempts,
			Backoff: t.Retry.Backoff, MaxBackoff: t.Retry.MaxBackoff, MaxDuration: t.Resources.MaxDuration,
		})
	}
	return s
}

// Admit runs admission policy. The admitter reserves quota keyed by job ID,
// so a retry reserves nothing more. A rejection is a result (Allowed false),
// recorded in the admission attestation.
func (a *Activities) Admit(ctx context.Context, in workflows.AdmitInput) (workflows.AdmitOutput, error) {
	plan, err := a.plan(ctx, in.PlanInput)
	if err != nil {
		return workflows.AdmitOutput{}, err
	}
	doc, sig, err := readSigned(in.SpecPath, plan.DocumentDigest)
	if err != nil {
		return workflows.AdmitOutput{}, err
	}
	// A job whose royalties and fee exceed 100 %, or whose budget the tenant
	// cannot escrow, fails here: before the admitter reserves quota, before
	// anything is negotiated, never at settle.
	if a.Ledger != nil {
		if err := a.Ledger.CheckShares(plan); err != nil {
			return workflows.AdmitOutput{}, permanent(workflows.ErrTypeInvalidSpec, err)
		}
		if err := a.Ledger.Cover(ctx, plan.Tenant, plan.Spec.Budget.Currency, plan.Spec.Budget.MaxPrice); err != nil {
			if errors.Is(err, ErrInsufficient) {
				return workflows.AdmitOutput{}, permanent(workflows.ErrTypeInsufficient, err)
			}
			return workflows.AdmitOutput{}, fmt.Errorf("admit %s: funds: %w", in.JobID, err)
		}
	}
	allowed, reason, rec, err := a.Admitter.Admit(ctx, in.JobID, plan, doc, sig)
	if err != nil {
		return workflows.AdmitOutput{}, fmt.Errorf("admit %s: %w", in.JobID, err)
	}
	a.logger(ctx, in.JobID).Info("admission", "allowed", allowed, "reason", reason)
	return workflows.AdmitOutput{Allowed: allowed, Reason: reason, Decision: record(rec)}, nil
}

// Negotiate runs the market. The negotiation is a pure function of the plan
// and the providers' offers at the time; a retry may re-run it, and only the
// award the workflow records counts.
func (a *Activities) Negotiate(ctx context.Context, in workflows.NegotiateInput) (workflows.NegotiateOutput, error) {
	plan, err := a.plan(ctx, in.PlanInput)
	if err != nil {
		return workflows.NegotiateOutput{}, err
	}
	aw, err := a.Negotiator.Negotiate(ctx, in.JobID, plan)
	if err != nil {
		if errors.Is(err, ErrNoOffers) {
			return workflows.NegotiateOutput{}, permanent(workflows.ErrTypeNoOffers, err)
		}
		return workflows.NegotiateOutput{}, fmt.Errorf("negotiate %s: %w", in.JobID, err)
	}
	a.logger(ctx, in.JobID).Info("awarded", "provider", aw.Provider, "price", aw.Price, "currency", aw.Currency)
	return negotiated(aw), nil
}

// negotiated is an award as the workflow's negotiation outcome.
func negotiated(aw Award) workflows.NegotiateOutput {
	out := workflows.NegotiateOutput{
		Provider: aw.Provider, Pool: aw.Pool, Runtime: aw.Runtime, Price: aw.Price, Currency: aw.Currency,
		Record: record(aw.Record), Devices: aw.Devices, SLA: aw.SLA, Queue: aw.Queue, Explanation: aw.Explanation,
	}
	for _, p := range aw.Parts {
		out.Parts = append(out.Parts, workflows.AwardPart{
			Provider: p.Provider, Pool: p.Pool, Runtime: p.Runtime, Queue: p.Queue, Tasks: p.Tasks, Price: p.Price,
			Devices: p.Devices, SLA: p.SLA, Explanation: p.Explanation,
		})
	}
	return out
}

// Place holds the job's escrow (price and model fees plus margin, capped by
// the budget).
// Idempotent through the ledger's key (job, "hold", attempt).
func (a *Activities) Place(ctx context.Context, in workflows.PlaceInput) (workflows.PlaceOutput, error) {
	plan, err := a.plan(ctx, in.PlanInput)
	if err != nil {
		return workflows.PlaceOutput{}, err
	}
	if in.Award.Queue == "" {
		// Tasks run here: the runtime must be too. A provider agent's
		// runtime is on its own machine, behind its queue.
		if _, err := a.runtime(ctx, in.Award.Runtime); err != nil {
			return workflows.PlaceOutput{}, err
		}
	}
	if err := a.grantAgent(ctx, in, plan); err != nil {
		return workflows.PlaceOutput{}, err
	}
	held, holdID, rec, err := a.Ledger.Hold(ctx, HoldRequest{
		JobID: in.JobID, Tenant: in.Tenant, Provider: in.Award.Provider, Currency: in.Award.Currency,
		// The registry models the tasks use are paid from the same escrow.
		Price: in.Award.Price + plan.ModelFeeTotal(), Cap: plan.Spec.Budget.MaxPrice,
	})
	if err != nil {
		if errors.Is(err, ErrInsufficient) {
			return workflows.PlaceOutput{}, permanent(workflows.ErrTypeInsufficient, err)
		}
		return workflows.PlaceOutput{}, fmt.Errorf("place %s: %w", in.JobID, err)
	}
	a.logger(ctx, in.JobID).Info("placed", "held", held, "provider", in.Award.Provider)
	out := workflows.PlacementOn(in.JobID, in.Award, record(rec))
	out.HoldID, out.Held = holdID, held
	return out, nil
}

// Release refunds the job's escrow and releases its quota reservation: the
// compensation for Admit and Place. Idempotent: releasing a released or
// never-held job posts nothing, and quota release sets rather than adds.
func (a *Activities) Release(ctx context.Context, in workflows.ReleaseInput) (workflows.ReleaseOutput, error) {
	refunded, err := a.Ledger.Release(ctx, in.JobID)
	if err != nil {
		return workflows.ReleaseOutput{}, fmt.Errorf("release %s: %w", in.JobID, err)
	}
	if a.Quota != nil {
		if err := a.Quota.Release(ctx, in.JobID); err != nil {
			return workflows.ReleaseOutput{}, fmt.Errorf("release quota %s: %w", in.JobID, err)
		}
	}
	a.logger(ctx, in.JobID).Info("released escrow", "refunded", refunded, "reason", in.Reason)
	return workflows.ReleaseOutput{Refunded: refunded}, nil
}

// Settle pays the provider from escrow per the price and metered usage, with
// fees, royalties and the SLA, and refunds the rest. Idempotent through the
// ledger's key (job, "settle", attempt): a replay returns the original.
func (a *Activities) Settle(ctx context.Context, in workflows.SettleInput) (workflows.SettleOutput, error) {
	plan, err := a.plan(ctx, in.PlanInput)
	if err != nil {
		return workflows.SettleOutput{}, err
	}
	u := totalUsage(in)
	req := SettleRequest{
		JobID: in.JobID, Provider: in.Award.Provider, Plan: plan, Price: in.Award.Price, Usage: u, Succeeded: in.Verified,
		SLA: in.Award.SLA, Outcome: Outcome{Placed: in.Placed, Started: in.Started, Finished: in.Finished},
	}
	if req.Parts, err = settleParts(in); err != nil {
		return workflows.SettleOutput{}, permanent(workflows.ErrTypeExecution, fmt.Errorf("settle %s: %w", in.JobID, err))
	}
	paid, refunded, rec, err := a.Ledger.Settle(ctx, req)
	if err != nil {
		return workflows.SettleOutput{}, fmt.Errorf("settle %s: %w", in.JobID, err)
	}
	if a.Quota != nil {
		if err := a.Quota.Consume(ctx, in.JobID, paid, u.GPUSeconds/3600); err != nil {
			return workflows.SettleOutput{}, fmt.Errorf("consume quota %s: %w", in.JobID, err)
		}
	}
	a.logger(ctx, in.JobID).Info("settled", "paid", paid, "refunded", refunded)
	return workflows.SettleOutput{Paid: paid, Refunded: refunded, Currency: in.Award.Currency, Record: record(rec)}, nil
}

// settleParts pairs a split job's parts (the award's) with their metered
// work (the workflow's); none for a job on one provider.
func settleParts(in workflows.SettleInput) ([]SettlePart, error) {
	if len(in.Award.Parts) != len(in.Parts) {
		return nil, fmt.Errorf("award in %d parts, %d measured", len(in.Award.Parts), len(in.Parts))
	}
	var out []SettlePart
	for i, p := range in.Award.Parts {
		w := in.Parts[i]
		out = append(out, SettlePart{Provider: p.Provider, Price: p.Price, Usage: w.Usage, SLA: p.SLA,
			Outcome: Outcome{Placed: in.Placed, Started: w.Started, Finished: w.Finished}})
	}
	return out, nil
}

// totalUsage is the job's metered usage: the workflow's total (layout 1), or
// the sum over its tasks (layout 0).
func totalUsage(in workflows.SettleInput) workflows.Usage {
	if in.Usage != nil {
		return *in.Usage
	}
	var u workflows.Usage
	for _, t := range in.Tasks {
		u = u.Add(t.Usage)
	}
	return u
}

// SealResults stores a set of task results in the artifact store.
// Idempotent: the digest is a function of the results alone.
func (a *Activities) SealResults(ctx context.Context, in workflows.SealResultsInput) (workflows.SealResultsOutput, error) {
	if a.Artifacts == nil {
		return workflows.SealResultsOutput{}, permanent(workflows.ErrTypeExecution, errors.New("seal results: no artifact store"))
	}
	b, err := json.Marshal(in.Tasks)
	if err != nil {
		return workflows.SealResultsOutput{}, permanent(workflows.ErrTypeExecution, fmt.Errorf("seal results: %w", err))
	}
	ref, err := a.Artifacts.Put(ctx, b)
	if err != nil {
		return workflows.SealResultsOutput{}, fmt.Errorf("seal results: %w", err)
	}
	if err := a.grantSealed(ctx, in.JobID, ref); err != nil {
		return workflows.SealResultsOutput{}, err
	}
	return workflows.SealResultsOutput{Ref: ref}, nil
}

// Attest signs and logs one stage statement. Idempotent by (job, stage)
// through the attestor. Sealed results in the input add their outputs as
// subjects and, for the execution stage, the tasks to the predicate.
func (a *Activities) Attest(ctx context.Context, in workflows.AttestInput) (workflows.AttestOutput, error) {
	if len(in.Results) > 0 {
		var err error
		if in, err = a.withResults(ctx, in); err != nil {
			return workflows.AttestOutput{}, err
		}
	}
	out, err := a.Attestor.Attest(ctx, in)
	if err != nil {
		return workflows.AttestOutput{}, fmt.Errorf("attest %s %s: %w", in.JobID, in.Stage, err)
	}
	return out, nil
}

func (a *Activities) withResults(ctx context.Context, in workflows.AttestInput) (workflows.AttestInput, error) {
	tasks, err := a.results(ctx, in.Results)
	if err != nil {
		return in, err
	}
	names := make([]string, 0, len(tasks))
	for name := range tasks {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, o := range tasks[name].Outputs {
			in.Subjects = append(in.Subjects, workflows.Subject{Name: name + ":" + o.Path, Digest: "sha256:" + o.SHA256})
		}
	}
	if in.Stage != predicate.StageExecution {
		return in, nil
	}
	var p predicate.Execution
	if err := json.Unmarshal(in.Predicate, &p); err != nil {
		return in, permanent(workflows.ErrTypeExecution, fmt.Errorf("execution predicate: %w", err))
	}
	p.Tasks = tasks
	b, err := json.Marshal(p)
	if err != nil {
		return in, permanent(workflows.ErrTypeExecution, fmt.Errorf("execution predicate: %w", err))
	}
	in.Predicate, in.Results = b, nil
	return in, nil
}

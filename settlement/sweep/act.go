package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/settlement"
)

// WorkflowAttempt is the attempt in the idempotency keys the job workflow's
// ledger activities use (activities.SettlementLedger: Key(job, "settle", 1),
// Key(job, "release", 1)). A sweep posts under the same keys, so that a
// sweep and a late workflow claim one key and one of them posts nothing.
const WorkflowAttempt = 1

// decide picks a sweep's ledger request from the job's attested work;
// basis says why.
func (s *Sweeper) decide(ctx context.Context, h settlement.HeldEscrow, st State) (settlement.Sweep, string, error) {
	sw := settlement.Sweep{Job: h.Job, Reason: Reason(st), Escrow: h}
	release := func(basis string) (settlement.Sweep, string, error) {
		sw.Kind, sw.Release = settlement.SweepRelease, &settlement.ReleaseRequest{Job: h.Job, Attempt: WorkflowAttempt}
		return sw, basis, nil
	}
	w, err := s.Evidence.Work(ctx, h.Job)
	if err != nil {
		return sw, "", err
	}
	for _, r := range w.Rejected {
		s.log().Warn("sweep: ignoring an attestation that does not verify", "job_id", h.Job, "problem", r)
	}
	switch {
	case !w.Executed:
		return release("no attested execution")
	case w.Verified != nil && !*w.Verified:
		return release("acceptance tests attested failed")
	case w.Split():
		// The escrow is held under (reassigned to) the lead part's
		// final provider.
		if lead := w.Parts[0].Provider; lead != h.Provider || w.Currency != h.Currency {
			return release(fmt.Sprintf("attested lead part (%s, %s) is not the hold's (%s, %s)", lead, w.Currency, h.Provider, h.Currency))
		}
		req, err := s.splitRequest(h.Job, w)
		if err != nil {
			return release(err.Error())
		}
		sw.Kind, sw.Settle = settlement.SweepSettle, &req
		return sw, fmt.Sprintf("execution of %d parts attested: each part's metered work paid", len(w.Parts)), nil
	case w.Provider != h.Provider || w.Currency != h.Currency:
		return release(fmt.Sprintf("attested award (%s, %s) is not the hold's (%s, %s)", w.Provider, w.Currency, h.Provider, h.Currency))
	}
	u, err := settlement.UsageFromSeconds(w.Usage.WallSeconds, w.Usage.CPUSeconds, w.Usage.MemGBSeconds, w.Usage.GPUSeconds)
	if err != nil {
		return release(fmt.Sprintf("attested usage unusable: %v", err))
	}
	req := settlement.SettleRequest{
		Job: h.Job, Attempt: WorkflowAttempt, Succeeded: w.Verified != nil, Price: w.Price, Usage: u, FeeBP: s.FeeBP,
		Outcome: settlement.Outcome{Placed: placedAt(w.Placed, w.Started), Finished: w.Finished},
	}
	if !w.Started.IsZero() && !w.Finished.IsZero() {
		req.Outcome.Duration = w.Finished.Sub(w.Started)
	}
	if w.SLA != nil {
		req.SLA = *w.SLA
	}
	if s.Rates != nil {
		req.Rates = s.Rates(h.Provider)
	}
	if err := req.Validate(); err != nil {
		return release(fmt.Sprintf("attested terms unusable: %v", err))
	}
	sw.Kind, sw.Settle = settlement.SweepSettle, &req
	return sw, "execution attested: metered work paid", nil
}

// splitRequest is a split job's settle request: each part paid its price
// plus its own metered usage at its provider's rates, under the SLA its
// provider agreed to, judged on its own tasks' times. An error says why
// the attested terms cannot be settled on (the job is then released).
func (s *Sweeper) splitRequest(job string, w Work) (settlement.SettleRequest, error) {
	req := settlement.SettleRequest{Job: job, Attempt: WorkflowAttempt, Succeeded: w.Verified != nil, FeeBP: s.FeeBP}
	parts, err := byProvider(w.Parts)
	if err != nil {
		return req, fmt.Errorf("attested parts unusable: %v", err)
	}
	for _, p := range parts {
		sp, err := s.settlePart(job, p, w.Placed)
		if err != nil {
			return req, fmt.Errorf("attested part of %s unusable: %v", p.Provider, err)
		}
		req.Parts = append(req.Parts, sp)
	}
	if err := req.Validate(); err != nil {
		return req, fmt.Errorf("attested terms unusable: %v", err)
	}
	return req, nil
}

// byProvider merges the parts that failovers left on one provider (the
// ledger settles one part per provider, the audit expects one per final
// provider): their prices and usage add up, their times span both. Order
// is kept, so the lead's stays first.
func byProvider(parts []PartWork) ([]PartWork, error) {
	var out []PartWork
	at := map[string]int{}
	for _, p := range parts {
		i, ok := at[p.Provider]
		if !ok {
			at[p.Provider] = len(out)
			out = append(out, p)
			continue
		}
		m := &out[i]
		if m.Price+p.Price < m.Price {
			return nil, fmt.Errorf("prices of %s's parts out of range", p.Provider)
		}
		m.Price += p.Price
		m.Tasks = append(slices.Clip(m.Tasks), p.Tasks...)
		m.Usage = m.Usage.Add(p.Usage)
		if !p.Started.IsZero() && (m.Started.IsZero() || p.Started.Before(m.Started)) {
			m.Started = p.Started
		}
		if p.Finished.After(m.Finished) {
			m.Finished = p.Finished
		}
	}
	return out, nil
}

// settlePart is one part's share of the settle request, checked as a
// whole job's request would be.
func (s *Sweeper) settlePart(job string, p PartWork, placed time.Time) (settlement.SettlePart, error) {
	u, err := settlement.UsageFromSeconds(p.Usage.WallSeconds, p.Usage.CPUSeconds, p.Usage.MemGBSeconds, p.Usage.GPUSeconds)
	if err != nil {
		return settlement.SettlePart{}, err
	}
	sp := settlement.SettlePart{Provider: p.Provider, Price: p.Price, Usage: u,
		Outcome: settlement.Outcome{Placed: placedAt(placed, p.Started), Finished: p.Finished}}
	if !p.Started.IsZero() && !p.Finished.IsZero() {
		sp.Outcome.Duration = p.Finished.Sub(p.Started)
	}
	if p.SLA != nil {
		sp.SLA = *p.SLA
	}
	if s.Rates != nil {
		sp.Rates = s.Rates(p.Provider)
	}
	whole := settlement.SettleRequest{Job: job, Price: sp.Price, Usage: sp.Usage, Rates: sp.Rates, SLA: sp.SLA, Outcome: sp.Outcome, FeeBP: s.FeeBP}
	return sp, whole.Validate()
}

// placedAt is when an SLA deadline's clock starts: the attested placement
// time, else (the workflow's rule when none is recorded) the first task's
// start.
func placedAt(placed, started time.Time) time.Time {
	if placed.IsZero() {
		return started
	}
	return placed
}

// errLost: the workflow settled or released the escrow before the sweep.
var errLost = errors.New("sweep: the workflow settled or released the escrow first")

// finish posts a journalled sweep (a replay returns the original), moves
// the quota, attests and marks the sweep attested; a lost race is dropped.
func (s *Sweeper) finish(ctx context.Context, sw settlement.Sweep, a Action) Action {
	log := s.log().With("job_id", sw.Job, "action", sw.Kind, "reason", sw.Reason)
	res, err := s.post(ctx, sw)
	if errors.Is(err, errLost) {
		a.Action = ActionLost
		if err := s.Ledger.DropSweep(ctx, sw.Job); err != nil {
			a.Error = err.Error()
		}
		log.Info("sweep: the workflow moved the escrow first; nothing swept")
		return a
	}
	if err != nil {
		a.Error = err.Error()
		log.Warn("sweep: post failed", "err", err)
		return a
	}
	a.Paid, a.Refunded = res.Payable, res.Refund
	if err := s.quota(ctx, sw, res); err != nil {
		a.Error = err.Error()
		log.Warn("sweep: quota failed", "err", err)
		return a
	}
	att, err := s.attest(ctx, sw, res)
	if err == nil {
		err = s.Ledger.MarkSweepAttested(ctx, sw.Job, att.Digest)
	}
	if err != nil {
		// Posted but not attested: the sweep stays pending and the next
		// pass replays and attests it.
		a.Error = err.Error()
		log.Warn("sweep: posted, attestation pending", "err", err)
		return a
	}
	a.Attestation = att.Digest
	log.Info("swept escrow", "paid", res.Payable, "refunded", res.Refund, "currency", res.Currency, "attestation", att.Digest)
	return a
}

// post runs the sweep's ledger request. A release is returned as a
// settlement that paid nothing, so that one record shape serves both.
func (s *Sweeper) post(ctx context.Context, sw settlement.Sweep) (*settlement.Settlement, error) {
	if sw.Settle != nil {
		st, err := s.Ledger.Settle(ctx, *sw.Settle)
		if errors.Is(err, settlement.ErrJobState) || errors.Is(err, settlement.ErrKeyReused) {
			return nil, fmt.Errorf("%w: %v", errLost, err)
		}
		if err != nil {
			return nil, fmt.Errorf("sweep: settle %s: %w", sw.Job, err)
		}
		return st, nil
	}
	tx, err := s.Ledger.Release(ctx, *sw.Release)
	if errors.Is(err, settlement.ErrJobState) || errors.Is(err, settlement.ErrKeyReused) {
		return nil, fmt.Errorf("%w: %v", errLost, err)
	}
	if err != nil {
		return nil, fmt.Errorf("sweep: release %s: %w", sw.Job, err)
	}
	if tx.ID == 0 { // nothing held: released before, by the workflow
		return nil, errLost
	}
	var refunded int64
	for _, p := range tx.Postings {
		if p.Account == settlement.TenantAccount(sw.Escrow.Tenant) && p.Amount > 0 {
			refunded += p.Amount
		}
	}
	e := sw.Escrow
	return &settlement.Settlement{Job: e.Job, Tenant: e.Tenant, Provider: e.Provider, Currency: e.Currency,
		Held: refunded, Refund: refunded, Transaction: *tx}, nil
}

// quota replaces the job's reservation by what it spent, or releases it.
func (s *Sweeper) quota(ctx context.Context, sw settlement.Sweep, res *settlement.Settlement) error {
	if s.Quota == nil {
		return nil
	}
	if sw.Settle == nil {
		if err := s.Quota.Release(ctx, sw.Job); err != nil {
			return fmt.Errorf("sweep: release quota of %s: %w", sw.Job, err)
		}
		return nil
	}
	gpu := sw.Settle.Usage.GPUMillis
	for _, p := range sw.Settle.Parts {
		gpu += p.Usage.GPUMillis
	}
	gpuHours := float64(gpu) / 3_600_000
	if err := s.Quota.Consume(ctx, sw.Job, res.Payable, gpuHours); err != nil {
		return fmt.Errorf("sweep: consume quota of %s: %w", sw.Job, err)
	}
	return nil
}

// attest signs and logs the sweep as the job's settlement stage, chained to
// the latest attested stage (a swept job's chain has a gap where the
// stages its workflow never reached would be; the audit names them).
func (s *Sweeper) attest(ctx context.Context, sw settlement.Sweep, res *settlement.Settlement) (*provenance.Attestation, error) {
	w, err := s.Evidence.Work(ctx, sw.Job)
	if err != nil {
		return nil, err
	}
	if w.Last == "" {
		return nil, fmt.Errorf("sweep: %s has no attested stage to chain the settlement to", sw.Job)
	}
	rec, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("sweep: encode settlement of %s: %w", sw.Job, err)
	}
	pred := predicate.Settlement{
		Header: predicate.Header{JobID: sw.Job}, Paid: res.Payable, Refunded: res.Refund, Currency: res.Currency,
		Record: rec, Reason: sw.Reason,
	}
	if sw.Settle != nil && len(sw.Settle.Parts) == 0 {
		// A split job's usage and rates are per part, in the record.
		u, r := sw.Settle.Usage, sw.Settle.Rates
		pred.Usage, pred.Rates = &u, &r
	}
	b, err := json.Marshal(pred)
	if err != nil {
		return nil, fmt.Errorf("sweep: encode settlement predicate of %s: %w", sw.Job, err)
	}
	att, err := s.Attestor.Attest(ctx, provenance.AttestRequest{
		JobID: sw.Job, Stage: provenance.StageSettlement, Previous: w.Last, Predicate: b,
	})
	if err != nil {
		return nil, fmt.Errorf("sweep: attest %s: %w", sw.Job, err)
	}
	return att, nil
}

// Package billing settles deployments' billing periods on the settlement
// ledger (see services.Biller): each period is its own ledger job, held
// before it starts and settled when it ends.
package billing

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/accordmesh/accord/services"
	"github.com/accordmesh/accord/settlement"
)

// Ledger is a services.Biller on a settlement ledger.
type Ledger struct {
	L *settlement.Ledger
	// Provider is the ledger name of the provider the replicas run for.
	Provider string
	// FeeBP is the platform fee in basis points of each period's charge.
	FeeBP int64
}

var _ services.Biller = (*Ledger)(nil)

// HoldPeriod moves the period's escrow from the tenant.
func (b *Ledger) HoldPeriod(ctx context.Context, r services.HoldPeriodRequest) (services.HoldPeriodResult, error) {
	if b.L == nil {
		return services.HoldPeriodResult{}, fmt.Errorf("%w: no ledger for billing", services.ErrInvalid)
	}
	job := services.PeriodJob(r.Deployment, r.Period)
	cap := settlement.HoldAmount(r.Price, r.MarginBP, settlement.MaxAmount)
	e, err := b.L.Hold(ctx, settlement.HoldRequest{Job: job, Tenant: r.Tenant, Provider: b.Provider,
		Currency: r.Currency, Price: r.Price, MarginBP: r.MarginBP, Cap: cap, Attempt: 1})
	if errors.Is(err, settlement.ErrInsufficientFunds) {
		return services.HoldPeriodResult{Job: job, Insufficient: true}, nil
	}
	if err != nil {
		return services.HoldPeriodResult{}, fmt.Errorf("services: hold period %d of %s: %w", r.Period, r.Deployment, err)
	}
	return services.HoldPeriodResult{Job: job, Held: e.Amount, Transaction: e.Transaction.ID}, nil
}

// SettlePeriod pays the period's metered replica time out of its escrow.
// The ledger's SLA terms are deadline-shaped: a breached window is handed
// to it as an execution that overran its window (Outcome.Duration one
// nanosecond past Terms.MaxDuration), which applies exactly the agreed
// refund and slash; an unbreached one as one that did not.
func (b *Ledger) SettlePeriod(ctx context.Context, r services.SettlePeriodRequest) (services.PeriodSettlement, error) {
	if b.L == nil {
		return services.PeriodSettlement{}, fmt.Errorf("%w: no ledger for billing", services.ErrInvalid)
	}
	if r.ReplicaMillis < 0 || r.ReplicaMillis > math.MaxInt64/2 {
		return services.PeriodSettlement{}, fmt.Errorf("%w: replica time %d ms", services.ErrInvalid, r.ReplicaMillis)
	}
	fees, err := modelFees(r.Inferences)
	if err != nil {
		return services.PeriodSettlement{}, fmt.Errorf("services: settle period %d of %s: %w", r.Period, r.Deployment, err)
	}
	job := services.PeriodJob(r.Deployment, r.Period)
	terms := settlement.SLATerms{MaxDuration: time.Hour, RefundPercent: r.RefundPercent, SlashPercent: r.SlashPercent, Stake: r.Stake}
	out := settlement.Outcome{Duration: terms.MaxDuration}
	if r.Breached {
		out.Duration++
	}
	s, err := b.L.Settle(ctx, settlement.SettleRequest{
		Job: job, Attempt: 1, Succeeded: true, PayOnSuccess: false,
		Usage: settlement.Usage{WallMillis: r.ReplicaMillis}, Rates: settlement.Rates{WallPerHour: r.ReplicaHour},
		FeeBP: b.FeeBP, SLA: terms, Outcome: out, ModelFees: fees,
	})
	if err != nil {
		return services.PeriodSettlement{}, fmt.Errorf("services: settle period %d of %s: %w", r.Period, r.Deployment, err)
	}
	return services.PeriodSettlement{Job: job, Held: s.Held, Charge: s.Charge, SLARefund: s.SLARefund, ProviderPay: s.ProviderPay,
		PlatformFee: s.PlatformFee, Refund: s.Refund, Slashed: s.Slashed, Breached: s.SLA.Breached,
		Transaction: s.Transaction.ID, Key: settlement.Key(job, "settle", 1),
		ModelFees: paidFees(r.Inferences, s.ModelFees), ModelFeeTotal: s.ModelFeeTotal, Capped: s.Capped}, nil
}

// modelFees turns a period's inference fees into the ledger's model fees:
// one per release, each owner paid requests × its share of one inference
// (so the shares sum to requests × price exactly).
func modelFees(in []services.InferenceFee) ([]settlement.ModelFee, error) {
	if len(in) > services.MaxInferenceFees {
		return nil, fmt.Errorf("%w: %d inference fees, at most %d", services.ErrInvalid, len(in), services.MaxInferenceFees)
	}
	var out []settlement.ModelFee
	for _, f := range in {
		if f.Requests < 0 || f.Price < 0 {
			return nil, fmt.Errorf("%w: %s: %d requests at %d", services.ErrInvalid, f.Model, f.Requests, f.Price)
		}
		var unit int64
		for _, s := range f.Shares {
			unit += s.Amount
		}
		if unit != f.Price {
			return nil, fmt.Errorf("%w: %s: shares of one inference add up to %d, the price is %d", services.ErrInvalid, f.Model, unit, f.Price)
		}
		if _, ok := f.Total(); !ok {
			return nil, fmt.Errorf("%w: %s: %d requests at %d exceed the ledger's largest amount", services.ErrInvalid, f.Model, f.Requests, f.Price)
		}
		shares, _ := f.Scaled()
		mf := settlement.ModelFee{Model: f.Model, Digest: f.Digest, Use: settlement.UseInference}
		for _, s := range shares {
			mf.Shares = append(mf.Shares, settlement.Payment{Account: settlement.OwnerAccount(s.Owner), Model: s.Model, Amount: s.Amount})
		}
		out = append(out, mf)
	}
	return out, settlement.CheckModelFees(out)
}

// paidFees labels the ledger's paid model fees with their releases (the
// ledger pays them in the order given).
func paidFees(in []services.InferenceFee, paid []settlement.ModelFee) []services.PaidModelFee {
	var out []services.PaidModelFee
	for i, f := range paid {
		p := services.PaidModelFee{Model: f.Model, Digest: f.Digest}
		if i < len(in) {
			p.Release = in[i].Release
		}
		for _, s := range f.Shares {
			owner := strings.TrimPrefix(s.Account, settlement.KindOwner+":")
			p.Shares = append(p.Shares, services.ModelShare{Owner: owner, Model: s.Model, Amount: s.Amount})
		}
		out = append(out, p)
	}
	return out
}

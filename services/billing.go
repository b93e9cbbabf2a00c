package services

import (
	"context"
	"fmt"
	"math/bits"
	"strconv"
	"time"
)

// A deployment is paid per billing period. Each period n is its own ledger
// job, PeriodJob(deployment, n): before the period starts its escrow is
// held (HoldPeriod, idempotent by settlement.Key(PeriodJob, "hold", 1)),
// and when it ends it settles (SettlePeriod, idempotent by
// settlement.Key(PeriodJob, "settle", 1)): the replica-hours metered in it
// at the negotiated replica-hour rate go to the provider (less the platform
// fee), the rest of the escrow back to the tenant, and an SLA breach in the
// period refunds and slashes as agreed.

// MaxAmount is the ledger's largest single amount (settlement.MaxAmount).
const MaxAmount int64 = 1_000_000_000_000_000

// Biller holds and settles billing periods (package services/billing
// implements it on the settlement ledger).
type Biller interface {
	HoldPeriod(ctx context.Context, r HoldPeriodRequest) (HoldPeriodResult, error)
	SettlePeriod(ctx context.Context, r SettlePeriodRequest) (PeriodSettlement, error)
}

// HoldPeriod is the activity: the host's Biller holds the period.
func (h *Host) HoldPeriod(ctx context.Context, r HoldPeriodRequest) (HoldPeriodResult, error) {
	if h.Biller == nil {
		return HoldPeriodResult{}, fmt.Errorf("%w: no ledger for billing", ErrInvalid)
	}
	return h.Biller.HoldPeriod(ctx, r)
}

// SettlePeriod is the activity: the host's Biller settles the period.
func (h *Host) SettlePeriod(ctx context.Context, r SettlePeriodRequest) (PeriodSettlement, error) {
	if h.Biller == nil {
		return PeriodSettlement{}, fmt.Errorf("%w: no ledger for billing", ErrInvalid)
	}
	return h.Biller.SettlePeriod(ctx, r)
}

// PeriodJob is the ledger job of a deployment's billing period n.
func PeriodJob(deployment string, n int) string {
	return deployment + "-p" + strconv.Itoa(n)
}

// PeriodCharge is what replicas replicas running for period cost at rate
// per replica-hour, rounded up; it saturates at MaxAmount.
func PeriodCharge(replicas int, period time.Duration, rate int64) int64 {
	if replicas <= 0 || period <= 0 || rate <= 0 {
		return 0
	}
	ms := uint64(replicas) * uint64(period/time.Millisecond)
	hi, lo := bits.Mul64(ms, uint64(rate))
	if hi >= 3_600_000 {
		return MaxAmount
	}
	q, rem := bits.Div64(hi, lo, 3_600_000)
	if rem != 0 {
		q++
	}
	if q > uint64(MaxAmount) {
		return MaxAmount
	}
	return int64(q)
}

// HoldPeriodRequest reserves a period's escrow.
type HoldPeriodRequest struct {
	Deployment string `json:"deployment"`
	Period     int    `json:"period"`
	Tenant     string `json:"tenant"`
	Currency   string `json:"currency"`
	// Price is the period's charge at full replicas; MarginBP covers the
	// grace period on top of it.
	Price    int64 `json:"price"`
	MarginBP int64 `json:"margin_bp"`
}

// HoldPeriodResult is the held escrow, or why none could be held.
type HoldPeriodResult struct {
	Job          string `json:"job"`
	Held         int64  `json:"held"`
	Transaction  int64  `json:"transaction,omitempty"`
	Insufficient bool   `json:"insufficient,omitempty"` // the tenant cannot fund it: grace, then stop
}

// SettlePeriodRequest settles a period.
type SettlePeriodRequest struct {
	Deployment string `json:"deployment"`
	Period     int    `json:"period"`
	// ReplicaMillis is the replica time metered in the period.
	ReplicaMillis int64 `json:"replica_ms"`
	ReplicaHour   int64 `json:"replica_hour"`
	// Breached: an SLA window in the period missed its terms.
	Breached      bool     `json:"breached,omitempty"`
	Reasons       []string `json:"reasons,omitempty"`
	RefundPercent int      `json:"refund_percent,omitempty"`
	SlashPercent  int      `json:"slash_percent,omitempty"`
	Stake         int64    `json:"stake,omitempty"`
	// Inferences are the period's per-inference model fees (InferenceFees),
	// paid from the escrow before the charge, in the same transaction.
	Inferences []InferenceFee `json:"inferences,omitempty"`
}

// MaxInferenceFees bounds the releases one period pays model fees for
// (the ledger's settlement.MaxModelFees).
const MaxInferenceFees = 64

// PaidModelFee is one release's inference fee as the ledger paid it: each
// share cut to what the escrow held, in order.
type PaidModelFee struct {
	Release string       `json:"release"`
	Model   string       `json:"model"`
	Digest  string       `json:"digest"`
	Shares  []ModelShare `json:"shares,omitempty"`
}

// PeriodSettlement is what a period's settlement did.
type PeriodSettlement struct {
	Job         string `json:"job"`
	Held        int64  `json:"held"`
	Charge      int64  `json:"charge"`
	SLARefund   int64  `json:"sla_refund"`
	ProviderPay int64  `json:"provider_pay"`
	PlatformFee int64  `json:"platform_fee"`
	Refund      int64  `json:"refund"`
	Slashed     int64  `json:"slashed"`
	Breached    bool   `json:"breached,omitempty"`
	Transaction int64  `json:"transaction"`
	Key         string `json:"key"`
	// ModelFees are the inference fees paid, ModelFeeTotal their sum;
	// Capped: the escrow could not cover the fees and the charge in full.
	ModelFees     []PaidModelFee `json:"model_fees,omitempty"`
	ModelFeeTotal int64          `json:"model_fee_total,omitempty"`
	Capped        bool           `json:"capped,omitempty"`
}

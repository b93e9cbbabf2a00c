// Package sla defines the service-level terms a provider has agreed to for
// one job: the tenant's requested deadline, maximum duration, refund and
// slash percentages, as accepted in negotiation, plus the stake of its bond
// the provider put at risk and whether failing tenant-written tests may
// slash it. It is the one definition of that contract: the market agrees
// the terms, the workflow carries them, and settlement holds the provider to
// them. It has no dependencies so that each of those can import it.
package sla

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalid is wrapped by Validate's errors.
var ErrInvalid = errors.New("sla: invalid terms")

// Terms are the money terms a provider agreed to for one job. A zero
// Deadline or MaxDuration means no such term; zero percentages mean no
// refund or no slash on breach.
type Terms struct {
	// Deadline bounds the time from placement to the end of execution.
	Deadline time.Duration `json:"deadline_ns,omitempty"`
	// MaxDuration bounds the execution's wall time.
	MaxDuration time.Duration `json:"max_duration_ns,omitempty"`
	// RefundPercent of the charge goes back to the tenant on breach.
	RefundPercent int `json:"refund_percent,omitempty"`
	// SlashPercent of the Stake (never more than the bond holds) goes from
	// the provider's bond to the tenant on breach.
	SlashPercent int `json:"slash_percent,omitempty"`
	// Stake is the most of the provider's bond at risk for this job, in
	// minor units of the job's currency. Zero: nothing can be slashed.
	Stake int64 `json:"stake,omitempty"`
	// SlashOnTests is true when the provider agreed that a failing
	// tenant-written acceptance test slashes its stake; without it such a
	// failure only refunds the tenant.
	SlashOnTests bool `json:"slash_on_tests,omitempty"`
}

// MaxStake is the largest stake accepted, the settlement ledger's largest
// single amount (10¹⁵ minor units).
const MaxStake int64 = 1_000_000_000_000_000

// Validate reports terms outside their ranges.
func (t Terms) Validate() error {
	switch {
	case t.Deadline < 0 || t.MaxDuration < 0:
		return fmt.Errorf("%w: negative SLA duration", ErrInvalid)
	case t.RefundPercent < 0 || t.RefundPercent > 100 || t.SlashPercent < 0 || t.SlashPercent > 100:
		return fmt.Errorf("%w: SLA percentages must be within [0, 100]", ErrInvalid)
	case t.Stake < 0 || t.Stake > MaxStake:
		return fmt.Errorf("%w: stake %d outside [0, %d]", ErrInvalid, t.Stake, MaxStake)
	}
	return nil
}

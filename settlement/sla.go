package settlement

import (
	"fmt"
	"time"

	"github.com/accordmesh/accord/settlement/sla"
)

// SLATerms are the service-level terms the provider agreed to in
// negotiation (see package sla): never the tenant's request alone.
type SLATerms = sla.Terms

// Outcome is what a breach is judged from: attested facts only, none of
// which the tenant controls.
type Outcome struct {
	// Placed is when the provider took the job (the placement stage); the
	// deadline runs from it, so time spent queued or awaiting approval
	// does not count against the provider.
	Placed time.Time `json:"placed"`
	// Finished is when execution ended (the execution stage), before the
	// tenant's acceptance tests ran.
	Finished time.Time `json:"finished"`
	// Duration is the execution's wall time.
	Duration time.Duration `json:"duration_ns"`
	// VerificationFailed is true when the job ran but the tenant-written
	// acceptance tests failed. It refunds the tenant; it slashes only under
	// terms with SlashOnTests.
	VerificationFailed bool `json:"verification_failed,omitempty"`
}

// SLAResult is the verdict of [EvaluateSLA].
type SLAResult struct {
	Breached      bool     `json:"breached"`
	Reasons       []string `json:"reasons,omitempty"`
	RefundPercent int      `json:"refund_percent"` // applied: the terms' value on breach, else 0
	SlashPercent  int      `json:"slash_percent"`  // applied: of Stake
	// Stake is the agreed stake the slash applies to (0 when nothing is
	// slashed).
	Stake int64 `json:"stake,omitempty"`
}

func validateTerms(t SLATerms) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return nil
}

// EvaluateSLA compares an outcome with the agreed terms. The provider breaches
// the SLA when execution ended later than Deadline after placement (both
// times must be set) or ran longer than MaxDuration; a breach refunds
// RefundPercent of the charge and slashes SlashPercent of the agreed Stake.
// Failed acceptance tests also refund, but slash only when the provider
// agreed to it (SlashOnTests). It is a pure function: replaying it gives the
// same verdict.
func EvaluateSLA(t SLATerms, o Outcome) (SLAResult, error) {
	if err := validateTerms(t); err != nil {
		return SLAResult{}, err
	}
	var r SLAResult
	providerFault := false
	if t.Deadline > 0 && !o.Placed.IsZero() && !o.Finished.IsZero() {
		if took := o.Finished.Sub(o.Placed); took > t.Deadline {
			r.Reasons = append(r.Reasons, fmt.Sprintf("finished %s after placement, deadline %s", took, t.Deadline))
			providerFault = true
		}
	}
	if t.MaxDuration > 0 && o.Duration > t.MaxDuration {
		r.Reasons = append(r.Reasons, fmt.Sprintf("ran %s, max duration %s", o.Duration, t.MaxDuration))
		providerFault = true
	}
	if o.VerificationFailed {
		r.Reasons = append(r.Reasons, "acceptance tests failed")
	}
	if len(r.Reasons) == 0 {
		return r, nil
	}
	r.Breached = true
	r.RefundPercent = t.RefundPercent
	if (providerFault || t.SlashOnTests) && t.Stake > 0 {
		r.SlashPercent, r.Stake = t.SlashPercent, t.Stake
	}
	return r, nil
}

// SlashAmount is what a verdict takes from a provider's bond holding bond:
// SlashPercent of the agreed stake, never more than the bond holds and
// never the bond beyond the stake.
func SlashAmount(v SLAResult, bond int64) int64 {
	if v.SlashPercent <= 0 || v.Stake <= 0 || bond <= 0 {
		return 0
	}
	return min(pct(v.Stake, v.SlashPercent), bond)
}

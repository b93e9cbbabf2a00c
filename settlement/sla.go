package settlement

import (
	"fmt"
	"time"
)

// SLATerms are the service level a provider agreed to (the spec's
// settlement.sla): zero Deadline or MaxDuration means no such term.
type SLATerms struct {
	// Deadline bounds the time from submission to finish.
	Deadline time.Duration `json:"deadline_ns,omitempty"`
	// MaxDuration bounds the execution time.
	MaxDuration time.Duration `json:"max_duration_ns,omitempty"`
	// RefundPercent of the charge goes back to the tenant on breach.
	RefundPercent int `json:"refund_percent,omitempty"`
	// SlashPercent of the provider's bond goes to the tenant on breach.
	SlashPercent int `json:"slash_percent,omitempty"`
}

// Outcome is what happened, measured by the workflow.
type Outcome struct {
	Submitted time.Time     `json:"submitted"`
	Finished  time.Time     `json:"finished"`
	Duration  time.Duration `json:"duration_ns"`
	// VerificationFailed is true when the job ran but its acceptance tests
	// failed; a failed verification always breaches the SLA.
	VerificationFailed bool `json:"verification_failed,omitempty"`
}

// SLAResult is the verdict of [EvaluateSLA].
type SLAResult struct {
	Breached      bool     `json:"breached"`
	Reasons       []string `json:"reasons,omitempty"`
	RefundPercent int      `json:"refund_percent"` // applied: the terms' value on breach, else 0
	SlashPercent  int      `json:"slash_percent"`
}

func (t SLATerms) validate() error {
	if t.Deadline < 0 || t.MaxDuration < 0 {
		return fmt.Errorf("%w: negative SLA duration", ErrBadRequest)
	}
	if t.RefundPercent < 0 || t.RefundPercent > 100 || t.SlashPercent < 0 || t.SlashPercent > 100 {
		return fmt.Errorf("%w: SLA percentages must be within [0, 100]", ErrBadRequest)
	}
	return nil
}

// EvaluateSLA compares an outcome with the terms. The SLA is breached when
// the job finished later than Deadline after submission (both times must be
// set), ran longer than MaxDuration, or failed verification. It is a pure
// function: replaying it gives the same verdict.
func EvaluateSLA(t SLATerms, o Outcome) (SLAResult, error) {
	if err := t.validate(); err != nil {
		return SLAResult{}, err
	}
	var r SLAResult
	if t.Deadline > 0 && !o.Submitted.IsZero() && !o.Finished.IsZero() {
		if took := o.Finished.Sub(o.Submitted); took > t.Deadline {
			r.Reasons = append(r.Reasons, fmt.Sprintf("finished %s after submission, deadline %s", took, t.Deadline))
		}
	}
	if t.MaxDuration > 0 && o.Duration > t.MaxDuration {
		r.Reasons = append(r.Reasons, fmt.Sprintf("ran %s, max duration %s", o.Duration, t.MaxDuration))
	}
	if o.VerificationFailed {
		r.Reasons = append(r.Reasons, "verification failed")
	}
	if len(r.Reasons) > 0 {
		r.Breached = true
		r.RefundPercent = t.RefundPercent
		r.SlashPercent = t.SlashPercent
	}
	return r, nil
}

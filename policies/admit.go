package policies

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/accordmesh/accord/specs"
)

// SignedSpec is a spec as admission sees it, with its detached signature.
type SignedSpec struct {
	Tenant string
	// Document is the root document's exact bytes.
	Document []byte
	// Documents are every file composed into the spec as it was loaded and
	// compiled (Plan.Documents: the root first, then what it extends and
	// imports): the signature must cover exactly these.
	Documents []specs.Document
	// Signature is the DSSE envelope (`accord spec sign`).
	Signature []byte
	// Now is the admission time, against which the signature's expiry is
	// checked.
	Now time.Time
}

// SpecVerifier checks a detached spec signature (a DSSE envelope over the
// composed spec: every file by digest, the tenant and an expiry) against the
// keys trusted to sign the tenant's specs and returns the fingerprint of
// the key that signed. provenance.VerifySpecSignature over the trust store
// is the real one.
type SpecVerifier func(ctx context.Context, s SignedSpec) (keyID string, err error)

// Admitter is the admit stage: signature requirement, CEL admission rules,
// then the quota reservation — in that order, so nothing is reserved for a
// spec that is rejected.
type Admitter struct {
	Policies *Set
	Store    *Store
	Verify   SpecVerifier
	// AutoCreate admits tenants that do not exist yet by creating them with
	// no quota: only the local single-user stack (`accord run`, `accord
	// dev`) sets it. Servers and workers leave it false, so a job for an
	// unknown tenant is denied at admission.
	AutoCreate bool
	// Now is the admission clock (default time.Now); admission runs in an
	// activity, so reading the clock here is allowed.
	Now func() time.Time
}

// AdmitRequest is one job to admit.
type AdmitRequest struct {
	JobID     string
	Plan      *specs.Plan
	Document  []byte // the root document's exact bytes (a signature covers them and Plan.Documents)
	Signature []byte // DSSE envelope, or nil
}

// Admission is the outcome, recorded verbatim in the admission attestation.
type Admission struct {
	JobID     string     `json:"job_id"`
	Tenant    string     `json:"tenant"`
	Allowed   bool       `json:"allowed"`
	Signer    Signer     `json:"signer"`
	Reserved  int64      `json:"reserved"` // spend held against the quota, minor units
	Currency  string     `json:"currency"`
	GPUHours  float64    `json:"gpu_hours"`
	Usage     Usage      `json:"usage"` // before this job
	Decisions []Decision `json:"decisions"`
	Reason    string     `json:"reason,omitempty"`
}

// Admit decides whether the job may run and reserves its quota. It is
// idempotent by job ID: the policies are pure and the reservation is keyed
// by job, so a retry returns the same admission and reserves nothing more.
// A denial returns the Admission with Allowed false and an error wrapping
// ErrDenied, ErrUnsigned or ErrQuotaExceeded.
func (a *Admitter) Admit(ctx context.Context, req AdmitRequest) (Admission, error) {
	plan := req.Plan
	ad := Admission{JobID: req.JobID, Tenant: plan.Tenant, Currency: plan.Currency, GPUHours: GPUHours(plan)}
	t, err := a.Store.Tenant(ctx, plan.Tenant)
	if errors.Is(err, ErrUnknownTenant) {
		if a.AutoCreate {
			t = Tenant{Name: plan.Tenant, Currency: plan.Currency, Period: "month"}
			err = a.Store.PutTenant(ctx, t)
		} else {
			err = fmt.Errorf("%w: %q is not a tenant here; an operator creates it with `accord tenant put %s`", ErrUnknownTenant, plan.Tenant, plan.Tenant)
		}
	}
	if err != nil {
		return deny(ad, err)
	}
	// Signature first: an unsigned or wrongly signed spec reserves nothing.
	sig := builtin("signature")
	if len(req.Signature) > 0 && a.Verify != nil {
		now := time.Now
		if a.Now != nil {
			now = a.Now
		}
		keyID, verr := a.Verify(ctx, SignedSpec{Tenant: t.Name, Document: req.Document, Documents: plan.Documents, Signature: req.Signature, Now: now()})
		if verr == nil && len(t.Signers) > 0 && !slices.Contains(t.Signers, keyID) {
			verr = fmt.Errorf("key %s is not among tenant %s's signers", keyID, t.Name)
		}
		if verr == nil {
			ad.Signer = Signer{Signed: true, KeyID: keyID}
		} else if t.RequireSigned {
			sig.Allowed, sig.Reason = false, verr.Error()
			ad.Decisions = append(ad.Decisions, sig)
			return deny(ad, fmt.Errorf("%w: %v", ErrUnsigned, verr))
		}
	}
	if t.RequireSigned && !ad.Signer.Signed {
		sig.Allowed, sig.Reason = false, "spec is not signed"
		ad.Decisions = append(ad.Decisions, sig)
		return deny(ad, fmt.Errorf("%w: tenant %s requires a signature", ErrUnsigned, t.Name))
	}
	ad.Decisions = append(ad.Decisions, sig)

	u, err := a.Store.Usage(ctx, t.Name)
	if err != nil {
		return deny(ad, err)
	}
	ad.Usage = u
	view := TenantView{Name: t.Name, SpendRemaining: u.SpendRemaining, GPUHoursRemaining: u.GPUHoursRemaining, Currency: t.Currency}
	res := a.Policies.Evaluate(StageAdmission, t.Name, AdmissionInput(plan, view, ad.Signer))
	ad.Decisions = append(ad.Decisions, res.Decisions...)
	if err := res.Err(); err != nil {
		return deny(ad, err)
	}

	q := builtin("quota")
	if t.Currency != "" && plan.Currency != "" && t.Currency != plan.Currency && t.SpendQuota > 0 {
		q.Allowed, q.Reason = false, fmt.Sprintf("budget in %s, quota in %s", plan.Currency, t.Currency)
		ad.Decisions = append(ad.Decisions, q)
		return deny(ad, fmt.Errorf("%w: %s", ErrQuotaExceeded, q.Reason))
	}
	if err := a.Store.Reserve(ctx, t.Name, req.JobID, plan.MaxCost, ad.GPUHours); err != nil {
		q.Allowed, q.Reason = false, err.Error()
		ad.Decisions = append(ad.Decisions, q)
		return deny(ad, err)
	}
	ad.Decisions = append(ad.Decisions, q)
	ad.Allowed, ad.Reserved = true, plan.MaxCost
	return ad, nil
}

func builtin(rule string) Decision {
	return Decision{Policy: "accord-builtin", Version: 1, Rule: rule, Stage: StageAdmission, Allowed: true}
}

func deny(ad Admission, err error) (Admission, error) {
	ad.Allowed, ad.Reason = false, err.Error()
	return ad, err
}

// PlacementFilter returns a predicate that applies the placement rules of
// the spec's tenant to a provider's bid; the market calls it for every bid.
func (s *Set) PlacementFilter(spec *specs.Spec) func(ProviderView) (bool, string) {
	return func(p ProviderView) (bool, string) {
		res := s.Evaluate(StagePlacement, spec.Tenant, PlacementInput(spec, p))
		if res.Allowed {
			return true, ""
		}
		return false, fmt.Sprint(res.Reasons())
	}
}

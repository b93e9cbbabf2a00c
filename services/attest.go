package services

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/accordmesh/accord/provenance"
)

// A deployment's events (start, each period's hold and settlement, each SLA
// window, a canary's start and gate, promote, rollback, stop) are signed
// and logged one statement each, chained like a job's stages: event seq is
// the stage provenance.DeploymentStage(seq) of the deployment, linking the
// envelope of seq-1. `accord receipt export DEPLOYMENT` and `accord audit
// verify` read them like a job's.

// maxEventPredicate bounds one event's predicate.
const maxEventPredicate = 64 << 10

// Attestor signs and logs one deployment event (provenance.Recorder).
type Attestor interface {
	Attest(ctx context.Context, req provenance.AttestRequest) (*provenance.Attestation, error)
}

var _ Attestor = (*provenance.Recorder)(nil)

// AttestRequest is one deployment event to sign and log.
type AttestRequest struct {
	Deployment string `json:"deployment"`
	Seq        int    `json:"seq"`
	// Previous is the envelope digest of event Seq-1 (empty for seq 1).
	Previous   string          `json:"previous,omitempty"`
	SpecDigest string          `json:"spec_digest,omitempty"`
	Predicate  json.RawMessage `json:"predicate"`
}

// AttestResult is the logged event.
type AttestResult struct {
	Digest   string `json:"digest"`
	LogIndex int64  `json:"log_index"` // -1 when not logged
}

// Attest is the activity: it signs and logs one event. Idempotent by
// (deployment, seq): a retry gets the stored envelope back.
func (h *Host) Attest(ctx context.Context, r AttestRequest) (AttestResult, error) {
	if h.Attestor == nil {
		return AttestResult{}, fmt.Errorf("%w: no attestor for deployment events", ErrInvalid)
	}
	switch {
	case !DeploymentIDPattern.MatchString(r.Deployment):
		return AttestResult{}, fmt.Errorf("%w: deployment %q", ErrInvalid, r.Deployment)
	case r.Seq < 1 || r.Seq > 999_999:
		return AttestResult{}, fmt.Errorf("%w: event seq %d", ErrInvalid, r.Seq)
	case len(r.Predicate) == 0 || len(r.Predicate) > maxEventPredicate:
		return AttestResult{}, fmt.Errorf("%w: event predicate of %d bytes", ErrInvalid, len(r.Predicate))
	case (r.Seq == 1) != (r.Previous == ""):
		return AttestResult{}, fmt.Errorf("%w: event %d with previous %q", ErrInvalid, r.Seq, r.Previous)
	}
	a, err := h.Attestor.Attest(ctx, provenance.AttestRequest{JobID: r.Deployment, Stage: provenance.DeploymentStage(r.Seq),
		Previous: r.Previous, SpecDigest: r.SpecDigest, Predicate: r.Predicate})
	if err != nil {
		return AttestResult{}, fmt.Errorf("services: attest event %d of %s: %w", r.Seq, r.Deployment, err)
	}
	out := AttestResult{Digest: a.Digest, LogIndex: -1}
	if a.Entry != nil && a.Entry.LogIndex != nil {
		out.LogIndex = *a.Entry.LogIndex
	}
	return out, nil
}

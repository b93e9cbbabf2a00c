package sweep

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/settlement/sla"
)

// Work is what a job's attestations say about the work it did: the facts a
// sweep settles on. Only signed, trusted stage attestations count.
type Work struct {
	// Executed is true when the execution stage is attested: every task
	// finished (the workflow attests execution only then).
	Executed bool
	// Usage is the sum of the attested tasks' metered usage.
	Usage runtimes.Usage
	// Started and Finished are the earliest task start and latest task end.
	Started, Finished time.Time
	// Placed is when the escrow was held, as the placement says (job
	// layout 11; zero before): an SLA deadline's clock starts there.
	Placed time.Time
	// Verified is the attested verification verdict; nil when the
	// verification stage is not attested.
	Verified *bool
	// Provider, Price and Currency are the negotiation's, and once the
	// execution is attested after failovers the last replacement's
	// provider and price; SLA the terms that provider agreed to (nil: none
	// recorded).
	Provider string
	Price    int64
	Currency string
	SLA      *sla.Terms
	// Last is the digest of the latest attested stage before settlement
	// (what a settlement statement chains to); LastStage names it.
	Last, LastStage string
	// Settled is the digest of an already attested settlement stage.
	Settled string
	// Rejected lists stored stages that did not verify (bad signature,
	// untrusted key, wrong job or stage) and were ignored.
	Rejected []string
	// Parts are a split job's parts (the negotiation has Parts), Parts[0]
	// the lead's: as negotiated, and once the execution is attested with
	// their final providers and the usage each provider signed for. Nil
	// for a job one provider ran.
	Parts []PartWork

	negotiated []predicate.Part // a split negotiation's parts
	record     json.RawMessage  // the negotiation's record (awards' SLA terms)
}

// Split reports whether the job's negotiation split it into parts.
func (w *Work) Split() bool { return len(w.Parts) > 0 }

// Evidence reads a job's attested work. A job without trustworthy
// attestations has a zero Work (Executed false): it is refunded.
type Evidence interface {
	Work(ctx context.Context, jobID string) (Work, error)
}

// Attestations is the Evidence of a local provenance store: each stage
// envelope must verify with a key of the party that signs that stage
// (provenance.StageSigners: the operator's, the awarded provider's for
// placement and execution, the verifier's; or a legacy single-party stage
// key) and name the job and stage it is stored under, or it is ignored and
// listed in Work.Rejected (so a job whose execution does not verify is
// refunded, never paid).
//
// A split job's placement and execution statements are the operator's;
// its execution counts only when every part's own execution statement
// verifies with the key of the provider that ran the part (see
// [PartWork]).
type Attestations struct {
	Store *provenance.Store
	// Trust returns the trust store (read on each call, so that `accord
	// keys trust` takes effect at the next sweep).
	Trust func() (*provenance.TrustStore, error)
}

// stageKeys are the keys that may sign stage for a job awarded to
// provider: its party's, and the legacy stage scope's.
func stageKeys(ts *provenance.TrustStore, stage, provider string) []crypto.PublicKey {
	var keys []crypto.PublicKey
	for _, scope := range provenance.StageSigners(stage, provider) {
		keys = append(keys, ts.KeysFor(scope)...)
	}
	return append(keys, ts.KeysFor(provenance.ScopeStage)...)
}

// Work implements Evidence. Stages are read in order, so the provider the
// (verified) negotiation awarded is known when placement and execution
// are checked against that provider's key.
func (a Attestations) Work(ctx context.Context, jobID string) (Work, error) {
	ts, err := a.Trust()
	if err != nil {
		return Work{}, fmt.Errorf("sweep: trust store: %w", err)
	}
	var w Work
	for _, stage := range provenance.Stages {
		att, err := a.Store.Get(jobID, stage)
		if errors.Is(err, provenance.ErrNotFound) {
			continue
		}
		if err != nil {
			return Work{}, fmt.Errorf("sweep: %s attestation of %s: %w", stage, jobID, err)
		}
		st, err := verified(ctx, att, jobID, stage, keys(ts, att, stage, &w))
		if err != nil {
			// Not evidence: the stage counts as never attested.
			w.Rejected = append(w.Rejected, stage+": "+err.Error())
			continue
		}
		if stage == provenance.StageSettlement {
			w.Settled = att.Digest
			continue
		}
		var parts []PartWork
		if stage == provenance.StageExecution && w.Split() {
			if parts, err = executedParts(ctx, ts, jobID, st, &w); err != nil {
				w.Rejected = append(w.Rejected, stage+": "+err.Error())
				continue
			}
		}
		err = w.add(stage, st)
		var ne notEvidence
		if errors.As(err, &ne) {
			w.Rejected = append(w.Rejected, stage+": "+err.Error())
			continue
		}
		if err != nil {
			return Work{}, fmt.Errorf("sweep: %s attestation of %s: %w", stage, jobID, err)
		}
		if parts != nil {
			w.Parts = parts
		}
		w.Last, w.LastStage = att.Digest, stage
	}
	return w, nil
}

// keys are the keys that may sign att, the job's stage, as far as w (the
// stages read so far) tells: a split job's placement and execution are
// the operator's.
func keys(ts *provenance.TrustStore, att *provenance.Attestation, stage string, w *Work) []crypto.PublicKey {
	switch {
	case w.Split() && (stage == provenance.StagePlacement || stage == provenance.StageExecution):
		return operatorKeys(ts)
	case stage == provenance.StagePlacement || stage == provenance.StageExecution:
		return stageKeys(ts, stage, signer(att, w.Provider))
	}
	return stageKeys(ts, stage, w.Provider)
}

// signer is the provider that must have signed a job's placement or
// execution att: the awarded one, or after failovers the last replacement
// (job layout 6 for the execution, 11 for a placement accepted by a
// replacement), as the statement names them (the signature is then
// checked against that provider's key, so a statement naming another
// provider verifies only with that provider's key).
func signer(att *provenance.Attestation, awarded string) string {
	_, payload, err := provenance.ParseEnvelope(att.Envelope)
	if err != nil {
		return awarded
	}
	st, err := provenance.ParseStatement(payload)
	if err != nil {
		return awarded
	}
	return provenance.ReplacedProvider(st, awarded)
}

// verified checks an envelope's signature, digest, job and stage.
func verified(ctx context.Context, att *provenance.Attestation, jobID, stage string, keys []crypto.PublicKey) (*provenance.Statement, error) {
	if provenance.Digest(att.Envelope) != att.Digest {
		return nil, fmt.Errorf("%w: stored digest %s does not match the envelope", provenance.ErrDigest, att.Digest)
	}
	payload, _, err := provenance.VerifyEnvelope(ctx, att.Envelope, keys...)
	if err != nil {
		return nil, err
	}
	st, err := provenance.ParseStatement(payload)
	if err != nil {
		return nil, err
	}
	h, err := st.Header()
	if err != nil {
		return nil, err
	}
	if h.JobID != jobID || h.Stage != stage || st.PredicateType != provenance.PredicateType(stage) {
		return nil, fmt.Errorf("%w: envelope is job %s stage %s, stored as job %s stage %s", provenance.ErrBadStatement, h.JobID, h.Stage, jobID, stage)
	}
	return st, nil
}

func (w *Work) add(stage string, st *provenance.Statement) error {
	switch stage {
	case provenance.StageNegotiation:
		var p predicate.Negotiation
		if err := st.DecodePredicate(&p); err != nil {
			return err
		}
		if len(p.Parts) > 0 {
			if err := negotiatedParts(p); err != nil {
				return notEvidence{fmt.Errorf("split negotiation: %w", err)}
			}
			w.Parts, w.negotiated = partsWork(p.Parts, p.Record, nil), p.Parts
		}
		w.record = p.Record
		w.Provider, w.Price, w.Currency, w.SLA = p.Provider, p.Price, p.Currency, awardSLA(p.Record, p.Provider)
	case provenance.StagePlacement:
		var p predicate.Placement
		if err := st.DecodePredicate(&p); err != nil {
			return err
		}
		w.Placed = p.At.UTC()
	case provenance.StageExecution:
		var p predicate.Execution
		if err := st.DecodePredicate(&p); err != nil {
			return err
		}
		if !w.Split() && len(p.Failovers) > 0 {
			if err := w.replaced(p.Failovers); err != nil {
				return notEvidence{err}
			}
		}
		w.Executed = true
		for _, t := range p.Tasks {
			w.Usage = w.Usage.Add(t.Usage)
			if t.StartedAt != nil && (w.Started.IsZero() || t.StartedAt.Before(w.Started)) {
				w.Started = t.StartedAt.UTC()
			}
			if t.FinishedAt != nil && t.FinishedAt.After(w.Finished) {
				w.Finished = t.FinishedAt.UTC()
			}
		}
	case provenance.StageVerification:
		var p predicate.Verification
		if err := st.DecodePredicate(&p); err != nil {
			return err
		}
		w.Verified = &p.Passed
	}
	return nil
}

// replaced follows a whole job's failovers to the provider that ran it:
// the job is then that provider's, at the last failover's price and under
// the terms it agreed to in the renegotiation (job layout 11), else those
// of its award in the negotiation record, if any.
func (w *Work) replaced(fs []predicate.Failover) error {
	if err := checkFailovers(fs, w.Currency); err != nil {
		return err
	}
	final, broken := provenance.ExecutingProvider(w.Provider, fs)
	if broken != "" {
		return errors.New(broken)
	}
	last := fs[len(fs)-1]
	w.Provider, w.Price, w.SLA = final, last.Price, last.SLA
	if w.SLA == nil {
		w.SLA = awardSLA(w.record, final)
	}
	return nil
}

// awardSLA finds provider's agreed terms in a negotiation record (the
// market's result: awards with their SLA); nil when absent.
func awardSLA(record json.RawMessage, provider string) *sla.Terms {
	var rec struct {
		Awards []struct {
			Provider string     `json:"provider"`
			SLA      *sla.Terms `json:"sla"`
		} `json:"awards"`
	}
	if len(record) == 0 || json.Unmarshal(record, &rec) != nil {
		return nil
	}
	for _, a := range rec.Awards {
		if a.Provider == provider && a.SLA != nil {
			t := *a.SLA
			return &t
		}
	}
	return nil
}

package provenance

import (
	"context"
	"fmt"
	"slices"

	"github.com/accordmesh/accord/provenance/predicate"
)

// CheckPart checks a split job's signed part (job layout 10) before the
// operator lists it in its stage statement: the envelope verifies with a
// key trusted for provider:<part provider>, and its statement is for job
// and stage, chained to previous, naming the part's provider and tasks.
// Problems wrap ErrSigner. The audit checks the same and more
// (Verify); this keeps a provider's bad part out of the log.
func CheckPart(ctx context.Context, ts *TrustStore, jobID, stage, previous string, sp predicate.SignedPart) error {
	keys := ts.KeysFor(ProviderScope(sp.Provider))
	if len(keys) == 0 {
		return fmt.Errorf("%w: %s part of %s: no key trusted for %s", ErrSigner, stage, sp.Provider, ProviderScope(sp.Provider))
	}
	payload, _, err := VerifyEnvelope(ctx, sp.Envelope, keys...)
	if err != nil {
		return fmt.Errorf("%w: %s part of %s: %v", ErrSigner, stage, sp.Provider, err)
	}
	st, err := ParseStatement(payload)
	if err != nil {
		return fmt.Errorf("%w: %s part of %s: %v", ErrSigner, stage, sp.Provider, err)
	}
	h, err := st.Header()
	if err != nil {
		return fmt.Errorf("%w: %s part of %s: %v", ErrSigner, stage, sp.Provider, err)
	}
	var p struct {
		Provider  string   `json:"provider"`
		PartTasks []string `json:"part_tasks"`
	}
	if err := st.DecodePredicate(&p); err != nil {
		return fmt.Errorf("%w: %s part of %s: %v", ErrSigner, stage, sp.Provider, err)
	}
	switch {
	case h.JobID != jobID || h.Stage != stage || h.Previous != previous:
		return fmt.Errorf("%w: %s part of %s is a statement of job %s stage %s after %s, want job %s stage %s after %s",
			ErrSigner, stage, sp.Provider, h.JobID, h.Stage, orNone(h.Previous), jobID, stage, orNone(previous))
	case p.Provider != sp.Provider || !slices.Equal(p.PartTasks, sp.Tasks):
		return fmt.Errorf("%w: %s part of %s names provider %q and tasks %v, want %v",
			ErrSigner, stage, sp.Provider, p.Provider, p.PartTasks, sp.Tasks)
	}
	return nil
}

package provenance

import (
	"context"
	"fmt"

	"github.com/accordmesh/accord/provenance/predicate"
)

// CheckPart checks a split job's signed part (job layout 10) before the
// operator lists it in its stage statement: the envelope verifies with a
// key trusted for provider:<part provider>, and its statement is for job
// and stage, chained to previous, naming the part's provider and tasks.
// Problems wrap ErrSigner. It returns the part's statement. The audit
// checks the same and more (Verify); the control plane calls it to keep a
// provider's bad part out of the log, the sweeper before it pays a part.
func CheckPart(ctx context.Context, ts *TrustStore, jobID, stage, previous string, sp predicate.SignedPart) (*Statement, error) {
	fail := func(format string, args ...any) (*Statement, error) {
		return nil, fmt.Errorf("%w: %s part of %s: %s", ErrSigner, stage, sp.Provider, fmt.Sprintf(format, args...))
	}
	keys := ts.KeysFor(ProviderScope(sp.Provider))
	if len(keys) == 0 {
		return fail("no key trusted for %s", ProviderScope(sp.Provider))
	}
	payload, _, err := VerifyEnvelope(ctx, sp.Envelope, keys...)
	if err != nil {
		return fail("%v", err)
	}
	st, err := ParseStatement(payload)
	if err != nil {
		return fail("%v", err)
	}
	h, err := st.Header()
	if err != nil {
		return fail("%v", err)
	}
	var p struct {
		Provider  string   `json:"provider"`
		PartTasks []string `json:"part_tasks"`
	}
	if err := st.DecodePredicate(&p); err != nil {
		return fail("%v", err)
	}
	switch {
	case h.JobID != jobID || h.Stage != stage || st.PredicateType != PredicateType(stage) || h.Previous != previous:
		return fail("a statement of job %s stage %s (%s) after %s, want job %s stage %s after %s",
			h.JobID, h.Stage, st.PredicateType, orNone(h.Previous), jobID, stage, orNone(previous))
	case p.Provider != sp.Provider || !sameTasks(p.PartTasks, sp.Tasks):
		return fail("names provider %q and tasks %v, want %v", p.Provider, p.PartTasks, sp.Tasks)
	}
	return st, nil
}

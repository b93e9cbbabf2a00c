package provenance

import (
	"fmt"
	"strings"

	"github.com/accordmesh/accord/provenance/predicate"
)

// spotCheck checks a spot check's record in the verification statement:
// each run's outputs digest is the digest of its outputs, the primary run's
// outputs are the execution's, the verdict follows from the digests, and
// each checker's signed statement (job layout 9) verifies with a key
// trusted for that provider and states exactly that run. Under
// VerifyOptions.Parties every check or tiebreak run that gave outputs must
// carry its provider's signature.
func (a *auditor) spotCheck(sc *predicate.SpotCheck, execOut map[string]string, hasEx bool) {
	const st = StageVerification
	for i, r := range sc.Runs {
		what := fmt.Sprintf("spot-check run %d (%s by %s)", i+1, r.Role, r.Provider)
		if r.Failed != "" {
			continue
		}
		if d := predicate.OutputsDigest(r.Outputs); d != r.OutputsDigest {
			a.fail(st, "spot-check", "%s: outputs digest %s, its outputs hash to %s", what, r.OutputsDigest, d)
		}
		if r.Role == predicate.SpotPrimary {
			if hasEx {
				if diff := diffOutputs(execOut, runOutputs(r)); diff != "" {
					a.fail(st, "spot-check", "%s: outputs differ from the execution's: %s", what, diff)
				}
			}
			continue
		}
		a.spotSigned(what, r)
	}
	if why := spotVerdictProblem(sc); why != "" {
		a.fail(st, "spot-check", "verdict %q: %s", sc.Verdict, why)
	}
}

// spotSigned checks a checker's signature over its run.
func (a *auditor) spotSigned(what string, r predicate.SpotRun) {
	const st = StageVerification
	if len(r.Signed) == 0 {
		if a.rep.Parties {
			a.fail(st, "signer", "%s is not signed by its provider: must be signed by %s", what, ProviderScope(r.Provider))
		}
		return
	}
	payload, id, err := VerifyEnvelope(a.ctx, r.Signed, a.stageKeys...)
	if err != nil {
		a.fail(st, "signer", "%s: its envelope does not verify with any trusted key: %v", what, err)
		return
	}
	if !a.trust.Allowed(id, ProviderScope(r.Provider)) {
		a.fail(st, "signer", "%s: must be signed by %s, signed by key %s (%s)", what, ProviderScope(r.Provider), id, a.scopesOf(id))
		return
	}
	s, err := ParseStatement(payload)
	if err != nil {
		a.fail(st, "spot-check", "%s: signed statement: %v", what, err)
		return
	}
	var ex ExecutionPredicate
	if err := s.DecodePredicate(&ex); err != nil {
		a.fail(st, "spot-check", "%s: signed statement: %v", what, err)
		return
	}
	h, _ := s.Header()
	switch {
	case ex.JobID != a.r.JobID:
		a.fail(st, "spot-check", "%s: signed statement is for job %s", what, ex.JobID)
	case ex.SpotRole != r.Role || ex.Provider != r.Provider:
		a.fail(st, "spot-check", "%s: signed statement is the %q run of provider %q", what, ex.SpotRole, ex.Provider)
	case h.Previous != a.stageDigest(StageExecution):
		a.fail(st, "spot-check", "%s: signed statement follows envelope %s, not the job's execution", what, orNone(h.Previous))
	default:
		if diff := diffOutputs(runOutputs(r), artifactSubjects(a.r.JobID, s)); diff != "" {
			a.fail(st, "spot-check", "%s: the provider signed other outputs: %s", what, diff)
		}
	}
}

// runOutputs are a run's outputs as "task:path" -> "sha256:hex".
func runOutputs(r predicate.SpotRun) map[string]string {
	out := map[string]string{}
	for task, os := range r.Outputs {
		for _, o := range os {
			out[task+":"+o.Path] = "sha256:" + strings.ToLower(o.SHA256)
		}
	}
	return out
}

// spotVerdictProblem says why the verdict does not follow from the runs'
// digests ("" when it does).
func spotVerdictProblem(sc *predicate.SpotCheck) string {
	digest := map[string]string{}
	for _, r := range sc.Runs {
		if r.Failed == "" {
			digest[r.Role] = r.OutputsDigest
		}
	}
	p, c, t := digest[predicate.SpotPrimary], digest[predicate.SpotCheckRun], digest[predicate.SpotTiebreak]
	switch sc.Verdict {
	case predicate.SpotAgree:
		if p == "" || c != p || sc.Majority != p {
			return "the check run does not agree with the primary run"
		}
	case predicate.SpotUpheld:
		if p == "" || c == p || t != p || sc.Majority != p {
			return "the tiebreak does not side with the primary run against the check"
		}
	case predicate.SpotReversed:
		if c == "" || c == p || t != c || sc.Majority != c {
			return "the tiebreak does not side with the check run against the primary"
		}
	}
	return ""
}

// stageDigest is the envelope digest of the receipt's attestation of
// stage, or "".
func (a *auditor) stageDigest(stage string) string {
	for _, att := range a.r.Attestations {
		if att.Stage == stage {
			return Digest(att.Envelope)
		}
	}
	return ""
}

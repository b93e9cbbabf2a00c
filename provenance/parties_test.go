package provenance_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/accordmesh/accord/provenance"
)

// parties are the keys of a job's signing parties, each trusted for its
// own scope, with a recorder each over one log and one store (as separate
// machines appending to one log).
type parties struct {
	*env
	operator, provider, verifier *provenance.Key
	recs                         map[*provenance.Key]*provenance.Recorder
}

const awarded = "prov-a" // the provider stagePredicates' negotiation awards

func newParties(t *testing.T) *parties {
	t.Helper()
	e := newEnv(t)
	// The env's single stage key is the legacy worker; these are the parties.
	p := &parties{env: e, recs: map[*provenance.Key]*provenance.Recorder{}}
	for _, k := range []struct {
		key   **provenance.Key
		name  string
		scope string
	}{
		{&p.operator, "operator", provenance.ScopeOperator},
		{&p.provider, awarded, provenance.ProviderScope(awarded)},
		{&p.verifier, "verifier", provenance.ScopeVerifier},
	} {
		key, err := provenance.GenerateKey("")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.trust.Add(key.PublicPEM(), k.name, k.scope); err != nil {
			t.Fatal(err)
		}
		*k.key = key
		p.recs[key] = provenance.NewRecorder(e.log, key, e.store)
	}
	return p
}

// signer returns who signs each stage in a mesh: the operator, the awarded
// provider, the verifier.
func (p *parties) signer(stage string) *provenance.Key {
	switch stage {
	case provenance.StagePlacement, provenance.StageExecution:
		return p.provider
	case provenance.StageVerification:
		return p.verifier
	}
	return p.operator
}

// recordBy attests a job, each stage signed by by(stage).
func (p *parties) recordBy(t *testing.T, jobID string, by func(stage string) *provenance.Key) *provenance.Receipt {
	t.Helper()
	for _, s := range stagePredicates(jobID) {
		k := by(s.stage)
		rec := p.recs[k]
		if rec == nil {
			rec = provenance.NewRecorder(p.log, k, p.store)
			p.recs[k] = rec
		}
		b, _ := json.Marshal(s.pred)
		if _, err := rec.Attest(context.Background(), provenance.AttestRequest{JobID: jobID, Stage: s.stage, Subjects: s.subjects, Predicate: b}); err != nil {
			t.Fatalf("attest %s: %v", s.stage, err)
		}
	}
	return p.receipt(t, jobID)
}

// signerProblems returns the report's "signer" problems by stage.
func signerProblems(rep *provenance.Report) map[string]string {
	out := map[string]string{}
	for _, pr := range rep.Problems {
		if pr.Check == "signer" {
			out[pr.Stage] = pr.String()
		}
	}
	return out
}

func TestPartiesSignTheirStages(t *testing.T) {
	ctx := context.Background()
	p := newParties(t)
	r := p.recordBy(t, "job-mesh", p.signer)
	for _, parties := range []bool{false, true} {
		rep, err := provenance.Verify(ctx, clone(t, r), p.trust, provenance.VerifyOptions{Parties: parties})
		if err != nil {
			t.Fatalf("parties=%v: %v", parties, err)
		}
		if !rep.OK || !rep.Complete || rep.Parties != parties {
			t.Fatalf("parties=%v: report %+v", parties, rep)
		}
		want := map[string]string{
			provenance.StageSpec: "operator", provenance.StageAdmission: "operator", provenance.StageNegotiation: "operator",
			provenance.StagePlacement: "provider:" + awarded, provenance.StageExecution: "provider:" + awarded,
			provenance.StageVerification: "verifier", provenance.StageSettlement: "operator",
		}
		for _, s := range rep.Stages {
			if s.Party != want[s.Stage] || s.Signer != p.signer(s.Stage).ID() {
				t.Errorf("parties=%v: stage %s signed by %s as %q, want %s as %q", parties, s.Stage, s.Signer, s.Party, p.signer(s.Stage).ID(), want[s.Stage])
			}
		}
	}
	// The JSON report names each stage's party.
	rep, _ := provenance.Verify(ctx, r, p.trust, provenance.VerifyOptions{Parties: true})
	b, _ := json.Marshal(rep)
	if !strings.Contains(string(b), `"party":"provider:prov-a"`) || !strings.Contains(string(b), `"parties":true`) {
		t.Fatalf("report JSON lacks party fields: %s", b)
	}

	// The operator may also sign verification (it runs the tests itself).
	r = p.recordBy(t, "job-op-verifies", func(stage string) *provenance.Key {
		if stage == provenance.StageVerification {
			return p.operator
		}
		return p.signer(stage)
	})
	rep, err := provenance.Verify(ctx, r, p.trust, provenance.VerifyOptions{Parties: true})
	if err != nil || rep.Stages[provenance.StageIndex(provenance.StageVerification)].Party != provenance.ScopeOperator {
		t.Fatalf("operator-signed verification: %v %+v", err, rep)
	}
}

func TestOperatorSigningForTheProviderFails(t *testing.T) {
	ctx := context.Background()
	p := newParties(t)
	// The operator signs the execution attestation in the provider's place:
	// a consistent chain, the wrong party.
	r := p.recordBy(t, "job-usurped", func(stage string) *provenance.Key {
		if stage == provenance.StageExecution {
			return p.operator
		}
		return p.signer(stage)
	})
	want := "stage execution: signer: must be signed by provider:prov-a, signed by key " + p.operator.ID() + " (operator)"
	for _, parties := range []bool{false, true} {
		rep, err := provenance.Verify(ctx, r, p.trust, provenance.VerifyOptions{Parties: parties})
		if !errors.Is(err, provenance.ErrAudit) || rep.OK {
			t.Fatalf("parties=%v: operator-signed execution accepted: %v", parties, err)
		}
		if len(rep.Problems) != 1 || rep.Problems[0].String() != want {
			t.Fatalf("parties=%v: problems %v, want only %q", parties, rep.Problems, want)
		}
		if s := rep.Stages[provenance.StageIndex(provenance.StageExecution)]; s.Party != "" || s.Signer != p.operator.ID() {
			t.Fatalf("parties=%v: execution stage report %+v", parties, s)
		}
	}

	// The provider's execution envelope of a good receipt, re-signed with
	// the operator's key and logged.
	good := p.recordBy(t, "job-resigned", p.signer)
	a := good.Attestations[provenance.StageIndex(provenance.StageExecution)]
	_, payload, _ := provenance.ParseEnvelope(a.Envelope)
	env, err := provenance.SignEnvelope(ctx, p.operator, provenance.PayloadTypeInToto, payload)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := p.log.Upload(ctx, env, p.operator.PublicPEM())
	if err != nil {
		t.Fatal(err)
	}
	a.Envelope, a.Digest, a.SignerPublicKey, a.Entry = env, provenance.Digest(env), string(p.operator.PublicPEM()), entry
	rep, err := provenance.Verify(ctx, good, p.trust, provenance.VerifyOptions{Parties: true})
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("re-signed execution: error %v lacks %q", err, want)
	}
	if got := signerProblems(rep); len(got) != 1 {
		t.Fatalf("re-signed execution: signer problems %v, want execution only", got)
	}
}

func TestProviderKeyForAnotherProviderFails(t *testing.T) {
	ctx := context.Background()
	p := newParties(t)
	other, err := provenance.GenerateKey(provenance.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.trust.Add(other.PublicPEM(), "other", provenance.ProviderScope("other")); err != nil {
		t.Fatal(err)
	}
	// prov-a was awarded; a key of provider "other" signs its stages.
	r := p.recordBy(t, "job-other", func(stage string) *provenance.Key {
		if stage == provenance.StagePlacement || stage == provenance.StageExecution {
			return other
		}
		return p.signer(stage)
	})
	for _, parties := range []bool{false, true} {
		rep, err := provenance.Verify(ctx, r, p.trust, provenance.VerifyOptions{Parties: parties})
		if err == nil {
			t.Fatalf("parties=%v: another provider's key accepted", parties)
		}
		got := signerProblems(rep)
		for _, stage := range []string{provenance.StagePlacement, provenance.StageExecution} {
			want := "stage " + stage + ": signer: must be signed by provider:prov-a, signed by key " + other.ID() + " (provider:other)"
			if got[stage] != want {
				t.Errorf("parties=%v: %s: got %q, want %q", parties, stage, got[stage], want)
			}
		}
		if len(got) != 2 || len(rep.Problems) != 2 {
			t.Errorf("parties=%v: problems %v, want the two provider stages only", parties, rep.Problems)
		}
	}
	// Nor may a provider's key sign the operator's stages.
	r = p.recordBy(t, "job-provider-settles", func(stage string) *provenance.Key {
		if stage == provenance.StageSettlement {
			return p.provider
		}
		return p.signer(stage)
	})
	_, err = provenance.Verify(ctx, r, p.trust, provenance.VerifyOptions{})
	want := "stage settlement: signer: must be signed by operator, signed by key " + p.provider.ID() + " (provider:prov-a)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("provider-signed settlement: %v, want %q", err, want)
	}
	// A key trusted only for a log or for specs signs no stage at all.
	logish, _ := provenance.GenerateKey("")
	if _, err := p.trust.Add(logish.PublicPEM(), "specs", "spec:acme"); err != nil {
		t.Fatal(err)
	}
	r = p.recordBy(t, "job-spec-key", func(stage string) *provenance.Key {
		if stage == provenance.StageAdmission {
			return logish
		}
		return p.signer(stage)
	})
	_, err = provenance.Verify(ctx, r, p.trust, provenance.VerifyOptions{})
	want = "stage admission: signature: envelope signed by key " + logish.ID() + ", which is not trusted to sign stages (spec:acme)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("spec key signing admission: %v, want %q", err, want)
	}
}

func TestLegacyStageKeyAndParties(t *testing.T) {
	ctx := context.Background()
	p := newParties(t)
	// The single-process Accord: the env's one worker key, trusted for
	// "stage", signs every stage.
	p.recordJob(t, "job-legacy", nil)
	r := p.receipt(t, "job-legacy")
	rep, err := provenance.Verify(ctx, clone(t, r), p.trust, provenance.VerifyOptions{})
	if err != nil {
		t.Fatalf("legacy receipt without Parties: %v", err)
	}
	for _, s := range rep.Stages {
		if s.Party != provenance.ScopeStage {
			t.Fatalf("legacy stage %s party %q, want stage", s.Stage, s.Party)
		}
	}
	rep, err = provenance.Verify(ctx, clone(t, r), p.trust, provenance.VerifyOptions{Parties: true})
	if !errors.Is(err, provenance.ErrAudit) {
		t.Fatalf("legacy receipt with Parties: %v", err)
	}
	got := signerProblems(rep)
	must := map[string]string{
		provenance.StageSpec: "operator", provenance.StageAdmission: "operator", provenance.StageNegotiation: "operator",
		provenance.StagePlacement: "provider:prov-a", provenance.StageExecution: "provider:prov-a",
		provenance.StageVerification: "verifier or operator", provenance.StageSettlement: "operator",
	}
	for _, stage := range provenance.Stages {
		want := "stage " + stage + ": signer: must be signed by " + must[stage] + ", signed by key " + p.key.ID() + " (stage)"
		if got[stage] != want {
			t.Errorf("%s: got %q, want %q", stage, got[stage], want)
		}
	}
	if len(rep.Problems) != len(provenance.Stages) {
		t.Errorf("problems %v, want one signer problem per stage", rep.Problems)
	}
	// A key trusted for its party and for "stage" still passes with Parties
	// on the strength of its party scope.
	if _, err := p.trust.Add(p.key.PublicPEM(), "", provenance.ScopeOperator, provenance.ProviderScope(awarded), provenance.ScopeVerifier); err != nil {
		t.Fatal(err)
	}
	if _, err := provenance.Verify(ctx, clone(t, r), p.trust, provenance.VerifyOptions{Parties: true}); err != nil {
		t.Fatalf("a key trusted for every party: %v", err)
	}
}

func TestPartyWithoutAward(t *testing.T) {
	ctx := context.Background()
	p := newParties(t)
	// A negotiation that names no provider: no provider key can answer for
	// placement or execution; the legacy stage key still can.
	noAward := func(stage string, pred map[string]any) {
		if stage == provenance.StageNegotiation {
			delete(pred, "provider")
		}
	}
	for _, s := range stagePredicates("job-no-award") {
		noAward(s.stage, s.pred)
		b, _ := json.Marshal(s.pred)
		if _, err := p.recs[p.signer(s.stage)].Attest(ctx, provenance.AttestRequest{JobID: "job-no-award", Stage: s.stage, Subjects: s.subjects, Predicate: b}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := provenance.Verify(ctx, p.receipt(t, "job-no-award"), p.trust, provenance.VerifyOptions{})
	want := "stage execution: signer: must be signed by the provider the negotiation awarded (the negotiation names none), signed by key " + p.provider.ID() + " (provider:prov-a)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("no award: %v, want %q", err, want)
	}
}

func TestStageSigners(t *testing.T) {
	for _, c := range []struct {
		stage, provider string
		want            []string
	}{
		{provenance.StageSpec, "p", []string{"operator"}},
		{provenance.StageSettlement, "", []string{"operator"}},
		{provenance.StagePlacement, "gpu-east", []string{"provider:gpu-east"}},
		{provenance.StageExecution, "gpu-east", []string{"provider:gpu-east"}},
		{provenance.StageExecution, "", nil},
		{provenance.StageExecution, "GPU east", nil},
		{provenance.StageVerification, "p", []string{"verifier", "operator"}},
		{"bogus", "p", nil},
	} {
		if got := provenance.StageSigners(c.stage, c.provider); strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("StageSigners(%q, %q) = %v, want %v", c.stage, c.provider, got, c.want)
		}
	}
}

func TestTrustScopes(t *testing.T) {
	ts := provenance.NewTrustStore()
	k, _ := provenance.GenerateKey("")
	for _, s := range []string{"operator", "verifier", "stage", "log", "spec:acme", "spec:*", "provider:gpu-east", "provider:local"} {
		if _, err := ts.Add(k.PublicPEM(), "", s); err != nil {
			t.Errorf("scope %q refused: %v", s, err)
		}
	}
	for _, s := range []string{"provider:", "provider:*", "provider:GPU", "provider:a b", "provider:" + strings.Repeat("p", 64), "operators", "Operator", "verifier:x", "provider"} {
		if _, err := ts.Add(k.PublicPEM(), "", s); err == nil {
			t.Errorf("scope %q accepted", s)
		}
	}
	if !provenance.StageSigningScope("provider:gpu-east") || provenance.StageSigningScope("log") || provenance.StageSigningScope("spec:*") || provenance.StageSigningScope("provider:*") {
		t.Error("StageSigningScope")
	}
	// StageKeys: keys that may sign some stage, and no others.
	ts2 := provenance.NewTrustStore()
	logKey, _ := provenance.GenerateKey("")
	ts2.Add(logKey.PublicPEM(), "", "log", "spec:*")
	if n := len(ts2.StageKeys()); n != 0 {
		t.Fatalf("StageKeys with only a log and spec key: %d", n)
	}
	ts2.Add(k.PublicPEM(), "", "provider:gpu-east")
	if n := len(ts2.StageKeys()); n != 1 {
		t.Fatalf("StageKeys: %d, want 1", n)
	}
}

package provenance

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/accordmesh/accord/provenance/predicate"
)

// spotFixture is a receipt whose execution envelope the spot-check runs
// follow, a trust store with providers gpu-b and gpu-c, and their keys.
type spotFixture struct {
	r       *Receipt
	trust   *TrustStore
	keys    map[string]*Key
	execEnv []byte
}

func newSpotFixture(t *testing.T) *spotFixture {
	t.Helper()
	f := &spotFixture{trust: NewTrustStore(), keys: map[string]*Key{}}
	for _, p := range []string{"gpu-a", "gpu-b", "gpu-c"} {
		k, err := GenerateKey("")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.trust.Add(k.PublicPEM(), p, ProviderScope(p)); err != nil {
			t.Fatal(err)
		}
		f.keys[p] = k
	}
	f.execEnv = []byte(`{"payload":"execution"}`)
	f.r = &Receipt{JobID: "job-1", Attestations: []*Attestation{{Stage: StageExecution, Envelope: f.execEnv}}}
	return f
}

func hex64(c string) string { return strings.Repeat(c, 64) }

// spotRunOf is a run of role by provider whose one output hashes to sum.
func spotRunOf(role, provider, sum string) predicate.SpotRun {
	r := predicate.SpotRun{Role: role, Provider: provider,
		Outputs: map[string][]predicate.OutputArtifact{"train": {{Path: "m.json", SHA256: sum}}}}
	r.OutputsDigest = predicate.OutputsDigest(r.Outputs)
	return r
}

// sign has signer sign run r's execution statement as a checker does.
func (f *spotFixture) sign(t *testing.T, signer string, r predicate.SpotRun, edit func(*predicate.Execution, *[]Subject)) json.RawMessage {
	t.Helper()
	ex := predicate.Execution{Header: predicate.Header{JobID: "job-1"}, Provider: r.Provider, SpotRole: r.Role}
	subjects := []Subject{{Name: "train:m.json", Digest: "sha256:" + r.Outputs["train"][0].SHA256}}
	if edit != nil {
		edit(&ex, &subjects)
	}
	pred, _ := json.Marshal(ex)
	payload, err := BuildStatement(Header{JobID: "job-1", Stage: StageExecution, Previous: Digest(f.execEnv)}, subjects, pred)
	if err != nil {
		t.Fatal(err)
	}
	env, err := SignEnvelope(context.Background(), f.keys[signer], PayloadTypeInToto, payload)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// problems audits sc alone and returns its problems as strings.
func (f *spotFixture) problems(sc *predicate.SpotCheck, parties bool) []string {
	a := &auditor{ctx: context.Background(), r: f.r, trust: f.trust, rep: &Report{JobID: "job-1", Parties: parties}}
	a.stageKeys = f.trust.StageKeys()
	primary := map[string]string{}
	for _, r := range sc.Runs {
		if r.Role == predicate.SpotPrimary {
			primary = runOutputs(r)
		}
	}
	a.spotCheck(sc, primary, true)
	var out []string
	for _, p := range a.rep.Problems {
		out = append(out, p.String())
	}
	return out
}

func TestAuditSpotCheck(t *testing.T) {
	f := newSpotFixture(t)
	good := func() *predicate.SpotCheck {
		p, c := spotRunOf(predicate.SpotPrimary, "gpu-a", hex64("a")), spotRunOf(predicate.SpotCheckRun, "gpu-b", hex64("a"))
		c.Signed = f.sign(t, "gpu-b", c, nil)
		return &predicate.SpotCheck{Verdict: predicate.SpotAgree, Majority: p.OutputsDigest, Paid: "gpu-a",
			Runs: []predicate.SpotRun{p, c}}
	}
	for _, parties := range []bool{false, true} {
		if ps := f.problems(good(), parties); len(ps) != 0 {
			t.Errorf("parties=%v: a signed, agreeing check: %v", parties, ps)
		}
	}
	for _, tc := range []struct {
		name    string
		edit    func(sc *predicate.SpotCheck)
		parties bool
		want    string
	}{
		{"unsigned under parties", func(sc *predicate.SpotCheck) { sc.Runs[1].Signed = nil }, true,
			"not signed by its provider: must be signed by provider:gpu-b"},
		{"signed by another provider", func(sc *predicate.SpotCheck) { sc.Runs[1].Signed = f.sign(t, "gpu-c", sc.Runs[1], nil) }, false,
			"must be signed by provider:gpu-b"},
		{"altered envelope", func(sc *predicate.SpotCheck) {
			var env map[string]any
			_ = json.Unmarshal(sc.Runs[1].Signed, &env)
			env["payload"] = "e30=" // "{}": the signature no longer covers it
			sc.Runs[1].Signed, _ = json.Marshal(env)
		}, false, "does not verify"},
		{"other outputs signed", func(sc *predicate.SpotCheck) {
			sc.Runs[1].Signed = f.sign(t, "gpu-b", sc.Runs[1], func(_ *predicate.Execution, s *[]Subject) {
				(*s)[0].Digest = "sha256:" + hex64("f")
			})
		}, false, "the provider signed other outputs"},
		{"the job's execution re-labelled", func(sc *predicate.SpotCheck) {
			sc.Runs[1].Signed = f.sign(t, "gpu-b", sc.Runs[1], func(ex *predicate.Execution, _ *[]Subject) { ex.SpotRole = "" })
		}, false, `signed statement is the "" run`},
		{"digest not of the outputs", func(sc *predicate.SpotCheck) { sc.Runs[1].OutputsDigest = "sha256:00" }, false,
			"its outputs hash to"},
		{"verdict against the digests", func(sc *predicate.SpotCheck) {
			sc.Runs[1] = spotRunOf(predicate.SpotCheckRun, "gpu-b", hex64("b"))
			sc.Runs[1].Signed = f.sign(t, "gpu-b", sc.Runs[1], nil)
		}, false, `verdict "agree": the check run does not agree`},
	} {
		sc := good()
		tc.edit(sc)
		ps := f.problems(sc, tc.parties)
		if !strings.Contains(strings.Join(ps, "\n"), tc.want) {
			t.Errorf("%s: problems %v, want one containing %q", tc.name, ps, tc.want)
		}
	}
}

func TestSpotVerdictProblem(t *testing.T) {
	p, c, x := spotRunOf(predicate.SpotPrimary, "a", hex64("a")), spotRunOf(predicate.SpotCheckRun, "b", hex64("b")), spotRunOf(predicate.SpotTiebreak, "c", hex64("b"))
	sc := &predicate.SpotCheck{Verdict: predicate.SpotReversed, Majority: c.OutputsDigest, Runs: []predicate.SpotRun{p, c, x}}
	if why := spotVerdictProblem(sc); why != "" {
		t.Errorf("reversed: %s", why)
	}
	sc.Verdict, sc.Majority = predicate.SpotUpheld, p.OutputsDigest
	if why := spotVerdictProblem(sc); why == "" {
		t.Error("upheld with the tiebreak siding with the check: no problem found")
	}
	sc.Verdict = predicate.SpotNoQuorum
	if why := spotVerdictProblem(sc); why != "" {
		t.Errorf("no quorum: %s", why)
	}
}

package provenance_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/predicate"
)

const (
	prepDigest  = "1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988"
	trainDigest = outDigest
)

// splitPart is one provider's signed part as a test draws it: who it is
// for, who signs it, and what its statement says where a case changes it.
type splitPart struct {
	provider string
	tasks    []string
	signer   *provenance.Key
	// Overrides of the statement the provider would sign (nil: as the
	// workflow makes it).
	partTasks []string
	subjects  []provenance.Subject
	previous  string
	// alter changes the signed envelope (nil: kept as signed).
	alter func(env []byte) []byte
}

// splitJob is a split job's stages before they are recorded: prov-a runs
// prep, prov-b runs train (job layout 10).
type splitJob struct {
	id      string
	spec    predicate.Spec
	neg     predicate.Negotiation
	pl      predicate.Placement
	ex      predicate.Execution
	ver     predicate.Verification
	set     predicate.Settlement
	rec     predicate.SettlementRecord
	plParts []splitPart
	exParts []splitPart
	// signers override who signs a stage (default: the operator, the
	// verifier for verification).
	signers map[string]*provenance.Key
}

// splitParties are the parties of a split job: the operator, prov-a, prov-b
// and prov-c (a replacement), the verifier.
type splitParties struct {
	*parties
	keys map[string]*provenance.Key // provider -> key
}

func newSplitParties(t *testing.T) *splitParties {
	t.Helper()
	p := &splitParties{parties: newParties(t), keys: map[string]*provenance.Key{awarded: nil}}
	p.keys[awarded] = p.provider
	for _, name := range []string{"prov-b", "prov-c"} {
		k, err := provenance.GenerateKey(provenance.AlgEd25519)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.trust.Add(k.PublicPEM(), name, provenance.ProviderScope(name)); err != nil {
			t.Fatal(err)
		}
		p.keys[name] = k
	}
	return p
}

func usage(wall, cpu float64) predicate.Usage {
	return predicate.Usage{WallSeconds: wall, CPUSeconds: cpu}
}

// goodSplit is a consistent two-part job.
func (p *splitParties) goodSplit(id string) *splitJob {
	doc := provenance.Digest([]byte("# spec " + id))
	run := func(task, out, sum string, u predicate.Usage) predicate.TaskRun {
		return predicate.TaskRun{State: "succeeded", Attempt: 1, RunID: id + "." + task + ".1", ImageDigest: provenance.Digest([]byte("image")),
			Outputs: []predicate.OutputArtifact{{Path: out, SHA256: sum, Size: 10}}, Usage: u}
	}
	rates := predicate.Rates{WallPerHour: 3600, CPUPerHour: 7200}
	j := &splitJob{
		id:   id,
		spec: predicate.Spec{Name: "split", Version: "1", Tenant: "acme", DocumentDigest: doc, Tasks: []string{"prep", "train"}, MaxCost: 5000, Currency: "EUR"},
		neg: predicate.Negotiation{Provider: "prov-a", Price: 1200, Currency: "EUR", Parts: []predicate.Part{
			{Provider: "prov-a", Pool: "cpu", Runtime: "containerd", Tasks: []string{"prep"}, Price: 700},
			{Provider: "prov-b", Pool: "gpu", Runtime: "containerd", Tasks: []string{"train"}, Price: 500},
		}},
		pl: predicate.Placement{Provider: "prov-a", HoldID: "h1", Held: 1500, Currency: "EUR"},
		ex: predicate.Execution{Provider: "prov-a", Runtime: "containerd", Tasks: map[string]predicate.TaskRun{
			"prep":  run("prep", "data.bin", prepDigest, usage(4, 2)),
			"train": run("train", "model.json", trainDigest, usage(10.5, 8.25)),
		}},
		ver: predicate.Verification{Passed: true, Tests: []predicate.TestResult{{Name: "accuracy", Passed: true}}},
		set: predicate.Settlement{Paid: 1236, Refunded: 264, Currency: "EUR"},
		rec: predicate.SettlementRecord{Provider: "prov-a", Currency: "EUR", Held: 1500,
			Metered: predicate.MeteredCharges{Wall: 15, CPU: 21, Total: 36},
			Usage:   &predicate.MeteredUsage{WallMillis: 14500, CPUMillis: 10250},
			Charge:  1236, Payable: 1236, ProviderPay: 1104, PlatformFee: 122, Refund: 264,
			Royalties: []predicate.Royalty{{Account: "model-owner", Amount: 10}},
			Parts: []predicate.SettlementPart{
				{Provider: "prov-a", Price: 700, Usage: predicate.MeteredUsage{WallMillis: 4000, CPUMillis: 2000}, Rates: rates,
					Metered: predicate.MeteredCharges{Wall: 4, CPU: 4, Total: 8}, Charge: 708, Payable: 708, ProviderPay: 638, PlatformFee: 70},
				{Provider: "prov-b", Price: 500, Usage: predicate.MeteredUsage{WallMillis: 10500, CPUMillis: 8250}, Rates: rates,
					Metered: predicate.MeteredCharges{Wall: 11, CPU: 17, Total: 28}, Charge: 528, Payable: 528, ProviderPay: 466, PlatformFee: 52,
					Royalties: []predicate.Royalty{{Account: "model-owner", Amount: 10}}},
			}},
	}
	for _, part := range j.neg.Parts {
		j.plParts = append(j.plParts, splitPart{provider: part.Provider, tasks: part.Tasks, signer: p.keys[part.Provider]})
		j.exParts = append(j.exParts, splitPart{provider: part.Provider, tasks: part.Tasks, signer: p.keys[part.Provider]})
	}
	return j
}

// outputs are the execution's output subjects of tasks.
func (j *splitJob) outputs(tasks ...string) []provenance.Subject {
	var out []provenance.Subject
	for _, t := range tasks {
		for _, o := range j.ex.Tasks[t].Outputs {
			out = append(out, provenance.Subject{Name: t + ":" + o.Path, Digest: "sha256:" + o.SHA256})
		}
	}
	return out
}

// predicateOf is pred's JSON for job id (the header's job_id set; the
// statement builder sets the other header fields).
func predicateOf(t *testing.T, id string, pred any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(pred)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["job_id"] = id
	b, _ = json.Marshal(m)
	return b
}

// header is the header of the statement a recorded attestation carries.
func header(t *testing.T, a *provenance.Attestation) provenance.Header {
	t.Helper()
	_, payload, err := provenance.ParseEnvelope(a.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	st, err := provenance.ParseStatement(payload)
	if err != nil {
		t.Fatal(err)
	}
	h, err := st.Header()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// signPart signs a part's statement of stage as its provider would.
func (j *splitJob) signPart(t *testing.T, stage string, h provenance.Header, sp splitPart) predicate.SignedPart {
	t.Helper()
	partTasks := sp.tasks
	if sp.partTasks != nil {
		partTasks = sp.partTasks
	}
	var pred any
	subjects := sp.subjects
	switch stage {
	case provenance.StagePlacement:
		pred = predicate.Placement{Provider: sp.provider, PartTasks: partTasks, HoldID: j.pl.HoldID, Held: j.pl.Held, Currency: j.pl.Currency}
	case provenance.StageExecution:
		runs := map[string]predicate.TaskRun{}
		for _, task := range partTasks {
			runs[task] = j.ex.Tasks[task]
		}
		pred = predicate.Execution{Provider: sp.provider, Runtime: "containerd", PartTasks: partTasks, Tasks: runs}
		if subjects == nil {
			subjects = j.outputs(partTasks...)
		}
	}
	if sp.previous != "" {
		h.Previous = sp.previous
	}
	payload, err := provenance.BuildStatement(provenance.Header{JobID: j.id, Stage: stage, Previous: h.Previous, SpecDigest: h.SpecDigest}, subjects, predicateOf(t, j.id, pred))
	if err != nil {
		t.Fatal(err)
	}
	env, err := provenance.SignEnvelope(context.Background(), sp.signer, provenance.PayloadTypeInToto, payload)
	if err != nil {
		t.Fatal(err)
	}
	if sp.alter != nil {
		env = sp.alter(env)
	}
	return predicate.SignedPart{Provider: sp.provider, Tasks: sp.tasks, Envelope: env}
}

// record attests j: the operator's stages, each with its providers' signed
// parts, and the verifier's verification.
func (p *splitParties) record(t *testing.T, j *splitJob) *provenance.Receipt {
	t.Helper()
	ctx := context.Background()
	var prev *provenance.Attestation
	attest := func(stage string, by *provenance.Key, subjects []provenance.Subject, pred any) {
		t.Helper()
		if k := j.signers[stage]; k != nil {
			by = k
		}
		if p.recs[by] == nil {
			p.recs[by] = provenance.NewRecorder(p.log, by, p.store)
		}
		a, err := p.recs[by].Attest(ctx, provenance.AttestRequest{JobID: j.id, Stage: stage, Subjects: subjects, Predicate: predicateOf(t, j.id, pred)})
		if err != nil {
			t.Fatalf("attest %s: %v", stage, err)
		}
		prev = a
	}
	// The header a stage recorded next will carry.
	next := func() provenance.Header {
		h := header(t, prev)
		return provenance.Header{Previous: prev.Digest, SpecDigest: h.SpecDigest}
	}
	attest(provenance.StageSpec, p.operator, []provenance.Subject{{Name: "split", Digest: j.spec.DocumentDigest}}, j.spec)
	attest(provenance.StageAdmission, p.operator, nil, predicate.Admission{Allowed: true, Reason: "all policies passed"})
	attest(provenance.StageNegotiation, p.operator, nil, j.neg)
	h := next()
	j.pl.Parts = nil
	for _, sp := range j.plParts {
		j.pl.Parts = append(j.pl.Parts, j.signPart(t, provenance.StagePlacement, h, sp))
	}
	attest(provenance.StagePlacement, p.operator, nil, j.pl)
	h = next()
	j.ex.Parts = nil
	for _, sp := range j.exParts {
		j.ex.Parts = append(j.ex.Parts, j.signPart(t, provenance.StageExecution, h, sp))
	}
	all := j.outputs("prep", "train")
	attest(provenance.StageExecution, p.operator, all, j.ex)
	attest(provenance.StageVerification, p.verifier, all, j.ver)
	rec, err := json.Marshal(j.rec)
	if err != nil {
		t.Fatal(err)
	}
	j.set.Record = rec
	attest(provenance.StageSettlement, p.operator, nil, j.set)
	return p.receipt(t, j.id)
}

func TestSplitJobVerifies(t *testing.T) {
	ctx := context.Background()
	p := newSplitParties(t)
	r := p.record(t, p.goodSplit("job-split"))
	for _, parties := range []bool{false, true} {
		rep, err := provenance.Verify(ctx, clone(t, r), p.trust, provenance.VerifyOptions{Parties: parties})
		if err != nil {
			t.Fatalf("parties=%v: %v", parties, err)
		}
		if !rep.OK || !rep.Complete {
			t.Fatalf("parties=%v: report %+v", parties, rep)
		}
		for _, s := range rep.Stages {
			want := map[string]string{provenance.StageVerification: provenance.ScopeVerifier}[s.Stage]
			if want == "" {
				want = provenance.ScopeOperator
			}
			if s.Party != want {
				t.Errorf("parties=%v: stage %s party %q, want %q", parties, s.Stage, s.Party, want)
			}
			split := s.Stage == provenance.StagePlacement || s.Stage == provenance.StageExecution
			if !split {
				if len(s.Parts) != 0 {
					t.Errorf("stage %s reports parts %+v", s.Stage, s.Parts)
				}
				continue
			}
			if len(s.Parts) != 2 {
				t.Fatalf("stage %s parts %+v, want 2", s.Stage, s.Parts)
			}
			for i, prov := range []string{"prov-a", "prov-b"} {
				pr := s.Parts[i]
				if pr.Provider != prov || pr.Party != provenance.ProviderScope(prov) || pr.KeyID != p.keys[prov].ID() || !provenance.ValidDigest(pr.Digest) {
					t.Errorf("stage %s part %d: %+v, want %s signed by %s", s.Stage, i+1, pr, prov, p.keys[prov].ID())
				}
			}
		}
	}
	rep, _ := provenance.Verify(ctx, r, p.trust, provenance.VerifyOptions{Parties: true})
	b, _ := json.Marshal(rep)
	if !strings.Contains(string(b), `"parts":[{"provider":"prov-a","tasks":["prep"]`) || !strings.Contains(string(b), `"party":"provider:prov-b"`) {
		t.Errorf("report JSON lacks the parts: %s", b)
	}
}

// A part failover (Failover.Tasks) moves only that part: prov-c replaces
// prov-b for train, signs its execution part, and is paid its price.
func TestSplitJobPartFailover(t *testing.T) {
	p := newSplitParties(t)
	j := p.goodSplit("job-split-failover")
	j.failoverTrain()
	j.exParts[1].provider, j.exParts[1].signer = "prov-c", p.keys["prov-c"]
	r := p.record(t, j)
	rep, err := provenance.Verify(context.Background(), r, p.trust, provenance.VerifyOptions{Parties: true})
	if err != nil {
		t.Fatal(err)
	}
	ex := rep.Stages[provenance.StageIndex(provenance.StageExecution)]
	if len(ex.Parts) != 2 || ex.Parts[1].Party != "provider:prov-c" {
		t.Fatalf("execution parts %+v, want the second signed by prov-c", ex.Parts)
	}
	// The placement parts stay the negotiated ones.
	if pl := rep.Stages[provenance.StageIndex(provenance.StagePlacement)]; pl.Parts[1].Party != "provider:prov-b" {
		t.Fatalf("placement parts %+v", pl.Parts)
	}
}

// A part whose provider was lost before it accepted (job layout 11) is
// placed with its replacement: the placement names the failover, the
// replacement signs the placement part, and the execution's failovers
// begin with it. A placement part still the lost provider's, or an
// execution that leaves the failover out, fails.
func TestSplitJobPlacementFailover(t *testing.T) {
	p := newSplitParties(t)
	moved := func(id string) *splitJob {
		j := p.goodSplit(id)
		j.failoverTrain()
		j.pl.Failovers = j.ex.Failovers
		j.plParts[1].provider, j.plParts[1].signer = "prov-c", p.keys["prov-c"]
		j.exParts[1].provider, j.exParts[1].signer = "prov-c", p.keys["prov-c"]
		return j
	}
	rep, err := provenance.Verify(context.Background(), p.record(t, moved("job-split-placed")), p.trust, provenance.VerifyOptions{Parties: true})
	if err != nil {
		t.Fatal(err)
	}
	if pl := rep.Stages[provenance.StageIndex(provenance.StagePlacement)]; len(pl.Parts) != 2 || pl.Parts[1].Party != "provider:prov-c" {
		t.Fatalf("placement parts %+v, want the second signed by prov-c", pl.Parts)
	}
	for _, tc := range []struct {
		name string
		edit func(j *splitJob)
		want string
	}{
		{"accepted by the lost provider", func(j *splitJob) {
			j.plParts[1].provider, j.plParts[1].signer = "prov-b", p.keys["prov-b"]
		}, `placement part 2 (prov-b): its tasks [train] are provider "prov-c"'s part`},
		{"the execution leaves the failover out", func(j *splitJob) {
			j.ex.Failovers = []predicate.Failover{{Lost: "prov-b", Provider: "prov-c", Price: 450, Currency: "EUR", Reason: "other", Tasks: []string{"train"}}}
		}, "the execution's failovers do not begin with the 1 the placement names"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := moved("job-split-placed-" + strings.ReplaceAll(tc.name, " ", "-"))
			tc.edit(j)
			_, err := provenance.Verify(context.Background(), p.record(t, j), p.trust, provenance.VerifyOptions{Parties: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

// failoverTrain loses prov-b while it runs train: prov-c takes the part
// over at 450 and is settled for it.
func (j *splitJob) failoverTrain() {
	j.ex.Failovers = []predicate.Failover{{Lost: "prov-b", Provider: "prov-c", Price: 450, Currency: "EUR", Reason: "node lost", Tasks: []string{"train"}}}
	sp := &j.rec.Parts[1]
	sp.Provider, sp.Price, sp.Charge, sp.Payable, sp.ProviderPay, sp.PlatformFee = "prov-c", 450, 478, 478, 421, 47
	j.rec.Charge, j.rec.Payable, j.rec.ProviderPay, j.rec.PlatformFee, j.rec.Refund = 1186, 1186, 1059, 117, 314
	j.set.Paid, j.set.Refunded = 1186, 314
}

func TestSplitJobTampered(t *testing.T) {
	ctx := context.Background()
	p := newSplitParties(t)
	for _, tc := range []struct {
		name  string
		edit  func(j *splitJob)
		stage string
		want  []string // substrings of the stage's problems
		also  []string // other stages the tampering shows in
	}{
		{"a part signed by the operator", func(j *splitJob) { j.exParts[1].signer = p.operator }, provenance.StageExecution,
			[]string{"signer: execution part 2 (prov-b): signed by operator, must be signed by provider prov-b (signer key " + p.operator.ID() + ")"}, nil},
		{"a part signed by the other provider", func(j *splitJob) { j.plParts[1].signer = p.keys["prov-a"] }, provenance.StagePlacement,
			[]string{"signer: placement part 2 (prov-b): signed by provider:prov-a, must be signed by provider prov-b"}, nil},
		{"a part's envelope altered", func(j *splitJob) {
			j.plParts[0].alter = func(env []byte) []byte {
				var m map[string]any
				_ = json.Unmarshal(env, &m)
				m["payload"] = "e30=" // "{}": the signature no longer covers it
				b, _ := json.Marshal(m)
				return b
			}
		}, provenance.StagePlacement, []string{"signature: placement part 1 (prov-a): envelope signature does not verify with any trusted stage key"}, nil},
		{"a part's envelope not an envelope", func(j *splitJob) {
			j.exParts[1].alter = func([]byte) []byte { return []byte(`"signed"`) }
		}, provenance.StageExecution, []string{"envelope: execution part 2 (prov-b): "}, nil},
		{"a part whose part tasks differ", func(j *splitJob) { j.exParts[0].partTasks = []string{"prep", "train"} }, provenance.StageExecution,
			[]string{"parts: execution part 1 (prov-a): the statement's part tasks [prep train], the execution statement lists [prep]",
				"parts: execution part 1 (prov-a): runs of tasks [prep train], the part's tasks are [prep]"}, nil},
		{"a missing part", func(j *splitJob) { j.exParts = j.exParts[:1] }, provenance.StageExecution,
			[]string{"parts: part 2 (prov-b, tasks [train]) missing: no signed execution part has its tasks"}, nil},
		{"a placement part for other tasks", func(j *splitJob) { j.plParts[1].tasks = []string{"eval"} }, provenance.StagePlacement,
			[]string{"parts: part 2 (prov-b, tasks [train]) missing", "placement part 2 (prov-b): tasks [eval] are not a part the negotiation awarded"}, nil},
		{"a part's outputs swapped", func(j *splitJob) {
			j.exParts[0].subjects, j.exParts[1].subjects = j.outputs("train"), j.outputs("prep")
		}, provenance.StageExecution, []string{
			"outputs: execution part 1 (prov-a): subjects do not match its tasks' outputs: prep:data.bin missing; unexpected train:model.json",
			"outputs: execution part 2 (prov-b): subjects do not match its tasks' outputs: train:model.json missing; unexpected prep:data.bin"}, nil},
		{"a part's output digest changed", func(j *splitJob) {
			j.exParts[1].subjects = []provenance.Subject{{Name: "train:model.json", Digest: "sha256:" + prepDigest}}
		}, provenance.StageExecution, []string{"execution part 2 (prov-b): subjects do not match its tasks' outputs: train:model.json is sha256:" + prepDigest}, nil},
		{"a part's previous wrong", func(j *splitJob) { j.exParts[0].previous = provenance.Digest([]byte("elsewhere")) }, provenance.StageExecution,
			[]string{"chain: execution part 1 (prov-a): previous digest " + provenance.Digest([]byte("elsewhere")) + ", the execution statement's is sha256:"}, nil},
		{"negotiation price not the parts' sum", func(j *splitJob) { j.neg.Price = 1300 }, provenance.StageNegotiation,
			[]string{"amounts: price 1300, the parts' prices sum to 1200"}, nil},
		{"parts that do not partition the tasks", func(j *splitJob) {
			j.neg.Parts[1].Tasks = []string{"prep"}
		}, provenance.StageNegotiation, []string{`task "prep" is in parts 1 and 2`, `task "train" is in no part`},
			[]string{provenance.StagePlacement, provenance.StageExecution, provenance.StageSettlement}},
		{"one provider with two parts", func(j *splitJob) { j.neg.Parts[1].Provider = "prov-a" }, provenance.StageNegotiation,
			[]string{"part 2 (prov-a): provider also has part 1"},
			[]string{provenance.StagePlacement, provenance.StageExecution, provenance.StageSettlement}},
		{"a failover moving a part", func(j *splitJob) {
			j.ex.Failovers = []predicate.Failover{{Lost: "prov-a", Provider: "prov-c", Price: 450, Tasks: []string{"train"}}}
		}, provenance.StageExecution, []string{`failover: failover 1 abandons provider "prov-a", the part with tasks [train] was on "prov-b"`}, nil},
		{"a failover the execution parts ignore", func(j *splitJob) { j.failoverTrain() }, provenance.StageExecution, []string{`execution part 2 (prov-b): its tasks [train] are provider "prov-c"'s part`}, nil},
		{"settlement parts not adding up", func(j *splitJob) {
			j.rec.ProviderPay, j.rec.PlatformFee = 1110, 116
		}, provenance.StageSettlement, []string{"amounts: provider pay 1110, the parts' sum is 1104", "amounts: platform fee 116, the parts' sum is 122"}, nil},
		{"settlement royalties not the parts'", func(j *splitJob) {
			j.rec.ProviderPay, j.rec.Royalties = 1102, []predicate.Royalty{{Account: "model-owner", Amount: 12}}
		}, provenance.StageSettlement, []string{"amounts: royalties to model-owner: 12, the parts' sum is 10", "provider pay 1102, the parts' sum is 1104"}, nil},
		{"settlement usage not the parts'", func(j *splitJob) { j.rec.Usage.WallMillis = 15000 }, provenance.StageSettlement,
			[]string{"amounts: record usage {WallMillis:15000 CPUMillis:10250 MemGBMillis:0 GPUMillis:0}, the parts' usage sums to {WallMillis:14500"}, nil},
		{"a settled part's split not its payable", func(j *splitJob) {
			j.rec.Parts[1].ProviderPay, j.rec.ProviderPay = 470, 1108
		}, provenance.StageSettlement, []string{"amounts: part 2 (prov-b): provider 470 + fee 52 + royalties 10 = 532, payable 528"}, nil},
		{"a settled part at another price", func(j *splitJob) {
			p := &j.rec.Parts[0]
			p.Price, p.Charge, p.Payable, p.ProviderPay = 750, 758, 758, 688
			j.rec.Charge, j.rec.Payable, j.rec.ProviderPay, j.rec.Refund = 1286, 1286, 1154, 214
			j.set.Paid, j.set.Refunded = 1286, 214
		}, provenance.StageSettlement, []string{"part 1 (prov-a): price 750, its part's price is 700", "charge 1286, negotiated price 1200 + metered 36"}, nil},
		{"a settled part billing usage its tasks did not measure", func(j *splitJob) {
			p := &j.rec.Parts[0]
			p.Usage.WallMillis, p.Metered.Wall, p.Metered.Total = 10500, 11, 15
			p.Charge, p.Payable, p.ProviderPay = 715, 715, 645
			j.rec.Metered.Wall, j.rec.Metered.Total = 22, 43
			j.rec.Charge, j.rec.Payable, j.rec.ProviderPay, j.rec.Refund = 1243, 1243, 1111, 257
			j.rec.Usage.WallMillis = 21000
			j.set.Paid, j.set.Refunded = 1243, 257
		}, provenance.StageSettlement, []string{"part 1 (prov-a): wall usage billed 10500 ms, execution measured 4.000 s"}, nil},
		{"a settlement without parts", func(j *splitJob) { j.rec.Parts = nil }, provenance.StageSettlement,
			[]string{"a split job's settlement record has no parts"}, nil},
		{"a spot check", func(j *splitJob) {
			j.ver.SpotCheck = &predicate.SpotCheck{Verdict: predicate.SpotAgree}
		}, provenance.StageVerification, []string{"spot-check: a split job is never spot-checked"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := p.goodSplit("job-" + strings.ReplaceAll(tc.name, " ", "-"))
			j.id = strings.ReplaceAll(j.id, "'", "")
			tc.edit(j)
			r := p.record(t, j)
			for _, parties := range []bool{false, true} {
				rep, err := provenance.Verify(ctx, clone(t, r), p.trust, provenance.VerifyOptions{Parties: parties})
				if !errors.Is(err, provenance.ErrAudit) || rep.OK {
					t.Fatalf("parties=%v: tampered split job accepted: %v", parties, err)
				}
				var got []string
				for _, pr := range rep.Problems {
					if pr.Stage != tc.stage {
						if !slices.Contains(tc.also, pr.Stage) {
							t.Errorf("parties=%v: problem on another stage: %s", parties, pr)
						}
						continue
					}
					got = append(got, pr.Check+": "+pr.Message)
				}
				all := strings.Join(got, "\n")
				for _, w := range tc.want {
					if !strings.Contains(all, w) {
						t.Errorf("parties=%v: problems\n%s\nlack %q", parties, all, w)
					}
				}
			}
		})
	}
}

// A job that is not split carries no parts anywhere.
func TestUnsplitJobWithParts(t *testing.T) {
	p := newSplitParties(t)
	j := p.goodSplit("job-not-split")
	j.neg.Parts = nil
	_, err := provenance.Verify(context.Background(), p.record(t, j), p.trust, provenance.VerifyOptions{})
	for _, want := range []string{
		"stage placement: parts: placement lists parts, the negotiation split nothing",
		"stage execution: parts: execution lists parts, the negotiation split nothing",
		"stage settlement: amounts: the record settles parts, the negotiation split nothing",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// The single-process Accord's one worker key (trusted for the legacy
// "stage" scope) may sign a split job's stages and parts, unless every
// party must sign its own.
func TestSplitJobLegacyStageKey(t *testing.T) {
	ctx := context.Background()
	p := newSplitParties(t)
	j := p.goodSplit("job-split-legacy")
	j.signers = map[string]*provenance.Key{}
	for _, stage := range provenance.Stages {
		j.signers[stage] = p.key
	}
	for i := range j.plParts {
		j.plParts[i].signer, j.exParts[i].signer = p.key, p.key
	}
	r := p.record(t, j)
	rep, err := provenance.Verify(ctx, clone(t, r), p.trust, provenance.VerifyOptions{})
	if err != nil {
		t.Fatalf("legacy split receipt: %v", err)
	}
	if ex := rep.Stages[provenance.StageIndex(provenance.StageExecution)]; ex.Party != provenance.ScopeStage || len(ex.Parts) != 2 || ex.Parts[1].Party != provenance.ScopeStage {
		t.Fatalf("legacy execution report %+v", ex)
	}
	rep, err = provenance.Verify(ctx, clone(t, r), p.trust, provenance.VerifyOptions{Parties: true})
	if !errors.Is(err, provenance.ErrAudit) {
		t.Fatalf("legacy split receipt with Parties: %v", err)
	}
	var want []string
	for _, stage := range provenance.Stages {
		must := map[string]string{provenance.StageVerification: "verifier or operator"}[stage]
		if must == "" {
			must = "operator"
		}
		want = append(want, "stage "+stage+": signer: must be signed by "+must+", signed by key "+p.key.ID()+" (stage)")
	}
	for _, stage := range []string{provenance.StagePlacement, provenance.StageExecution} {
		for i, prov := range []string{"prov-a", "prov-b"} {
			want = append(want, fmt.Sprintf("stage %s: signer: %s part %d (%s): signed by stage, must be signed by provider %s (signer key %s)", stage, stage, i+1, prov, prov, p.key.ID()))
		}
	}
	var got []string
	for _, pr := range rep.Problems {
		got = append(got, pr.String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("problems\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// CheckPart, the control plane's check before it lists a part, takes a
// part its provider signed for this job, stage and previous envelope, and
// refuses one signed by anyone else or for another place in the chain.
func TestCheckPart(t *testing.T) {
	ctx := context.Background()
	p := newSplitParties(t)
	j := p.goodSplit("job-check")
	h := provenance.Header{Previous: "sha256:" + strings.Repeat("ab", 32)}
	good := j.signPart(t, provenance.StageExecution, h, j.exParts[1])
	if _, err := provenance.CheckPart(ctx, p.trust, j.id, provenance.StageExecution, h.Previous, good); err != nil {
		t.Fatalf("good part: %v", err)
	}
	forged := j.exParts[1]
	forged.signer = p.operator
	bad := map[string]predicate.SignedPart{
		"signed by the operator": j.signPart(t, provenance.StageExecution, h, forged),
		"other provider's name":  {Provider: "prov-a", Tasks: good.Tasks, Envelope: good.Envelope},
		"other tasks":            {Provider: good.Provider, Tasks: []string{"prep"}, Envelope: good.Envelope},
	}
	for name, sp := range bad {
		if _, err := provenance.CheckPart(ctx, p.trust, j.id, provenance.StageExecution, h.Previous, sp); !errors.Is(err, provenance.ErrSigner) {
			t.Errorf("%s: %v, want ErrSigner", name, err)
		}
	}
	for name, c := range map[string][3]string{
		"other job":      {"job-other", provenance.StageExecution, h.Previous},
		"other stage":    {j.id, provenance.StagePlacement, h.Previous},
		"other previous": {j.id, provenance.StageExecution, "sha256:" + strings.Repeat("cd", 32)},
	} {
		if _, err := provenance.CheckPart(ctx, p.trust, c[0], c[1], c[2], good); !errors.Is(err, provenance.ErrSigner) {
			t.Errorf("%s: %v, want ErrSigner", name, err)
		}
	}
}

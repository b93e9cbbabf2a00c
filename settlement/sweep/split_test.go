package sweep

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/settlement/sla"
)

// A split job's fixture: gpu-a (the lead) runs prep and train for 1000,
// gpu-b runs eval for 600; gpu-c is a replacement. Each provider has its
// own key trusted for provider:<name>; the env's worker key (legacy stage
// scope) is the operator's.
var (
	termsA = sla.Terms{RefundPercent: 10}
	termsB = sla.Terms{MaxDuration: time.Hour, RefundPercent: 50}
	termsC = sla.Terms{RefundPercent: 5}
)

type splitEnv struct {
	*env
	keys map[string]*provenance.Key
}

func newSplitEnv(t *testing.T) *splitEnv {
	t.Helper()
	e := &splitEnv{env: newEnv(t), keys: map[string]*provenance.Key{}}
	for _, p := range []string{"gpu-a", "gpu-b", "gpu-c"} {
		k, err := provenance.GenerateKey(provenance.AlgECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.trust.Add(k.PublicPEM(), "agent "+p, provenance.ProviderScope(p)); err != nil {
			t.Fatal(err)
		}
		e.keys[p] = k
	}
	e.s.Rates = func(p string) settlement.Rates {
		if p == "gpu-b" {
			return settlement.Rates{WallPerHour: 100}
		}
		return settlement.Rates{WallPerHour: 50}
	}
	return e
}

// placeSplit holds the escrow under gpu-a (1600 + 20 %) and attests the
// stages up to the operator's placement.
func (e *splitEnv) placeSplit(job string) {
	e.t.Helper()
	if _, err := e.l.Hold(e.ctx, settlement.HoldRequest{Job: job, Tenant: "acme", Provider: "gpu-a", Currency: "USD",
		Price: 1600, MarginBP: 2000, Cap: 4000, Attempt: WorkflowAttempt}); err != nil {
		e.t.Fatal(err)
	}
	e.attest(job, predicate.StageSpec, predicate.Spec{DocumentDigest: provenance.Digest([]byte(job)), Tenant: "acme"})
	e.attest(job, predicate.StageAdmission, predicate.Admission{Allowed: true})
	rec, _ := json.Marshal(map[string]any{"awards": []map[string]any{
		{"provider": "gpu-a", "price_minor": 1000, "sla": termsA},
		{"provider": "gpu-b", "price_minor": 600, "sla": termsB},
	}})
	e.attest(job, predicate.StageNegotiation, predicate.Negotiation{Provider: "gpu-a", Price: 1600, Currency: "USD", Record: rec,
		Parts: []predicate.Part{
			{Provider: "gpu-a", Tasks: []string{"prep", "train"}, Price: 1000},
			{Provider: "gpu-b", Tasks: []string{"eval"}, Price: 600},
		}})
	// Each provider accepts its part of the placement.
	pl := predicate.Placement{Provider: "gpu-a", Held: 1920, Currency: "USD"}
	for _, p := range e.honest() {
		p.previous = e.digest(job, provenance.StageNegotiation)
		pl.Parts = append(pl.Parts, e.sign(job, provenance.StagePlacement, p, predicate.Placement{Header: predicate.Header{JobID: job},
			Provider: p.provider, Held: 1920, Currency: "USD", PartTasks: p.tasks}))
	}
	e.attest(job, predicate.StagePlacement, pl)
}

// runsStart is when the fixture's runs start, fixed once so that every
// call of runs agrees on the times even when a second boundary passes
// between two calls.
var runsStart = time.Now().Add(-5 * time.Hour).UTC().Truncate(time.Second)

// runs are the fixture's task runs: prep 1 h and train 2 h on the first
// part, eval 30 min on the second.
func runs() map[string]predicate.TaskRun {
	t0 := runsStart
	run := func(from, to time.Duration) predicate.TaskRun {
		s, f := t0.Add(from), t0.Add(to)
		return predicate.TaskRun{State: "exited", StartedAt: &s, FinishedAt: &f, Usage: runtimes.Usage{WallSeconds: (to - from).Seconds()}}
	}
	return map[string]predicate.TaskRun{"prep": run(0, time.Hour), "train": run(time.Hour, 3*time.Hour), "eval": run(3*time.Hour, 3*time.Hour+30*time.Minute)}
}

// part is a signed part: an execution statement of tasks' runs by
// provider (its PartTasks tasks), signed with signer's key.
type part struct {
	provider string
	tasks    []string
	signer   *provenance.Key
	previous string // default: the placement envelope's digest
	jobID    string // default: the job
}

// signPart signs p's execution statement as its provider does.
func (e *splitEnv) signPart(job string, p part, all map[string]predicate.TaskRun) predicate.SignedPart {
	e.t.Helper()
	if p.previous == "" {
		p.previous = e.digest(job, provenance.StagePlacement)
	}
	if p.jobID == "" {
		p.jobID = job
	}
	own := map[string]predicate.TaskRun{}
	for _, t := range p.tasks {
		own[t] = all[t]
	}
	pred := predicate.Execution{Header: predicate.Header{JobID: p.jobID}, Provider: p.provider, PartTasks: p.tasks, Tasks: own}
	return e.sign(job, provenance.StageExecution, p, pred)
}

// sign signs pred as p's statement of stage, chained to p.previous.
func (e *splitEnv) sign(job, stage string, p part, pred any) predicate.SignedPart {
	e.t.Helper()
	b, err := json.Marshal(pred)
	if err != nil {
		e.t.Fatal(err)
	}
	if p.jobID == "" {
		p.jobID = job
	}
	stmt, err := provenance.BuildStatement(provenance.Header{JobID: p.jobID, Stage: stage, Previous: p.previous,
		SpecDigest: provenance.Digest([]byte(job))}, nil, b)
	if err != nil {
		e.t.Fatal(err)
	}
	env, err := provenance.SignEnvelope(e.ctx, p.signer, provenance.PayloadTypeInToto, stmt)
	if err != nil {
		e.t.Fatal(err)
	}
	return predicate.SignedPart{Provider: p.provider, Tasks: p.tasks, Envelope: env}
}

// digest is the digest of the job's stored envelope of stage.
func (e *splitEnv) digest(job, stage string) string {
	e.t.Helper()
	att, err := e.store.Get(job, stage)
	if err != nil {
		e.t.Fatal(err)
	}
	return att.Digest
}

// executeSplit attests the operator's execution statement listing parts
// (signed by the operator's key unless signer is set).
func (e *splitEnv) executeSplit(job string, failovers []predicate.Failover, parts ...part) {
	e.t.Helper()
	all := runs()
	ex := predicate.Execution{Provider: parts[0].provider, Tasks: all, Failovers: failovers}
	for _, p := range parts {
		ex.Parts = append(ex.Parts, e.signPart(job, p, all))
	}
	e.attest(job, predicate.StageExecution, ex)
}

// honest are the fixture's parts, each signed by its own provider.
func (e *splitEnv) honest() []part {
	return []part{
		{provider: "gpu-a", tasks: []string{"prep", "train"}, signer: e.keys["gpu-a"]},
		{provider: "gpu-b", tasks: []string{"eval"}, signer: e.keys["gpu-b"]},
	}
}

// decide is the sweep's decision for the job's hold.
func (e *splitEnv) decide(job string) (settlement.Sweep, string) {
	e.t.Helper()
	held, err := e.l.HeldEscrows(e.ctx, time.Now().Add(time.Hour), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	i := slices.IndexFunc(held, func(h settlement.HeldEscrow) bool { return h.Job == job })
	if i < 0 {
		e.t.Fatalf("%s is not held", job)
	}
	sw, basis, err := e.s.decide(e.ctx, held[i], Closed)
	if err != nil {
		e.t.Fatalf("decide %s: %v", job, err)
	}
	return sw, basis
}

func hours(h float64) settlement.Usage {
	u, err := settlement.UsageFromSeconds(h*3600, 0, 0, 0)
	if err != nil {
		panic(err)
	}
	return u
}

// A split job's sweep settles each part with its provider: the part's
// price, the usage its provider signed for its own tasks at that
// provider's rates, the SLA that provider agreed to, and the outcome of
// its own tasks.
func TestSplitSettledPerPart(t *testing.T) {
	e := newSplitEnv(t)
	e.placeSplit("job-1")
	e.executeSplit("job-1", nil, e.honest()...)
	w, err := e.s.Evidence.Work(e.ctx, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	if !w.Executed || len(w.Rejected) != 0 || len(w.Parts) != 2 {
		t.Fatalf("work = %+v, want the execution and both parts attested", w)
	}
	sw, basis := e.decide("job-1")
	if sw.Kind != ActionSettle || sw.Settle == nil {
		t.Fatalf("decision %+v (%s), want a settle", sw, basis)
	}
	req := sw.Settle
	if req.Price != 0 || req.Usage != (settlement.Usage{}) || req.Rates != (settlement.Rates{}) || req.SLA != (sla.Terms{}) {
		t.Fatalf("a split request has whole-job terms: %+v", req)
	}
	r := runs()
	want := []settlement.SettlePart{
		{Provider: "gpu-a", Price: 1000, Usage: hours(3), Rates: settlement.Rates{WallPerHour: 50}, SLA: termsA,
			Outcome: settlement.Outcome{Placed: *r["prep"].StartedAt, Finished: *r["train"].FinishedAt, Duration: 3 * time.Hour}},
		{Provider: "gpu-b", Price: 600, Usage: hours(0.5), Rates: settlement.Rates{WallPerHour: 100}, SLA: termsB,
			Outcome: settlement.Outcome{Placed: *r["eval"].StartedAt, Finished: *r["eval"].FinishedAt, Duration: 30 * time.Minute}},
	}
	if len(req.Parts) != len(want) {
		t.Fatalf("parts = %+v, want %+v", req.Parts, want)
	}
	for i := range want {
		if got := req.Parts[i]; got.Provider != want[i].Provider || got.Price != want[i].Price || got.Usage != want[i].Usage ||
			got.Rates != want[i].Rates || got.SLA != want[i].SLA || !got.Outcome.Placed.Equal(want[i].Outcome.Placed) ||
			!got.Outcome.Finished.Equal(want[i].Outcome.Finished) || got.Outcome.Duration != want[i].Outcome.Duration {
			t.Errorf("part %d = %+v, want %+v", i, got, want[i])
		}
	}
	// A dry run estimates the parts' charges: 1000 + 3 h × 50 and 600 +
	// 0.5 h × 100, of 1920 held.
	rep := e.sweep(true)
	if len(rep.Actions) != 1 || rep.Actions[0].Action != ActionSettle || rep.Actions[0].Paid != 1800 || rep.Actions[0].Refunded != 120 {
		t.Fatalf("dry run = %+v, want 1800 paid, 120 refunded", rep)
	}
}

// A part whose statement is not its provider's own (signed by the
// operator, by the other provider, for other tasks, another job or another
// chain), or a split execution the lead provider signed instead of the
// operator, is no evidence: the job is released in full and nobody is paid.
func TestSplitUnverifiedPartReleased(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(e *splitEnv, parts []part) []part
		problem string
	}{
		{"operator signs a part", func(e *splitEnv, ps []part) []part { ps[1].signer = e.key; return ps }, "signature does not verify"},
		{"other provider signs a part", func(e *splitEnv, ps []part) []part { ps[1].signer = e.keys["gpu-a"]; return ps }, "signature does not verify"},
		{"replacement not in failovers signs", func(e *splitEnv, ps []part) []part {
			ps[1].signer, ps[1].provider = e.keys["gpu-c"], "gpu-c"
			return ps
		}, "ran on \"gpu-b\""},
		{"part for other tasks", func(e *splitEnv, ps []part) []part { ps[1].tasks = []string{"prep"}; return ps }, "no part's"},
		{"part missing", func(e *splitEnv, ps []part) []part { return ps[:1] }, "1 signed parts, the job has 2"},
		{"part of another chain", func(e *splitEnv, ps []part) []part {
			ps[1].previous = provenance.Digest([]byte("elsewhere"))
			return ps
		}, "want job job-1 stage execution after"},
		{"part of another job", func(e *splitEnv, ps []part) []part { ps[1].jobID = "job-2"; return ps }, "a statement of job job-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSplitEnv(t)
			e.placeSplit("job-1")
			e.executeSplit("job-1", nil, tc.mutate(e, e.honest())...)
			e.checkReleased(tc.problem)
		})
	}
	t.Run("lead provider signs the execution", func(t *testing.T) {
		e := newSplitEnv(t)
		e.placeSplit("job-1")
		e.rec = provenance.NewRecorder(e.lg, e.keys["gpu-a"], e.store)
		e.executeSplit("job-1", nil, e.honest()...)
		e.checkReleased("signature does not verify")
	})
}

// checkReleased sweeps the job and checks it was released in full with
// nothing paid, and that the execution was rejected for problem.
func (e *splitEnv) checkReleased(problem string) {
	e.t.Helper()
	w, err := e.s.Evidence.Work(e.ctx, "job-1")
	if err != nil {
		e.t.Fatal(err)
	}
	if w.Executed || !slices.ContainsFunc(w.Rejected, func(r string) bool {
		return strings.HasPrefix(r, "execution: ") && strings.Contains(r, problem)
	}) {
		e.t.Fatalf("work = %+v, want the execution rejected for %q", w, problem)
	}
	r := e.sweep(false)
	if r.Released != 1 || len(r.Actions) != 1 || r.Actions[0].Paid != 0 || r.Actions[0].Refunded != 1920 || r.Actions[0].Basis != "no attested execution" {
		e.t.Fatalf("report = %+v, want a full release", r)
	}
	for _, p := range []string{"gpu-a", "gpu-b", "gpu-c"} {
		if got := e.balance("provider:" + p); got != 0 {
			e.t.Errorf("%s paid %d on unverified work", p, got)
		}
	}
	if got := e.balance("tenant:acme"); got != 10_000 {
		e.t.Errorf("tenant = %d, want 10000 (all refunded)", got)
	}
	e.checkLedger()
}

// A part failover (Failover.Tasks) moves that part alone: its replacement
// signs it and is paid the renegotiated price under its own terms; the
// lost provider is paid nothing, and its signature no longer counts.
func TestSplitPartFailover(t *testing.T) {
	fo := []predicate.Failover{{Lost: "gpu-b", Provider: "gpu-c", Tasks: []string{"eval"}, Price: 700, Currency: "USD",
		Reason: "heartbeat lost", At: time.Now().Add(-2 * time.Hour)}}
	e := newSplitEnv(t)
	e.placeSplit("job-1")
	replaced := e.honest()
	replaced[1].provider, replaced[1].signer = "gpu-c", e.keys["gpu-c"]
	e.executeSplit("job-1", fo, replaced...)
	sw, basis := e.decide("job-1")
	if sw.Settle == nil || len(sw.Settle.Parts) != 2 {
		t.Fatalf("decision %+v (%s), want a settle of two parts", sw, basis)
	}
	if a, c := sw.Settle.Parts[0], sw.Settle.Parts[1]; a.Provider != "gpu-a" || a.Price != 1000 ||
		c.Provider != "gpu-c" || c.Price != 700 || c.Usage != hours(0.5) || c.Rates.WallPerHour != 50 || c.SLA != (sla.Terms{}) {
		t.Fatalf("parts = %+v, want gpu-a's and gpu-c's (700, 30 min, no recorded terms)", sw.Settle.Parts)
	}
	for _, p := range sw.Settle.Parts {
		if p.Provider == "gpu-b" {
			t.Fatalf("the lost provider is paid: %+v", sw.Settle.Parts)
		}
	}

	// The lost provider's own signature on the moved part is refused.
	e = newSplitEnv(t)
	e.placeSplit("job-1")
	e.executeSplit("job-1", fo, e.honest()...)
	e.checkReleased(`ran on "gpu-c"`)
}

// A failover without Tasks moves every part of the lost provider. When the
// lead's part moves, the escrow must have been reassigned to its
// replacement: a hold still under the lost lead is released, one
// reassigned is settled with the replacement paid under the terms its
// failover records.
func TestSplitLeadFailover(t *testing.T) {
	termsC := sla.Terms{MaxDuration: 2 * time.Hour, RefundPercent: 30}
	fo := []predicate.Failover{{Lost: "gpu-a", Provider: "gpu-c", Price: 1100, Reason: "node lost", At: time.Now().Add(-4 * time.Hour), SLA: &termsC}}
	run := func(reassign bool) (settlement.Sweep, string) {
		e := newSplitEnv(t)
		e.placeSplit("job-1")
		if reassign {
			if _, err := e.l.Reassign(e.ctx, settlement.ReassignRequest{Job: "job-1", From: "gpu-a", To: "gpu-c", N: 1, Reason: "failover"}); err != nil {
				t.Fatal(err)
			}
		}
		ps := e.honest()
		ps[0].provider, ps[0].signer = "gpu-c", e.keys["gpu-c"]
		e.executeSplit("job-1", fo, ps...)
		return e.decide("job-1")
	}
	if sw, basis := run(false); sw.Kind != ActionRelease || !strings.Contains(basis, "lead part (gpu-c, USD) is not the hold's (gpu-a, USD)") {
		t.Fatalf("hold not reassigned: %+v (%s), want a release", sw, basis)
	}
	sw, basis := run(true)
	if sw.Settle == nil || len(sw.Settle.Parts) != 2 || sw.Settle.Parts[0].Provider != "gpu-c" || sw.Settle.Parts[0].Price != 1100 ||
		sw.Settle.Parts[0].Usage != hours(3) || sw.Settle.Parts[0].SLA != termsC || sw.Settle.Parts[1].Provider != "gpu-b" || sw.Settle.Parts[1].SLA != termsB {
		t.Fatalf("reassigned hold: %+v (%s), want gpu-c paid for the lead part, gpu-b its own", sw.Settle, basis)
	}
}

// A split negotiation whose parts do not add up is no evidence of an
// award: the job is released.
func TestSplitBadNegotiationReleased(t *testing.T) {
	e := newSplitEnv(t)
	if _, err := e.l.Hold(e.ctx, settlement.HoldRequest{Job: "job-1", Tenant: "acme", Provider: "gpu-a", Currency: "USD",
		Price: 1600, MarginBP: 2000, Cap: 4000, Attempt: WorkflowAttempt}); err != nil {
		t.Fatal(err)
	}
	e.attest("job-1", predicate.StageSpec, predicate.Spec{DocumentDigest: provenance.Digest([]byte("job-1"))})
	e.attest("job-1", predicate.StageAdmission, predicate.Admission{Allowed: true})
	e.attest("job-1", predicate.StageNegotiation, predicate.Negotiation{Provider: "gpu-a", Price: 1600, Currency: "USD",
		Parts: []predicate.Part{{Provider: "gpu-a", Tasks: []string{"prep", "train"}, Price: 1000}, {Provider: "gpu-b", Tasks: []string{"train"}, Price: 600}}})
	e.attest("job-1", predicate.StagePlacement, predicate.Placement{Provider: "gpu-a", Held: 1920, Currency: "USD"})
	e.executeSplit("job-1", nil, e.honest()...)
	w, err := e.s.Evidence.Work(e.ctx, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	if w.Split() || w.Provider != "" || !slices.ContainsFunc(w.Rejected, func(r string) bool { return strings.Contains(r, "in two parts") }) {
		t.Fatalf("work = %+v, want the negotiation rejected", w)
	}
	if sw, basis := e.decide("job-1"); sw.Kind != ActionRelease {
		t.Fatalf("decision %+v (%s), want a release", sw, basis)
	}
}

func TestNegotiatedParts(t *testing.T) {
	ok := []predicate.Part{{Provider: "a", Tasks: []string{"x"}, Price: 1}, {Provider: "b", Tasks: []string{"y", "z"}, Price: 2}}
	for _, tc := range []struct {
		name string
		p    predicate.Negotiation
		err  string
	}{
		{"ok", predicate.Negotiation{Provider: "a", Price: 3, Parts: ok}, ""},
		{"lead", predicate.Negotiation{Provider: "b", Price: 3, Parts: ok}, "first part"},
		{"sum", predicate.Negotiation{Provider: "a", Price: 4, Parts: ok}, "add up"},
		{"provider twice", predicate.Negotiation{Provider: "a", Price: 2, Parts: []predicate.Part{ok[0], {Provider: "a", Tasks: []string{"y"}, Price: 1}}}, "two parts"},
		{"bad name", predicate.Negotiation{Provider: "a", Price: 2, Parts: []predicate.Part{ok[0], {Provider: "../B", Tasks: []string{"y"}, Price: 1}}}, "lower-case"},
		{"no tasks", predicate.Negotiation{Provider: "a", Price: 2, Parts: []predicate.Part{ok[0], {Provider: "b", Price: 1}}}, "0 tasks"},
		{"negative", predicate.Negotiation{Provider: "a", Price: 0, Parts: []predicate.Part{ok[0], {Provider: "b", Tasks: []string{"y"}, Price: -1}}}, "out of range"},
	} {
		err := negotiatedParts(tc.p)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
}

// In a mesh the operator's key is trusted for the operator scope only: it
// signs the split job's placement and execution statements, which count,
// but a part it signs does not.
func TestSplitOperatorScope(t *testing.T) {
	for _, tc := range []struct {
		name     string
		operator bool // the operator signs gpu-b's part
	}{{"parts by their providers", false}, {"part by the operator", true}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSplitEnv(t)
			op, err := provenance.GenerateKey(provenance.AlgECDSAP256)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.trust.Add(op.PublicPEM(), "operator", provenance.ScopeOperator); err != nil {
				t.Fatal(err)
			}
			e.trust.Remove(e.key.ID()) // no legacy stage key: scopes only
			e.rec = provenance.NewRecorder(e.lg, op, e.store)
			e.placeSplit("job-1")
			ps := e.honest()
			if tc.operator {
				ps[1].signer = op
			}
			e.executeSplit("job-1", nil, ps...)
			w, err := e.s.Evidence.Work(e.ctx, "job-1")
			if err != nil {
				t.Fatal(err)
			}
			if w.Executed == tc.operator || w.LastStage != map[bool]string{false: provenance.StageExecution, true: provenance.StagePlacement}[tc.operator] {
				t.Fatalf("work = %+v: executed %v, want %v", w, w.Executed, !tc.operator)
			}
		})
	}
}

// A failover without Tasks moves every part of the lost provider; parts
// that end on one provider are settled as one part of that provider (the
// ledger pays each provider once): prices and usage added, times spanned.
func TestSplitPartsMergedOnOneProvider(t *testing.T) {
	e := newSplitEnv(t)
	e.placeSplit("job-1")
	ps := e.honest()
	ps[1].provider, ps[1].signer = "gpu-a", e.keys["gpu-a"]
	e.executeSplit("job-1", []predicate.Failover{{Lost: "gpu-b", Provider: "gpu-a", Price: 500, Reason: "node lost", At: time.Now().Add(-2 * time.Hour)}}, ps...)
	sw, basis := e.decide("job-1")
	if sw.Settle == nil || len(sw.Settle.Parts) != 1 {
		t.Fatalf("decision %+v (%s), want a settle of one part", sw, basis)
	}
	r := runs()
	if p := sw.Settle.Parts[0]; p.Provider != "gpu-a" || p.Price != 1500 || p.Usage != hours(3.5) || p.SLA != termsA ||
		!p.Outcome.Placed.Equal(*r["prep"].StartedAt) || !p.Outcome.Finished.Equal(*r["eval"].FinishedAt) || p.Outcome.Duration != 210*time.Minute {
		t.Fatalf("part = %+v, want gpu-a's both parts: 1500, 3.5 h, gpu-a's terms", p)
	}
}

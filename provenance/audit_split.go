package provenance

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/accordmesh/accord/internal/names"
	"github.com/accordmesh/accord/provenance/predicate"
)

// A split job (job layout 10, placement.split) is one whose verified
// negotiation statement has Parts. Its placement and execution statements
// are then the operator's, and each lists the providers' own signed
// statements of their parts (predicate.SignedPart). The audit checks each
// part's signature against its provider, its statement against the outer
// one, and the parts of every stage against the negotiated parts: see
// Verify.

// maxSplitParts bounds the parts an auditor examines: a part has at least
// one task, and no spec has this many.
const maxSplitParts = 1024

// PartReport describes one provider's signed part of a split job's
// placement or execution stage.
type PartReport struct {
	Provider string   `json:"provider"`
	Tasks    []string `json:"tasks"`
	// Digest is the sha256 of the part's envelope.
	Digest string `json:"digest"`
	// KeyID is the key that signed the part, when its signature verified
	// with a trusted stage key.
	KeyID string `json:"key_id,omitempty"`
	// Party is the trust scope the key signed the part under
	// (provider:<name>, or the legacy stage); empty when the key may not
	// sign this part (see the "signer" problem).
	Party string `json:"party,omitempty"`
}

// negotiatedParts are the parts of the verified negotiation statement: nil
// when the job is not split (or the negotiation did not verify).
func (a *auditor) negotiatedParts() []predicate.Part {
	st := a.stmts[StageNegotiation]
	if st == nil {
		return nil
	}
	var neg NegotiationPredicate
	if st.DecodePredicate(&neg) != nil {
		return nil
	}
	return neg.Parts
}

// signedParts verifies the signature and statement of each part of a split
// job's placement or execution stage, and records them in the stage's
// report and in a.parts for the cross-checks.
func (a *auditor) signedParts(stage string, parties bool) {
	st := a.stmts[stage]
	if st == nil {
		return
	}
	var outer struct {
		Parts []predicate.SignedPart `json:"parts"`
	}
	if st.DecodePredicate(&outer) != nil {
		return // crossChecks reports the predicate
	}
	if len(outer.Parts) > maxSplitParts {
		a.fail(stage, "parts", "%d parts, at most %d are examined", len(outer.Parts), maxSplitParts)
		return
	}
	h, _ := st.Header()
	sr := a.stageReport(stage)
	stmts := make([]*Statement, len(outer.Parts))
	for i, sp := range outer.Parts {
		what := fmt.Sprintf("%s part %d (%s)", stage, i+1, sp.Provider)
		pr := PartReport{Provider: sp.Provider, Tasks: sp.Tasks, Digest: Digest(sp.Envelope)}
		payload, id := a.partEnvelope(stage, what, sp.Envelope)
		pr.KeyID = id
		if payload != nil {
			pr.Party = a.partSigner(stage, what, sp.Provider, id, parties)
			stmts[i] = a.partStatement(stage, what, h, payload)
		}
		if sr != nil {
			sr.Parts = append(sr.Parts, pr)
		}
	}
	if a.parts == nil {
		a.parts = map[string][]*Statement{}
	}
	a.parts[stage] = stmts
}

// stageReport is the report of the receipt's (first) attestation of stage.
func (a *auditor) stageReport(stage string) *StageReport {
	for i := range a.rep.Stages {
		if a.rep.Stages[i].Stage == stage {
			return &a.rep.Stages[i]
		}
	}
	return nil
}

// partEnvelope verifies a part's envelope against the keys trusted to sign
// some stage and returns its payload and signer.
func (a *auditor) partEnvelope(stage, what string, env []byte) (payload []byte, keyID string) {
	if _, _, err := ParseEnvelope(env); err != nil {
		a.fail(stage, "envelope", "%s: %v", what, err)
		return nil, ""
	}
	payload, id, err := VerifyEnvelope(a.ctx, env, a.stageKeys...)
	if err != nil {
		ids, _ := EnvelopeSignerIDs(env)
		a.fail(stage, "signature", "%s: envelope signature does not verify with any trusted stage key (claims key %s): the envelope was altered or signed by an unknown key", what, strings.Join(ids, ","))
		return nil, ""
	}
	return payload, id
}

// partSigner checks that key id may sign the part of provider: a key of
// provider:<provider>, or unless parties a legacy stage key. It returns the
// scope it signed under, or "" after reporting a "signer" problem.
func (a *auditor) partSigner(stage, what, provider, id string, parties bool) string {
	var allowed []string
	valid := names.Provider(provider) == nil
	if valid {
		allowed = append(allowed, ProviderScope(provider))
	}
	if !parties {
		allowed = append(allowed, ScopeStage)
	}
	for _, sc := range allowed {
		if a.trust.Allowed(id, sc) {
			return sc
		}
	}
	must := "provider " + provider
	if !valid {
		must = fmt.Sprintf("its provider, and %q is not a valid provider name", provider)
	}
	a.fail(stage, "signer", "%s: signed by %s, must be signed by %s (signer key %s)", what, a.scopesOf(id), must, id)
	return ""
}

// partStatement parses a part's statement and checks its header against
// the outer statement's: same stage, job, previous envelope and spec.
func (a *auditor) partStatement(stage, what string, outer Header, payload []byte) *Statement {
	st, err := ParseStatement(payload)
	if err != nil {
		a.fail(stage, "statement", "%s: %v", what, err)
		return nil
	}
	if st.PredicateType != PredicateType(stage) {
		a.fail(stage, "statement", "%s: predicate type %s, want %s", what, st.PredicateType, PredicateType(stage))
	}
	h, err := st.Header()
	if err != nil {
		a.fail(stage, "statement", "%s: %v", what, err)
		return nil
	}
	if h.Stage != stage {
		a.fail(stage, "statement", "%s: statement is for stage %q", what, h.Stage)
	}
	if h.JobID != a.r.JobID {
		a.fail(stage, "job", "%s: statement is for job %s, receipt is for job %s", what, h.JobID, a.r.JobID)
	}
	if !hasJobSubject(st, a.r.JobID) {
		a.fail(stage, "job", "%s: statement has no subject %s%s", what, JobSubjectPrefix, a.r.JobID)
	}
	if h.Previous != outer.Previous {
		a.fail(stage, "chain", "%s: previous digest %s, the %s statement's is %s", what, orNone(h.Previous), stage, orNone(outer.Previous))
	}
	if h.SpecDigest != outer.SpecDigest {
		a.fail(stage, "spec-digest", "%s: spec digest %s, the %s statement's is %s", what, orNone(h.SpecDigest), stage, orNone(outer.SpecDigest))
	}
	return st
}

// ExecutingParts follows a split job's failovers (job layout 10) from its
// negotiated parts. A failover with Tasks moves the one part whose tasks
// they are, which must be on the provider the failover abandons; one
// without Tasks moves every part on the provider it abandons (at least
// one). A moved part takes the replacement and its price; its pool and
// runtime are then unknown (empty). It returns the parts as they finally
// ran (a copy; on a break, as far as the chain held) and what breaks the
// chain, if anything.
func ExecutingParts(parts []predicate.Part, fs []predicate.Failover) ([]predicate.Part, string) {
	out := make([]predicate.Part, len(parts))
	for i, p := range parts {
		p.Tasks = slices.Clone(p.Tasks)
		out[i] = p
	}
	move := func(p *predicate.Part, f predicate.Failover) {
		p.Provider, p.Price, p.Pool, p.Runtime = f.Provider, f.Price, "", ""
	}
	for i, f := range fs {
		if f.Provider == "" || f.Provider == f.Lost {
			return out, fmt.Sprintf("failover %d from %q names no other provider", i+1, f.Lost)
		}
		if len(f.Tasks) > 0 {
			j := slices.IndexFunc(out, func(p predicate.Part) bool { return sameTasks(p.Tasks, f.Tasks) })
			switch {
			case j < 0:
				return out, fmt.Sprintf("failover %d moves tasks %s, which are no part's tasks", i+1, taskList(f.Tasks))
			case out[j].Provider != f.Lost:
				return out, fmt.Sprintf("failover %d abandons provider %q, the part with tasks %s was on %q", i+1, f.Lost, taskList(f.Tasks), out[j].Provider)
			}
			move(&out[j], f)
			continue
		}
		moved := false
		for j := range out {
			if out[j].Provider == f.Lost {
				move(&out[j], f)
				moved = true
			}
		}
		if !moved {
			return out, fmt.Sprintf("failover %d abandons provider %q, no part was on it", i+1, f.Lost)
		}
	}
	return out, ""
}

// sameTasks reports whether a and b hold the same tasks, in any order.
func sameTasks(a, b []string) bool {
	return taskKey(a) == taskKey(b)
}

// taskKey is a canonical form of a task set (sorted, NUL-joined).
func taskKey(tasks []string) string {
	s := slices.Clone(tasks)
	sort.Strings(s)
	return strings.Join(s, "\x00")
}

func taskList(tasks []string) string { return "[" + strings.Join(tasks, " ") + "]" }

// splitChecks cross-checks a split job's stages: the negotiated parts
// against the spec, the placement's and execution's parts against them
// (after failovers), each part's statement against its stage's, and no
// spot check. It returns the parts as they finally ran, for settlement.
func (a *auditor) splitChecks(spec SpecPredicate, hasSpec bool, neg NegotiationPredicate, pl PlacementPredicate, hasPl bool, ex ExecutionPredicate, hasEx bool, ver VerificationPredicate, hasVer bool, execOut map[string]string) []predicate.Part {
	a.negotiationParts(spec, hasSpec, neg)
	if hasPl {
		placed, _ := ExecutingParts(neg.Parts, pl.Failovers) // placementFailovers reports a broken chain
		a.matchParts(StagePlacement, pl.Parts, placed, "a part the negotiation awarded")
		if len(pl.PartTasks) > 0 {
			a.fail(StagePlacement, "parts", "the operator's placement statement names part tasks %s", taskList(pl.PartTasks))
		}
		for i, sp := range pl.Parts {
			a.placementPart(i, sp, pl)
		}
	}
	final, _ := ExecutingParts(neg.Parts, nil)
	if hasEx {
		var why string
		if final, why = ExecutingParts(neg.Parts, ex.Failovers); why != "" {
			a.fail(StageExecution, "failover", "%s", why)
		}
		if ex.Provider != "" && len(final) > 0 && ex.Provider != final[0].Provider {
			a.fail(StageExecution, "placement", "executed by provider %q, the first part's provider after failovers is %q", ex.Provider, final[0].Provider)
		}
		a.matchParts(StageExecution, ex.Parts, final, "a part of the negotiation after its failovers")
		if len(ex.PartTasks) > 0 {
			a.fail(StageExecution, "parts", "the operator's execution statement names part tasks %s", taskList(ex.PartTasks))
		}
		var all []string
		for _, p := range final {
			all = append(all, p.Tasks...)
		}
		if got := slices.Sorted(maps.Keys(ex.Tasks)); !sameTasks(got, all) {
			a.fail(StageExecution, "parts", "ran tasks %s, the parts' tasks are %s", taskList(got), taskList(sortedCopy(all)))
		}
		for i, sp := range ex.Parts {
			a.executionPart(i, sp, ex, execOut)
		}
	}
	if hasVer && ver.SpotCheck != nil {
		a.fail(StageVerification, "spot-check", "a split job is never spot-checked (the spec refuses spot checks with placement.split), yet the verification has one")
	}
	return final
}

// negotiationParts checks the negotiated parts: valid, distinct providers,
// non-negative prices summing to the price, the first part's provider as
// the negotiation's, and tasks that partition the spec's.
func (a *auditor) negotiationParts(spec SpecPredicate, hasSpec bool, neg NegotiationPredicate) {
	const st = StageNegotiation
	if len(neg.Parts) > maxSplitParts {
		a.fail(st, "parts", "%d parts, at most %d are examined", len(neg.Parts), maxSplitParts)
		return
	}
	if neg.Provider != neg.Parts[0].Provider {
		a.fail(st, "parts", "provider %q, the first part's is %q", neg.Provider, neg.Parts[0].Provider)
	}
	var sum int64
	overflow := false
	owner := map[string]int{} // task -> part (1-based)
	byProvider := map[string]int{}
	for i, p := range neg.Parts {
		what := fmt.Sprintf("part %d (%s)", i+1, p.Provider)
		if err := names.Provider(p.Provider); err != nil {
			a.fail(st, "parts", "%s: %v", what, err)
		}
		if j, ok := byProvider[p.Provider]; ok {
			a.fail(st, "parts", "%s: provider also has part %d", what, j)
		}
		byProvider[p.Provider] = i + 1
		if p.Price < 0 {
			a.fail(st, "amounts", "%s: negative price %d", what, p.Price)
		} else if sum > math.MaxInt64-p.Price {
			overflow = true
		} else {
			sum += p.Price
		}
		if len(p.Tasks) == 0 {
			a.fail(st, "parts", "%s has no tasks", what)
		}
		for _, t := range p.Tasks {
			if j, ok := owner[t]; ok {
				a.fail(st, "parts", "task %q is in parts %d and %d", t, j, i+1)
				continue
			}
			owner[t] = i + 1
		}
	}
	switch {
	case overflow:
		a.fail(st, "amounts", "the parts' prices overflow")
	case sum != neg.Price:
		a.fail(st, "amounts", "price %d, the parts' prices sum to %d", neg.Price, sum)
	}
	if !hasSpec || len(spec.Tasks) == 0 {
		return
	}
	inSpec := map[string]bool{}
	for _, t := range spec.Tasks {
		inSpec[t] = true
		if _, ok := owner[t]; !ok {
			a.fail(st, "parts", "task %q is in no part", t)
		}
	}
	for _, t := range slices.Sorted(maps.Keys(owner)) {
		if !inSpec[t] {
			a.fail(st, "parts", "part %d names task %q, which the spec does not have", owner[t], t)
		}
	}
}

// matchParts checks that a stage's signed parts are want: one per wanted
// part, with its tasks and provider, and no other.
func (a *auditor) matchParts(stage string, got []predicate.SignedPart, want []predicate.Part, other string) {
	byTasks := map[string]int{}
	for j, g := range got {
		k := taskKey(g.Tasks)
		if i, ok := byTasks[k]; ok {
			a.fail(stage, "parts", "%s parts %d and %d have the same tasks %s", stage, i+1, j+1, taskList(g.Tasks))
			continue
		}
		byTasks[k] = j
	}
	used := map[int]bool{}
	for i, w := range want {
		j, ok := byTasks[taskKey(w.Tasks)]
		if !ok {
			a.fail(stage, "parts", "part %d (%s, tasks %s) missing: no signed %s part has its tasks", i+1, w.Provider, taskList(w.Tasks), stage)
			continue
		}
		used[j] = true
		if got[j].Provider != w.Provider {
			a.fail(stage, "parts", "%s part %d (%s): its tasks %s are provider %q's part", stage, j+1, got[j].Provider, taskList(w.Tasks), w.Provider)
		}
	}
	for j, g := range got {
		if !used[j] {
			a.fail(stage, "parts", "%s part %d (%s): tasks %s are not %s", stage, j+1, g.Provider, taskList(g.Tasks), other)
		}
	}
}

// partPredicate decodes the statement of the i-th part of stage into v;
// false when there is none (already reported) or it does not decode.
func (a *auditor) partPredicate(stage string, i int, what string, v any) bool {
	stmts := a.parts[stage]
	if i >= len(stmts) || stmts[i] == nil {
		return false
	}
	if err := stmts[i].DecodePredicate(v); err != nil {
		a.fail(stage, "statement", "%s: %v", what, err)
		return false
	}
	return true
}

// placementPart checks a provider's placement statement of its part: its
// provider and tasks, and the one escrow hold.
func (a *auditor) placementPart(i int, sp predicate.SignedPart, outer PlacementPredicate) {
	const st = StagePlacement
	what := fmt.Sprintf("%s part %d (%s)", st, i+1, sp.Provider)
	var p PlacementPredicate
	if !a.partPredicate(st, i, what, &p) {
		return
	}
	a.partIdentity(st, what, sp, p.Provider, p.PartTasks)
	if p.HoldID != outer.HoldID || p.Held != outer.Held || p.Currency != outer.Currency {
		a.fail(st, "amounts", "%s: hold %s of %d %s, the placement's is %s of %d %s", what, orNone(p.HoldID), p.Held, p.Currency, orNone(outer.HoldID), outer.Held, outer.Currency)
	}
	if len(p.Parts) > 0 {
		a.fail(st, "parts", "%s: a part lists parts of its own", what)
	}
}

// executionPart checks a provider's execution statement of its part: its
// provider and tasks, its tasks' runs as the execution's, and its subjects
// as the execution's outputs of those tasks.
func (a *auditor) executionPart(i int, sp predicate.SignedPart, outer ExecutionPredicate, execOut map[string]string) {
	const st = StageExecution
	what := fmt.Sprintf("%s part %d (%s)", st, i+1, sp.Provider)
	var p ExecutionPredicate
	if !a.partPredicate(st, i, what, &p) {
		return
	}
	a.partIdentity(st, what, sp, p.Provider, p.PartTasks)
	if got := slices.Sorted(maps.Keys(p.Tasks)); !sameTasks(got, sp.Tasks) {
		a.fail(st, "parts", "%s: runs of tasks %s, the part's tasks are %s", what, taskList(got), taskList(sp.Tasks))
	}
	for _, t := range sortedCopy(sp.Tasks) {
		run, ok := p.Tasks[t]
		if !ok {
			continue
		}
		if !sameRun(run, outer.Tasks[t]) {
			a.fail(st, "parts", "%s: task %s's run differs from the execution's", what, t)
		}
	}
	want := map[string]string{}
	for _, t := range sp.Tasks {
		for _, o := range outer.Tasks[t].Outputs {
			k := t + ":" + o.Path
			want[k] = execOut[k]
		}
	}
	if diff := diffOutputs(want, artifactSubjects(a.r.JobID, a.parts[st][i])); diff != "" {
		a.fail(st, "outputs", "%s: subjects do not match its tasks' outputs: %s", what, diff)
	}
	if p.SpotRole != "" || len(p.Parts) > 0 || len(p.Failovers) > 0 {
		a.fail(st, "parts", "%s: a part carries a spot role, parts or failovers of its own", what)
	}
}

// partIdentity checks that a part's statement names the provider and tasks
// the stage's statement lists it with.
func (a *auditor) partIdentity(stage, what string, sp predicate.SignedPart, provider string, tasks []string) {
	if provider != sp.Provider {
		a.fail(stage, "parts", "%s: the statement names provider %q", what, provider)
	}
	if !sameTasks(tasks, sp.Tasks) {
		a.fail(stage, "parts", "%s: the statement's part tasks %s, the %s statement lists %s", what, taskList(tasks), stage, taskList(sp.Tasks))
	}
}

// sameRun compares two task runs by their JSON.
func sameRun(a, b predicate.TaskRun) bool {
	x, errA := json.Marshal(a)
	y, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(x) == string(y)
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	sort.Strings(c)
	return c
}

// settledGroup is what one provider of a split job is settled for: the
// parts it finally ran (one, unless failovers gave it two).
type settledGroup struct {
	price int64
	tasks []string
}

// settlementParts checks a split job's settlement record: one part per
// final part provider, at the price of its parts, billed the usage its
// tasks measured, each with a whole job's money identities, and the
// record's amounts the parts' sums. attested is the settlement
// predicate's own usage (nil when it has none).
func (a *auditor) settlementParts(rec SettlementRecord, attested *MeteredUsage, final []predicate.Part, ex ExecutionPredicate, hasEx bool) {
	bad := func(format string, args ...any) { a.fail(StageSettlement, "amounts", format, args...) }
	if len(rec.Parts) == 0 {
		bad("a split job's settlement record has no parts")
		return
	}
	groups := map[string]*settledGroup{}
	var order []string
	for _, p := range final {
		g := groups[p.Provider]
		if g == nil {
			g = &settledGroup{}
			groups[p.Provider] = g
			order = append(order, p.Provider)
		}
		g.price = addSat(g.price, p.Price)
		g.tasks = append(g.tasks, p.Tasks...)
	}
	var sum partSums
	seen := map[string]bool{}
	for i, p := range rec.Parts {
		what := fmt.Sprintf("part %d (%s)", i+1, p.Provider)
		g := groups[p.Provider]
		switch {
		case g == nil:
			bad("%s: not a provider of the job's parts after failovers (%s)", what, strings.Join(order, ", "))
		case seen[p.Provider]:
			bad("%s: provider settled twice", what)
		case p.Price != g.price:
			bad("%s: price %d, its part's price is %d", what, p.Price, g.price)
		}
		seen[p.Provider] = true
		a.partAmounts(bad, what, p)
		if hasEx && g != nil {
			var usage []predicate.Usage
			for _, t := range g.tasks {
				if run, ok := ex.Tasks[t]; ok {
					usage = append(usage, run.Usage)
				}
			}
			checkUsage(bad, what+": ", p.Usage, usage)
		}
		sum.add(p)
	}
	for _, prov := range order {
		if !seen[prov] {
			bad("no settled part for provider %s (tasks %s)", prov, taskList(groups[prov].tasks))
		}
	}
	sum.check(bad, rec)
	if u := attested; u != nil && *u != (predicate.MeteredUsage{}) && *u != sum.usage {
		bad("attested usage %+v, the parts' usage sums to %+v", *u, sum.usage)
	}
}

// partAmounts checks one settled part as a whole job's settlement is
// checked: non-negative amounts, the metered charge recomputed from usage
// and rates, charge = price + metered (less when capped), payable =
// charge - SLA refund = provider + fee + royalties.
func (a *auditor) partAmounts(bad func(string, ...any), what string, p predicate.SettlementPart) {
	m := p.Metered
	for _, v := range []int64{p.Price, p.Charge, p.SLARefund, p.Payable, p.ProviderPay, p.PlatformFee, p.Slashed, m.Wall, m.CPU, m.Mem, m.GPU, m.Total} {
		if v < 0 {
			bad("%s: negative amount %d", what, v)
			return
		}
	}
	roy := int64(0)
	for _, r := range p.Royalties {
		if r.Amount < 0 {
			bad("%s: royalty %d to %s", what, r.Amount, r.Account)
			return
		}
		roy = addSat(roy, r.Amount)
	}
	if addSat(addSat(m.Wall, m.CPU), addSat(m.Mem, m.GPU)) != m.Total {
		bad("%s: metered components %d+%d+%d+%d do not sum to total %d", what, m.Wall, m.CPU, m.Mem, m.GPU, m.Total)
	}
	u, r := p.Usage, p.Rates
	for _, c := range []struct {
		what      string
		got       int64
		qty, rate int64
	}{{"wall", m.Wall, u.WallMillis, r.WallPerHour}, {"cpu", m.CPU, u.CPUMillis, r.CPUPerHour},
		{"memory", m.Mem, u.MemGBMillis, r.MemGBPerHour}, {"gpu", m.GPU, u.GPUMillis, r.GPUPerHour}} {
		if want, ok := meter(c.qty, c.rate); !ok || want != c.got {
			bad("%s: metered %s charge %d, usage %d ms at %d/h gives %d", what, c.what, c.got, c.qty, c.rate, want)
		}
	}
	// A charge of zero is a failed pay-on-success part: nothing is due.
	if want := addSat(p.Price, m.Total); p.Charge != 0 && (p.Charge > want || !p.Capped && p.Charge != want) {
		bad("%s: charge %d, price %d + metered %d gives %d", what, p.Charge, p.Price, m.Total, want)
	}
	if p.SLARefund > p.Charge || p.Payable != p.Charge-p.SLARefund {
		bad("%s: payable %d, charge %d - SLA refund %d gives %d", what, p.Payable, p.Charge, p.SLARefund, p.Charge-p.SLARefund)
	}
	if got := addSat(addSat(p.ProviderPay, p.PlatformFee), roy); got != p.Payable {
		bad("%s: provider %d + fee %d + royalties %d = %d, payable %d", what, p.ProviderPay, p.PlatformFee, roy, got, p.Payable)
	}
}

// partSums are the settled parts' amounts added up.
type partSums struct {
	metered                                                     predicate.MeteredCharges
	usage                                                       predicate.MeteredUsage
	charge, slaRefund, payable, providerPay, platformFee, slash int64
	royalties                                                   map[string]int64
}

func (s *partSums) add(p predicate.SettlementPart) {
	s.metered.Wall, s.metered.CPU = addSat(s.metered.Wall, p.Metered.Wall), addSat(s.metered.CPU, p.Metered.CPU)
	s.metered.Mem, s.metered.GPU = addSat(s.metered.Mem, p.Metered.Mem), addSat(s.metered.GPU, p.Metered.GPU)
	s.metered.Total = addSat(s.metered.Total, p.Metered.Total)
	s.usage.WallMillis, s.usage.CPUMillis = addSat(s.usage.WallMillis, p.Usage.WallMillis), addSat(s.usage.CPUMillis, p.Usage.CPUMillis)
	s.usage.MemGBMillis, s.usage.GPUMillis = addSat(s.usage.MemGBMillis, p.Usage.MemGBMillis), addSat(s.usage.GPUMillis, p.Usage.GPUMillis)
	s.charge, s.slaRefund = addSat(s.charge, p.Charge), addSat(s.slaRefund, p.SLARefund)
	s.payable, s.providerPay = addSat(s.payable, p.Payable), addSat(s.providerPay, p.ProviderPay)
	s.platformFee, s.slash = addSat(s.platformFee, p.PlatformFee), addSat(s.slash, p.Slashed)
	if s.royalties == nil {
		s.royalties = map[string]int64{}
	}
	for _, r := range p.Royalties {
		s.royalties[r.Account] = addSat(s.royalties[r.Account], r.Amount)
	}
}

// check compares the record's top-level amounts with the parts' sums. The
// top-level usage, when the record has any, is the parts' usage summed
// (rates differ by part: the top level has none to check).
func (s *partSums) check(bad func(string, ...any), rec SettlementRecord) {
	for _, c := range []struct {
		what      string
		got, want int64
	}{
		{"metered wall", rec.Metered.Wall, s.metered.Wall}, {"metered cpu", rec.Metered.CPU, s.metered.CPU},
		{"metered memory", rec.Metered.Mem, s.metered.Mem}, {"metered gpu", rec.Metered.GPU, s.metered.GPU},
		{"metered total", rec.Metered.Total, s.metered.Total}, {"charge", rec.Charge, s.charge},
		{"SLA refund", rec.SLARefund, s.slaRefund}, {"payable", rec.Payable, s.payable},
		{"provider pay", rec.ProviderPay, s.providerPay}, {"platform fee", rec.PlatformFee, s.platformFee},
		{"slashed", rec.Slashed, s.slash},
	} {
		if c.got != c.want {
			bad("%s %d, the parts' sum is %d", c.what, c.got, c.want)
		}
	}
	roy := map[string]int64{}
	for _, r := range rec.Royalties {
		roy[r.Account] = addSat(roy[r.Account], r.Amount)
	}
	for _, acct := range slices.Sorted(maps.Keys(s.royalties)) {
		if roy[acct] != s.royalties[acct] {
			bad("royalties to %s: %d, the parts' sum is %d", acct, roy[acct], s.royalties[acct])
		}
	}
	for _, acct := range slices.Sorted(maps.Keys(roy)) {
		if _, ok := s.royalties[acct]; !ok {
			bad("royalties to %s: %d, no part pays it", acct, roy[acct])
		}
	}
	if u := rec.Usage; u != nil && *u != (predicate.MeteredUsage{}) && *u != s.usage {
		bad("record usage %+v, the parts' usage sums to %+v", *u, s.usage)
	}
}

// addSat adds amounts, saturating at the int64 limits so that a hostile
// record cannot wrap a sum into agreement.
func addSat(x, y int64) int64 {
	switch {
	case y > 0 && x > math.MaxInt64-y:
		return math.MaxInt64
	case y < 0 && x < math.MinInt64-y:
		return math.MinInt64
	}
	return x + y
}

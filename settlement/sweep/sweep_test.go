package sweep

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/provenance/tlog"
	_ "github.com/accordmesh/accord/provenance/tlog/embedded"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/settlement/sla"
)

// fakeStates is the workflow state of each job; missing jobs are closed.
// before, when set, runs on each lookup: a workflow acting meanwhile.
type fakeStates struct {
	states map[string]State
	before func(jobID string)
}

func (f *fakeStates) JobState(_ context.Context, jobID string) (State, error) {
	if f.before != nil {
		f.before(jobID)
	}
	if st, ok := f.states[jobID]; ok {
		return st, nil
	}
	return Closed, nil
}

// fakeQuota records the calls the sweep makes.
type fakeQuota struct {
	mu       sync.Mutex
	released []string
	consumed map[string]int64
}

func (q *fakeQuota) Release(_ context.Context, jobID string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.released = append(q.released, jobID)
	return nil
}

func (q *fakeQuota) Consume(_ context.Context, jobID string, spend int64, _ float64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.consumed == nil {
		q.consumed = map[string]int64{}
	}
	q.consumed[jobID] = spend
	return nil
}

// flakyAttestor fails its first fails calls: the process dying between
// the ledger post and the attestation.
type flakyAttestor struct {
	Attestor
	fails int
}

func (f *flakyAttestor) Attest(ctx context.Context, req provenance.AttestRequest) (*provenance.Attestation, error) {
	if f.fails > 0 {
		f.fails--
		return nil, errors.New("crashed before attesting")
	}
	return f.Attestor.Attest(ctx, req)
}

// env is a ledger, a provenance store with its recorder, and a sweeper
// whose clock is two days ahead (every hold is old enough).
type env struct {
	t      *testing.T
	ctx    context.Context
	l      *settlement.Ledger
	rec    *provenance.Recorder
	store  *provenance.Store
	key    *provenance.Key
	lg     tlog.Log
	states *fakeStates
	quota  *fakeQuota
	s      *Sweeper
	trust  *provenance.TrustStore
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	l, err := settlement.Open(ctx, filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	lg, err := tlog.Open(ctx, tlog.Config{Kind: tlog.KindEmbedded, Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tlog.Close(ctx, lg) })
	key, err := provenance.GenerateKey(provenance.AlgECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	store := provenance.NewStore(filepath.Join(dir, "provenance"))
	e := &env{t: t, ctx: ctx, l: l, store: store, key: key, lg: lg, rec: provenance.NewRecorder(lg, key, store),
		states: &fakeStates{states: map[string]State{}}, quota: &fakeQuota{}, trust: provenance.NewTrustStore()}
	if _, err := e.trust.Add(key.PublicPEM(), "worker", provenance.ScopeStage); err != nil {
		t.Fatal(err)
	}
	e.s = &Sweeper{
		Ledger: l, Jobs: e.states, Attestor: e.rec, Quota: e.quota, FeeBP: 1000,
		Evidence: Attestations{Store: store, Trust: func() (*provenance.TrustStore, error) { return e.trust, nil }},
		Now:      func() time.Time { return time.Now().Add(48 * time.Hour) },
	}
	if _, err := l.Deposit(ctx, settlement.DepositRequest{Tenant: "acme", Currency: "USD", Amount: 10_000, Key: "fund"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// place holds a job's escrow (price 1000 + 20 %) and attests its stages up
// to placement, as the workflow does.
func (e *env) place(job string) {
	e.t.Helper()
	e.negotiate(job)
	e.attest(job, predicate.StagePlacement, predicate.Placement{Provider: "gpu-co", Held: 1200, Currency: "USD"})
}

// negotiate holds a job's escrow (price 1000 + 20 %) and attests its
// stages up to negotiation (an award to gpu-co).
func (e *env) negotiate(job string) {
	e.t.Helper()
	if _, err := e.l.Hold(e.ctx, settlement.HoldRequest{Job: job, Tenant: "acme", Provider: "gpu-co", Currency: "USD",
		Price: 1000, MarginBP: 2000, Cap: 2000, Attempt: WorkflowAttempt}); err != nil {
		e.t.Fatal(err)
	}
	e.attest(job, predicate.StageSpec, predicate.Spec{DocumentDigest: provenance.Digest([]byte(job)), Tenant: "acme"})
	e.attest(job, predicate.StageAdmission, predicate.Admission{Allowed: true})
	rec, _ := json.Marshal(map[string]any{"awards": []map[string]any{{"provider": "gpu-co", "sla": sla.Terms{RefundPercent: 10}}}})
	e.attest(job, predicate.StageNegotiation, predicate.Negotiation{Provider: "gpu-co", Price: 1000, Currency: "USD", Record: rec})
}

// execute attests the job's execution: one task, 2 hours of wall time.
func (e *env) execute(job string) {
	e.t.Helper()
	start := time.Now().Add(-3 * time.Hour).UTC()
	end := start.Add(2 * time.Hour)
	e.attest(job, predicate.StageExecution, predicate.Execution{Provider: "gpu-co", Tasks: map[string]predicate.TaskRun{
		"train": {State: "exited", StartedAt: &start, FinishedAt: &end, Usage: runtimes.Usage{WallSeconds: 7200, CPUSeconds: 3600}},
	}})
}

func (e *env) attest(job, stage string, pred any) *provenance.Attestation {
	e.t.Helper()
	b, err := json.Marshal(pred)
	if err != nil {
		e.t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	m["job_id"] = job
	b, _ = json.Marshal(m)
	a, err := e.rec.Attest(e.ctx, provenance.AttestRequest{JobID: job, Stage: stage, Predicate: b})
	if err != nil {
		e.t.Fatalf("attest %s %s: %v", job, stage, err)
	}
	return a
}

func (e *env) sweep(dryRun bool) Report {
	e.t.Helper()
	r, err := e.s.Sweep(e.ctx, dryRun)
	if err != nil {
		e.t.Fatalf("Sweep: %v", err)
	}
	for _, a := range r.Actions {
		if a.Error != "" {
			e.t.Logf("action %+v", a)
		}
	}
	return r
}

func (e *env) balance(account string) int64 {
	e.t.Helper()
	b, err := e.l.Balance(e.ctx, account, "USD")
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// checkLedger fails the test unless the ledger's invariants hold.
func (e *env) checkLedger() {
	e.t.Helper()
	r, err := e.l.Check(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if !r.OK {
		e.t.Fatalf("ledger check: %v", r.Problems)
	}
}

// settlementOf returns the job's settlement predicate and its chain header.
func (e *env) settlementOf(job string) (predicate.Settlement, *provenance.Attestation) {
	e.t.Helper()
	att, err := e.store.Get(job, provenance.StageSettlement)
	if err != nil {
		e.t.Fatalf("settlement attestation of %s: %v", job, err)
	}
	if att.Entry == nil {
		e.t.Fatalf("settlement attestation of %s is not logged", job)
	}
	payload, _, err := provenance.VerifyEnvelope(e.ctx, att.Envelope, e.key.Public())
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := provenance.ParseStatement(payload)
	if err != nil {
		e.t.Fatal(err)
	}
	var p predicate.Settlement
	if err := st.DecodePredicate(&p); err != nil {
		e.t.Fatal(err)
	}
	return p, att
}

// A closed job that never executed is refunded in full, its quota
// released, and the refund attested as its settlement stage, chained to
// its placement and logged.
func TestClosedJobRefundedAndAttested(t *testing.T) {
	e := newEnv(t)
	e.place("job-1")
	r := e.sweep(false)
	if r.Released != 1 || r.Examined != 1 || len(r.Actions) != 1 || r.Failed != 0 {
		t.Fatalf("report = %+v, want one release", r)
	}
	a := r.Actions[0]
	if a.Action != ActionRelease || a.Refunded != 1200 || a.Paid != 0 || a.Reason != "swept: workflow closed" || a.Attestation == "" {
		t.Fatalf("action = %+v", a)
	}
	if got := e.balance("tenant:acme"); got != 10_000 {
		t.Fatalf("tenant = %d, want 10000 (all refunded)", got)
	}
	if len(e.quota.released) != 1 || e.quota.released[0] != "job-1" {
		t.Fatalf("quota released = %v, want job-1", e.quota.released)
	}
	p, att := e.settlementOf("job-1")
	pl, _ := e.store.Get("job-1", provenance.StagePlacement)
	if p.Reason != "swept: workflow closed" || p.Refunded != 1200 || p.Paid != 0 || p.Previous != pl.Digest || att.Digest != a.Attestation {
		t.Fatalf("settlement predicate = %+v (previous want %s)", p, pl.Digest)
	}
	e.checkLedger()
	for _, pr := range e.audit("job-1") {
		if pr.Check != "chain" || pr.Stage != provenance.StageSettlement || !strings.Contains(pr.Message, "stage execution, verification missing") {
			t.Errorf("audit problem: %s", pr)
		}
	}
}

// An executed job whose workflow is gone is paid for its attested work:
// the price plus metered usage at the provider's rates, less the agreed
// SLA, the fee to the platform, the rest refunded; quota consumed.
func TestExecutedJobSettled(t *testing.T) {
	e := newEnv(t)
	e.s.Rates = func(string) settlement.Rates { return settlement.Rates{WallPerHour: 50} }
	e.place("job-1")
	e.execute("job-1")
	e.states.states["job-1"] = NotFound
	r := e.sweep(false)
	if r.Settled != 1 || len(r.Actions) != 1 {
		t.Fatalf("report = %+v, want one settle", r)
	}
	a := r.Actions[0]
	// 1000 price + 2 h × 50 = 1100 charged of 1200 held, 10 % fee.
	if a.Action != ActionSettle || a.Paid != 1100 || a.Refunded != 100 || a.Reason != "swept: workflow not found" {
		t.Fatalf("action = %+v, want 1100 paid, 100 refunded", a)
	}
	if p, f := e.balance("provider:gpu-co"), e.balance("platform:fee"); p != 990 || f != 110 {
		t.Fatalf("provider %d, fee %d; want 990, 110", p, f)
	}
	if e.quota.consumed["job-1"] != 1100 {
		t.Fatalf("quota consumed = %v, want 1100", e.quota.consumed)
	}
	p, _ := e.settlementOf("job-1")
	ex, _ := e.store.Get("job-1", provenance.StageExecution)
	if p.Paid != 1100 || p.Usage == nil || p.Usage.WallMillis != 7_200_000 || p.Previous != ex.Digest {
		t.Fatalf("settlement predicate = %+v", p)
	}
	e.checkLedger()
	// The receipt audits clean but for the stage the workflow never
	// reached: amounts, usage, chain links and log entries all check.
	for _, pr := range e.audit("job-1") {
		if pr.Check != "chain" || pr.Stage != provenance.StageSettlement || !strings.Contains(pr.Message, "stage verification missing") {
			t.Errorf("audit problem: %s", pr)
		}
	}
}

// audit verifies the job's receipt against the worker and log keys and
// returns its problems.
func (e *env) audit(job string) []provenance.Problem {
	e.t.Helper()
	rc, err := provenance.BuildReceipt(e.ctx, job, e.store, e.lg)
	if err != nil {
		e.t.Fatal(err)
	}
	ts := provenance.NewTrustStore()
	logPEM, err := e.lg.PublicKey(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := ts.Add(e.key.PublicPEM(), "worker", provenance.ScopeStage); err != nil {
		e.t.Fatal(err)
	}
	if _, err := ts.Add(logPEM, "log", provenance.ScopeLog); err != nil {
		e.t.Fatal(err)
	}
	rep, _ := provenance.Verify(e.ctx, rc, ts, provenance.VerifyOptions{})
	return rep.Problems
}

// Holds whose workflow still runs, and holds younger than the minimum age,
// are left alone.
func TestRunningAndYoungUntouched(t *testing.T) {
	e := newEnv(t)
	e.place("job-running")
	e.states.states["job-running"] = Running
	r := e.sweep(false)
	if r.Examined != 1 || r.Running != 1 || len(r.Actions) != 0 {
		t.Fatalf("report = %+v, want the running job left alone", r)
	}
	e.place("job-young")
	e.s.Now = time.Now
	if r := e.sweep(false); r.Examined != 0 || len(r.Actions) != 0 {
		t.Fatalf("report = %+v, want young holds not examined", r)
	}
	if got := e.balance("escrow:job-running") + e.balance("escrow:job-young"); got != 2400 {
		t.Fatalf("escrow = %d, want both holds intact (2400)", got)
	}
	e.checkLedger()
}

// A second sweep does nothing: no posting, no attestation, no action.
func TestSecondSweepNoop(t *testing.T) {
	e := newEnv(t)
	e.place("job-1")
	e.place("job-2")
	e.execute("job-2")
	if r := e.sweep(false); r.Released != 1 || r.Settled != 1 {
		t.Fatalf("first sweep = %+v", r)
	}
	tenant := e.balance("tenant:acme")
	r := e.sweep(false)
	if len(r.Actions) != 0 || r.Examined != 0 {
		t.Fatalf("second sweep = %+v, want nothing to do", r)
	}
	if got := e.balance("tenant:acme"); got != tenant {
		t.Fatalf("tenant moved from %d to %d on the second sweep", tenant, got)
	}
	e.checkLedger()
}

// A dry run reports what it would do and posts nothing.
func TestDryRun(t *testing.T) {
	e := newEnv(t)
	e.place("job-1")
	r := e.sweep(true)
	if !r.DryRun || len(r.Actions) != 1 || r.Actions[0].Action != ActionRelease || r.Actions[0].Refunded != 1200 {
		t.Fatalf("dry run = %+v", r)
	}
	if got := e.balance("escrow:job-1"); got != 1200 {
		t.Fatalf("escrow = %d after a dry run, want 1200", got)
	}
	if p, _ := e.l.PendingSweeps(e.ctx); len(p) != 0 {
		t.Fatalf("dry run journalled %+v", p)
	}
}

// The workflow settles while the sweep decides (between the sweep reading
// the hold and posting): the sweep posts nothing, drops its decision and
// attests nothing; the money moved once.
func TestRaceWorkflowSettlesFirst(t *testing.T) {
	e := newEnv(t)
	e.place("job-1")
	e.execute("job-1")
	e.states.before = func(job string) {
		if _, err := e.l.Settle(e.ctx, settlement.SettleRequest{Job: job, Attempt: WorkflowAttempt, Succeeded: true, Price: 1000, FeeBP: 1000}); err != nil {
			t.Errorf("workflow settle: %v", err)
		}
	}
	r := e.sweep(false)
	if r.Lost != 1 || r.Settled != 0 || len(r.Actions) != 1 || r.Actions[0].Action != ActionLost {
		t.Fatalf("report = %+v, want the sweep lost", r)
	}
	if p, f, ten := e.balance("provider:gpu-co"), e.balance("platform:fee"), e.balance("tenant:acme"); p != 900 || f != 100 || ten != 9000 {
		t.Fatalf("provider %d, fee %d, tenant %d; want 900, 100, 9000 (one settlement)", p, f, ten)
	}
	if _, err := e.store.Get("job-1", provenance.StageSettlement); !errors.Is(err, provenance.ErrNotFound) {
		t.Fatalf("sweep attested a settlement it did not make: %v", err)
	}
	if p, _ := e.l.PendingSweeps(e.ctx); len(p) != 0 {
		t.Fatalf("lost sweep still pending: %+v", p)
	}
	e.checkLedger()
}

// The sweep settles first and a late (reset) workflow then settles and
// releases under its own keys: the ledger refuses or ignores both.
func TestRaceSweepFirst(t *testing.T) {
	e := newEnv(t)
	e.place("job-1")
	e.execute("job-1")
	if r := e.sweep(false); r.Settled != 1 {
		t.Fatalf("sweep = %+v", r)
	}
	before := [3]int64{e.balance("provider:gpu-co"), e.balance("platform:fee"), e.balance("tenant:acme")}
	_, err := e.l.Settle(e.ctx, settlement.SettleRequest{Job: "job-1", Attempt: WorkflowAttempt, Succeeded: true, Price: 1000, FeeBP: 1000})
	if !errors.Is(err, settlement.ErrKeyReused) && !errors.Is(err, settlement.ErrJobState) {
		t.Fatalf("late workflow settle: %v, want refused", err)
	}
	if _, err := e.l.Release(e.ctx, settlement.ReleaseRequest{Job: "job-1", Attempt: WorkflowAttempt}); !errors.Is(err, settlement.ErrJobState) {
		t.Fatalf("late workflow release: %v, want ErrJobState", err)
	}
	after := [3]int64{e.balance("provider:gpu-co"), e.balance("platform:fee"), e.balance("tenant:acme")}
	if before != after {
		t.Fatalf("balances moved from %v to %v after the sweep", before, after)
	}
	e.checkLedger()
}

// A crash between the ledger post and the attestation: the money moved,
// the sweep stays pending, and the next pass replays (posting nothing new)
// and attests it; the pass after that does nothing.
func TestCrashBeforeAttestReattests(t *testing.T) {
	e := newEnv(t)
	e.place("job-1")
	e.s.Attestor = &flakyAttestor{Attestor: e.rec, fails: 1}
	r := e.sweep(false)
	if r.Failed != 1 || r.Actions[0].Error == "" {
		t.Fatalf("first pass = %+v, want the attestation failed", r)
	}
	if got := e.balance("tenant:acme"); got != 10_000 {
		t.Fatalf("tenant = %d, want refunded before the crash", got)
	}
	e.states.states["job-1"] = Running // reset meanwhile: left alone
	if r := e.sweep(false); r.Running != 1 || len(r.Actions) != 0 {
		t.Fatalf("pass while the workflow runs = %+v, want it left alone", r)
	}
	delete(e.states.states, "job-1")
	r = e.sweep(false)
	if r.Reattested != 1 || r.Failed != 0 || r.Actions[0].Refunded != 1200 || r.Actions[0].Attestation == "" {
		t.Fatalf("second pass = %+v, want the refund attested", r)
	}
	if got := e.balance("tenant:acme"); got != 10_000 {
		t.Fatalf("tenant = %d after the replay, want 10000 (refunded once)", got)
	}
	if p, _ := e.settlementOf("job-1"); p.Refunded != 1200 || p.Reason != "swept: workflow closed" {
		t.Fatalf("settlement predicate = %+v", p)
	}
	if r := e.sweep(false); len(r.Actions) != 0 {
		t.Fatalf("third pass = %+v, want nothing", r)
	}
	e.checkLedger()
}

// An execution attestation signed by an untrusted key is not evidence:
// the job is refunded, not paid.
func TestForgedExecutionRefunded(t *testing.T) {
	e := newEnv(t)
	e.place("job-1")
	other, err := provenance.GenerateKey(provenance.AlgECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	forger := provenance.NewRecorder(e.lg, other, e.store)
	b, _ := json.Marshal(predicate.Execution{Header: predicate.Header{JobID: "job-1"}, Tasks: map[string]predicate.TaskRun{
		"t": {Usage: runtimes.Usage{WallSeconds: 1e6}}}})
	if _, err := forger.Attest(e.ctx, provenance.AttestRequest{JobID: "job-1", Stage: provenance.StageExecution, Predicate: b}); err != nil {
		t.Fatal(err)
	}
	r := e.sweep(false)
	if r.Released != 1 || r.Actions[0].Paid != 0 {
		t.Fatalf("report = %+v, want a refund", r)
	}
	if got := e.balance("provider:gpu-co"); got != 0 {
		t.Fatalf("provider paid %d on a forged execution", got)
	}
	e.checkLedger()
}

// In a mesh the awarded provider signs the execution: its key, trusted for
// provider:<name>, makes the execution evidence; a key trusted only for
// another provider does not.
func TestProviderSignedExecution(t *testing.T) {
	for _, tc := range []struct {
		scope   string
		settled bool
	}{{provenance.ProviderScope("gpu-co"), true}, {provenance.ProviderScope("other"), false}} {
		e := newEnv(t)
		e.place("job-1")
		pk, err := provenance.GenerateKey(provenance.AlgECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.trust.Add(pk.PublicPEM(), "agent", tc.scope); err != nil {
			t.Fatal(err)
		}
		e.rec = provenance.NewRecorder(e.lg, pk, e.store)
		e.execute("job-1")
		e.states.states["job-1"] = NotFound
		r := e.sweep(false)
		if got := r.Settled == 1; got != tc.settled {
			t.Errorf("execution signed by a key for %s: report %+v, settled %v want %v", tc.scope, r, got, tc.settled)
		}
		e.checkLedger()
	}
}

// signAs makes the env's later attestations provider's: signed with a new
// key trusted for provider:<provider> alone.
func (e *env) signAs(provider string) {
	e.t.Helper()
	pk, err := provenance.GenerateKey(provenance.AlgECDSAP256)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.trust.Add(pk.PublicPEM(), "agent "+provider, provenance.ProviderScope(provider)); err != nil {
		e.t.Fatal(err)
	}
	e.rec = provenance.NewRecorder(e.lg, pk, e.store)
}

// After a failover the replacement signs the execution and holds the
// escrow (the workflow reassigns it): the sweeper follows the failovers the
// statement lists to the provider whose key must sign, and pays that
// provider at its price under the terms the failover records; the lost
// provider gets nothing.
func TestFailedOverExecution(t *testing.T) {
	e := newEnv(t)
	e.place("job-1")
	if _, err := e.l.Reassign(e.ctx, settlement.ReassignRequest{Job: "job-1", From: "gpu-co", To: "gpu-b", N: 1, Reason: "failover"}); err != nil {
		t.Fatal(err)
	}
	e.signAs("gpu-b")
	start := time.Now().Add(-3 * time.Hour).UTC()
	end := start.Add(time.Hour)
	e.attest("job-1", predicate.StageExecution, predicate.Execution{Provider: "gpu-b",
		Failovers: []predicate.Failover{{Lost: "gpu-co", Provider: "gpu-b", Reason: "heartbeat lost", Price: 900, At: start,
			SLA: &sla.Terms{MaxDuration: 30 * time.Minute, RefundPercent: 50}}},
		Tasks: map[string]predicate.TaskRun{"train": {State: "exited", StartedAt: &start, FinishedAt: &end, Usage: runtimes.Usage{WallSeconds: 3600}}}})
	e.states.states["job-1"] = NotFound
	w, err := e.s.Evidence.Work(e.ctx, "job-1")
	if err != nil {
		t.Fatal(err)
	}
	if w.Provider != "gpu-b" || w.Price != 900 || w.SLA == nil || w.SLA.RefundPercent != 50 {
		t.Fatalf("work %+v, want gpu-b's price and terms", w)
	}
	if r := e.sweep(false); r.Settled != 1 {
		t.Fatalf("report %+v: a failed-over execution signed by its replacement was not counted", r)
	}
	if got := e.balance(settlement.ProviderAccount("gpu-co")); got != 0 {
		t.Errorf("the lost provider was paid %d", got)
	}
	if got := e.balance(settlement.ProviderAccount("gpu-b")); got <= 0 {
		t.Errorf("the replacement was paid %d", got)
	}
	set, _ := e.settlementOf("job-1")
	// The price 900 (no rates configured), half refunded: the hour ran past
	// the replacement's 30-minute limit; 1200 were held.
	if set.Paid != 450 || set.Refunded != 750 {
		t.Errorf("settled %d, refunded %d; want 450 and 750 under gpu-b's terms", set.Paid, set.Refunded)
	}
	e.checkLedger()
}

// A provider lost before it accepted the placement (job layout 11): its
// replacement signs the placement, which names the failover, and the
// execution. The sweeper checks the placement against the replacement's
// key and settles; a placement that names no failover, signed by the
// replacement, is no evidence.
func TestFailedOverPlacement(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failovers bool
	}{{"named", true}, {"not named", false}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.negotiate("job-1")
			e.signAs("gpu-b")
			start := time.Now().Add(-3 * time.Hour).UTC()
			end := start.Add(time.Hour)
			fs := []predicate.Failover{{Lost: "gpu-co", Provider: "gpu-b", Reason: "queue not served", Price: 1000, At: start}}
			pl := predicate.Placement{Provider: "gpu-b", Held: 1200, Currency: "USD"}
			if tc.failovers {
				pl.Failovers = fs
			}
			e.attest("job-1", predicate.StagePlacement, pl)
			e.attest("job-1", predicate.StageExecution, predicate.Execution{Provider: "gpu-b", Failovers: fs,
				Tasks: map[string]predicate.TaskRun{"train": {State: "exited", StartedAt: &start, FinishedAt: &end, Usage: runtimes.Usage{WallSeconds: 3600}}}})
			w, err := e.s.Evidence.Work(e.ctx, "job-1")
			if err != nil {
				t.Fatal(err)
			}
			rejected := slices.ContainsFunc(w.Rejected, func(r string) bool { return strings.HasPrefix(r, predicate.StagePlacement) })
			if rejected == tc.failovers {
				t.Errorf("placement rejected %v (%v), want %v", rejected, w.Rejected, !tc.failovers)
			}
			e.checkLedger()
		})
	}
}

// The SLA deadline's clock starts when the escrow was held, as the
// placement says (job layout 11), like the workflow's: a job placed an
// hour before its two-hour task ran misses a 2.5 h deadline and is
// refunded 10 % of its charge. Without a placement time the clock starts
// with the first task, and the deadline is met.
func TestPlacementTimeStartsTheDeadline(t *testing.T) {
	start := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	for _, tc := range []struct {
		at       time.Time
		refunded int64
	}{{start.Add(-time.Hour), 200 + 100}, {time.Time{}, 200}} {
		e := newEnv(t)
		if _, err := e.l.Hold(e.ctx, settlement.HoldRequest{Job: "job-1", Tenant: "acme", Provider: "gpu-co", Currency: "USD",
			Price: 1000, MarginBP: 2000, Cap: 2000, Attempt: WorkflowAttempt}); err != nil {
			t.Fatal(err)
		}
		e.attest("job-1", predicate.StageSpec, predicate.Spec{DocumentDigest: provenance.Digest([]byte("job-1")), Tenant: "acme"})
		e.attest("job-1", predicate.StageAdmission, predicate.Admission{Allowed: true})
		rec, _ := json.Marshal(map[string]any{"awards": []map[string]any{{"provider": "gpu-co", "sla": sla.Terms{Deadline: 150 * time.Minute, RefundPercent: 10}}}})
		e.attest("job-1", predicate.StageNegotiation, predicate.Negotiation{Provider: "gpu-co", Price: 1000, Currency: "USD", Record: rec})
		e.attest("job-1", predicate.StagePlacement, predicate.Placement{Provider: "gpu-co", Held: 1200, Currency: "USD", At: tc.at})
		end := start.Add(2 * time.Hour)
		e.attest("job-1", predicate.StageExecution, predicate.Execution{Provider: "gpu-co", Tasks: map[string]predicate.TaskRun{
			"train": {State: "exited", StartedAt: &start, FinishedAt: &end, Usage: runtimes.Usage{WallSeconds: 7200}}}})
		e.states.states["job-1"] = NotFound
		if r := e.sweep(false); r.Settled != 1 {
			t.Fatalf("placed at %v: %+v, want settled", tc.at, r)
		}
		if set, _ := e.settlementOf("job-1"); set.Refunded != tc.refunded {
			t.Errorf("placed at %v: refunded %d, want %d", tc.at, set.Refunded, tc.refunded)
		}
		e.checkLedger()
	}
}

// Bad configuration is refused before anything is read.
func TestConfig(t *testing.T) {
	if _, err := (&Sweeper{}).Sweep(context.Background(), true); !errors.Is(err, ErrConfig) {
		t.Fatalf("empty sweeper: %v, want ErrConfig", err)
	}
	e := newEnv(t)
	e.s.After = time.Second
	if _, err := e.s.Sweep(e.ctx, true); !errors.Is(err, ErrConfig) {
		t.Fatalf("1s minimum age: %v, want ErrConfig", err)
	}
}

// Run sweeps at once and stops with its context.
func TestRun(t *testing.T) {
	e := newEnv(t)
	e.place("job-1")
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { e.s.Run(ctx, time.Hour); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.balance("escrow:job-1") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not sweep job-1")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

// Attested terms the ledger would refuse (here an SLA refund of 500 %)
// refund the job rather than leave a settle that can never post.
func TestUnusableTermsRefunded(t *testing.T) {
	e := newEnv(t)
	if _, err := e.l.Hold(e.ctx, settlement.HoldRequest{Job: "job-1", Tenant: "acme", Provider: "gpu-co", Currency: "USD",
		Price: 1000, MarginBP: 2000, Cap: 2000, Attempt: WorkflowAttempt}); err != nil {
		t.Fatal(err)
	}
	e.attest("job-1", predicate.StageSpec, predicate.Spec{DocumentDigest: provenance.Digest([]byte("job-1"))})
	e.attest("job-1", predicate.StageAdmission, predicate.Admission{Allowed: true})
	rec, _ := json.Marshal(map[string]any{"awards": []map[string]any{{"provider": "gpu-co", "sla": sla.Terms{RefundPercent: 500}}}})
	e.attest("job-1", predicate.StageNegotiation, predicate.Negotiation{Provider: "gpu-co", Price: 1000, Currency: "USD", Record: rec})
	e.attest("job-1", predicate.StagePlacement, predicate.Placement{Provider: "gpu-co", Held: 1200, Currency: "USD"})
	e.execute("job-1")
	r := e.sweep(false)
	if r.Released != 1 || r.Failed != 0 || !strings.Contains(r.Actions[0].Basis, "attested terms unusable") {
		t.Fatalf("report = %+v, want a refund", r)
	}
	e.checkLedger()
}

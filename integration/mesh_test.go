package integration

// The mesh on several hosts: a control-plane host and two provider hosts
// as network namespaces of this machine (mesh_net_test.go), every party a
// real process (mesh_cp_test.go). The control plane runs in the root
// namespace with its services bound to the bridge address (Temporal's
// frontend and internal services, the API, the log, the witness);
// PostgreSQL stays on loopback, reached by the control plane only. Each
// provider's agent runs in its own namespace, reaching the control plane
// only through Temporal and the API over the bridge.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workflows"
)

// meshTask is the scenarios' one task: the trainer image from the
// artifact store, cmd, and small resources.
func meshTask(cp *meshControl, cmd []string, outputs string) string {
	return artifactTask("train", cp.image, cmd, "  outputs: ["+outputs+"]\n  resources: {cpu: 100m, memory: 64MiB, max_duration: 10m}\n")
}

// meshFunds are the tenants of TestMesh, one per scenario (so that each
// scenario's money is checked on its own), and their deposits.
func meshFunds(many int) map[string]int64 {
	return map[string]int64{"mesh-receipt": 1000, "mesh-split": 1000, "mesh-kill": 1000, "mesh-restart": 1000, "mesh-many": int64(many)*500 + 1000, "mesh-torn": 1000}
}

// meshJobs is scenario d's job count: 300, 30 with -short,
// $ACCORD_MESH_JOBS when set.
func meshJobs() int {
	if n, err := strconv.Atoi(os.Getenv("ACCORD_MESH_JOBS")); err == nil && n > 0 {
		return n
	}
	if testing.Short() {
		return 30
	}
	return 300
}

// TestMesh builds the hosts and the parties, then runs the scenarios of
// issue 21 on them, one subtest each, in order.
func TestMesh(t *testing.T) {
	image := needStack(t)
	needNetns(t)
	needPostgres(t)
	began := time.Now()
	n := newMeshNet(t, "prov-a", "prov-b")
	many := meshJobs()
	cp := startMeshControl(t, n, image, meshFunds(many))
	for _, p := range []string{"prov-a", "prov-b"} {
		n.checkReach(p, strings.TrimPrefix(cp.apiURL, "http://"))
		n.checkReach(p, cp.tc.addr)
		cp.startAgent(p)
	}
	t.Logf("hosts %s.0/24 (control plane %s in the root namespace; prov-a %s, prov-b %s), parties up in %v",
		n.prefix, n.HostIP(), n.hosts["prov-a"].ip, n.hosts["prov-b"].ip, time.Since(began).Round(time.Millisecond))

	t.Run("receipt", func(t *testing.T) { meshReceipt(t, cp) })
	t.Run("split", func(t *testing.T) { meshSplit(t, cp) })
	t.Run("agent_killed", func(t *testing.T) { meshAgentKilled(t, cp) })
	t.Run("temporal_restart", func(t *testing.T) { meshTemporalRestart(t, cp) })
	t.Run("many", func(t *testing.T) { meshMany(t, cp, many) })
	// Last: it removes a host.
	t.Run("host_torn_down", func(t *testing.T) { meshHostTornDown(t, cp) })
}

// a) A job lands on prov-a and settles; its receipt, exported with a
// witnessed checkpoint, verifies with the parties' keys; the execution
// re-signed by the operator fails the audit, naming the stage.
func meshReceipt(t *testing.T, cp *meshControl) {
	ctx := context.Background()
	spec := meshJobSpec(t, t.TempDir(), "receipt", "mesh-receipt", []string{"prov-a"},
		meshTask(cp, []string{"trainer", "train", "--samples", "200", "--epochs", "3"}, "metrics.json, model.json"))
	sub, err := jobclient.Submit(ctx, cp.client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	res := result(t, cp.client, sub.JobID, 5*time.Minute)
	if res.Status != workflows.StatusSettled || res.Provider != "prov-a" || res.Paid <= 0 {
		t.Fatalf("job: %+v", res)
	}
	checkRanOn(t, cp, sub.JobID, "prov-a")
	checkPGLedger(t, cp.ledgerDSN, sub.JobID, "mesh-receipt", 1000, res.Paid)

	rc, verify := meshAudit(t, cp, sub.JobID)
	rep, code, out := verify(rc.path, "--parties")
	for _, s := range rep.Stages {
		t.Logf("stage %-13s signed by %s (%s)", s.Stage, s.Signer, s.Party)
	}
	// Each party signed its own stages: the operator spec, admission,
	// negotiation, verification and settlement; prov-a its placement
	// acceptance and its execution (layout 7).
	if code != 0 || !rep.OK || !rep.Complete {
		t.Fatalf("audit verify --parties --witnesses 1: exit %d\n%s", code, out)
	}
	checkSigners(t, rep, cp)

	// The provider's execution signature replaced by the operator's.
	usurped := filepath.Join(t.TempDir(), "usurped.json")
	resignExecution(t, rc.receipt, filepath.Join(cp.home, "keys", "worker.key"), usurped)
	rep, code, out = verify(usurped, "--parties")
	if code != 7 || rep.OK || !hasProblem(rep, provenance.StageExecution, "signer", "must be signed by provider:prov-a") {
		t.Fatalf("execution signed by the operator: exit %d, want 7 and a signer problem at stage execution\n%s", code, out)
	}
}

// meshReceiptFile is an exported receipt: its file and its contents.
type meshReceiptFile struct {
	path    string
	receipt *provenance.Receipt
}

// meshAudit exports the job's receipt with a checkpoint the witness
// cosigned, and returns it with an auditor's verify: a home that trusts
// each party for its own scope (the log, the control plane's key as
// operator, each provider's key as provider:NAME, and the witness), run
// as `audit verify FILE --witnesses 1 --json` plus extra arguments.
func meshAudit(t *testing.T, cp *meshControl, jobID string) (meshReceiptFile, func(file string, extra ...string) (provenance.Report, int, string)) {
	t.Helper()
	receipt := filepath.Join(t.TempDir(), "receipt.json")
	cli(t, cp.bin, "--home", cp.home, "receipt", "export", jobID, "-o", receipt,
		"--rekor-url", cp.logURL, "--insecure", "--witness", cp.witURL)
	r, err := provenance.ReadReceipt(receipt)
	if err != nil {
		t.Fatal(err)
	}
	if r.Witnessed == nil || !strings.Contains(r.Witnessed.Checkpoint, "— witness.mesh.test/w1 ") {
		t.Fatalf("the receipt carries no checkpoint cosigned by the witness: %+v", r.Witnessed)
	}
	auditor := t.TempDir()
	trust := func(pub, scope string) { cli(t, cp.bin, "--home", auditor, "keys", "trust", pub, "--scope", scope) }
	trust(cp.logPub, "log")
	trust(cp.opPub, "operator")
	for name, a := range cp.agents {
		trust(a.pub, "provider:"+name)
	}
	verify := func(file string, extra ...string) (provenance.Report, int, string) {
		args := append([]string{"--home", auditor, "audit", "verify", file, "--witnesses", "1", "--witness-key", cp.witKey, "--json"}, extra...)
		out, code, stderr := cliExit(t, cp.bin, args...)
		var rep provenance.Report
		if err := json.Unmarshal([]byte(lastLine(out)), &rep); err != nil {
			t.Fatalf("audit verify: exit %d, %v\n%s%s", code, err, out, stderr)
		}
		return rep, code, out
	}
	return meshReceiptFile{receipt, r}, verify
}

func hasProblem(rep provenance.Report, stage, check, msg string) bool {
	for _, p := range rep.Problems {
		if p.Stage == stage && (check == "" || p.Check == check) && strings.Contains(p.Message, msg) {
			return true
		}
	}
	return false
}

// checkSigners: placement and execution are signed by prov-a's key, every
// other stage by the control plane's.
func checkSigners(t *testing.T, rep provenance.Report, cp *meshControl) {
	t.Helper()
	op, err := provenance.LoadKey(filepath.Join(cp.home, "keys", "worker.key"))
	if err != nil {
		t.Fatal(err)
	}
	pa, err := provenance.LoadKey(filepath.Join(cp.agents["prov-a"].home, "keys", "provider.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rep.Stages {
		want := op.ID()
		if s.Stage == provenance.StageExecution || s.Stage == provenance.StagePlacement {
			want = pa.ID()
		}
		if s.Signer != want {
			t.Errorf("stage %s signed by %s, want %s", s.Stage, s.Signer, want)
		}
	}
}

// resignExecution writes r to path with its execution envelope's payload
// signed by the key at keyPath instead of the provider's.
func resignExecution(t *testing.T, r *provenance.Receipt, keyPath, path string) {
	t.Helper()
	key, err := provenance.LoadKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	done := false
	for _, a := range r.Attestations {
		if a.Stage != provenance.StageExecution {
			continue
		}
		env, payload, err := provenance.ParseEnvelope(a.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		if a.Envelope, err = provenance.SignEnvelope(context.Background(), key, env.PayloadType, payload); err != nil {
			t.Fatal(err)
		}
		a.SignerPublicKey = string(key.PublicPEM())
		done = true
	}
	if !done {
		t.Fatal("the receipt has no execution stage")
	}
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
}

// checkRanOn: the job's task ran on provider's host (its run record is in
// that agent's home, attempt 1, and nowhere else).
func checkRanOn(t *testing.T, cp *meshControl, jobID, provider string) {
	t.Helper()
	for name, a := range cp.agents {
		recs, _ := filepath.Glob(filepath.Join(a.home, "jobs", jobID, "results", "*.json"))
		want := 0
		if name == provider {
			want = 1
		}
		if len(recs) != want {
			t.Errorf("%s holds %d run records of %s, want %d: %v", name, len(recs), jobID, want, recs)
		}
		if want == 1 && len(recs) == 1 && filepath.Base(recs[0]) != workflows.RunID(jobID, "train", 1)+".json" {
			t.Errorf("%s's run record is %s, want attempt 1", name, recs[0])
		}
	}
	if recs, _ := filepath.Glob(filepath.Join(cp.home, "jobs", jobID, "results", "*.json")); len(recs) != 0 {
		t.Errorf("the control plane ran %s: %v", jobID, recs)
	}
}

// waitRunning waits until the job's task is running and its container's
// trainer process (told apart by its --epochs value) is alive.
func waitRunning(t *testing.T, cp *meshControl, jobID, epochs string) {
	t.Helper()
	waitFor(t, 4*time.Minute, "the task's container running", func() bool {
		return jobStatus(t, cp.client, jobID).Tasks["train"].State == workflows.TaskRunning && processRunning("trainer", "--epochs", epochs)
	})
}

// checkOnce: the task was run once (one RunTask scheduled: it starts the
// container, or re-attaches to the one its run ID names), as task attempt
// 1, started before at and finished after it. It returns the activity
// attempt that completed RunTask.
func checkOnce(t *testing.T, cp *meshControl, jobID string, res workflows.JobResult, at time.Time) int32 {
	t.Helper()
	if n := countActivities(t, cp.client, jobID, workflows.RunTask.Name); n != 1 {
		t.Errorf("RunTask scheduled %d times, want 1", n)
	}
	attempt, identity := runTaskAttempt(t, cp, jobID)
	t.Logf("RunTask completed by %s on activity attempt %d", identity, attempt)
	tr := res.Tasks["train"]
	if tr.Attempt != 1 || tr.StartedAt == nil || !tr.StartedAt.Before(at) || tr.FinishedAt == nil || !tr.FinishedAt.After(at) {
		t.Errorf("task %+v: want attempt 1, started before %v and finished after", tr, at)
	}
	return attempt
}

// runTaskAttempt is the activity attempt and worker identity of the job's
// started RunTask (the history records the attempt that completed).
func runTaskAttempt(t *testing.T, cp *meshControl, jobID string) (int32, string) {
	t.Helper()
	iter := cp.client.GetWorkflowHistory(context.Background(), jobID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	scheduled := map[int64]bool{}
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == workflows.RunTask.Name {
			scheduled[ev.GetEventId()] = true
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] {
			return a.GetAttempt(), a.GetIdentity()
		}
	}
	t.Fatalf("%s: no started RunTask in the history", jobID)
	return 0, ""
}

// b) SIGKILL of prov-b's agent while its task's container runs, then a
// restart on the same home: the agent re-attaches to the container (its
// containerd outlived it), the job settles, the container ran once and
// the tenant paid once.
func meshAgentKilled(t *testing.T, cp *meshControl) {
	ctx := context.Background()
	spec := meshJobSpec(t, t.TempDir(), "killed", "mesh-kill", []string{"prov-b"},
		meshTask(cp, []string{"trainer", "train", "--samples", "20000", "--epochs", "12102"}, "metrics.json"))
	sub, err := jobclient.Submit(ctx, cp.client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	waitRunning(t, cp, sub.JobID, "12102")
	a := cp.agents["prov-b"]
	a.proc.kill()
	killedAt := time.Now()
	time.Sleep(2 * time.Second)
	if !processRunning("trainer", "--epochs", "12102") {
		t.Log("the container finished before the agent came back")
	}
	cp.startAgent("prov-b")
	res := result(t, cp.client, sub.JobID, 6*time.Minute)
	t.Logf("kill to result: %v", time.Since(killedAt).Round(time.Millisecond))
	if res.Status != workflows.StatusSettled || res.Provider != "prov-b" {
		t.Fatalf("job: %+v", res)
	}
	if attempt := checkOnce(t, cp, sub.JobID, res, killedAt); attempt < 2 {
		t.Errorf("RunTask completed on attempt %d: want a retry (the killed agent's attempt timed out, the restarted agent re-attached)", attempt)
	}
	checkRanOn(t, cp, sub.JobID, "prov-b")
	checkPGLedger(t, cp.ledgerDSN, sub.JobID, "mesh-kill", 1000, res.Paid)
}

// c) The Temporal server stopped while a task's container runs on prov-a
// and started again: the job resumes and settles once.
func meshTemporalRestart(t *testing.T, cp *meshControl) {
	ctx := context.Background()
	spec := meshJobSpec(t, t.TempDir(), "restart", "mesh-restart", []string{"prov-a"},
		meshTask(cp, []string{"trainer", "train", "--samples", "20000", "--epochs", "12103"}, "metrics.json"))
	sub, err := jobclient.Submit(ctx, cp.client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	waitRunning(t, cp, sub.JobID, "12103")
	cp.tc.stopServer()
	stoppedAt := time.Now()
	time.Sleep(2 * time.Second)
	cp.tc.start()
	restarted := time.Now()
	res := result(t, cp.client, sub.JobID, 6*time.Minute)
	t.Logf("restart to result: %v", time.Since(restarted).Round(time.Millisecond))
	if res.Status != workflows.StatusSettled || res.Provider != "prov-a" {
		t.Fatalf("job: %+v", res)
	}
	checkOnce(t, cp, sub.JobID, res, stoppedAt)
	checkRanOn(t, cp, sub.JobID, "prov-a")
	checkPGLedger(t, cp.ledgerDSN, sub.JobID, "mesh-restart", 1000, res.Paid)
}

// d) n small jobs over the two providers (alternately allowed, so each
// runs half): every job settles exactly once and `accord ledger check` is
// clean.
func meshMany(t *testing.T, cp *meshControl, n int) {
	spec := func(p string) string {
		return meshJobSpec(t, t.TempDir(), "many-"+p, "mesh-many", []string{p},
			meshTask(cp, []string{"trainer", "prepare", "--samples", "10"}, "dataset.csv"))
	}
	specs := map[string]string{"prov-a": spec("prov-a"), "prov-b": spec("prov-b")}
	began := time.Now()
	runs := runMeshJobs(t, cp, n, 8, func(i int) string { return []string{"prov-a", "prov-b"}[i%2] }, specs)
	elapsed := time.Since(began)
	t.Logf("%d jobs over 2 providers in %v: %.1f jobs/min", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Minutes())

	ctx := context.Background()
	l, err := settlement.Open(ctx, cp.ledgerDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var paid int64
	per := map[string]int{}
	seen := map[string]bool{}
	for _, r := range runs {
		if seen[r.jobID] {
			t.Errorf("job %s twice", r.jobID)
		}
		seen[r.jobID] = true
		per[r.res.Provider]++
		paid += r.res.Paid
		if _, err := l.Transaction(ctx, settlement.Key(r.jobID, "settle", 1)); err != nil {
			t.Errorf("job %s: settlement: %v", r.jobID, err)
		}
	}
	if per["prov-a"] != (n+1)/2 || per["prov-b"] != n/2 {
		t.Errorf("jobs per provider %v, want %d and %d", per, (n+1)/2, n/2)
	}
	stmt, err := l.Statement(ctx, settlement.TenantAccount("mesh-many"))
	if err != nil {
		t.Fatal(err)
	}
	if len(stmt.Jobs) != n {
		t.Errorf("the tenant's statement lists %d jobs, want %d", len(stmt.Jobs), n)
	}
	bal, err := l.Balance(ctx, settlement.TenantAccount("mesh-many"), "USD")
	if err != nil {
		t.Fatal(err)
	}
	if funded := meshFunds(n)["mesh-many"]; bal != funded-paid {
		t.Errorf("tenant balance %d, want %d - %d (each job paid once)", bal, funded, paid)
	}
	ledgerCLICheck(t, cp)
}

// meshRun is one job of runMeshJobs.
type meshRun struct {
	jobID string
	res   workflows.JobResult
}

// runMeshJobs submits n jobs, at most concurrency at a time, job i to
// provider(i) with specs[provider], and waits for each to settle on it.
func runMeshJobs(t *testing.T, cp *meshControl, n, concurrency int, provider func(int) string, specs map[string]string) []meshRun {
	t.Helper()
	ctx := context.Background()
	runs := make([]meshRun, n)
	var mu sync.Mutex
	runAll(t, n, concurrency, func(i int) error {
		sub, err := jobclient.Submit(ctx, cp.client, specs[provider(i)], "")
		if err != nil {
			return fmt.Errorf("submit %d: %w", i, err)
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		res, err := jobclient.Result(rctx, cp.client, sub.JobID)
		if err != nil {
			return fmt.Errorf("job %s: %w", sub.JobID, err)
		}
		if res.Status != workflows.StatusSettled || res.Provider != provider(i) {
			return fmt.Errorf("job %s: %s on %q (%s), want settled on %s", sub.JobID, res.Status, res.Provider, res.Error, provider(i))
		}
		mu.Lock()
		runs[i] = meshRun{sub.JobID, res}
		mu.Unlock()
		return nil
	})
	return runs
}

// TestMeshBench is `make bench-mesh`: ACCORD_BENCH_MESH_JOBS small jobs
// (make's default 100) through one provider agent, then the same number
// spread over two agents (alternately allowed), on the same hosts and the
// same control plane in the same run, 8 jobs in flight each time; prints
// jobs/min of each and their ratio.
func TestMeshBench(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ACCORD_BENCH_MESH_JOBS"))
	if n <= 0 {
		t.Skip("benchmark: set ACCORD_BENCH_MESH_JOBS (make bench-mesh)")
	}
	image := needStack(t)
	needNetns(t)
	needPostgres(t)
	const concurrency = 8
	net := newMeshNet(t, "prov-a", "prov-b")
	cp := startMeshControl(t, net, image, map[string]int64{"mesh-bench": int64(2*n+2)*500 + 1000})
	spec := func(p string) string {
		return meshJobSpec(t, t.TempDir(), "bench-"+p, "mesh-bench", []string{p},
			meshTask(cp, []string{"trainer", "prepare", "--samples", "10"}, "dataset.csv"))
	}
	specs := map[string]string{"prov-a": spec("prov-a"), "prov-b": spec("prov-b")}
	measure := func(agents []string) float64 {
		// Warm up each agent: its containerd imports the image once.
		runMeshJobs(t, cp, len(agents), len(agents), func(i int) string { return agents[i] }, specs)
		began := time.Now()
		runMeshJobs(t, cp, n, concurrency, func(i int) string { return agents[i%len(agents)] }, specs)
		return float64(n) / time.Since(began).Minutes()
	}
	cp.startAgent("prov-a")
	one := measure([]string{"prov-a"})
	cp.startAgent("prov-b")
	two := measure([]string{"prov-a", "prov-b"})
	fmt.Printf("bench-mesh: %d jobs each run, %d in flight, control plane on Temporal+PostgreSQL, agents in network namespaces\n", n, concurrency)
	fmt.Printf("bench-mesh: one provider agent:  %.1f jobs/min\n", one)
	fmt.Printf("bench-mesh: two provider agents: %.1f jobs/min\n", two)
	fmt.Printf("bench-mesh: ratio two/one: %.2f\n", two/one)
	ledgerCLICheck(t, cp)
}

// ledgerCLICheck runs `accord ledger check` on the control plane's ledger
// and fails unless it is clean.
func ledgerCLICheck(t *testing.T, cp *meshControl) {
	t.Helper()
	out := cli(t, cp.bin, "ledger", "check", "--ledger-dsn", cp.ledgerDSN, "--json")
	var rep struct {
		OK       bool     `json:"ok"`
		Problems []string `json:"problems"`
	}
	lastJSON(t, out, &rep)
	if !rep.OK {
		t.Errorf("accord ledger check: %s", out)
	}
}

// e) The host running a job's task torn down mid-task: every process of
// that provider (the task's container, the containerd shims, its
// containerd, its agent) killed and its network namespace deleted. The
// job fails over to the other provider and settles there; the lost
// provider is paid nothing and its reputation drops.
func meshHostTornDown(t *testing.T, cp *meshControl) {
	ctx := context.Background()
	spec := meshJobSpec(t, t.TempDir(), "torn", "mesh-torn", []string{"prov-a", "prov-b"},
		meshTask(cp, []string{"trainer", "train", "--samples", "20000", "--epochs", "12104"}, "metrics.json"))
	sub, err := jobclient.Submit(ctx, cp.client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	waitRunning(t, cp, sub.JobID, "12104")
	lost := strings.TrimPrefix(runTaskQueue(t, cp, sub.JobID), "accord-exec-")
	other := map[string]string{"prov-a": "prov-b", "prov-b": "prov-a"}[lost]
	if other == "" {
		t.Fatalf("the task runs on queue of %q, not a mesh provider", lost)
	}
	l, err := settlement.Open(ctx, cp.ledgerDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	before, err := l.Balance(ctx, settlement.ProviderAccount(lost), "USD")
	if err != nil {
		t.Fatal(err)
	}
	repBefore, _ := cp.reg.Reputation(lost)

	killed := cp.net.tearDown(lost, cp.agents[lost].home)
	tornAt := time.Now()
	t.Logf("%s torn down: %d processes killed, namespace deleted", lost, killed)
	waitFor(t, 30*time.Second, "the task's container gone with its host", func() bool {
		return !processRunning("trainer", "--epochs", "12104")
	})
	res := result(t, cp.client, sub.JobID, 8*time.Minute)
	t.Logf("teardown to result: %v", time.Since(tornAt).Round(time.Millisecond))
	if res.Status != workflows.StatusSettled || res.Provider != other || res.Paid <= 0 {
		t.Fatalf("job: %+v", res)
	}
	if len(res.Failovers) != 1 || res.Failovers[0].Lost != lost || res.Failovers[0].Provider != other {
		t.Errorf("failovers %+v, want one from %s to %s", res.Failovers, lost, other)
	}
	if after, err := l.Balance(ctx, settlement.ProviderAccount(lost), "USD"); err != nil || after != before {
		t.Errorf("the lost provider's balance went from %d to %d (%v): it must be paid nothing", before, after, err)
	}
	if rep, err := cp.reg.Reputation(lost); err != nil || rep >= repBefore {
		t.Errorf("%s's reputation %v (%v), was %v: want it lower", lost, rep, err, repBefore)
	}
	checkPGLedger(t, cp.ledgerDSN, sub.JobID, "mesh-torn", 1000, res.Paid)
}

// runTaskQueue is the task queue of the job's first scheduled RunTask: the
// provider agent's queue it was awarded to.
func runTaskQueue(t *testing.T, cp *meshControl, jobID string) string {
	t.Helper()
	iter := cp.client.GetWorkflowHistory(context.Background(), jobID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == workflows.RunTask.Name {
			return a.GetTaskQueue().GetName()
		}
	}
	t.Fatalf("%s: no RunTask scheduled", jobID)
	return ""
}

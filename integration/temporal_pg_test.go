package integration

// The control plane on a real Temporal cluster: the multi-service
// temporal-server on PostgreSQL (scripts/services/temporal.sh), the real
// `accord worker` binary against it with its ledger in the same PostgreSQL,
// and the server restarted mid-job.

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workflows"
)

// temporalCluster is a cluster temporal.sh started under dir.
type temporalCluster struct {
	t      *testing.T
	script string
	dir    string
	addr   string
	pgDSN  string // the PostgreSQL superuser's DSN (database postgres)
}

// needPostgres skips unless Debian's PostgreSQL server binaries (which
// postgres.sh runs) and psql are installed.
func needPostgres(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("psql"); err != nil {
		t.Skip("psql not found: install Debian's postgresql (scripts/install-deps.sh)")
	}
	initdb, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if _, err := exec.LookPath("initdb"); err != nil && len(initdb) == 0 {
		t.Skip("no PostgreSQL server binaries (initdb): install Debian's postgresql (scripts/install-deps.sh)")
	}
}

// timed runs a command from the repository root and logs how long it took;
// its output is returned, and logged on failure.
func timed(t *testing.T, what string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	begin := time.Now()
	err := cmd.Run()
	t.Logf("%s: %v", what, time.Since(begin).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("%s: %v\n%s%s", what, err, stdout.String(), stderr.String())
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("%s:\n%s", what, s)
	}
	return strings.TrimSpace(stdout.String())
}

// startTemporal builds the cluster's tools when they are missing and starts
// a private cluster (its own PostgreSQL) under a fresh directory; it is
// stopped, by PID, when the test ends.
func startTemporal(t *testing.T) *temporalCluster {
	t.Helper()
	timed(t, "build temporal-server, temporal-sql-tool, temporal-ns-setup (tools/temporal)",
		filepath.Join(repoRoot(), "scripts", "temporal-tools.sh"))
	c := &temporalCluster{t: t, script: filepath.Join(repoRoot(), "scripts", "services", "temporal.sh"), dir: t.TempDir()}
	t.Cleanup(func() {
		// postgres.sh keeps the data under /tmp when the postgres user
		// cannot enter the test's directory: remove it after the stop.
		data, _ := filepath.EvalSymlinks(filepath.Join(c.dir, "pg", "data"))
		if out, err := exec.Command(c.script, "stop", c.dir).CombinedOutput(); err != nil {
			t.Errorf("temporal.sh stop: %v\n%s", err, out)
		}
		if t.Failed() {
			c.logTail("temporal-server.log")
		}
		if data != "" && strings.HasPrefix(data, os.TempDir()) {
			_ = os.RemoveAll(data)
		}
	})
	c.start()
	return c
}

func (c *temporalCluster) start() {
	c.t.Helper()
	c.addr = lastLine(timed(c.t, "temporal.sh start (PostgreSQL, schema, server, namespace)", c.script, "start", c.dir))
	env := readEnv(c.t, filepath.Join(c.dir, "env"))
	if env["ACCORD_TEMPORAL_ADDRESS"] != c.addr {
		c.t.Fatalf("temporal.sh printed %q, env says %q", c.addr, env["ACCORD_TEMPORAL_ADDRESS"])
	}
	c.pgDSN = env["ACCORD_TEMPORAL_PG"]
}

// stopServer stops temporal-server only: PostgreSQL keeps the state.
func (c *temporalCluster) stopServer() {
	c.t.Helper()
	timed(c.t, "temporal.sh stop-server", c.script, "stop-server", c.dir)
}

func (c *temporalCluster) logTail(name string) {
	b, err := os.ReadFile(filepath.Join(c.dir, "logs", name))
	if err != nil {
		return
	}
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	c.t.Logf("%s (tail):\n%s", name, b)
}

// createDB creates a database on the cluster's PostgreSQL and returns its DSN.
func (c *temporalCluster) createDB(name string) string {
	c.t.Helper()
	timed(c.t, "createdb "+name, "psql", c.pgDSN, "-v", "ON_ERROR_STOP=1", "-qc", "CREATE DATABASE "+name)
	return strings.Replace(c.pgDSN, "/postgres?", "/"+name+"?", 1)
}

// buildAccord builds the accord binary the way `make build` does.
func buildAccord(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "accord")
	timed(t, "go build ./cmd/accord", "go", "build", "-o", bin, "./cmd/accord")
	return bin
}

// startAccordWorker runs `accord worker` against addr with the ledger at
// ledgerDSN; it is stopped when the test ends.
func startAccordWorker(t *testing.T, bin, home, addr, ledgerDSN string) *exec.Cmd {
	t.Helper()
	args := []string{"--home", home, "worker", "--temporal-address", addr, "--ledger-dsn", ledgerDSN, "--metrics-addr", ""}
	for _, d := range hostInputs() {
		args = append(args, "--host-inputs", d)
	}
	cmd := exec.Command(bin, args...)
	logPath := filepath.Join(home, "accord-worker.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _, _ = cmd.Process.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logPath); err == nil {
				t.Logf("accord worker log:\n%s", b)
			}
		}
	})
	return cmd
}

// putTenant creates a tenant (USD) in the home's tenancy store: `accord
// worker`, unlike `accord dev`, admits only known tenants.
func putTenant(t *testing.T, home, name string) {
	t.Helper()
	ctx := context.Background()
	s, err := policies.OpenStore(ctx, policies.StorePath(home))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutTenant(ctx, policies.Tenant{Name: name, Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
}

// The multi-service Temporal server on PostgreSQL runs the control plane:
// the real `accord worker` (ledger in its own PostgreSQL database) runs a
// job, the server is stopped while the task runs and started again on the
// same databases, and the job resumes and settles once.
func TestTemporalPostgres(t *testing.T) {
	image := needStack(t)
	needPostgres(t)
	if testing.Short() {
		t.Skip("builds and starts a Temporal cluster on PostgreSQL")
	}
	ctx := context.Background()
	bin := buildAccord(t)
	tc := startTemporal(t)
	ledgerDSN := tc.createDB("accord_ledger")

	home := newHome(t)
	putTenant(t, home, "pgrestart")
	l, err := settlement.Open(ctx, ledgerDSN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Deposit(ctx, settlement.DepositRequest{Tenant: "pgrestart", Currency: "USD", Amount: 1000, Key: "test-fund-pgrestart"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	startAccordWorker(t, bin, home, tc.addr, ledgerDSN)

	c, err := workers.Dial(ctx, workers.ClientOptions{Address: tc.addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	spec := writeSpec(t, t.TempDir(), specDoc{Name: "pgrestart", Tenant: "pgrestart",
		Tasks: trainerTask("train", image, []string{"trainer", "train", "--samples", "20000", "--epochs", "12001"},
			"  outputs: [metrics.json]\n  resources: {cpu: 500m, memory: 128MiB, max_duration: 10m}\n")})
	submitted := time.Now()
	sub, err := jobclient.Submit(ctx, c, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, "task container running", func() bool {
		return jobStatus(t, c, sub.JobID).Tasks["train"].State == workflows.TaskRunning &&
			processRunning("trainer", "--epochs", "12001")
	})
	t.Logf("submit to task running: %v", time.Since(submitted).Round(time.Millisecond))
	time.Sleep(time.Second)

	tc.stopServer()
	stoppedAt := time.Now()
	time.Sleep(2 * time.Second)
	if !processRunning("trainer", "--epochs", "12001") {
		t.Log("the task finished while the server was down")
	}
	tc.start()
	restarted := time.Now()

	res := result(t, c, sub.JobID, 5*time.Minute)
	t.Logf("restart to result: %v; submit to result: %v", time.Since(restarted).Round(time.Millisecond), time.Since(submitted).Round(time.Millisecond))
	checkResumed(t, c, sub.JobID, res, stoppedAt)
	checkPGLedger(t, ledgerDSN, sub.JobID, "pgrestart", 1000, res.Paid)
	checkPGVisibility(t, c, strings.Replace(tc.pgDSN, "/postgres?", "/temporal_visibility?", 1), sub.JobID)
}

// checkPGVisibility: the cluster's visibility store, PostgreSQL, holds the
// job's one closed run, and a list by Accord's search attributes (which the
// cluster answers from it) finds the job settled.
func checkPGVisibility(t *testing.T, c client.Client, dsn, jobID string) {
	t.Helper()
	db, err := sql.Open("pgx", dsn) // registered by the settlement package
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM executions_visibility WHERE workflow_id = $1 AND close_time IS NOT NULL`, jobID).Scan(&n); err != nil {
		t.Fatalf("temporal_visibility: %v", err)
	}
	if n != 1 {
		t.Errorf("temporal_visibility has %d closed runs of %s, want 1", n, jobID)
	}
	var found []jobclient.JobSummary
	waitFor(t, 30*time.Second, "the settled job in a list by search attributes", func() bool {
		found, err = jobclient.List(context.Background(), c, jobclient.Filter{Tenant: "pgrestart", Status: workflows.StatusSettled})
		return err == nil && len(found) > 0
	})
	if len(found) != 1 || found[0].JobID != jobID || found[0].Spec != "pgrestart" {
		t.Errorf("list tenant=pgrestart status=settled: %+v, want %s only", found, jobID)
	}
}

// checkResumed: the job settled, its one task ran through the restart and
// was started once.
func checkResumed(t *testing.T, c client.Client, jobID string, res workflows.JobResult, stoppedAt time.Time) {
	t.Helper()
	if res.Status != workflows.StatusSettled {
		t.Fatalf("%+v", res)
	}
	if n := countActivities(t, c, jobID, workflows.RunTask.Name); n != 1 {
		t.Errorf("RunTask scheduled %d times, want 1", n)
	}
	tr := res.Tasks["train"]
	if tr.Attempt != 1 || tr.StartedAt == nil || !tr.StartedAt.Before(stoppedAt) || tr.FinishedAt == nil || !tr.FinishedAt.After(stoppedAt) {
		t.Errorf("task %+v: want attempt 1, started before the server stopped and finished after", tr)
	}
	if res.Paid <= 0 {
		t.Errorf("paid %d, want a positive price", res.Paid)
	}
}

// checkPGLedger: the PostgreSQL ledger's invariants hold, the job settled
// once and the tenant paid once.
func checkPGLedger(t *testing.T, dsn, jobID, tenant string, funded, paid int64) {
	t.Helper()
	ctx := context.Background()
	l, err := settlement.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rep, err := l.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Errorf("ledger invariants: %v", rep.Problems)
	}
	if _, err := l.Transaction(ctx, settlement.Key(jobID, "settle", 1)); err != nil {
		t.Errorf("settlement: %v", err)
	}
	stmt, err := l.Statement(ctx, settlement.TenantAccount(tenant))
	if err != nil {
		t.Fatal(err)
	}
	if len(stmt.Jobs) != 1 {
		t.Errorf("tenant statement lists %d jobs, want 1", len(stmt.Jobs))
	}
	bal, err := l.Balance(ctx, settlement.TenantAccount(tenant), "USD")
	if err != nil {
		t.Fatal(err)
	}
	if bal != funded-paid {
		t.Errorf("tenant balance %d, want %d (paid once)", bal, funded-paid)
	}
}

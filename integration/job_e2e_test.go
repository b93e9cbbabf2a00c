package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workers/local"
	"github.com/accordmesh/accord/workflows"
)

func dagSpec(t *testing.T, dir, image string) string {
	const res = "  resources: {cpu: 250m, memory: 128MiB, max_duration: 5m}\n"
	tasks := trainerTask("prepare", image, []string{"trainer", "prepare", "--samples", "2000", "--seed", "3"},
		"  outputs: [dataset.csv]\n"+res) +
		trainerTask("train-a", image, []string{"trainer", "train", "--data", "/in/data.csv", "--epochs", "20000"},
			"  inputs:\n    - {name: data, from: \"prepare:dataset.csv\", target: /in/data.csv}\n  outputs: [model.json, metrics.json]\n"+res) +
		trainerTask("train-b", image, []string{"trainer", "train", "--samples", "2000", "--epochs", "20000", "--seed", "9"},
			"  depends_on: [prepare]\n  outputs: [model.json]\n"+res) +
		trainerTask("eval", image, []string{"trainer", "eval", "--model", "/in/model.json", "--data", "/in/data.csv"},
			"  depends_on: [train-b]\n  inputs:\n    - {name: model, from: \"train-a:model.json\", target: /in/model.json}\n"+
				"    - {name: data, from: \"prepare:dataset.csv\", target: /in/data.csv}\n  outputs: [eval.json]\n"+res)
	tests := `tests:
  - name: accuracy
    task: eval
    command: [trainer, check, --file, /out/eval.json, --metric, accuracy, --min, "0.5"]
    expect_exit: 0
    metrics:
      - {file: eval.json, metric: accuracy, op: ">=", value: 0.5}
`
	return writeSpec(t, dir, specDoc{Name: "dag", Tenant: "acme", Tasks: tasks, Tests: tests})
}

// A DAG job end to end on the real stack: dependency order, parallel
// branches, outputs flowing between tasks, acceptance test in a container,
// settlement in the ledger and seven chained attestations in the log.
func TestJobDAGEndToEnd(t *testing.T) {
	image := needStack(t)
	home := newHome(t)
	fund(t, home, "acme", 1000)
	st := startStack(t, home, 0, false)
	defer st.Stop()
	spec := dagSpec(t, t.TempDir(), image)
	ctx := context.Background()
	sub, err := jobclient.Submit(ctx, st.Client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	res := result(t, st.Client, sub.JobID, 5*time.Minute)
	if res.Status != workflows.StatusSettled {
		t.Fatalf("job %s: %+v", res.Status, res)
	}
	for _, n := range []string{"prepare", "train-a", "train-b", "eval"} {
		if res.Tasks[n].State != workflows.TaskSucceeded || res.Tasks[n].StartedAt == nil {
			t.Errorf("task %s: %+v", n, res.Tasks[n])
		}
	}
	ta, tb, ev, pr := res.Tasks["train-a"], res.Tasks["train-b"], res.Tasks["eval"], res.Tasks["prepare"]
	if ta.StartedAt.Before(*pr.FinishedAt) || tb.StartedAt.Before(*pr.FinishedAt) || ev.StartedAt.Before(*ta.FinishedAt) || ev.StartedAt.Before(*tb.FinishedAt) {
		t.Errorf("dependency order violated: prepare %v-%v, train-a %v-%v, train-b %v-%v, eval %v",
			pr.StartedAt, pr.FinishedAt, ta.StartedAt, ta.FinishedAt, tb.StartedAt, tb.FinishedAt, ev.StartedAt)
	}
	if !(ta.StartedAt.Before(*tb.FinishedAt) && tb.StartedAt.Before(*ta.FinishedAt)) {
		t.Errorf("train-a and train-b did not overlap: %v-%v and %v-%v", ta.StartedAt, ta.FinishedAt, tb.StartedAt, tb.FinishedAt)
	}
	if len(res.Tests) != 1 || !res.Tests[0].Passed {
		t.Errorf("tests %+v", res.Tests)
	}
	if len(res.Attestations) != 7 {
		t.Fatalf("attestations %+v", res.Attestations)
	}
	// The stored chain links each stage to the previous envelope.
	atts, err := provenance.NewStore(provenance.DefaultStoreDir(home)).List(sub.JobID)
	if err != nil || len(atts) != 7 {
		t.Fatalf("stored attestations: %d %v", len(atts), err)
	}
	for i, a := range atts {
		if a.Entry == nil || a.Digest != res.Attestations[i].Digest {
			t.Errorf("stage %s: entry %v digest %s vs %s", a.Stage, a.Entry != nil, a.Digest, res.Attestations[i].Digest)
		}
	}
	l := ledgerCheck(t, home)
	if res.Paid <= 0 || res.Paid+res.Refunded <= 0 {
		t.Errorf("paid %d refunded %d", res.Paid, res.Refunded)
	}
	if tx, err := l.Transaction(ctx, settlement.Key(sub.JobID, "settle", 1)); err != nil || tx == nil {
		t.Errorf("settlement transaction: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, "jobs", sub.JobID, "outputs", "eval", "eval.json")); err != nil {
		t.Errorf("eval output: %v", err)
	}
	recordHistory(t, st.Client, sub.JobID, "job_dag")
}

// The approval gate holds the job after negotiation without placing or
// starting anything until `approve`.
func TestJobApprovalGate(t *testing.T) {
	image := needStack(t)
	home := newHome(t)
	fund(t, home, "gated", 1000)
	st := startStack(t, home, 0, false)
	defer st.Stop()
	spec := writeSpec(t, t.TempDir(), specDoc{Name: "gated", Tenant: "gated",
		Tasks:    trainerTask("train", image, []string{"trainer", "train", "--samples", "200", "--epochs", "10"}, "  outputs: [metrics.json]\n"),
		Approval: "required: true\napprovers: [alice]\n"})
	ctx := context.Background()
	sub, err := jobclient.Submit(ctx, st.Client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "awaiting approval", func() bool {
		return jobStatus(t, st.Client, sub.JobID).Status == workflows.StatusAwaitingApproval
	})
	time.Sleep(time.Second)
	s := jobStatus(t, st.Client, sub.JobID)
	if s.Stage != workflows.StageApproval || s.Cost.Held != 0 || s.Tasks["train"].State != workflows.TaskPending {
		t.Fatalf("before approval: %+v", s)
	}
	jobs, err := jobclient.List(ctx, st.Client, jobclient.Filter{Status: workflows.StatusAwaitingApproval})
	if err != nil || len(jobs) != 1 || jobs[0].JobID != sub.JobID {
		t.Errorf("list --status awaiting_approval: %+v %v", jobs, err)
	}
	// Only a listed approver passes the gate; the refusal says why.
	if err := jobclient.Approve(ctx, st.Client, sub.JobID, workflows.ApproveInput{By: "mallory"}); !errors.Is(err, jobclient.ErrNotApprover) {
		t.Fatalf("mallory's approval: %v, want ErrNotApprover", err)
	}
	if err := jobclient.Approve(ctx, st.Client, sub.JobID, workflows.ApproveInput{By: "alice", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	res := result(t, st.Client, sub.JobID, 3*time.Minute)
	if res.Status != workflows.StatusSettled {
		t.Fatalf("after approval: %+v", res)
	}
	// Visibility follows the workflow's last search-attribute update a
	// moment after the result: poll.
	waitFor(t, 30*time.Second, "the settled job listed by tenant, status and spec", func() bool {
		jobs, err = jobclient.List(ctx, st.Client, jobclient.Filter{Tenant: "gated", Status: workflows.StatusSettled, Spec: "gated"})
		return err == nil && len(jobs) == 1
	})
	recordHistory(t, st.Client, sub.JobID, "job_approval")
}

// longTask runs for many seconds on a tenth of a core.
func longTask(image string) string {
	return trainerTask("train", image, []string{"trainer", "train", "--samples", "20000", "--epochs", "100000"},
		"  outputs: [metrics.json]\n  resources: {cpu: 100m, memory: 128MiB, max_duration: 10m}\n")
}

// Cancel mid-execution: the running container is stopped and the escrow
// refunded (the compensations), nothing is paid.
func TestJobCancelMidExecution(t *testing.T) {
	image := needStack(t)
	home := newHome(t)
	fund(t, home, "cancel", 1000)
	st := startStack(t, home, 0, false)
	defer st.Stop()
	spec := writeSpec(t, t.TempDir(), specDoc{Name: "cancel", Tenant: "cancel", Tasks: longTask(image)})
	ctx := context.Background()
	sub, err := jobclient.Submit(ctx, st.Client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "task running", func() bool {
		return jobStatus(t, st.Client, sub.JobID).Tasks["train"].State == workflows.TaskRunning
	})
	time.Sleep(2 * time.Second) // let the container get going
	if err := jobclient.Cancel(ctx, st.Client, sub.JobID, "test"); err != nil {
		t.Fatal(err)
	}
	res := result(t, st.Client, sub.JobID, 2*time.Minute)
	if res.Status != workflows.StatusCancelled {
		t.Fatalf("%+v", res)
	}
	run := workflows.RunID(sub.JobID, "train", 1)
	want := []string{"stop:" + run, "release"}
	if strings.Join(res.Compensated, ",") != strings.Join(want, ",") {
		t.Errorf("compensations %v, want %v", res.Compensated, want)
	}
	if _, err := st.Local.Runtime.Status(ctx, run); err == nil {
		t.Errorf("container %s still exists after cancel", run)
	}
	l := ledgerCheck(t, home)
	bal, _ := l.Balance(ctx, settlement.TenantAccount("cancel"), "USD")
	if bal != 1000 || res.Paid != 0 || res.Refunded <= 0 {
		t.Errorf("tenant balance %d (want 1000 back), paid %d, refunded %d", bal, res.Paid, res.Refunded)
	}
	recordHistory(t, st.Client, sub.JobID, "job_cancel")
}

// A failing task is retried per the spec, then the job fails cleanly:
// execution class, escrow refunded, nothing paid.
func TestJobRetryThenFail(t *testing.T) {
	image := needStack(t)
	home := newHome(t)
	fund(t, home, "flaky", 1000)
	st := startStack(t, home, 0, false)
	defer st.Stop()
	spec := writeSpec(t, t.TempDir(), specDoc{Name: "flaky", Tenant: "flaky",
		Tasks: trainerTask("train", image, []string{"trainer", "eval", "--model", "/nonexistent.json", "--data", "/nonexistent.csv"},
			"  retry: {attempts: 3, backoff: 1s}\n")})
	ctx := context.Background()
	sub, err := jobclient.Submit(ctx, st.Client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	res := result(t, st.Client, sub.JobID, 3*time.Minute)
	if res.Status != workflows.StatusFailed || res.Class != workflows.ClassExecution || jobclient.ExitCode(res) != 6 {
		t.Fatalf("%+v", res)
	}
	tr := res.Tasks["train"]
	if tr.Attempt != 3 || tr.State != workflows.TaskFailed || tr.ExitCode != 3 {
		t.Errorf("task %+v", tr)
	}
	if n := countActivities(t, st.Client, sub.JobID, workflows.RunTask.Name); n != 3 {
		t.Errorf("StartTask scheduled %d times, want 3", n)
	}
	for a := 1; a <= 3; a++ {
		if _, err := os.Stat(filepath.Join(home, "jobs", sub.JobID, "logs", workflows.RunID(sub.JobID, "train", a)+".log")); err != nil {
			t.Errorf("attempt %d log: %v", a, err)
		}
	}
	l := ledgerCheck(t, home)
	bal, _ := l.Balance(ctx, settlement.TenantAccount("flaky"), "USD")
	if bal != 1000 || res.Paid != 0 {
		t.Errorf("tenant balance %d, paid %d", bal, res.Paid)
	}
	recordHistory(t, st.Client, sub.JobID, "job_retry_fail")
}

// workerEnv makes the test binary run as a worker process (see
// TestJobWorkerProcess).
const workerEnv = "ACCORD_TEST_WORKER"

// TestJobWorkerProcess is not a test: run with ACCORD_TEST_WORKER=home|addr
// it is the worker process the crash test SIGKILLs.
func TestJobWorkerProcess(t *testing.T) {
	spec := os.Getenv(workerEnv)
	if spec == "" {
		t.Skip("helper process for TestJobWorkerKilled")
	}
	home, addr, _ := strings.Cut(spec, "|")
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	c, err := workers.Dial(ctx, workers.ClientOptions{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	host, err := local.Open(ctx, local.Options{Home: home, AutoCreateTenants: true, HostInputs: hostInputs()}) // as accord dev --host-inputs
	if err != nil {
		t.Fatal(err)
	}
	w, err := workers.Start(c, host.Activities, workers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("worker ready")
	<-ctx.Done()
	w.Stop()
}

func startWorkerProcess(t *testing.T, home, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestJobWorkerProcess$", "-test.v")
	cmd.Env = append(os.Environ(), workerEnv+"="+home+"|"+addr)
	logf, err := os.OpenFile(filepath.Join(home, "worker-process.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait(); logf.Close() })
	return cmd
}

// The worker process is SIGKILLed while a task runs and restarted: the job
// completes, the container ran once (one StartTask, the same container,
// started before the kill), and settlement posted once.
func TestJobWorkerKilled(t *testing.T) {
	image := needStack(t)
	home := newHome(t)
	fund(t, home, "crash", 1000)
	st := startStack(t, home, 0, true) // server only; the worker is a child process
	defer st.Stop()
	spec := writeSpec(t, t.TempDir(), specDoc{Name: "crash", Tenant: "crash",
		Tasks: trainerTask("train", image, []string{"trainer", "train", "--samples", "20000", "--epochs", "12000"},
			"  outputs: [metrics.json]\n  resources: {cpu: 500m, memory: 128MiB, max_duration: 10m}\n")})
	ctx := context.Background()
	w1 := startWorkerProcess(t, home, st.Server.Address())
	sub, err := jobclient.Submit(ctx, st.Client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	// RunTask starts the container and then waits in one activity: wait
	// until the container's process runs, not merely until it is scheduled.
	waitFor(t, 3*time.Minute, "task container running", func() bool {
		return jobStatus(t, st.Client, sub.JobID).Tasks["train"].State == workflows.TaskRunning &&
			processRunning("trainer", "--epochs", "12000")
	})
	time.Sleep(time.Second)
	killedAt := time.Now()
	if err := w1.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = w1.Process.Wait()
	t.Logf("worker killed at %v", killedAt.Format(time.RFC3339Nano))
	time.Sleep(2 * time.Second)
	startWorkerProcess(t, home, st.Server.Address())
	res := result(t, st.Client, sub.JobID, 5*time.Minute)
	if res.Status != workflows.StatusSettled {
		t.Fatalf("%+v", res)
	}
	tr := res.Tasks["train"]
	if tr.Attempt != 1 || tr.StartedAt == nil || !tr.StartedAt.Before(killedAt) || !tr.FinishedAt.After(killedAt) {
		t.Errorf("task %+v: want attempt 1 whose container started before the kill and ran through it", tr)
	}
	if n := countActivities(t, st.Client, sub.JobID, workflows.RunTask.Name); n != 1 {
		t.Errorf("StartTask scheduled %d times, want 1", n)
	}
	l := ledgerCheck(t, home)
	if _, err := l.Transaction(ctx, settlement.Key(sub.JobID, "settle", 1)); err != nil {
		t.Errorf("settlement: %v", err)
	}
	stmt, err := l.Statement(ctx, settlement.TenantAccount("crash"))
	if err != nil {
		t.Fatal(err)
	}
	if len(stmt.Jobs) != 1 {
		t.Errorf("tenant statement lists %d jobs, want 1", len(stmt.Jobs))
	}
	bal, _ := l.Balance(ctx, settlement.TenantAccount("crash"), "USD")
	if bal != 1000-res.Paid {
		t.Errorf("tenant balance %d, want %d (paid once)", bal, 1000-res.Paid)
	}
}

// freePort is a loopback port for a service the test starts later
// (internal/ports: below the ephemeral range).
func freePort(t *testing.T) int {
	t.Helper()
	return freePortOn(t, "127.0.0.1")
}

// The embedded server (and the worker with it) is stopped mid-job and
// started again on the same SQLite file: the job resumes and settles.
func TestJobServerRestart(t *testing.T) {
	image := needStack(t)
	home := newHome(t)
	fund(t, home, "restart", 1000)
	port := freePort(t)
	st := startStack(t, home, port, false)
	spec := writeSpec(t, t.TempDir(), specDoc{Name: "restart", Tenant: "restart",
		Tasks: trainerTask("train", image, []string{"trainer", "train", "--samples", "20000", "--epochs", "12000"},
			"  outputs: [metrics.json]\n  resources: {cpu: 500m, memory: 128MiB, max_duration: 10m}\n")})
	ctx := context.Background()
	sub, err := jobclient.Submit(ctx, st.Client, spec, "")
	if err != nil {
		st.Stop()
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, "task running", func() bool {
		return jobStatus(t, st.Client, sub.JobID).Tasks["train"].State == workflows.TaskRunning &&
			countActivities(t, st.Client, sub.JobID, workflows.RunTask.Name) > 0
	})
	time.Sleep(time.Second)
	st.Stop()
	stoppedAt := time.Now()
	t.Log("stack stopped mid-job")
	time.Sleep(time.Second)
	st2 := startStack(t, home, port, false)
	defer st2.Stop()
	res := result(t, st2.Client, sub.JobID, 5*time.Minute)
	if res.Status != workflows.StatusSettled {
		t.Fatalf("%+v", res)
	}
	if n := countActivities(t, st2.Client, sub.JobID, workflows.RunTask.Name); n != 1 {
		t.Errorf("StartTask scheduled %d times, want 1", n)
	}
	if tr := res.Tasks["train"]; tr.FinishedAt == nil || !tr.FinishedAt.After(stoppedAt) {
		t.Errorf("task %+v did not run through the restart", tr)
	}
	ledgerCheck(t, home)
}

// processRunning reports whether a host process's command line holds all of
// args (a container's process is visible from the host's /proc).
func processRunning(args ...string) bool {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		words := strings.Split(string(b), "\x00")
		all := true
		for _, a := range args {
			if !slices.Contains(words, a) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

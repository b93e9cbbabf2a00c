package integration

// Helpers for the job integration tests: a real embedded Temporal server,
// the real worker with every real component (containerd, ledger, policies,
// embedded transparency log), specs written around the trainer image.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/runtimes/containerd"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workers/local"
	"github.com/accordmesh/accord/workers/stack"
	"github.com/accordmesh/accord/workflows"
)

var (
	trainerOnce sync.Once
	trainerPath string
	trainerErr  error
)

// repoRoot is the module root (this file lives in integration/).
func repoRoot() string {
	_, f, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(f))
}

// needStack skips unless the machine can run containers: root, containerd
// and runc. It builds the trainer image when it is missing.
func needStack(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("job integration tests need root (a private containerd)")
	}
	for _, b := range []string{"containerd", "runc"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("job integration tests need %s (Debian: apt-get install containerd runc)", b)
		}
	}
	trainerOnce.Do(func() {
		trainerPath = filepath.Join(repoRoot(), "examples", "images", "trainer.tar")
		if _, err := os.Stat(trainerPath); err == nil {
			return
		}
		cmd := exec.Command("go", "run", "./examples/images/build", "-o", trainerPath)
		cmd.Dir = repoRoot()
		out, err := cmd.CombinedOutput()
		if err != nil {
			trainerErr = fmt.Errorf("build trainer image: %v\n%s", err, out)
		}
	})
	if trainerErr != nil {
		t.Fatal(trainerErr)
	}
	return trainerPath
}

// hostInputs are the --host-inputs roots of the tests' workers: the
// trainer archive's directory (specs name it as oci-archive: images).
func hostInputs() []string { return []string{filepath.Join(repoRoot(), "examples", "images")} }

// startStack starts the embedded server with a file database under home
// and, unless noWorker, the in-process worker.
func startStack(t *testing.T, home string, port int, noWorker bool) *stack.Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := stack.Start(ctx, stack.Options{Home: home, FrontendPort: port, NoWorker: noWorker,
		Local: local.Options{AutoCreateTenants: true, HostInputs: hostInputs()}}) // as accord dev --host-inputs
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	return st
}

// newHome makes an Accord home whose private containerd is stopped when
// the test ends.
func newHome(t *testing.T) string {
	t.Helper()
	home, err := os.MkdirTemp("", "accord-job-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = containerd.StopDaemon(filepath.Join(home, "containerd", "daemon"), 5*time.Second)
		killShims(home)
		if !t.Failed() {
			_ = os.RemoveAll(home)
		} else {
			t.Logf("state kept in %s", home)
		}
	})
	return home
}

// killShims kills what a daemon killed by a test (a SIGKILLed provider
// agent's containerd) left behind: the containerd shims serving home and
// every process under them (the tasks' containers and log helpers). It
// returns how many processes it killed.
func killShims(home string) int {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	parent := map[int]int{}
	var shims []int
	for _, dir := range procs {
		pid, err := strconv.Atoi(filepath.Base(dir))
		if err != nil {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join(dir, "stat")); err == nil {
			// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
				if f := strings.Fields(string(stat)[i+1:]); len(f) > 1 {
					parent[pid], _ = strconv.Atoi(f[1])
				}
			}
		}
		cmd, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
		if strings.Contains(string(cmd), "containerd-shim") && strings.Contains(string(cmd), home+"/") {
			shims = append(shims, pid)
		}
	}
	killed := 0
	kill := func(pid int) {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	for _, shim := range shims {
		for pid := range parent {
			for p := pid; p > 1; p = parent[p] {
				if p == shim {
					kill(pid)
					break
				}
			}
		}
		kill(shim)
	}
	return killed
}

// fund deposits money for a tenant.
func fund(t *testing.T, home, tenant string, amount int64) {
	t.Helper()
	ctx := context.Background()
	l, err := settlement.Open(ctx, settlement.DefaultDSN(home))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Deposit(ctx, settlement.DepositRequest{Tenant: tenant, Currency: "USD", Amount: amount, Key: "test-fund-" + tenant}); err != nil {
		t.Fatal(err)
	}
}

// ledgerCheck asserts the ledger's invariants and returns the ledger's
// transaction for key (nil when absent).
func ledgerCheck(t *testing.T, home string) *settlement.Ledger {
	t.Helper()
	l, err := settlement.Open(context.Background(), settlement.DefaultDSN(home))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	rep, err := l.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Errorf("ledger invariants: %v", rep.Problems)
	}
	return l
}

// specDoc writes a spec document. tasks, tests etc. are YAML bodies.
type specDoc struct {
	Name, Tenant string
	Tasks        string
	Tests        string
	Approval     string
	MaxPrice     int
}

func writeSpec(t *testing.T, dir string, s specDoc) string {
	t.Helper()
	if s.Tenant == "" {
		s.Tenant = "team-" + s.Name
	}
	if s.MaxPrice == 0 {
		s.MaxPrice = 500
	}
	var b strings.Builder
	fmt.Fprintf(&b, "---\naccord: v1\nname: %s\nversion: 1.0.0\ntenant: %s\n---\n\n# %s\n\n## Tasks\n\n```yaml\n%s```\n\n", s.Name, s.Tenant, s.Name, s.Tasks)
	if s.Tests != "" {
		fmt.Fprintf(&b, "## Verification\n\n```yaml\n%s```\n\n", s.Tests)
	}
	fmt.Fprintf(&b, "## Budget\n\n```yaml\nmax_price: %d\ncurrency: USD\npreference: cheapest\n```\n\n", s.MaxPrice)
	b.WriteString("## Settlement\n\n```yaml\npay_on_success: true\n```\n\n")
	if s.Approval != "" {
		fmt.Fprintf(&b, "## Approval\n\n```yaml\n%s```\n", s.Approval)
	}
	p := filepath.Join(dir, s.Name+".md")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// trainerTask renders one task of the trainer image.
func trainerTask(name, image string, cmd []string, extra string) string {
	q := make([]string, len(cmd))
	for i, c := range cmd {
		q[i] = fmt.Sprintf("%q", c)
	}
	return fmt.Sprintf("%s:\n  image: oci-archive:%s\n  command: [%s]\n%s", name, image, strings.Join(q, ", "), extra)
}

// putTenants creates tenants (USD) in the stack's tenancy store and returns
// a function that issues an API token for a principal.
func putTenants(t *testing.T, store *policies.Store, names ...string) (token func(policies.Principal) string) {
	t.Helper()
	ctx := context.Background()
	for _, n := range names {
		if err := store.PutTenant(ctx, policies.Tenant{Name: n, Currency: "USD"}); err != nil {
			t.Fatal(err)
		}
	}
	return func(p policies.Principal) string {
		tok, err := store.CreateToken(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
}

// artifactTask renders one task of the trainer image pushed to the
// artifact store as digest.
func artifactTask(name, digest string, cmd []string, extra string) string {
	return strings.Replace(trainerTask(name, "", cmd, extra), "image: oci-archive:", "image: artifact:"+digest, 1)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
}

func jobStatus(t *testing.T, c client.Client, jobID string) workflows.JobStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := jobclient.Status(ctx, c, jobID)
	if err != nil {
		return workflows.JobStatus{}
	}
	return st
}

func result(t *testing.T, c client.Client, jobID string, timeout time.Duration) workflows.JobResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := jobclient.Result(ctx, c, jobID)
	if err != nil {
		t.Fatalf("result of %s: %v", jobID, err)
	}
	return res
}

// recordHistory writes the job's history to workflows/testdata/NAME.json
// when ACCORD_RECORD_HISTORIES is set (make record-histories); the replay
// tests in package workflows replay them.
func recordHistory(t *testing.T, c client.Client, jobID, name string) {
	t.Helper()
	if os.Getenv("ACCORD_RECORD_HISTORIES") == "" {
		return
	}
	ctx := context.Background()
	iter := c.GetWorkflowHistory(ctx, jobID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	hist := &historypb.History{}
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatalf("history: %v", err)
		}
		hist.Events = append(hist.Events, ev)
	}
	doc, err := protojson.MarshalOptions{Multiline: true, Indent: " "}.Marshal(hist)
	if err != nil {
		t.Fatal(err)
	}
	// A recorded history is evidence of released behaviour: it is added
	// under the current layout's name, never overwritten.
	file := fmt.Sprintf("%s_layout%d.json", name, workflows.CurrentLayout)
	p := filepath.Join(repoRoot(), "workflows", "testdata", file)
	if _, err := os.Stat(p); err == nil {
		t.Fatalf("%s exists: histories are never re-recorded; a workflow change needs a new layout (docs/workflows.md)", p)
	}
	if err := os.WriteFile(p, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(doc)
	manifest, err := os.OpenFile(filepath.Join(filepath.Dir(p), "histories.sha256"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer manifest.Close()
	if _, err := fmt.Fprintf(manifest, "%s  %s\n", hex.EncodeToString(sum[:]), file); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %d events to %s", len(hist.Events), p)
}

// countActivities counts scheduled activities of a type in a job's history.
func countActivities(t *testing.T, c client.Client, jobID, activityType string) int {
	t.Helper()
	iter := c.GetWorkflowHistory(context.Background(), jobID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == activityType {
			n++
		}
		if localActivityType(t, ev) == activityType {
			n++
		}
	}
	return n
}

// localActivityType is the activity type of a local activity's marker, or
// "" for any other event.
func localActivityType(t *testing.T, ev *historypb.HistoryEvent) string {
	m := ev.GetMarkerRecordedEventAttributes()
	if m == nil || m.GetMarkerName() != "LocalActivity" {
		return ""
	}
	var data struct{ ActivityType string }
	if err := converter.GetDefaultDataConverter().FromPayloads(m.GetDetails()["data"], &data); err != nil {
		t.Fatalf("local activity marker: %v", err)
	}
	return data.ActivityType
}

var (
	accordOnce sync.Once
	accordBin  string
	accordErr  error
)

// accordBinary builds cmd/accord once per test run ($ACCORD_BIN names a
// prebuilt one).
func accordBinary(t *testing.T) string {
	t.Helper()
	accordOnce.Do(func() {
		if p := os.Getenv("ACCORD_BIN"); p != "" {
			accordBin = p
			return
		}
		dir, err := os.MkdirTemp("", "accord-bin-")
		if err != nil {
			accordErr = err
			return
		}
		accordBin = filepath.Join(dir, "accord")
		cmd := exec.Command("go", "build", "-o", accordBin, "./cmd/accord")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			accordErr = fmt.Errorf("build accord: %v\n%s", err, out)
		}
	})
	if accordErr != nil {
		t.Fatal(accordErr)
	}
	return accordBin
}

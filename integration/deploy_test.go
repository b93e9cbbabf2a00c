package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/accordmesh/accord/examples/images"
	"github.com/accordmesh/accord/runtimes/containerd"
	"github.com/accordmesh/accord/services"
	"github.com/accordmesh/accord/services/billing"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workers"
	"github.com/accordmesh/accord/workers/deployclient"
	"github.com/accordmesh/accord/workers/devserver"
	"github.com/accordmesh/accord/workflows"
)

// serviceSpec is the example server with short probes, canary, SLA
// windows and billing periods, so the test takes seconds.
func serviceSpec(image, version string, failRate float64) *specs.Spec {
	probe := specs.Probe{Path: "/healthz", Period: 300 * time.Millisecond, Timeout: 250 * time.Millisecond, SuccessThreshold: 1, FailureThreshold: 2}
	return &specs.Spec{Name: "sentiment", Version: version, Tenant: "demo", Budget: specs.Budget{MaxPrice: 1_000_000, Currency: "USD"},
		Service: &specs.Service{
			Image: "oci-archive:" + image, Command: []string{"/bin/server", "--listen", ":8080", "--version", version, "--fail-rate", fmt.Sprint(failRate)},
			Port: 8080, Replicas: 2, Endpoint: "sentiment", Readiness: probe, Liveness: probe,
			Resources: specs.Resources{MilliCPU: 250, MemoryBytes: 64 << 20},
			Rollout:   specs.Rollout{CanaryPercent: 20, Duration: 3 * time.Second, MinSuccessBP: 9900, MaxP95: time.Second, MinRequests: 20},
			Rollback:  specs.Rollback{Automatic: true, MaxRestarts: 5},
			SLA:       specs.ServiceSLA{AvailabilityBP: 9900, Window: 4 * time.Second, RefundPercent: 50, SlashPercent: 10, Stake: 1000},
			Billing:   specs.Billing{Period: 4 * time.Second, ReplicaHour: 3_600_000, Grace: 2 * time.Second},
		}}
}

// TestDeploymentOnContainerd: two replicas of the example server behind
// the endpoint; a canary answering errors is rolled back by its gate, a
// good update is promoted, a SIGKILLed replica restarts, billing periods
// settle (the failed canary's window breaches the SLA: refund and slash),
// and the ledger checks clean after the stop.
func TestDeploymentOnContainerd(t *testing.T) {
	needStack(t)
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	image, _, err := images.BuildServer(ctx, images.Options{RepoDir: repoRoot(), Out: filepath.Join(tmp, "server.tar")})
	if err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid() % 10000
	net := services.Network{Name: fmt.Sprintf("acdep%d", pid), Bridge: fmt.Sprintf("acdep%d", pid),
		Subnet: fmt.Sprintf("10.%d.%d.0/24", 100+pid%50, pid%250), DataDir: filepath.Join(tmp, "cni")}
	if err := net.Available(); err != nil {
		t.Skip(err)
	}
	defer net.Remove(context.Background())

	srv, err := devserver.Start(devserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c, err := client.Dial(client.Options{HostPort: srv.Address(), Namespace: srv.Namespace()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rt, err := containerd.New(ctx, containerd.Options{StateDir: filepath.Join(tmp, "ctd")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		rt.Purge(context.Background())
		rt.Close()
		containerd.StopDaemon(containerd.DaemonDir(filepath.Join(tmp, "ctd")), 5*time.Second)
	}()
	l, err := settlement.Open(ctx, filepath.Join(tmp, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Deposit(ctx, settlement.DepositRequest{Tenant: "demo", Currency: "USD", Amount: 10_000_000, Key: "fund-demo"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DepositBond(ctx, settlement.BondRequest{Provider: "local", Currency: "USD", Amount: 5000, Key: "bond-local"}); err != nil {
		t.Fatal(err)
	}
	cw := worker.New(c, workflows.TaskQueueControl, worker.Options{})
	workflows.RegisterDeployment(cw)
	if err := cw.Start(); err != nil {
		t.Fatal(err)
	}
	defer cw.Stop()
	host := &services.Host{Runtime: rt, Network: net, Biller: &billing.Ledger{L: l, Provider: "local", FeeBP: 500}}
	sw, err := workers.StartServices(c, host, workers.DefaultTuning())
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Stop()

	started, err := deployclient.Deploy(ctx, c, serviceSpec(image, "1", 0), "sentiment")
	if err != nil {
		t.Fatal(err)
	}
	defer deployclient.Stop(context.Background(), c, started.Deployment, "test cleanup")
	st := waitDeployment(t, ctx, c, "serving", func(s workflows.DeploymentState) bool { return s.Phase == workflows.PhaseServing })

	// Traffic through the endpoint for the rest of the test.
	tr := &traffic{url: "http://" + st.Endpoint + "/v1/predict"}
	tctx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	go tr.run(tctx)

	// A canary that answers errors is rolled back by its gate.
	if err := deployclient.Update(ctx, c, "sentiment", serviceSpec(image, "2", 1)); err != nil {
		t.Fatal(err)
	}
	st = waitDeployment(t, ctx, c, "bad canary rolled back", func(s workflows.DeploymentState) bool { return len(s.Rollouts) >= 1 && s.Canary == nil })
	bad := st.Rollouts[0]
	if bad.Promoted || bad.Release != 2 || !strings.Contains(bad.Reason, "success") {
		t.Fatalf("bad canary: %+v", bad)
	}
	// No failed request beyond the canary's: every 5xx came from the
	// canary (it answered all of its requests with 500).
	if f := tr.failed.Load(); f == 0 || f > bad.Canary.Requests+5 {
		t.Errorf("%d failed requests; the canary took %d", f, bad.Canary.Requests)
	}

	// A good update is promoted.
	if err := deployclient.Update(ctx, c, "sentiment", serviceSpec(image, "3", 0)); err != nil {
		t.Fatal(err)
	}
	st = waitDeployment(t, ctx, c, "good update promoted", func(s workflows.DeploymentState) bool {
		return len(s.Rollouts) >= 2 && s.Rollouts[1].Promoted && s.Phase == workflows.PhaseServing && allRelease(s, 3)
	})
	failedBefore := tr.failed.Load()
	time.Sleep(time.Second)
	if v := tr.lastVersion(); v != "3" {
		t.Errorf("after promotion the endpoint answers version %q", v)
	}

	// A replica killed with SIGKILL is restarted.
	victim := st.Replicas[1].ID
	if err := killReplica(victim); err != nil {
		t.Fatal(err)
	}
	waitDeployment(t, ctx, c, "killed replica restarted", func(s workflows.DeploymentState) bool {
		for _, e := range s.Events {
			if e.Kind == "restart" && strings.Contains(e.Msg, victim) {
				return s.Phase == workflows.PhaseServing && len(s.Routes.Stable) == 2
			}
		}
		return false
	})

	// Three billing periods settle.
	st = waitDeployment(t, ctx, c, "three periods settled", func(s workflows.DeploymentState) bool { return len(s.Settlements) >= 3 })
	stopTraffic()
	if err := deployclient.Stop(ctx, c, "sentiment", "test over"); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	final, err := deployclient.Wait(wctx, c, "sentiment")
	if err != nil {
		t.Fatal(err)
	}
	if final.Phase != workflows.PhaseStopped || len(final.Replicas) != 0 {
		t.Fatalf("final %s, replicas %v", final.Phase, final.Replicas)
	}
	breached := false
	for _, s := range final.Settlements {
		if s.Charge <= 0 || s.ProviderPay <= 0 {
			t.Errorf("period %s charged %d, paid %d", s.Job, s.Charge, s.ProviderPay)
		}
		if s.Breached {
			breached = true
			if s.SLARefund != s.Charge/2 || s.Slashed != 100 {
				t.Errorf("breached period %s: refund %d of %d, slashed %d (want 50 %%, 10 %% of 1000)", s.Job, s.SLARefund, s.Charge, s.Slashed)
			}
		}
	}
	if !breached {
		t.Errorf("the failed canary's window did not breach the 99 %% SLA: %+v", final.Windows)
	}
	rep, err := l.Check(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("ledger check: %+v %v", rep, err)
	}
	if _, err := os.Stat(net.NSPath(victim)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace of %s left behind", victim)
	}
	t.Logf("requests %d, failed %d (before promotion %d), periods %d, spent %d, refunded %d, slashed %d",
		tr.sent.Load(), tr.failed.Load(), failedBefore, len(final.Settlements), final.Spent, final.Refunded, final.Slashed)
}

func allRelease(s workflows.DeploymentState, n int) bool {
	if len(s.Replicas) != 2 {
		return false
	}
	for _, r := range s.Replicas {
		if r.Release != n || !r.Ready {
			return false
		}
	}
	return true
}

func waitDeployment(t *testing.T, ctx context.Context, c client.Client, what string, ok func(workflows.DeploymentState) bool) workflows.DeploymentState {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var st workflows.DeploymentState
	for time.Now().Before(deadline) {
		s, err := deployclient.Status(ctx, c, "sentiment")
		if err == nil {
			st = s
			if ok(s) {
				return s
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	var b strings.Builder
	for _, e := range st.Events {
		fmt.Fprintf(&b, "%s %s %s\n", e.At.Format("15:04:05.000"), e.Kind, e.Msg)
	}
	t.Fatalf("timed out waiting for %s: phase %s\n%s", what, st.Phase, b.String())
	return st
}

// traffic posts predictions in a loop and counts the answers.
type traffic struct {
	url          string
	sent, failed atomic.Int64
	mu           sync.Mutex
	version      string
}

func (tr *traffic) run(ctx context.Context) {
	cl := &http.Client{Timeout: 5 * time.Second}
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tr.url, strings.NewReader(`{"text":"great service"}`))
		resp, err := cl.Do(req)
		if ctx.Err() != nil {
			return
		}
		tr.sent.Add(1)
		if err != nil {
			tr.failed.Add(1)
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			tr.failed.Add(1)
		} else if i := strings.Index(string(b), `"version":"`); i >= 0 {
			tr.mu.Lock()
			tr.version = strings.SplitN(string(b[i+11:]), `"`, 2)[0]
			tr.mu.Unlock()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (tr *traffic) lastVersion() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.version
}

// killReplica SIGKILLs the server process of replica id (found by the
// ACCORD_TASK_ID in its environment).
func killReplica(id string) error {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range ents {
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !strings.Contains(string(env), "ACCORD_TASK_ID="+id+"\x00") {
			continue
		}
		var pid int
		fmt.Sscan(e.Name(), &pid)
		return syscall.Kill(pid, syscall.SIGKILL)
	}
	return fmt.Errorf("no process of replica %s", id)
}

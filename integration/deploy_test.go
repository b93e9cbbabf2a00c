package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/accordmesh/accord/examples/images"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
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
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ds := newDeployStack(ctx, t, "acdep", 100)
	image, net, c, rt, l, home, loc := ds.image, ds.net, ds.c, ds.rt, ds.l, ds.home, ds.loc
	if _, err := l.DepositBond(ctx, settlement.BondRequest{Provider: "local", Currency: "USD", Amount: 5000, Key: "bond-local"}); err != nil {
		t.Fatal(err)
	}
	host := &services.Host{Runtime: rt, Network: net, Biller: &billing.Ledger{L: l, Provider: "local", FeeBP: 500}, Attestor: loc.Recorder}
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
	// canary (it answers all of its requests with 500), as the version
	// header of each failed answer shows; the gate's window saw most of
	// them (a few land between the window's cut and the rollback).
	if f, other := tr.failed.Load(), tr.failuresNotFrom("2"); f == 0 || other > 0 || bad.Canary.Requests == 0 {
		t.Errorf("%d failed requests, %d not from the canary; the canary's window measured %d", f, other, bad.Canary.Requests)
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
	recordDeploymentHistory(t, c, deployclient.WorkflowID("sentiment"), "deployment_lifecycle")

	// Every event is in the receipt and `accord audit verify` passes.
	ds.closeLog(ctx, t)
	checkDeploymentReceipt(t, home, final)
	t.Logf("requests %d, failed %d (before promotion %d), periods %d, spent %d, refunded %d, slashed %d",
		tr.sent.Load(), tr.failed.Load(), failedBefore, len(final.Settlements), final.Spent, final.Refunded, final.Slashed)
}

// checkDeploymentReceipt exports the deployment's receipt with the CLI,
// checks every settlement, window, gate, promotion and rollback is in it,
// and verifies it with `accord audit verify`.
func checkDeploymentReceipt(t *testing.T, home string, final workflows.DeploymentState) {
	t.Helper()
	bin := accordBinary(t)
	receipt := filepath.Join(t.TempDir(), "receipt.json")
	cli(t, bin, "--home", home, "receipt", "export", "sentiment", "-o", receipt)
	r, err := provenance.ReadReceipt(receipt)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Attestations) != final.Attested {
		t.Errorf("receipt has %d events, the deployment attested %d", len(r.Attestations), final.Attested)
	}
	count := map[string]int{}
	for _, a := range r.Attestations {
		_, payload, err := provenance.ParseEnvelope(a.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		st, err := provenance.ParseStatement(payload)
		if err != nil {
			t.Fatal(err)
		}
		var p provenance.DeploymentPredicate
		if err := st.DecodePredicate(&p); err != nil {
			t.Fatal(err)
		}
		count[p.Event]++
	}
	if count[provenance.DeploySettle] != len(final.Settlements) || count[provenance.DeployGate] != 2 || count[provenance.DeployPromote] != 1 ||
		count[provenance.DeployRollback] != 1 || count[provenance.DeployWindow] != len(final.Windows) || count[provenance.DeployStop] != 1 {
		t.Errorf("events in the receipt %v; settlements %d, windows %d", count, len(final.Settlements), len(final.Windows))
	}
	out, code, stderr := cliExit(t, bin, "--home", home, "audit", "verify", receipt, "--json")
	var rep provenance.Report
	if err := json.Unmarshal([]byte(lastLine(out)), &rep); err != nil || code != 0 || !rep.OK || !rep.Complete {
		t.Fatalf("audit verify: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	t.Logf("receipt: %d events %v; audit verify OK (complete)", len(rep.Stages), count)
}

// recordDeploymentHistory adds the deployment's history under the current
// deployment layout (make record-deployment-histories); it never
// overwrites one.
func recordDeploymentHistory(t *testing.T, c client.Client, workflowID, name string) {
	t.Helper()
	if os.Getenv("ACCORD_RECORD_HISTORIES") == "" {
		return
	}
	ctx := context.Background()
	hist := &historypb.History{}
	// The latest run: the whole deployment unless it continued-as-new
	// (a continued run replays from its carried state just the same).
	iter := c.GetWorkflowHistory(ctx, workflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatalf("history: %v", err)
		}
		hist.Events = append(hist.Events, ev)
	}
	if len(hist.Events) > 0 && hist.Events[0].GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId() != "" {
		t.Logf("the recorded run of %s is a continued one", workflowID)
	}
	doc, err := protojson.MarshalOptions{Multiline: true, Indent: " "}.Marshal(hist)
	if err != nil {
		t.Fatal(err)
	}
	file := fmt.Sprintf("%s_layout%d.json", name, workflows.DeploymentCurrentLayout)
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
	failedBy     map[string]int64 // failures by the answering version ("" for none)
}

// failuresNotFrom counts the failures no replica of version v answered.
func (tr *traffic) failuresNotFrom(v string) int64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var n int64
	for ver, c := range tr.failedBy {
		if ver != v {
			n += c
		}
	}
	return n
}

func (tr *traffic) fail(version string) {
	tr.failed.Add(1)
	tr.mu.Lock()
	if tr.failedBy == nil {
		tr.failedBy = map[string]int64{}
	}
	tr.failedBy[version]++
	tr.mu.Unlock()
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
			tr.fail("")
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			tr.fail(resp.Header.Get("X-Model-Version"))
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

// deployStack is what a deployment test runs on: the example server's
// image built from source, a CNI network, an embedded Temporal server, a
// client and a worker running the deployment workflow, a private
// containerd, a SQLite ledger with tenant demo funded, and a home whose
// embedded log the events are signed into (where `accord receipt export`
// finds them); everything is stopped when the test ends. It skips when
// the network cannot be made (no root or no CNI plugins).
type deployStack struct {
	tmp, image, home string
	net              services.Network
	c                client.Client
	rt               *containerd.Runtime
	l                *settlement.Ledger
	loc              *provenance.Local
	logClosed        bool
}

// newDeployStack starts a deployStack whose network is named prefix+pid,
// on a /24 under 10.(base+pid%50).
func newDeployStack(ctx context.Context, t *testing.T, prefix string, base int) *deployStack {
	t.Helper()
	ds := &deployStack{tmp: t.TempDir()}
	var err error
	if ds.image, _, err = images.BuildServer(ctx, images.Options{RepoDir: repoRoot(), Out: filepath.Join(ds.tmp, "server.tar")}); err != nil {
		t.Fatal(err)
	}
	pid := os.Getpid() % 10000
	ds.net = services.Network{Name: fmt.Sprintf("%s%d", prefix, pid), Bridge: fmt.Sprintf("%s%d", prefix, pid),
		Subnet: fmt.Sprintf("10.%d.%d.0/24", base+pid%50, pid%250), DataDir: filepath.Join(ds.tmp, "cni")}
	if err := ds.net.Available(); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { ds.net.Remove(context.Background()) })
	srv, err := devserver.Start(devserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if ds.c, err = client.Dial(client.Options{HostPort: srv.Address(), Namespace: srv.Namespace()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ds.c.Close)
	if ds.rt, err = containerd.New(ctx, containerd.Options{StateDir: filepath.Join(ds.tmp, "ctd")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ds.rt.Purge(context.Background())
		ds.rt.Close()
		containerd.StopDaemon(containerd.DaemonDir(filepath.Join(ds.tmp, "ctd")), 5*time.Second)
	})
	if ds.l, err = settlement.Open(ctx, filepath.Join(ds.tmp, "ledger.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.l.Close() })
	if _, err := ds.l.Deposit(ctx, settlement.DepositRequest{Tenant: "demo", Currency: "USD", Amount: 10_000_000, Key: "fund-demo"}); err != nil {
		t.Fatal(err)
	}
	cw := worker.New(ds.c, workflows.TaskQueueControl, worker.Options{})
	workflows.RegisterDeployment(cw)
	if err := cw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cw.Stop)
	ds.home = filepath.Join(ds.tmp, "home")
	if ds.loc, err = provenance.OpenLocal(ctx, ds.home, tlog.Config{Kind: tlog.KindEmbedded, Home: ds.home}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !ds.logClosed {
			ds.loc.Close(context.Background())
		}
	})
	return ds
}

// closeLog closes the home's embedded log, so that the CLI can open it.
func (ds *deployStack) closeLog(ctx context.Context, t *testing.T) {
	t.Helper()
	if err := ds.loc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ds.logClosed = true
}

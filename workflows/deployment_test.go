package workflows

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/services"
	"github.com/accordmesh/accord/specs"
)

// fakeHost is an in-memory services host: replicas are ready once
// started, a release whose image contains "bad" fails its canary window,
// and chosen SLA windows breach.
type fakeHost struct {
	mu       sync.Mutex
	running  map[string]runtimes.State
	started  []string
	stopped  []string
	routes   []services.Routes
	holds    []services.HoldPeriodRequest
	settles  []services.SettlePeriodRequest
	images   map[string]string // replica → image
	breachW  map[string]bool   // SLA window keys that breach
	closed   bool
	dryAfter int                               // holds after which the tenant is out of money (0: never)
	events   []predicate.Deployment            // attested, in order
	tail     string                            // the last event's digest
	chainErr error                             // a broken chain link, if any
	models   map[string]*services.ReplicaModel // replica → the model it mounts
	resolved []services.ResolveModelRequest
	measured []services.MeasureRequest
}

func newFakeHost() *fakeHost {
	return &fakeHost{running: map[string]runtimes.State{}, images: map[string]string{}, breachW: map[string]bool{}, models: map[string]*services.ReplicaModel{}}
}

func (f *fakeHost) register(env *testsuite.TestWorkflowEnvironment) {
	OpenEndpoint.Register(env, func(_ context.Context, r services.EndpointRequest) (services.EndpointInfo, error) {
		return services.EndpointInfo{Deployment: r.Deployment, Addr: "127.0.0.1:9999"}, nil
	})
	CloseEndpoint.Register(env, func(_ context.Context, r services.EndpointRequest) (services.EndpointInfo, error) {
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
		return services.EndpointInfo{Deployment: r.Deployment}, nil
	})
	StartReplica.Register(env, func(_ context.Context, r services.ReplicaRequest) (services.ReplicaInfo, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.running[r.ID] = runtimes.StateRunning
		f.images[r.ID] = r.Image
		f.models[r.ID] = r.Model
		f.started = append(f.started, r.ID)
		return services.ReplicaInfo{ID: r.ID, Addr: "10.0.0.1:8080", State: runtimes.StateRunning}, nil
	})
	StopReplicas.Register(env, func(_ context.Context, r services.StopRequest) (services.StopResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, id := range r.IDs {
			delete(f.running, id)
			f.stopped = append(f.stopped, id)
		}
		return services.StopResult{Stopped: r.IDs}, nil
	})
	CheckReplicas.Register(env, func(_ context.Context, r services.CheckRequest) ([]services.Health, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var out []services.Health
		for _, rep := range r.Replicas {
			st, ok := f.running[rep.ID]
			if !ok {
				st = runtimes.StateFailed
			}
			out = append(out, services.Health{ID: rep.ID, State: st, Ready: st == runtimes.StateRunning, Alive: st == runtimes.StateRunning})
		}
		return out, nil
	})
	RouteEndpoint.Register(env, func(_ context.Context, r services.RouteRequest) (services.Routes, error) {
		f.mu.Lock()
		f.routes = append(f.routes, r.Routes)
		f.mu.Unlock()
		return r.Routes, nil
	})
	MeasureWindow.Register(env, func(_ context.Context, r services.MeasureRequest) (services.Window, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.measured = append(f.measured, r)
		w := services.Window{Key: r.Key, Versions: map[string]services.Stats{}}
		if r.Stream == services.StreamBilling {
			// Every release answered 100 requests in the period, 10 failed.
			for id := range f.images {
				label := strings.Split(strings.TrimPrefix(id, r.Deployment+"-"), "-")[0]
				w.Versions[label] = services.Stats{Requests: 100, Errors: 10}
			}
			return w, nil
		}
		good := services.Stats{Requests: 100, SuccessBP: 10000, P95: 20 * time.Millisecond}
		w.Total = good
		if r.Stream == "rollout" {
			label := strings.Split(r.Key, "-")[0]
			st := good
			for id, img := range f.images {
				if strings.Contains(id, "-"+label+"-") && strings.Contains(img, "bad") {
					st = services.Stats{Requests: 100, Errors: 100, SuccessBP: 0, P95: 5 * time.Millisecond}
				}
			}
			w.Versions[label] = st
		}
		if r.Stream == "sla" && f.breachW[r.Key] {
			w.Total = services.Stats{Requests: 100, Errors: 10, SuccessBP: 9000, P95: 20 * time.Millisecond}
		}
		return w, nil
	})
	HoldPeriod.Register(env, func(_ context.Context, r services.HoldPeriodRequest) (services.HoldPeriodResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.dryAfter > 0 && len(f.holds) >= f.dryAfter {
			return services.HoldPeriodResult{Job: services.PeriodJob(r.Deployment, r.Period), Insufficient: true}, nil
		}
		f.holds = append(f.holds, r)
		return services.HoldPeriodResult{Job: services.PeriodJob(r.Deployment, r.Period), Held: r.Price + r.Price*r.MarginBP/10000}, nil
	})
	AttestEvent.Register(env, func(_ context.Context, r services.AttestRequest) (services.AttestResult, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		var p predicate.Deployment
		if err := json.Unmarshal(r.Predicate, &p); err != nil {
			return services.AttestResult{}, err
		}
		if r.Seq != len(f.events)+1 || r.Previous != f.tail || p.Seq != r.Seq || p.JobID != r.Deployment {
			f.chainErr = fmt.Errorf("event %d (%s): seq %d, previous %q, want seq %d after %q", r.Seq, p.Event, p.Seq, r.Previous, len(f.events)+1, f.tail)
		}
		sum := sha256.Sum256(r.Predicate)
		f.tail = "sha256:" + hex.EncodeToString(sum[:])
		f.events = append(f.events, p)
		return services.AttestResult{Digest: f.tail, LogIndex: int64(len(f.events))}, nil
	})
	ResolveModel.Register(env, final(func(_ context.Context, r services.ResolveModelRequest) (services.ModelPin, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.resolved = append(f.resolved, r)
		return fakeResolve(r)
	}))
	SettlePeriod.Register(env, func(_ context.Context, r services.SettlePeriodRequest) (services.PeriodSettlement, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.settles = append(f.settles, r)
		charge := (r.ReplicaMillis*r.ReplicaHour + 3_599_999) / 3_600_000
		ps := services.PeriodSettlement{Job: services.PeriodJob(r.Deployment, r.Period), Charge: charge, Breached: r.Breached,
			Key: services.PeriodJob(r.Deployment, r.Period) + "/settle/1"}
		if r.Breached {
			ps.SLARefund = charge * int64(r.RefundPercent) / 100
			ps.Slashed = r.Stake * int64(r.SlashPercent) / 100
		}
		for _, fee := range r.Inferences {
			total, _ := fee.Total()
			shares, _ := fee.Scaled()
			ps.ModelFeeTotal += total
			ps.ModelFees = append(ps.ModelFees, services.PaidModelFee{Release: fee.Release, Model: fee.Model, Digest: fee.Digest, Shares: shares})
		}
		return ps, nil
	})
}

// checkAttested checks the lifecycle's events were attested in order,
// chained, with the figures the workflow acted on.
func checkAttested(t *testing.T, f *fakeHost, st DeploymentState) {
	t.Helper()
	if f.chainErr != nil {
		t.Fatal(f.chainErr)
	}
	var kinds []string
	count := map[string]int{}
	for _, e := range f.events {
		kinds = append(kinds, e.Event)
		count[e.Event]++
	}
	if len(kinds) == 0 || kinds[0] != predicate.DeployStart || kinds[len(kinds)-1] != predicate.DeployStop {
		t.Fatalf("events %v: want start first and stop last", kinds)
	}
	if st.Attested != len(f.events) || st.AttestTail != f.tail {
		t.Errorf("state attested %d (%s), host has %d (%s)", st.Attested, st.AttestTail, len(f.events), f.tail)
	}
	want := map[string]int{predicate.DeployHold: len(f.holds), predicate.DeploySettle: len(f.settles),
		predicate.DeployCanary: 2, predicate.DeployGate: 2, predicate.DeployPromote: 1, predicate.DeployRollback: 1}
	for k, n := range want {
		if count[k] != n {
			t.Errorf("%d %s events, want %d: %v", count[k], k, n, kinds)
		}
	}
	if count[predicate.DeployWindow] < 3 {
		t.Errorf("%d window events: %v", count[predicate.DeployWindow], kinds)
	}
	for i, e := range f.events {
		switch {
		case e.Event == predicate.DeployGate && e.Release == 2:
			if e.Gate.Passed || e.Gate.Measured.SuccessBP != 0 || e.Gate.Measured.Requests != 100 || e.Gate.Gates.MinSuccessBP != 9900 {
				t.Errorf("bad canary's gate: %+v", e.Gate)
			}
			if next := f.events[i+1]; next.Event != predicate.DeployRollback || next.Release != 2 {
				t.Errorf("after the failed gate: %s r%d", next.Event, next.Release)
			}
		case e.Event == predicate.DeployGate && e.Release == 3:
			if !e.Gate.Passed || f.events[i+1].Event != predicate.DeployPromote {
				t.Errorf("good canary's gate %+v, then %s", e.Gate, f.events[i+1].Event)
			}
		case e.Event == predicate.DeployWindow && e.Window.N == 1:
			if !e.Window.Breached || e.Window.Measured.SuccessBP != 9000 || e.Window.Terms.AvailabilityBP != 9950 {
				t.Errorf("breached window: %+v", e.Window)
			}
		case e.Event == predicate.DeploySettle && e.Settle.Breached:
			if e.Settle.RefundPercent != 25 || e.Settle.SLARefund != e.Settle.Charge/4 {
				t.Errorf("breached settlement: %+v", e.Settle)
			}
		}
	}
	if s := f.events[len(f.events)-1].Stop; s.Spent != st.Spent || s.Periods != len(f.settles) {
		t.Errorf("stop %+v, state spent %d over %d periods", s, st.Spent, len(f.settles))
	}
}

func testService(image string) specs.Service {
	probe := specs.Probe{Path: "/healthz", Period: time.Second, Timeout: 500 * time.Millisecond, SuccessThreshold: 1, FailureThreshold: 2}
	return specs.Service{
		Image: image, Port: 8080, Replicas: 2, Endpoint: "sentiment", Readiness: probe, Liveness: probe,
		Resources: specs.Resources{MilliCPU: 500, MemoryBytes: 64 << 20},
		Rollout:   specs.Rollout{CanaryPercent: 20, Duration: 10 * time.Second, MinSuccessBP: 9900, MaxP95: 200 * time.Millisecond, MinRequests: 10},
		Rollback:  specs.Rollback{Automatic: true, MaxRestarts: 5},
		SLA:       specs.ServiceSLA{AvailabilityBP: 9950, P95Latency: 250 * time.Millisecond, Window: time.Minute, RefundPercent: 25, SlashPercent: 10, Stake: 1000},
		Billing:   specs.Billing{Period: time.Minute, ReplicaHour: 3600, Grace: 30 * time.Second},
	}
}

func deploymentEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *fakeHost) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	RegisterDeployment(env)
	f := newFakeHost()
	f.register(env)
	env.SetTestTimeout(time.Minute)
	return env, f
}

func TestDeploymentLifecycle(t *testing.T) {
	env, f := deploymentEnv(t)
	f.breachW["w1"] = true
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalDeployUpdate, UpdateRequest{Version: "2.0.0-bad", Service: testService("oci-archive:/img/bad.tar")})
	}, 5*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalDeployUpdate, UpdateRequest{Version: "3.0.0", Service: testService("oci-archive:/img/good.tar")})
	}, 40*time.Second)
	killed := false
	env.RegisterDelayedCallback(func() {
		f.mu.Lock()
		// SIGKILL one replica of the promoted release.
		for id := range f.running {
			if strings.Contains(id, "-r3-s1-") && !killed {
				killed = true
				f.running[id] = runtimes.StateExited
			}
		}
		f.mu.Unlock()
	}, 90*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalDeployStop, ReasonRequest{Reason: "test over"})
	}, 200*time.Second)
	env.ExecuteWorkflow(Deployment, DeploymentInput{ID: "dep1", Tenant: "demo", Currency: "USD", Budget: 100_000,
		Release: ServiceRelease{Version: "1.0.0", Service: testService("oci-archive:/img/good.tar")}})
	if !env.IsWorkflowCompleted() {
		t.Fatal("workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var st DeploymentState
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	log := eventLog(st)
	if st.Phase != PhaseStopped || st.Stable.N != 3 || st.Stable.Version != "3.0.0" {
		t.Fatalf("phase %s stable %+v\n%s", st.Phase, st.Stable, log)
	}
	if len(st.Rollouts) != 2 || st.Rollouts[0].Promoted || st.Rollouts[0].Release != 2 || !st.Rollouts[1].Promoted {
		t.Fatalf("rollouts %+v\n%s", st.Rollouts, log)
	}
	if !strings.Contains(st.Rollouts[0].Reason, "success 0.00% below 99.00%") {
		t.Errorf("rollback reason %q", st.Rollouts[0].Reason)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// The bad canary took at most its share and was stopped; the r1
	// replicas were stopped after r3's were all ready.
	for _, id := range []string{"dep1-r2-s0-g2", "dep1-r1-s0-g0", "dep1-r1-s1-g1", "dep1-r3-s1-g4"} {
		if !slices.Contains(f.stopped, id) {
			t.Errorf("%s not stopped (stopped %v)", id, f.stopped)
		}
	}
	for _, rt := range f.routes {
		for _, b := range rt.Canary {
			if strings.Contains(b.ID, "-r2-") && rt.CanaryPercent != 20 {
				t.Errorf("bad canary routed at %d%%", rt.CanaryPercent)
			}
		}
		for _, b := range rt.Stable {
			if strings.Contains(b.ID, "-r2-") {
				t.Errorf("bad canary in the stable pool: %+v", rt)
			}
		}
	}
	if !slices.Contains(f.started, "dep1-r3-s1-g5") {
		t.Errorf("killed replica not restarted: %v\n%s", f.started, log)
	}
	if len(f.running) != 0 || !f.closed {
		t.Errorf("left running %v, endpoint closed %v", f.running, f.closed)
	}
	checkAttested(t, f, st)
	// Billing: periods 0-2 settled at the boundaries, period 3 at the stop.
	if len(f.settles) != 4 || len(f.holds) != 4 {
		t.Fatalf("%d holds, %d settlements\n%s", len(f.holds), len(f.settles), log)
	}
	for i, s := range f.settles {
		if s.Period != i {
			t.Errorf("settlement %d is period %d", i, s.Period)
		}
	}
	// Full periods meter two replicas (and any canary) for a minute.
	if m := f.settles[0].ReplicaMillis; m < 2*60_000 || m > 3*60_000 {
		t.Errorf("period 0 metered %d replica-ms", m)
	}
	if !f.settles[1].Breached || f.settles[1].RefundPercent != 25 || f.settles[1].SlashPercent != 10 || f.settles[0].Breached || f.settles[2].Breached {
		t.Errorf("SLA breach not applied to period 1 only: %+v", f.settles)
	}
	if st.Refunded == 0 || st.Slashed != 100 {
		t.Errorf("refunded %d slashed %d", st.Refunded, st.Slashed)
	}
	if f.holds[0].Price != 120 || f.holds[0].MarginBP != 5000 {
		t.Errorf("hold %+v, want 120 (2 replicas × 1 min × 3600/h) with a 50%% grace margin", f.holds[0])
	}
}

func TestDeploymentManualRollbackAfterPromotion(t *testing.T) {
	env, f := deploymentEnv(t)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalDeployUpdate, UpdateRequest{Version: "2.0.0", Service: testService("oci-archive:/img/v2.tar")})
	}, 3*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalDeployRollback, ReasonRequest{Reason: "customer complaints"})
	}, 30*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalDeployStop, ReasonRequest{Reason: "done"})
	}, 50*time.Second)
	env.ExecuteWorkflow(Deployment, DeploymentInput{ID: "dep2", Tenant: "demo", Currency: "USD",
		Release: ServiceRelease{Version: "1.0.0", Service: testService("oci-archive:/img/v1.tar")}})
	var st DeploymentState
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	if st.Stable.N != 1 || !strings.Contains(eventLog(st), "returning from r2 (2.0.0) to r1 (1.0.0): requested: customer complaints") {
		t.Fatalf("stable %+v\n%s", st.Stable, eventLog(st))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !slices.Contains(f.started, "dep2-r1-s0-g4") || !slices.Contains(f.stopped, "dep2-r2-s1-g3") || len(f.running) != 0 {
		t.Errorf("started %v stopped %v", f.started, f.stopped)
	}
}

func TestDeploymentEscrowDryStopsAfterGrace(t *testing.T) {
	env, f := deploymentEnv(t)
	f.dryAfter = 2 // periods 0 and 1 funded, period 2 not
	env.ExecuteWorkflow(Deployment, DeploymentInput{ID: "dep3", Tenant: "demo", Currency: "USD",
		Release: ServiceRelease{Version: "1.0.0", Service: testService("oci-archive:/img/v1.tar")}})
	var st DeploymentState
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	log := eventLog(st)
	if st.Phase != PhaseStopped || !strings.Contains(st.StopReason, "escrow dry") {
		t.Fatalf("phase %s reason %q\n%s", st.Phase, st.StopReason, log)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Period 0 settles when period 1 is held; period 1 runs into its
	// grace and settles at the stop, its hold covering the grace.
	if len(f.settles) != 2 || f.settles[1].Period != 1 {
		t.Fatalf("settlements %+v\n%s", f.settles, log)
	}
	m := f.settles[1].ReplicaMillis
	held := f.holds[1].Price + f.holds[1].Price*f.holds[1].MarginBP/10000
	if charge := (m*3600 + 3_599_999) / 3_600_000; charge > held {
		t.Errorf("period 1 charge %d exceeds its hold %d: owed unpaid", charge, held)
	}
	if len(f.running) != 0 {
		t.Errorf("replicas left: %v", f.running)
	}
}

func TestDeploymentContinuesAsNew(t *testing.T) {
	env, _ := deploymentEnv(t)
	env.SetTestTimeout(2 * time.Minute)
	in := DeploymentInput{ID: "dep4", Tenant: "demo", Currency: "USD",
		Release: ServiceRelease{Version: "1.0.0", Service: testService("oci-archive:/img/v1.tar")}}
	env.ExecuteWorkflow(Deployment, in)
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("want continue-as-new after %d ticks, got %v", continueAfterTicks, err)
	}
	var next DeploymentInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.State == nil || next.State.Ticks != continueAfterTicks || next.State.Phase != PhaseServing || len(next.State.Replicas) != 2 || next.State.Period < 4 {
		t.Fatalf("carried state %+v", next.State)
	}
}

func eventLog(st DeploymentState) string {
	var b strings.Builder
	for _, e := range st.Events {
		fmt.Fprintf(&b, "%s %-10s %s\n", e.At.Format("15:04:05"), e.Kind, e.Msg)
	}
	return b.String()
}

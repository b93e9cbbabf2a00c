package workflows

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/services"
	"github.com/accordmesh/accord/specs"
)

// fakeResolve pins acme/clf: ^1 resolves to 1.4.0 at 5 per inference (4 to
// acme, a royalty of 1 to rex, its base's owner), ^2 to 2.0.0 at 8 (all to
// acme); anything else is refused.
func fakeResolve(r services.ResolveModelRequest) (services.ModelPin, error) {
	pin := services.ModelPin{Name: r.Name, Constraint: r.Constraint, As: r.As}
	switch r.Constraint {
	case "^1":
		pin.Ref, pin.Digest = r.Name+"@1.4.0", "sha256:"+strings.Repeat("1", 64)
		pin.Fee = services.ModelFee{Currency: "USD", Price: 5, Shares: []services.ModelShare{
			{Owner: "acme", Model: r.Name + "@1.4.0", Amount: 4}, {Owner: "rex", Model: "rex/base@1.0.0", Amount: 1}}}
	case "^2":
		pin.Ref, pin.Digest = r.Name+"@2.0.0", "sha256:"+strings.Repeat("2", 64)
		pin.Fee = services.ModelFee{Currency: "USD", Price: 8, Shares: []services.ModelShare{{Owner: "acme", Model: r.Name + "@2.0.0", Amount: 8}}}
	default:
		return services.ModelPin{}, fmt.Errorf("%w: no version of %s matches %s", services.ErrModelRefused, r.Name, r.Constraint)
	}
	return pin, nil
}

func modelService(constraint string) specs.Service {
	s := testService("oci-archive:/img/server.tar")
	s.Model = &specs.ModelUse{Name: "acme/clf", Version: constraint, As: "/models/clf"}
	return s
}

// TestDeploymentServesModel: every replica of a release mounts the model
// its release resolved; an update to a model that does not resolve is
// refused and the stable release serves on; an update to a new model
// version is a canary rollout; each period pays its releases' successful
// requests × their model's price, split as one inference is, and the
// start, canary and settle events record the models and the fees.
func TestDeploymentServesModel(t *testing.T) {
	env, f := deploymentEnv(t)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalDeployUpdate, UpdateRequest{Version: "1.1.0", Service: modelService("^9")})
	}, 5*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalDeployUpdate, UpdateRequest{Version: "2.0.0", Service: modelService("^2")})
	}, 70*time.Second)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalDeployStop, ReasonRequest{Reason: "test over"})
	}, 150*time.Second)
	env.ExecuteWorkflow(Deployment, DeploymentInput{ID: "dep5", Tenant: "demo", Currency: "USD", Budget: 100_000,
		Release: ServiceRelease{Version: "1.0.0", Service: modelService("^1")}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var st DeploymentState
	if err := env.GetWorkflowResult(&st); err != nil {
		t.Fatal(err)
	}
	log := eventLog(st)
	if st.Stable.N != 2 || st.Stable.Model == nil || st.Stable.Model.Ref != "acme/clf@2.0.0" || len(st.Rollouts) != 1 || !st.Rollouts[0].Promoted {
		t.Fatalf("stable %+v, rollouts %+v\n%s", st.Stable, st.Rollouts, log)
	}
	if !strings.Contains(log, "release r2 (1.1.0) refused") {
		t.Errorf("the unresolvable update was not refused:\n%s", log)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.resolved) != 3 || f.resolved[0].Currency != "USD" || f.resolved[0].As != "/models/clf" {
		t.Errorf("resolved %+v", f.resolved)
	}
	for id, m := range f.models {
		want := "acme/clf@1.4.0"
		if strings.Contains(id, "-r2-") {
			want = "acme/clf@2.0.0"
		}
		if m == nil || m.Ref != want || m.As != "/models/clf" || !strings.HasPrefix(m.Digest, "sha256:") {
			t.Errorf("replica %s mounts %+v, want %s", id, m, want)
		}
	}
	if !slices.Contains(f.started, "dep5-r2-s0-g2") {
		t.Errorf("no canary of r2: %v", f.started)
	}
	checkModelFees(t, f, st)
	checkModelEvents(t, f)
}

func checkModelFees(t *testing.T, f *fakeHost, st DeploymentState) {
	t.Helper()
	var total int64
	for i, s := range f.settles {
		for _, fee := range s.Inferences {
			if fee.Requests != 90 {
				t.Errorf("period %d %s: %d requests billed, want the 90 that succeeded", s.Period, fee.Release, fee.Requests)
			}
			want := map[string]int64{"r1": 5, "r2": 8}[fee.Release]
			if fee.Price != want {
				t.Errorf("period %d %s at %d, want %d", s.Period, fee.Release, fee.Price, want)
			}
			n, _ := fee.Total()
			total += n
		}
		if len(s.Inferences) == 0 {
			t.Errorf("settlement %d paid no inferences", i)
		}
	}
	if st.ModelFees != total || total == 0 {
		t.Errorf("state model fees %d, settlements %d", st.ModelFees, total)
	}
	// Later holds cover twice the previous period's inference fees.
	if len(f.holds) < 2 || f.holds[1].Price != 120+2*450 {
		t.Errorf("hold of period 1 %+v, want 120 + 2 × 90 × 5", f.holds[1])
	}
	for _, m := range f.measured {
		if m.Stream == services.StreamBilling && !strings.HasPrefix(m.Key, "p") {
			t.Errorf("billing cut %q", m.Key)
		}
	}
}

func checkModelEvents(t *testing.T, f *fakeHost) {
	t.Helper()
	var start, canary, settles int
	for _, e := range f.events {
		switch e.Event {
		case predicate.DeployStart:
			if e.Model == nil || e.Model.Ref != "acme/clf@1.4.0" || e.Model.PerInference != 5 || len(e.Model.Shares) != 2 || e.Model.Constraint != "^1" {
				t.Errorf("start records model %+v", e.Model)
			}
			start++
		case predicate.DeployCanary:
			if e.Model == nil || e.Model.Ref != "acme/clf@2.0.0" || e.Release != 2 {
				t.Errorf("canary r%d records model %+v", e.Release, e.Model)
			}
			canary++
		case predicate.DeploySettle:
			var fees int64
			for _, p := range e.Settle.ModelFees {
				for _, s := range p.Shares {
					fees += s.Amount
				}
			}
			if len(e.Settle.Inferences) == 0 || fees != e.Settle.ModelFeeTotal {
				t.Errorf("settle records %+v", e.Settle)
			}
			settles++
		}
	}
	if start != 1 || canary != 1 || settles != len(f.settles) {
		t.Errorf("%d start, %d canary, %d settle events", start, canary, settles)
	}
}

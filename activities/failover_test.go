package activities

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/agents"
	"github.com/accordmesh/accord/market/broker"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/settlement/sla"
	"github.com/accordmesh/accord/workflows"
)

func agentRecord(name string, cpuHour int64) agents.Record {
	return agents.Record{Name: name, Runtime: "containerd", Heartbeat: time.Second, Profile: market.Profile{
		Name: name, Region: "agent", Reputation: 1,
		Free:    market.Capacity{MilliCPU: 8000, MemoryBytes: 16 << 30, DiskBytes: 64 << 30},
		Pricing: market.Pricing{Currency: "USD", CPUHour: cpuHour, MemoryGiBHour: 1},
		SLA:     market.SLAOffer{MaxRefundPercent: 100, MaxSlashPercent: 100, Stake: 300},
	}}
}

// failoverActs is a control plane with two live agents (gpu-a cheaper), a
// real ledger and the quickstart plan stored by reference.
func failoverActs(t *testing.T) (*Activities, *agents.Registry, *settlement.Ledger, workflows.PlanInput, *time.Time) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	reg := agents.Open(t.TempDir())
	reg.Now = func() time.Time { return now }
	for _, r := range []agents.Record{agentRecord("gpu-a", 4), agentRecord("gpu-b", 40)} {
		if _, err := reg.Put(r); err != nil {
			t.Fatal(err)
		}
	}
	l, err := settlement.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	store := artifacts.Local{Dir: t.TempDir()}
	_, raw := quickstartPlan(t)
	ref, err := store.Put(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	a := &Activities{
		Artifacts: store, Grants: store, Providers: reg, Ledger: SettlementLedger{L: l},
		Negotiator: MarketNegotiator{
			Broker: broker.Broker{Providers: func(ctx context.Context) ([]market.Provider, error) { return reg.Providers(ctx, nil) },
				DefaultRuntime: "containerd"},
			Queue: workflows.ExecQueue,
		},
	}
	return a, reg, l, workflows.PlanInput{PlanRef: ref}, &now
}

// Liveness follows the heartbeat; the renegotiation after a loss excludes
// and penalizes the lost agent, once however often it is retried.
func TestRenegotiateAfterLoss(t *testing.T) {
	ctx := context.Background()
	a, reg, _, plan, now := failoverActs(t)
	live, err := a.ProviderLive(ctx, workflows.ProviderLiveInput{JobID: "job-1", Provider: "gpu-a"})
	if err != nil || !live.Live {
		t.Fatalf("fresh agent: %+v %v", live, err)
	}
	*now = now.Add(10 * time.Second)
	if _, err := reg.Put(agentRecord("gpu-b", 40)); err != nil {
		t.Fatal(err)
	}
	live, err = a.ProviderLive(ctx, workflows.ProviderLiveInput{JobID: "job-1", Provider: "gpu-a"})
	if err != nil || live.Live || !strings.Contains(live.Reason, "heartbeat stopped") {
		t.Fatalf("stale agent: %+v %v", live, err)
	}
	if live, _ := a.ProviderLive(ctx, workflows.ProviderLiveInput{JobID: "job-1", Provider: "nobody"}); live.Live || live.Reason == "" {
		t.Errorf("unknown agent: %+v", live)
	}
	in := workflows.RenegotiateInput{JobID: "job-1", PlanInput: plan, Exclude: map[string]string{"gpu-a": "lost"},
		Lost: "gpu-a", LostReason: "heartbeat stopped", N: 1}
	for range 2 {
		out, err := a.Renegotiate(ctx, in)
		if err != nil || out.Award.Provider != "gpu-b" || out.Award.Queue != "accord-exec-gpu-b" || out.Reputation != agents.PenaltyFactor {
			t.Fatalf("renegotiate = %+v, %v", out, err)
		}
	}
	if ps, _ := reg.Penalties("gpu-a"); len(ps) != 1 {
		t.Errorf("penalties %v, want one", ps)
	}
	// The replacement's agent reads the plan and pushes the job's outputs
	// through the artifact store (a real agent otherwise gets 404s).
	store := a.Grants.(artifacts.Local)
	if ok, err := store.AgentReads("gpu-b", plan.PlanRef); !ok || err != nil {
		t.Errorf("gpu-b reads the plan: %v %v", ok, err)
	}
	if p, _, err := store.JobAward("job-1"); len(p) != 1 || p[0] != "gpu-b" || err != nil {
		t.Errorf("the job's award record names %q (%v), want gpu-b", p, err)
	}
	in.Exclude["gpu-b"] = "ran the job"
	in.Lost = ""
	_, err = a.Renegotiate(ctx, in)
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Type() != workflows.ErrTypeNoOffers {
		t.Errorf("nobody left: %v, want %s", err, workflows.ErrTypeNoOffers)
	}
}

// Reassign and SlashProvider go through the ledger's idempotent keys.
func TestReassignAndSlashActivities(t *testing.T) {
	ctx := context.Background()
	a, reg, l, _, _ := failoverActs(t)
	if _, err := l.Deposit(ctx, settlement.DepositRequest{Tenant: "acme", Currency: "USD", Amount: 1000, Key: "d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DepositBond(ctx, settlement.BondRequest{Provider: "gpu-a", Currency: "USD", Amount: 500, Key: "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Hold(ctx, settlement.HoldRequest{Job: "job-1", Tenant: "acme", Provider: "gpu-a", Currency: "USD", Price: 100, Cap: 500, Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	in := workflows.ReassignInput{JobID: "job-1", From: "gpu-a", To: "gpu-b", N: 1, Reason: "spot check"}
	for range 2 {
		if _, err := a.Reassign(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	in.To = "gpu-c"
	var app *temporal.ApplicationError
	if _, err := a.Reassign(ctx, in); !errors.As(err, &app) || !app.NonRetryable() {
		t.Errorf("key reused for another provider: %v, want a permanent error", err)
	}
	s := workflows.SlashInput{JobID: "job-1", Provider: "gpu-a", Terms: &sla.Terms{SlashPercent: 50, Stake: 300}, Reason: "spot check: minority"}
	for range 2 {
		out, err := a.SlashProvider(ctx, s)
		if err != nil || out.Slashed != 150 || out.Reputation != agents.PenaltyFactor {
			t.Fatalf("slash = %+v, %v", out, err)
		}
	}
	if b, _ := l.Balance(ctx, settlement.BondAccount("gpu-a"), "USD"); b != 350 {
		t.Errorf("bond %d, want 350", b)
	}
	if r, _ := reg.Reputation("gpu-a"); r != agents.PenaltyFactor {
		t.Errorf("reputation %v", r)
	}
}

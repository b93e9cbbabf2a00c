package activities

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/settlement/sla"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// The Settle activity pays a split job's parts each for its own tasks:
// its price, its usage at its provider's rates, and its own terms (the
// late part refunds and is slashed; the other is paid in full).
func TestSettleSplitParts(t *testing.T) {
	plan, raw := quickstartPlan(t)
	l := moneyLedger(t)
	ctx := context.Background()
	if _, err := l.DepositBond(ctx, settlement.BondRequest{Provider: "gpu-b", Currency: "USD", Amount: 1_000, Key: "b2"}); err != nil {
		t.Fatal(err)
	}
	rates := func(p string) settlement.Rates {
		if p == "gpu-b" {
			return settlement.Rates{CPUPerHour: 7200}
		}
		return settlement.Rates{CPUPerHour: 3600}
	}
	a := &Activities{Ledger: SettlementLedger{L: l, Rates: rates, MarginBP: 5000}, Compiler: SpecCompiler{}}
	if _, _, _, err := a.Ledger.Hold(ctx, HoldRequest{JobID: "job-1", Tenant: "demo", Provider: "local", Currency: "USD", Price: 300, Cap: plan.Spec.Budget.MaxPrice}); err != nil {
		t.Fatal(err)
	}
	placed := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	late := &sla.Terms{MaxDuration: time.Second, RefundPercent: 50, SlashPercent: 100, Stake: 80}
	award := workflows.NegotiateOutput{Provider: "local", Price: 300, Currency: "USD", Parts: []workflows.AwardPart{
		{Provider: "local", Tasks: []string{"train"}, Price: 100},
		{Provider: "gpu-b", Tasks: []string{"eval"}, Price: 200, SLA: late},
	}}
	out, err := a.Settle(ctx, workflows.SettleInput{JobID: "job-1", PlanInput: workflows.PlanInput{PlanJSON: raw}, Award: award, Verified: true,
		Usage: &workflows.Usage{CPUSeconds: 30}, Placed: placed, Started: placed, Finished: placed.Add(time.Minute),
		Parts: []workflows.SettlePart{
			{Usage: workflows.Usage{CPUSeconds: 10}, Started: placed, Finished: placed.Add(time.Second / 2)},
			{Usage: workflows.Usage{CPUSeconds: 20}, Started: placed, Finished: placed.Add(time.Minute)},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if out.Paid <= 0 || out.Refunded <= 0 {
		t.Errorf("paid %d refunded %d", out.Paid, out.Refunded)
	}
	for acct, want := range map[string]int64{
		settlement.ProviderAccount("local"): 100 + 10,       // price + 10 CPU s at 1
		settlement.ProviderAccount("gpu-b"): (200 + 40) / 2, // late: half refunded
		settlement.BondAccount("gpu-b"):     1_000 - 80,
	} {
		if got, _ := l.Balance(ctx, acct, "USD"); got != want {
			t.Errorf("%s: %d, want %d", acct, got, want)
		}
	}
	award.Parts = award.Parts[:1]
	if _, err := a.Settle(ctx, workflows.SettleInput{JobID: "job-2", PlanInput: workflows.PlanInput{PlanJSON: raw}, Award: award, Verified: true,
		Usage: &workflows.Usage{}, Parts: []workflows.SettlePart{{}, {}}}); appErrType(err) != workflows.ErrTypeExecution {
		t.Errorf("parts that do not match the award: %v", err)
	}
}

// WholePlan places a split spec whole, and a part's tasks alone without
// their dependencies on other parts.
func TestWholePlan(t *testing.T) {
	plan := &specs.Plan{Spec: &specs.Spec{Placement: specs.Placement{Split: true}}, Tasks: []specs.PlanTask{
		{Task: specs.Task{Name: "a"}}, {Task: specs.Task{Name: "b", DependsOn: []string{"a"}}}, {Task: specs.Task{Name: "c", DependsOn: []string{"a", "b"}}},
	}}
	w := WholePlan(plan, nil)
	if w.Spec.Placement.Split || !plan.Spec.Placement.Split || len(w.Tasks) != 3 {
		t.Errorf("whole plan %+v (original split %v)", w, plan.Spec.Placement.Split)
	}
	p := WholePlan(plan, []string{"b", "c"})
	if len(p.Tasks) != 2 || len(p.Tasks[0].DependsOn) != 0 || !slices.Equal(p.Tasks[1].DependsOn, []string{"b"}) {
		t.Errorf("part plan %+v", p.Tasks)
	}
	if !slices.Equal(plan.Tasks[2].DependsOn, []string{"a", "b"}) {
		t.Errorf("the original plan changed: %v", plan.Tasks[2].DependsOn)
	}
}

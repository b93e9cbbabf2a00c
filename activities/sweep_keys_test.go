package activities

import (
	"context"
	"testing"

	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/settlement/sweep"
)

// The escrow sweeper posts under the workflow's own ledger keys so that a
// sweep and a late workflow claim one key: the adapter's settle and
// release keys must be Key(job, op, sweep.WorkflowAttempt).
func TestSettlementLedgerKeysMatchSweep(t *testing.T) {
	plan, _ := quickstartPlan(t)
	l := moneyLedger(t)
	s := SettlementLedger{L: l}
	ctx := context.Background()
	for _, job := range []string{"job-settled", "job-released"} {
		if _, _, _, err := s.Hold(ctx, HoldRequest{JobID: job, Tenant: "demo", Provider: "local", Currency: "USD", Price: 100, Cap: 100}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, err := s.Settle(ctx, SettleRequest{JobID: "job-settled", Provider: "local", Plan: plan, Price: 100, Succeeded: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Release(ctx, "job-released"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{
		settlement.Key("job-settled", "settle", sweep.WorkflowAttempt),
		settlement.Key("job-released", "release", sweep.WorkflowAttempt),
	} {
		if _, err := l.Transaction(ctx, key); err != nil {
			t.Errorf("no transaction under the sweep's key %s: %v", key, err)
		}
	}
}

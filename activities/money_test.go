package activities

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/settlement/sla"
	"github.com/accordmesh/accord/specs"
)

func moneyLedger(t *testing.T) *settlement.Ledger {
	t.Helper()
	l, err := settlement.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx := context.Background()
	if _, err := l.Deposit(ctx, settlement.DepositRequest{Tenant: "demo", Currency: "USD", Amount: 10_000, Key: "d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.DepositBond(ctx, settlement.BondRequest{Provider: "local", Currency: "USD", Amount: 5_000, Key: "b"}); err != nil {
		t.Fatal(err)
	}
	return l
}

// The adapter holds the provider to the terms it agreed (the award's), and
// judges the deadline from placement: a spec asking a 1 ms deadline with
// full refund and slash takes at most the agreed stake from the bond, and
// nothing when the award carries no terms.
func TestSettlementLedgerHoldsProviderToAgreedTerms(t *testing.T) {
	plan, _ := quickstartPlan(t)
	plan.Spec.Settlement.SLA = specs.SLA{Deadline: time.Millisecond, RefundPercent: 100, SlashPercent: 100}
	placed := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := Outcome{Placed: placed, Started: placed.Add(time.Second), Finished: placed.Add(2 * time.Second)}
	for _, c := range []struct {
		job     string
		terms   *sla.Terms
		slashed int64
	}{
		{"no-terms", nil, 0},
		{"agreed", &sla.Terms{Deadline: time.Millisecond, RefundPercent: 100, SlashPercent: 100, Stake: 250}, 250},
	} {
		l := moneyLedger(t)
		s := SettlementLedger{L: l}
		ctx := context.Background()
		if _, _, _, err := s.Hold(ctx, HoldRequest{JobID: c.job, Tenant: "demo", Provider: "local", Currency: "USD", Price: 100, Cap: 100}); err != nil {
			t.Fatal(err)
		}
		_, _, rec, err := s.Settle(ctx, SettleRequest{JobID: c.job, Provider: "local", Plan: plan, Price: 100, Succeeded: true,
			Outcome: out, SLA: c.terms})
		if err != nil {
			t.Fatal(err)
		}
		st := rec.(*settlement.Settlement)
		if !st.SLA.Breached || st.Slashed != c.slashed || st.SLARefund != 100 {
			t.Errorf("%s: settlement %+v", c.job, st)
		}
		if bond, _ := l.Balance(ctx, settlement.BondAccount("local"), "USD"); bond != 5_000-c.slashed {
			t.Errorf("%s: bond %d, want %d", c.job, bond, 5_000-c.slashed)
		}
	}
}

// Royalties and the platform fee over 100 % are found before the job runs.
func TestSettlementLedgerCheckShares(t *testing.T) {
	plan, _ := quickstartPlan(t)
	plan.Spec.Settlement.Royalties = []specs.Royalty{{Account: "model", BasisPoints: 9000}}
	if err := (SettlementLedger{FeeBP: 1000}).CheckShares(plan); err != nil {
		t.Errorf("exactly 100%%: %v", err)
	}
	if err := (SettlementLedger{FeeBP: 1001}).CheckShares(plan); !errors.Is(err, settlement.ErrBadRequest) {
		t.Errorf("over 100%%: %v", err)
	}
}

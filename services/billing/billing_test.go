package billing

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/accordmesh/accord/services"
	"github.com/accordmesh/accord/settlement"
)

const (
	digestChild = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

// childPin is one inference of ann/child@1.0.0 at 50: a 20 % royalty to
// its parent's owner rex (10), the rest to ann (40).
func childPin() services.ModelPin {
	return services.ModelPin{Name: "ann/child", Constraint: "^1.0", As: "/models/m", Ref: "ann/child@1.0.0", Digest: digestChild,
		Fee: services.ModelFee{Currency: "USD", Price: 50, Shares: []services.ModelShare{
			{Owner: "ann", Model: "ann/child@1.0.0", Amount: 40}, {Owner: "rex", Model: "rex/base@1.0.0", Amount: 10}}}}
}

func TestInferenceFees(t *testing.T) {
	w := services.Window{Versions: map[string]services.Stats{
		"r1": {Requests: 120, Errors: 20}, // 100 billable
		"r2": {Requests: 7, Errors: 7},    // none succeeded: nothing owed
		"r3": {Requests: 9},               // no model: nothing owed
	}}
	pins := map[string]services.ModelPin{"r1": childPin(), "r2": childPin()}
	fees := services.InferenceFees(w, pins)
	if len(fees) != 1 || fees[0].Release != "r1" || fees[0].Requests != 100 || fees[0].Price != 50 {
		t.Fatalf("fees %+v", fees)
	}
	total, ok := fees[0].Total()
	if !ok || total != 5000 {
		t.Fatalf("total %d %t, want 5000", total, ok)
	}
	shares, ok := fees[0].Scaled()
	if !ok || len(shares) != 2 || shares[0].Amount != 4000 || shares[1].Amount != 1000 || shares[1].Owner != "rex" {
		t.Fatalf("shares %+v", shares)
	}
	// Overflow is refused, not wrapped.
	big := fees[0]
	big.Requests = services.MaxAmount
	if _, ok := big.Total(); ok {
		t.Fatal("requests × price past MaxAmount accepted")
	}
	if _, err := modelFees([]services.InferenceFee{big}); err == nil {
		t.Fatal("modelFees took an overflowing fee")
	}
	// Shares that do not add up to the price are refused.
	bad := fees[0]
	bad.Shares = []services.ModelShare{{Owner: "ann", Amount: 49}}
	if _, err := modelFees([]services.InferenceFee{bad}); err == nil {
		t.Fatal("modelFees took shares that do not sum to the price")
	}
}

// TestSettlePeriodInferenceFeesOnce: a period's inference fees are paid in
// its settlement transaction, and replaying the same period (a retried
// activity) moves no money twice.
func TestSettlePeriodInferenceFeesOnce(t *testing.T) {
	ctx := context.Background()
	l, err := settlement.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Deposit(ctx, settlement.DepositRequest{Tenant: "demo", Currency: "USD", Amount: 100_000, Key: "fund"}); err != nil {
		t.Fatal(err)
	}
	b := &Ledger{L: l, Provider: "local", FeeBP: 500}
	h, err := b.HoldPeriod(ctx, services.HoldPeriodRequest{Deployment: "svc", Period: 0, Tenant: "demo", Currency: "USD", Price: 20_000})
	if err != nil || h.Insufficient {
		t.Fatalf("hold: %+v %v", h, err)
	}
	w := services.Window{Versions: map[string]services.Stats{"r1": {Requests: 100}}}
	req := services.SettlePeriodRequest{Deployment: "svc", Period: 0, ReplicaMillis: 3_600_000, ReplicaHour: 10_000,
		Inferences: services.InferenceFees(w, map[string]services.ModelPin{"r1": childPin()})}
	first, err := b.SettlePeriod(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.SettlePeriod(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Transaction != again.Transaction || first.ModelFeeTotal != again.ModelFeeTotal {
		t.Fatalf("replay settled anew: %+v then %+v", first, again)
	}
	if first.ModelFeeTotal != 5000 || first.Charge != 10_000 || first.Capped || first.Refund != 20_000-5000-10_000 {
		t.Fatalf("settlement %+v", first)
	}
	if len(first.ModelFees) != 1 || first.ModelFees[0].Release != "r1" || len(first.ModelFees[0].Shares) != 2 {
		t.Fatalf("model fees %+v", first.ModelFees)
	}
	for acct, want := range map[string]int64{"owner:ann": 4000, "owner:rex": 1000, "tenant:demo": 100_000 - 5000 - 10_000} {
		got, err := l.Balance(ctx, acct, "USD")
		if err != nil || got != want {
			t.Errorf("%s: %d (%v), want %d", acct, got, err, want)
		}
	}
	rep, err := l.Check(ctx)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("ledger check: %+v %v", rep, err)
	}
	st, err := l.Statement(ctx, "tenant:demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Jobs) != 1 || st.Jobs[0].ModelFees != 5000 || len(st.Jobs[0].ModelFeeLines) != 2 {
		t.Fatalf("statement %+v", st.Jobs)
	}
}

// TestSettlePeriodFeesCapped: fees beyond the escrow are cut, never owed
// from money the escrow does not hold.
func TestSettlePeriodFeesCapped(t *testing.T) {
	ctx := context.Background()
	l, err := settlement.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Deposit(ctx, settlement.DepositRequest{Tenant: "demo", Currency: "USD", Amount: 10_000, Key: "fund"}); err != nil {
		t.Fatal(err)
	}
	b := &Ledger{L: l, Provider: "local"}
	if _, err := b.HoldPeriod(ctx, services.HoldPeriodRequest{Deployment: "svc", Period: 3, Tenant: "demo", Currency: "USD", Price: 1000}); err != nil {
		t.Fatal(err)
	}
	w := services.Window{Versions: map[string]services.Stats{"r1": {Requests: 30}}} // 1500 owed, 1000 held
	s, err := b.SettlePeriod(ctx, services.SettlePeriodRequest{Deployment: "svc", Period: 3, ReplicaMillis: 1000, ReplicaHour: 3600,
		Inferences: services.InferenceFees(w, map[string]services.ModelPin{"r1": childPin()})})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Capped || s.ModelFeeTotal != 1000 || s.Charge != 0 || s.Refund != 0 {
		t.Fatalf("capped settlement %+v", s)
	}
	if rep, err := l.Check(ctx); err != nil || len(rep.Problems) > 0 {
		t.Fatalf("ledger check: %+v %v", rep, err)
	}
}

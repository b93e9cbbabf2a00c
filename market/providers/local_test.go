package providers

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/specs"
)

func localPlan(req specs.SLA) *specs.Plan {
	t := specs.Task{Name: "t", Resources: specs.Resources{MilliCPU: 100, MemoryBytes: 1 << 20, MaxDuration: time.Minute}}
	s := &specs.Spec{Name: "job", Tasks: []specs.Task{t}, Budget: specs.Budget{MaxPrice: 1000, Currency: "USD"},
		Settlement: specs.Settlement{SLA: req}}
	return &specs.Plan{Name: "job", Spec: s, Currency: "USD", Tasks: []specs.PlanTask{{Task: t}}}
}

// The local pool by default accepts the quickstart's refund and slash
// percentages with no stake at risk, and refuses issue 19's 1 ms deadline
// with a full refund and slash.
func TestLocalPoolDefaultSLA(t *testing.T) {
	ctx := context.Background()
	pool := &LocalPool{Home: t.TempDir(), Pricing: DefaultLocalPricing("USD")}
	res, err := market.Negotiate(ctx, localPlan(specs.SLA{Deadline: 30 * time.Minute, MaxDuration: 10 * time.Minute, RefundPercent: 50, SlashPercent: 10}),
		[]market.Provider{pool}, market.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Awards[0].SLA; got == nil || got.RefundPercent != 50 || got.Stake != 0 || got.SlashOnTests {
		t.Fatalf("agreed %+v", got)
	}
	for _, attack := range []specs.SLA{
		{Deadline: time.Millisecond, RefundPercent: 100, SlashPercent: 100},
		{MaxDuration: time.Millisecond, RefundPercent: 100},
		{Deadline: time.Hour, SlashPercent: 10, Stake: 1}, // asks for a stake the pool does not put up
	} {
		res, err := market.Negotiate(ctx, localPlan(attack), []market.Provider{pool}, market.Options{})
		if !errors.Is(err, market.ErrNoOffers) || len(res.Diagnostics) == 0 || res.Diagnostics[0].Constraint != "sla" {
			t.Errorf("%+v: %v %+v", attack, err, res)
		}
	}
	// Configured terms replace the defaults.
	pool.SLA = &market.SLAOffer{MaxRefundPercent: 10}
	if _, err := market.Negotiate(ctx, localPlan(specs.SLA{RefundPercent: 20}), []market.Provider{pool}, market.Options{}); !errors.Is(err, market.ErrNoOffers) {
		t.Errorf("configured terms ignored: %v", err)
	}
}

// The quickstart against the lone local pool: no competing offer, so the
// job pays the buyer's reserve (negotiation.reserve: 100, 1.00 USD), not
// its 5.00 USD budget, and the award says why.
func TestQuickstartPaysReserve(t *testing.T) {
	s, err := specs.Load("../../examples/quickstart.md")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := specs.Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	pool := &LocalPool{Home: t.TempDir(), Pricing: DefaultLocalPricing("USD")}
	res, err := market.Negotiate(context.Background(), plan, []market.Provider{pool}, market.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := res.Awards[0]
	if a.Price != 100 || a.Ask >= a.Price || a.Basis != market.BasisReserve || a.Pricing != specs.PricingVCG ||
		a.Explanation != "paid 1.00 USD: the buyer's reserve; no competing offer" {
		t.Fatalf("award %+v", a)
	}
}

package market

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/accordmesh/accord/specs"
)

// seller is a provider whose ask for any job is exactly ask (its price list
// is empty and its reserve price is the ask).
func seller(name string, ask int64) *Static {
	p := provider(name, 0, 0)
	p.P.Pricing = Pricing{Currency: "EUR", Reserve: ask}
	return p
}

func pricedPlan(budget, reserve int64, pricing string) *specs.Plan {
	pl := plan("job", budget, task("t", 1000, gib, 0, ""))
	pl.Spec.Negotiation = specs.Negotiation{Protocol: ProtocolAuction, Reserve: reserve, Pricing: pricing}
	return pl
}

// Known answers of the reserve under each rule: a lone seller, two sellers
// under the reserve, one seller over it.
func TestReserveKnownAnswers(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name, pricing string
		asks          []int64
		winner        string
		price         int64
		basis, why    string
	}{
		{"lone seller", "", []int64{30}, "p0", 100, BasisReserve, "paid 1.00 EUR: the buyer's reserve; no competing offer"},
		{"lone seller at the reserve", specs.PricingVCG, []int64{100}, "p0", 100, BasisReserve, "paid 1.00 EUR: the buyer's reserve; no competing offer"},
		{"two under", specs.PricingVCG, []int64{60, 40}, "p1", 60, BasisNextBest, "paid 0.60 EUR: the next-best offer, by p0"},
		{"two under, tie at the reserve", specs.PricingVCG, []int64{100, 40}, "p1", 100, BasisNextBest, "paid 1.00 EUR: the next-best offer, by p0"},
		{"one over", specs.PricingVCG, []int64{150, 40}, "p1", 100, BasisReserve, "paid 1.00 EUR: the buyer's reserve; no competing offer"},
		{"second-price lone", specs.PricingSecond, []int64{30}, "p0", 100, BasisReserve, "paid 1.00 EUR: the buyer's reserve; no competing offer"},
		{"second-price two under", specs.PricingSecond, []int64{60, 40}, "p1", 60, BasisNextBest, "paid 0.60 EUR: the next-best offer, by p0"},
		{"second-price one over", specs.PricingSecond, []int64{150, 40}, "p1", 100, BasisReserve, "paid 1.00 EUR: the buyer's reserve; no competing offer"},
		{"first-price lone", specs.PricingFirst, []int64{30}, "p0", 30, BasisAsk, "paid 0.30 EUR: its own ask (first-price)"},
		{"first-price two under", specs.PricingFirst, []int64{60, 40}, "p1", 40, BasisAsk, "paid 0.40 EUR: its own ask (first-price)"},
	}
	for _, c := range cases {
		var provs []Provider
		for i, a := range c.asks {
			provs = append(provs, seller(fmt.Sprintf("p%d", i), a))
		}
		res, err := Negotiate(ctx, pricedPlan(500, 100, c.pricing), provs, Options{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(res.Awards) != 1 {
			t.Fatalf("%s: awards %+v", c.name, res.Awards)
		}
		a := res.Awards[0]
		if a.Provider != c.winner || a.Price != c.price || a.Basis != c.basis || a.Explanation != c.why || a.Reserve != 100 {
			t.Errorf("%s: got %s paid %d (%s: %q, reserve %d), want %s paid %d (%s: %q)", c.name,
				a.Provider, a.Price, a.Basis, a.Explanation, a.Reserve, c.winner, c.price, c.basis, c.why)
		}
	}
}

// An offer above the reserve (but within the budget) does not win, and
// the diagnostics say why.
func TestReserveRefusesDearOffers(t *testing.T) {
	res, err := Negotiate(context.Background(), pricedPlan(500, 100, ""), []Provider{seller("dear", 101)}, Options{})
	if !errors.Is(err, ErrNoOffers) || len(res.Diagnostics) != 1 || res.Diagnostics[0].Constraint != "reserve" {
		t.Fatalf("%v %+v", err, res)
	}
}

// Without negotiation.reserve the reserve is half the budget left for
// compute, rounded up.
func TestDefaultReserve(t *testing.T) {
	for _, c := range []struct{ budget, spec, want int64 }{{500, 0, 250}, {501, 0, 251}, {1, 0, 1}, {500, 100, 100}, {500, 900, 500}} {
		if got := reserveOf(c.budget, c.spec); got != c.want {
			t.Errorf("reserveOf(%d, %d) = %d, want %d", c.budget, c.spec, got, c.want)
		}
	}
	res, err := Negotiate(context.Background(), pricedPlan(500, 0, ""), []Provider{seller("p", 10)}, Options{})
	if err != nil || res.Awards[0].Price != 250 {
		t.Fatalf("%v %+v", err, res)
	}
	if _, err := NewBuyer("", pricedPlan(500, 0, "dutch")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown pricing: %v", err)
	}
}

// TestVCGTruthfulExhaustive checks, for every seller of small random
// markets (one job, one to three sellers, asks and reserve drawn from a
// small range), every ask it could make: none earns more than asking its
// true cost, under VCG with the reserve and under second-price (the same
// rule for one job). Utility is price − cost when it wins, 0 otherwise.
func TestVCGTruthfulExhaustive(t *testing.T) {
	ctx := context.Background()
	const budget = 24
	for _, pricing := range []string{specs.PricingVCG, specs.PricingSecond} {
		for seed := uint64(0); seed < 40; seed++ {
			r := rand.New(rand.NewPCG(seed, 29))
			reserve := 1 + r.Int64N(budget)
			costs := make([]int64, 1+r.IntN(3))
			for i := range costs {
				costs[i] = 1 + r.Int64N(budget+2)
			}
			utility := func(asks []int64, who int) int64 {
				var provs []Provider
				for i, a := range asks {
					provs = append(provs, seller(fmt.Sprintf("p%d", i), a))
				}
				res, err := Negotiate(ctx, pricedPlan(budget, reserve, pricing), provs, Options{})
				if err != nil {
					return 0
				}
				for _, a := range res.Awards {
					if a.Provider == fmt.Sprintf("p%d", who) {
						if a.Price < a.Ask || a.Price > reserve {
							t.Fatalf("%s seed %d: price %d outside [ask %d, reserve %d]", pricing, seed, a.Price, a.Ask, reserve)
						}
						return a.Price - costs[who]
					}
				}
				return 0
			}
			for who := range costs {
				honest := utility(costs, who)
				if honest < 0 {
					t.Fatalf("%s seed %d: p%d loses %d by asking its cost", pricing, seed, who, -honest)
				}
				for lie := int64(1); lie <= budget+2; lie++ {
					asks := append([]int64(nil), costs...)
					asks[who] = lie
					if u := utility(asks, who); u > honest {
						t.Fatalf("%s seed %d (reserve %d, costs %v): p%d earns %d asking %d, %d asking its cost",
							pricing, seed, reserve, costs, who, u, lie, honest)
					}
				}
			}
		}
	}
}

// For one job with whole-job offers, VCG and second-price agree, and
// first-price pays the ask.
func TestPricingRulesAgree(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(0); seed < 30; seed++ {
		r := rand.New(rand.NewPCG(seed, 31))
		var provs []Provider
		for i := range 1 + r.IntN(4) {
			provs = append(provs, seller(fmt.Sprintf("p%d", i), 1+r.Int64N(300)))
		}
		reserve := 1 + r.Int64N(300)
		price := map[string]int64{}
		for _, rule := range []string{specs.PricingVCG, specs.PricingSecond, specs.PricingFirst} {
			res, err := Negotiate(ctx, pricedPlan(300, reserve, rule), provs, Options{})
			if err != nil {
				price[rule] = -1
				continue
			}
			a := res.Awards[0]
			if a.Pricing != rule || a.Explanation == "" {
				t.Fatalf("seed %d %s: award %+v", seed, rule, a)
			}
			if rule == specs.PricingFirst && a.Price != a.Ask {
				t.Fatalf("seed %d: first-price paid %d for ask %d", seed, a.Price, a.Ask)
			}
			price[rule] = a.Price
		}
		if price[specs.PricingVCG] != price[specs.PricingSecond] {
			t.Fatalf("seed %d: vcg %d, second-price %d", seed, price[specs.PricingVCG], price[specs.PricingSecond])
		}
	}
}

// splitAsk never gives a job more than its reserve when the ask is within
// their sum, and always adds up to the ask.
func TestSplitAsk(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for range 2000 {
		res := make([]int64, 1+r.IntN(4))
		var sum int64
		for i := range res {
			res[i] = 1 + r.Int64N(50)
			sum += res[i]
		}
		ask := r.Int64N(sum + 1)
		got := splitAsk(ask, res)
		var tot int64
		for i, v := range got {
			if v < 0 || v > res[i] {
				t.Fatalf("splitAsk(%d, %v) = %v", ask, res, got)
			}
			tot += v
		}
		if tot != ask {
			t.Fatalf("splitAsk(%d, %v) = %v sums to %d", ask, res, got, tot)
		}
	}
}

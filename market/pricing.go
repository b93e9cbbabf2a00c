package market

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/accordmesh/accord/settlement/money"
	"github.com/accordmesh/accord/specs"
)

// Price bases (Award.Basis): what bound a winner's price.
const (
	// BasisReserve: the buyer's reserve, its outside option.
	BasisReserve = "reserve"
	// BasisNextBest: the lowest ask of the competing providers.
	BasisNextBest = "next-best"
	// BasisVCG: the ask plus the Clarke-pivot premium, which in a batch
	// also counts what the winner's capacity is worth to the other jobs.
	BasisVCG = "vcg"
	// BasisAsk: the winner's own ask.
	BasisAsk = "ask"
	// BasisAgreement: the price agreed by alternating offers.
	BasisAgreement = "agreement"
)

// part is one award of a winning bid in the making, with the weight its
// share of the job's price above the asks is given by.
type part struct {
	Award
	weight int64
}

// awards turns winning bids into per-job, per-provider placements priced
// by each job's rule (Buyer.Pricing):
//
//   - vcg: the provider's ask plus its Clarke-pivot premium (W − W₋ₚ with
//     the buyers valuing a job at its reserve + 1), split over the jobs of
//     a bundle, and at most the job's reserve. For one job this is the
//     lower of the next-best ask and the reserve: the highest ask with
//     which the winner would still have won, so asking the true cost is a
//     dominant strategy;
//   - first-price: the ask;
//   - second-price: the next-best ask for the job by providers the winning
//     bid does not use, at least the ask and at most the reserve; the
//     reserve when no other provider offered.
//
// A bundle's ask is split over its jobs in proportion to their reserves, so
// no job's share exceeds its reserve.
func awards(res *Result, buyers []*Buyer, premium map[string]int64) []Award {
	byJob := make(map[string]*Buyer, len(buyers))
	for _, b := range buyers {
		byJob[b.Job] = b
	}
	var out []Award
	for _, w := range res.Winners {
		bid := res.Bids[w]
		parts := bidParts(res, bid, byJob, premium)
		var order []string
		idx := map[string][]int{}
		for i, p := range parts {
			if _, ok := idx[p.Job]; !ok {
				order = append(order, p.Job)
			}
			idx[p.Job] = append(idx[p.Job], i)
		}
		for _, job := range order {
			priceJob(res, bid, byJob[job], parts, idx[job])
		}
		for _, p := range parts {
			out = append(out, p.Award)
		}
	}
	return out
}

// bidParts splits a winning bid into one award per job and provider, each
// with its ask and, as weight, its share of the provider's VCG premium.
func bidParts(res *Result, bid BidRecord, byJob map[string]*Buyer, premium map[string]int64) []part {
	var parts []part
	for _, oi := range bid.Offers {
		o := res.Offers[oi]
		prem := premium[o.Provider]
		if len(o.Jobs) == 1 {
			parts = append(parts, part{Award{Job: o.Jobs[0], Provider: o.Provider, Hardware: o.Hardware, Ask: o.Ask}, prem})
			continue
		}
		reserves := make([]int64, len(o.Jobs))
		for k, j := range o.Jobs {
			reserves[k] = byJob[j].Reserve
		}
		asks := splitAsk(o.Ask, reserves)
		n := int64(len(o.Jobs))
		for k, j := range o.Jobs {
			var hw []Hardware
			for _, h := range o.Hardware {
				if t, ok := strings.CutPrefix(h.Task, j+"/"); ok {
					h.Task = t
					hw = append(hw, h)
				}
			}
			p := prem / n
			if k == 0 {
				p += prem % n
			}
			parts = append(parts, part{Award{Job: j, Provider: o.Provider, Hardware: hw, Ask: asks[k]}, p})
		}
	}
	return parts
}

// splitAsk splits a bundle's ask over its jobs in proportion to their
// reserves, the remainder of the rounding to jobs with room below their
// reserve, so that no share exceeds its reserve when the ask does not
// exceed their sum.
func splitAsk(ask int64, reserves []int64) []int64 {
	var sum int64
	for _, r := range reserves {
		sum += r
	}
	out := make([]int64, len(reserves))
	var given int64
	for k, r := range reserves {
		if sum > 0 {
			out[k] = mulDiv(ask, r, sum)
		}
		given += out[k]
	}
	rest := ask - given
	for k := range out {
		add := min(rest, max(0, reserves[k]-out[k]))
		out[k] += add
		rest -= add
	}
	out[0] += rest // only when the ask exceeds the reserves
	return out
}

// priceJob sets the price, basis and explanation of job b's parts (indices
// idx into parts) of a winning bid.
func priceJob(res *Result, bid BidRecord, b *Buyer, parts []part, idx []int) {
	var ask, prem int64
	for _, i := range idx {
		ask += parts[i].Ask
		prem += parts[i].weight
	}
	alt, altBy, hasAlt := nextBest(res, b.Job, bid)
	var target int64
	weighted := true
	switch b.Pricing {
	case specs.PricingFirst:
		target = ask
	case specs.PricingSecond:
		target, weighted = b.Reserve, false
		if hasAlt {
			target = min(target, max(ask, alt))
		}
	default:
		target = min(b.Reserve, ask+prem)
	}
	target = max(target, ask) // never below the ask (individual rationality)
	weights := make([]int64, len(idx))
	for k, i := range idx {
		weights[k] = parts[i].Ask
		if weighted && prem > 0 {
			weights[k] = parts[i].weight
		}
	}
	extra := spread(target-ask, weights)
	basis, why := priceBasis(b, ask, target, alt, altBy, hasAlt)
	for k, i := range idx {
		a := &parts[i].Award
		a.Price = a.Ask + extra[k]
		a.Reserve, a.Pricing, a.Basis = b.Reserve, b.Pricing, basis
		if hasAlt {
			a.NextBest = alt
		}
		amount := money.Format(a.Price, b.Currency)
		if len(idx) > 1 {
			amount += " of the job's " + money.Format(target, b.Currency)
		}
		a.Explanation = "paid " + amount + ": " + why
	}
}

// priceBasis names what set a job's price target (asks: the winning asks
// for the job) and says so in words.
func priceBasis(b *Buyer, ask, target, alt int64, altBy string, hasAlt bool) (basis, why string) {
	m := func(v int64) string { return money.Format(v, b.Currency) }
	switch {
	case b.Pricing == specs.PricingFirst:
		return BasisAsk, "its own ask (first-price)"
	case hasAlt && target == alt:
		return BasisNextBest, "the next-best offer, by " + altBy
	case target == b.Reserve && !hasAlt:
		return BasisReserve, "the buyer's reserve; no competing offer"
	case target == b.Reserve:
		return BasisReserve, fmt.Sprintf("the buyer's reserve; the next-best offer, by %s, asks %s", altBy, m(alt))
	case target == ask:
		return BasisAsk, "its own ask; the cheaper competing offer went to another job"
	default:
		return BasisVCG, fmt.Sprintf("its ask %s plus its VCG premium %s, what the other bids lose because it takes part",
			m(ask), m(target-ask))
	}
}

// nextBest is the lowest ask of a bid for job alone (a whole-job or split
// bid) that uses none of the winning bid's providers, and who made it.
func nextBest(res *Result, job string, won BidRecord) (ask int64, by string, ok bool) {
	for _, b := range res.Bids {
		if len(b.Jobs) != 1 || b.Jobs[0] != job || sharesProvider(b.Providers, won.Providers) {
			continue
		}
		if !ok || b.Ask < ask {
			ask, by, ok = b.Ask, strings.Join(b.Providers, " + "), true
		}
	}
	return ask, by, ok
}

func sharesProvider(a, b []string) bool {
	for _, p := range a {
		if containsExact(b, p) {
			return true
		}
	}
	return false
}

// spread splits amount in proportion to weights (equally when they are
// all zero), the rounding remainder to the last share.
func spread(amount int64, weights []int64) []int64 {
	out := make([]int64, len(weights))
	if len(weights) == 0 {
		return out
	}
	var sum int64
	for _, w := range weights {
		sum += w
	}
	var given int64
	for k, w := range weights {
		switch {
		case sum > 0:
			out[k] = mulDiv(amount, w, sum)
		default:
			out[k] = amount / int64(len(weights))
		}
		given += out[k]
	}
	out[len(out)-1] += amount - given
	return out
}

// mulDiv returns a·b/c rounded down without intermediate overflow.
func mulDiv(a, b, c int64) int64 {
	r := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
	r.Quo(r, big.NewInt(c))
	return r.Int64()
}

package wdp

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// CATSParams are the parameters of the CATS "arbitrary" distribution
// (Leyton-Brown, Pearson and Shoham 2000, section 4.3), with the defaults of
// the widely used re-implementation by Gasse et al. (2019). Their benchmark
// sets (100×500, 200×1000, 300×1500) override AddGoodProb to 0.7 and draw
// bundles differently from the paper; BenchmarkCATS returns those settings.
type CATSParams struct {
	MinValue, MaxValue float64 // common good values are uniform in [MinValue, MaxValue]
	Deviation          float64 // private values deviate by up to Deviation*MaxValue
	AddGoodProb        float64 // probability of adding one more good to a bundle
	MaxSubBids         int     // substitutable bids per bidder besides the first
	Additivity         float64 // price grows with |bundle|^(1+Additivity)
	BudgetFactor       float64 // substitutes cost at most BudgetFactor*first price
	ResaleFactor       float64 // substitutes keep at least ResaleFactor*first resale value
	// Ecole draws bundles as the code of Gasse et al. and its C++ port in
	// Ecole do, rather than as the CATS paper describes. That code indexes
	// the compatibility matrix with the 0/1 bundle mask as integer row
	// numbers, so the next good is drawn by interest times compatibility
	// with goods 0 and 1 (weighted by how many goods are outside and inside
	// the bundle), not with the goods in the bundle; it normalises columns
	// rather than rows; and it adds a bidder's dummy good only from three
	// substitutable bids on.
	Ecole bool
}

// DefaultCATS returns the standard "arbitrary" parameters.
func DefaultCATS() CATSParams {
	return CATSParams{MinValue: 1, MaxValue: 100, Deviation: 0.5, AddGoodProb: 0.9,
		MaxSubBids: 5, Additivity: 0.2, BudgetFactor: 1.5, ResaleFactor: 0.5}
}

// BenchmarkCATS returns the distribution of the combinatorial-auction
// benchmark sets of Gasse et al. (2019), also produced by Ecole's
// CombinatorialAuctionGenerator: the defaults with AddGoodProb 0.7, drawn
// the way their code does (see CATSParams.Ecole). The sizes 100×500,
// 200×1000 and 300×1500 of `make bench-auction` are theirs.
func BenchmarkCATS() CATSParams {
	p := DefaultCATS()
	p.AddGoodProb = 0.7
	p.Ecole = true
	return p
}

// GenerateCATS returns a deterministic CATS-style "arbitrary" instance with
// goods real goods and bids bids. A bidder with several substitutable bids
// (with p.Ecole: three or more) gets a dummy good shared by all of them
// (XOR), so Instance.Goods is goods plus the number of dummies.
func GenerateCATS(seed uint64, goods, bids int, p CATSParams) (*Instance, error) {
	if goods < 2 || bids < 1 {
		return nil, fmt.Errorf("%w: CATS needs at least 2 goods and 1 bid", ErrInvalid)
	}
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	values := make([]float64, goods)
	for i := range values {
		values[i] = p.MinValue + (p.MaxValue-p.MinValue)*r.Float64()
	}
	compat := make([][]float64, goods)
	for i := range compat {
		compat[i] = make([]float64, goods)
	}
	for i := 0; i < goods; i++ {
		for j := i + 1; j < goods; j++ {
			v := r.Float64()
			compat[i][j], compat[j][i] = v, v
		}
	}
	sums := make([]float64, goods)
	for i := range compat {
		for _, v := range compat[i] {
			sums[i] += v
		}
	}
	for i := range compat {
		for j := range compat[i] {
			if p.Ecole {
				compat[i][j] /= sums[j] // numpy broadcasting divides columns
			} else {
				compat[i][j] /= sums[i]
			}
		}
	}
	choose := func(w []float64) int {
		s := 0.0
		for _, v := range w {
			s += v
		}
		x := r.Float64() * s
		for i, v := range w {
			x -= v
			if x < 0 && v > 0 {
				return i
			}
		}
		for i := len(w) - 1; i >= 0; i-- {
			if w[i] > 0 {
				return i
			}
		}
		return 0
	}
	next := func(in []bool, size int, interest []float64) int {
		w := make([]float64, goods)
		for g := 0; g < goods; g++ {
			if in[g] {
				continue
			}
			if p.Ecole {
				// compats[bundle_mask, :] with an integer 0/1 mask picks
				// row 0 for every good outside the bundle and row 1 for
				// every good in it.
				w[g] = interest[g] * (float64(goods-size)*compat[0][g] + float64(size)*compat[1][g])
				continue
			}
			m := 0.0
			for h := 0; h < goods; h++ {
				if in[h] {
					m += compat[h][g]
				}
			}
			w[g] = interest[g] * m / float64(size)
		}
		return choose(w)
	}
	price := func(bundle []int, pv []float64) float64 {
		s := 0.0
		for _, g := range bundle {
			s += pv[g]
		}
		return s + math.Pow(float64(len(bundle)), 1+p.Additivity)
	}
	collect := func(in []bool) []int {
		var b []int
		for g, ok := range in {
			if ok {
				b = append(b, g)
			}
		}
		return b
	}
	out := &Instance{Goods: goods}
	dummies := 0
	bidder := 0
	for len(out.Bids) < bids {
		interest := make([]float64, goods)
		pv := make([]float64, goods)
		for g := range interest {
			interest[g] = r.Float64()
			pv[g] = values[g] + p.MaxValue*p.Deviation*(2*interest[g]-1)
		}
		in := make([]bool, goods)
		in[choose(interest)] = true
		size := 1
		for size < goods && r.Float64() < p.AddGoodProb {
			in[next(in, size, interest)] = true
			size++
		}
		first := collect(in)
		fp := price(first, pv)
		if fp < 0 {
			continue
		}
		type cand struct {
			b []int
			p float64
		}
		own := []cand{{first, fp}}
		var subs []cand
		for _, g := range first {
			in := make([]bool, goods)
			in[g] = true
			for n := 1; n < len(first); n++ {
				in[next(in, n, interest)] = true
			}
			b := collect(in)
			subs = append(subs, cand{b, price(b, pv)})
		}
		slices.SortStableFunc(subs, func(a, b cand) int {
			switch {
			case a.p > b.p:
				return -1
			case a.p < b.p:
				return 1
			}
			return 0
		})
		resale := 0.0
		for _, g := range first {
			resale += values[g]
		}
		for _, c := range subs {
			if len(own) >= p.MaxSubBids+1 || len(out.Bids)+len(own) >= bids {
				break
			}
			rv := 0.0
			for _, g := range c.b {
				rv += values[g]
			}
			if c.p < 0 || c.p > p.BudgetFactor*fp || rv < p.ResaleFactor*resale {
				continue
			}
			dup := false
			for _, o := range own {
				if slices.Equal(o.b, c.b) {
					dup = true
					break
				}
			}
			if !dup {
				own = append(own, c)
			}
		}
		name := fmt.Sprintf("b%d", bidder)
		bidder++
		// Every substitute shares a good with the first bundle, so two bids
		// exclude each other without a dummy; CATS adds one anyway, Gasse
		// et al.'s code only from three bids on.
		dummy := len(own) > 1
		if p.Ecole {
			dummy = len(own) > 2
		}
		for _, c := range own {
			g := c.b
			if dummy {
				g = append(append([]int(nil), c.b...), goods+dummies)
			}
			out.Bids = append(out.Bids, Bid{Bidder: name, Goods: g, Price: math.Round(c.p*1000) / 1000})
		}
		if dummy {
			dummies++
		}
	}
	out.Goods = goods + dummies
	return out, nil
}

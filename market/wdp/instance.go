package wdp

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// Instance is a winner-determination problem: Goods goods numbered
// 0..Goods-1, each sold at most once, and bids on bundles of them. Its JSON
// form is the file format of `accord auction solve`:
//
//	{"goods": N, "bids": [{"bidder": "b1", "goods": [0, 5, 7], "price": 12.5}]}
type Instance struct {
	Goods int   `json:"goods"`
	Bids  []Bid `json:"bids"`
}

// Bid offers Price for the whole bundle Goods; it wins whole or not at all.
// Bids of one bidder are independent unless they share a good (a dummy good
// shared by all of a bidder's bids expresses XOR, the CATS convention).
type Bid struct {
	Bidder string  `json:"bidder"`
	Goods  []int   `json:"goods"`
	Price  float64 `json:"price"`
}

// MaxGoods bounds the number of goods an instance may declare, so that a
// malformed file cannot make the solver allocate without bound.
const MaxGoods = 1 << 20

// Validate checks the instance and returns an error wrapping ErrInvalid that
// names the first offending bid.
func (in *Instance) Validate() error {
	if in == nil {
		return fmt.Errorf("%w: nil instance", ErrInvalid)
	}
	if in.Goods < 0 || in.Goods > MaxGoods {
		return fmt.Errorf("%w: goods must be in 0..%d, got %d", ErrInvalid, MaxGoods, in.Goods)
	}
	for i, b := range in.Bids {
		if b.Bidder == "" {
			return fmt.Errorf("%w: bid %d: empty bidder", ErrInvalid, i)
		}
		if math.IsNaN(b.Price) || math.IsInf(b.Price, 0) || b.Price < 0 {
			return fmt.Errorf("%w: bid %d: price must be a finite number >= 0, got %v", ErrInvalid, i, b.Price)
		}
		if len(b.Goods) == 0 {
			return fmt.Errorf("%w: bid %d: empty bundle", ErrInvalid, i)
		}
		seen := make(map[int]bool, len(b.Goods))
		for _, g := range b.Goods {
			if g < 0 || g >= in.Goods {
				return fmt.Errorf("%w: bid %d: good %d out of range 0..%d", ErrInvalid, i, g, in.Goods-1)
			}
			if seen[g] {
				return fmt.Errorf("%w: bid %d: good %d listed twice", ErrInvalid, i, g)
			}
			seen[g] = true
		}
	}
	return nil
}

// Decode reads an instance in the JSON file format and validates it.
// Unknown fields are rejected so that typos do not pass silently.
func Decode(r io.Reader) (*Instance, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var in Instance
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the instance object", ErrInvalid)
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return &in, nil
}

// Value returns the total price of the given bids and whether they are
// feasible (pairwise disjoint, valid indices, no bid twice).
func (in *Instance) Value(winners []int) (float64, bool) {
	used := make(map[int]bool)
	seen := make(map[int]bool)
	v := 0.0
	for _, w := range winners {
		if w < 0 || w >= len(in.Bids) || seen[w] {
			return 0, false
		}
		seen[w] = true
		for _, g := range in.Bids[w].Goods {
			if used[g] {
				return 0, false
			}
			used[g] = true
		}
		v += in.Bids[w].Price
	}
	return v, true
}

// Bidders returns the distinct bidder names in first-appearance order.
func (in *Instance) Bidders() []string {
	var out []string
	seen := map[string]bool{}
	for _, b := range in.Bids {
		if !seen[b.Bidder] {
			seen[b.Bidder] = true
			out = append(out, b.Bidder)
		}
	}
	return out
}

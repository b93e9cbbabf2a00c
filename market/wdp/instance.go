package wdp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
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
	total := 0.0
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
		if total += b.Price; math.IsInf(total, 0) {
			return fmt.Errorf("%w: bid %d: prices sum to more than a float64 holds", ErrInvalid, i)
		}
	}
	return nil
}

// MaxInstanceBytes bounds what Decode reads, so that a hostile or mistaken
// input (a device, an endless pipe) cannot exhaust memory.
const MaxInstanceBytes = 64 << 20

// MaxPrice bounds a bid's price in the file format (Decode). Prices above it
// are absurd for a market, their sums lose the solver's tolerances (float64
// spacing at 1e15 is 0.125), and far above it (1e308) they overflow to +Inf.
// Validate, for instances built in code, only requires a finite total.
const MaxPrice = 1e15

// Decode reads an instance in the JSON file format and validates it.
// Unknown fields are rejected so that typos do not pass silently; syntax
// errors name their line and column.
func Decode(r io.Reader) (*Instance, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxInstanceBytes+1))
	if err != nil {
		return nil, fmt.Errorf("wdp: read instance: %w", err)
	}
	if len(data) > MaxInstanceBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxInstanceBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: empty input (want {\"goods\": N, \"bids\": [...]})", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var in Instance
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, jsonError(data, err))
	}
	if dec.More() {
		line, col := position(data, dec.InputOffset())
		return nil, fmt.Errorf("%w: %d:%d: trailing data after the instance object", ErrInvalid, line, col)
	}
	for i, b := range in.Bids {
		if b.Price > MaxPrice {
			return nil, fmt.Errorf("%w: bid %d: price %g is above the most a bid may offer, %g", ErrInvalid, i, b.Price, MaxPrice)
		}
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return &in, nil
}

// jsonError describes a decoding error with its line and column.
func jsonError(data []byte, err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset-1) // Offset is just past the bad byte
		return fmt.Sprintf("%d:%d: %v", line, col, syn)
	case errors.As(err, &typ):
		line, col := position(data, typ.Offset)
		if strings.HasPrefix(typ.Value, "number") && typ.Type.Kind() == reflect.Float64 {
			return fmt.Sprintf("%d:%d: %s: number out of range (prices are at most %g)", line, col, typ.Field, MaxPrice)
		}
		return fmt.Sprintf("%d:%d: %s: want %s, got %s", line, col, typ.Field, typ.Type, typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		line, col := position(data, int64(len(data)))
		return fmt.Sprintf("%d:%d: unexpected end of input", line, col)
	}
	return err.Error()
}

// position converts a byte offset into a 1-based line and column.
func position(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
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

package wdp

import (
	"errors"
	"strings"
	"testing"
)

// TestDecodeErrorsSayWhere checks that Decode's errors name the problem and,
// for JSON errors, the line and column, and that absurd prices are refused
// before they can overflow a sum to +Inf.
func TestDecodeErrorsSayWhere(t *testing.T) {
	for name, c := range map[string]struct{ in, want string }{
		"empty":         {"", "empty input"},
		"blank":         {" \n\t\n", "empty input"},
		"syntax":        {"{\"goods\": 2,\n  \"bids\": [}\n", "2:12: invalid character '}'"},
		"truncated":     {"{\"goods\": 2,\n \"bids\": [", "2:11: unexpected end of input"},
		"wrong type":    {"{\"goods\": \"two\"}", "1:16: goods: want int, got string"},
		"inf price":     {`{"goods": 1, "bids": [{"bidder": "a", "goods": [0], "price": 1e309}]}`, "bids.price: number out of range"},
		"huge price":    {`{"goods": 1, "bids": [{"bidder": "a", "goods": [0], "price": 1e308}]}`, "bid 0: price 1e+308 is above the most a bid may offer, 1e+15"},
		"trailing data": {"{\"goods\": 1}\n{}", "2:1: trailing data"},
	} {
		_, err := Decode(strings.NewReader(c.in))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want ErrInvalid containing %q", name, err, c.want)
		}
	}
	in, err := Decode(strings.NewReader(`{"goods": 1, "bids": [{"bidder": "a", "goods": [0], "price": 1e15}]}`))
	if err != nil || in.Bids[0].Price != MaxPrice {
		t.Fatalf("price at the bound: %v", err)
	}
	// Instances built in code may hold large prices, but not a sum that
	// overflows.
	big := &Instance{Goods: 2, Bids: []Bid{{"a", []int{0}, 1e308}, {"b", []int{1}, 1e308}}}
	if err := big.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "bid 1: prices sum to more than a float64 holds") {
		t.Fatalf("overflowing sum: %v", err)
	}
	if err := (&Instance{Goods: 1, Bids: []Bid{{"a", []int{0}, 1e18}}}).Validate(); err != nil {
		t.Fatalf("a large finite price: %v", err)
	}
}

package money

import (
	"errors"
	"math"
	"testing"
)

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		minor int64
		cur   string
		want  string
	}{
		{500, "USD", "5.00 USD"},
		{5, "USD", "0.05 USD"},
		{0, "USD", "0.00 USD"},
		{-150, "EUR", "-1.50 EUR"},
		{500, "JPY", "500 JPY"},
		{1234, "KWD", "1.234 KWD"},
		{7, "USDC", "0.07 USDC"},
		{math.MinInt64, "USD", "-92233720368547758.08 USD"},
		{math.MaxInt64, "USD", "92233720368547758.07 USD"},
	} {
		if got := Format(c.minor, c.cur); got != c.want {
			t.Errorf("Format(%d, %s) = %q, want %q", c.minor, c.cur, got, c.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in, cur string
		want    int64
	}{
		{"500", "USD", 50000},
		{"500.00", "USD", 50000},
		{"500 USD", "USD", 50000},
		{" 5.5 ", "USD", 550},
		{"0.01", "USD", 1},
		{"500", "JPY", 500},
		{"1.5", "KWD", 1500},
		{"92233720368547758.07", "USD", math.MaxInt64},
	} {
		got, err := Parse(c.in, c.cur)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q, %s) = %d, %v; want %d", c.in, c.cur, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, cur string }{
		{"-5", "USD"}, {"+5", "USD"}, {"5.001", "USD"}, {"5.5", "JPY"}, {"NaN", "USD"}, {"Inf", "USD"},
		{"1e3", "USD"}, {"", "USD"}, {".5", "USD"}, {"5.", "USD"}, {"5 EUR", "USD"}, {"1,000", "USD"},
		{"92233720368547758.08", "USD"}, {"99999999999999999999", "JPY"}, {"5", "usd"}, {"5 USD extra", "USD"},
	} {
		if got, err := Parse(c.in, c.cur); !errors.Is(err, ErrAmount) {
			t.Errorf("Parse(%q, %s) = %d, %v; want ErrAmount", c.in, c.cur, got, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, cur := range []string{"USD", "JPY", "KWD", "CLF"} {
		for _, v := range []int64{0, 1, 99, 100, 123456789, math.MaxInt64} {
			n, c := Split(Format(v, cur))
			got, err := Parse(n+" "+c, cur)
			if err != nil || got != v {
				t.Errorf("%s %d: round trip %d, %v", cur, v, got, err)
			}
		}
	}
}

// Package money converts between the integer minor units Accord stores and
// computes with and the decimal major units people read and type: 500 minor
// units of USD are "5.00 USD", 500 of JPY are "500 JPY".
//
// The number of decimals is ISO 4217's for the currency; codes it does not
// list (token symbols) have 2.
package money

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/accordmesh/accord/internal/names"
)

// ErrAmount is wrapped by every Parse error.
var ErrAmount = errors.New("invalid amount")

// minorDigits lists the ISO 4217 currencies whose minor unit is not a
// hundredth.
var minorDigits = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
	"PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	"CLF": 4, "UYW": 4,
}

// Decimals returns how many decimal places currency's major unit has.
func Decimals(currency string) int {
	if d, ok := minorDigits[currency]; ok {
		return d
	}
	return 2
}

// Format renders minor units of currency as major units with the
// currency's decimals and its code: Format(500, "USD") is "5.00 USD".
func Format(minor int64, currency string) string {
	return FormatNumber(minor, currency) + " " + currency
}

// FormatNumber is Format without the currency code: "5.00".
func FormatNumber(minor int64, currency string) string {
	sign := ""
	u := uint64(minor)
	if minor < 0 {
		sign, u = "-", uint64(-(minor+1))+1 // no overflow at MinInt64
	}
	d := Decimals(currency)
	if d == 0 {
		return sign + strconv.FormatUint(u, 10)
	}
	scale := uint64(math.Pow10(d))
	return fmt.Sprintf("%s%d.%0*d", sign, u/scale, d, u%scale)
}

// Parse reads a non-negative amount of currency in major units, as a person
// types it: "5", "5.00" or "5 USD" are 500 minor units of USD. A code after
// the number must be currency. It rejects signs, exponents, more decimals
// than the currency has, and amounts that do not fit an int64.
func Parse(s, currency string) (int64, error) {
	num, code := Split(s)
	if code != "" && code != currency {
		return 0, fmt.Errorf("%w: %q is in %s, not %s", ErrAmount, s, code, currency)
	}
	if err := names.Currency(currency); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrAmount, err)
	}
	whole, frac, hasDot := strings.Cut(num, ".")
	d := Decimals(currency)
	switch {
	case strings.HasPrefix(num, "-"):
		return 0, fmt.Errorf("%w: %q: amount must be positive", ErrAmount, s)
	case !digits(whole) || hasDot && !digits(frac):
		return 0, fmt.Errorf("%w: %q: want a number such as 5 or 5.00, optionally followed by %s", ErrAmount, s, currency)
	case len(frac) > d:
		return 0, fmt.Errorf("%w: %q: %s has %d decimals", ErrAmount, s, currency, d)
	}
	frac += strings.Repeat("0", d-len(frac))
	v, err := strconv.ParseUint(whole+frac, 10, 63)
	if err != nil {
		return 0, fmt.Errorf("%w: %q is too large", ErrAmount, s)
	}
	return int64(v), nil
}

// Split separates an amount as typed into its number and an optional
// currency code after it: "5.00 USD" is ("5.00", "USD").
func Split(s string) (number, currency string) {
	f := strings.Fields(s)
	if len(f) == 2 {
		return f[0], f[1]
	}
	return strings.TrimSpace(s), ""
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

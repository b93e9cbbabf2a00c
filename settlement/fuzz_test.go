package settlement

import (
	"errors"
	"math"
	"testing"
)

// FuzzInput feeds arbitrary names, amounts and usage to the pure input
// handling: it must return a clear error or a consistent result, never panic.
func FuzzInput(f *testing.F) {
	f.Add("tenant:acme", "USD", int64(100), int64(3_600_000), int64(60), 1.5, int64(2000), int64(5000))
	f.Add("escrow:", "usd", int64(-1), int64(math.MaxInt64), int64(math.MaxInt64), math.NaN(), int64(-1), int64(0))
	f.Fuzz(func(t *testing.T, account, currency string, amount, qty, rate int64, secs float64, marginBP, cap int64) {
		if kind, name, err := ParseAccount(account); err == nil {
			if kind+":"+name != account {
				t.Fatalf("ParseAccount(%q) = %q, %q", account, kind, name)
			}
		} else if !errors.Is(err, ErrBadAccount) {
			t.Fatalf("ParseAccount(%q): unclassified error %v", account, err)
		}
		if err := checkCurrency(currency); err != nil && !errors.Is(err, ErrBadCurrency) {
			t.Fatalf("checkCurrency: %v", err)
		}
		c, err := Meter(Usage{WallMillis: qty, CPUMillis: qty, MemGBMillis: qty, GPUMillis: qty},
			Rates{WallPerHour: rate, CPUPerHour: rate, MemGBPerHour: rate, GPUPerHour: rate})
		if err == nil {
			if c.Total < 0 || c.Total > MaxAmount || c.Total != c.Wall+c.CPU+c.Mem+c.GPU {
				t.Fatalf("Meter(%d, %d) = %+v", qty, rate, c)
			}
		} else if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrBadAmount) {
			t.Fatalf("Meter: unclassified error %v", err)
		}
		if u, err := UsageFromSeconds(secs, secs, secs, secs); err == nil && u.WallMillis < 0 {
			t.Fatalf("UsageFromSeconds(%v) = %+v", secs, u)
		}
		r := HoldRequest{Job: "j", Tenant: "t", Provider: "p", Currency: "USD", Price: amount, MarginBP: marginBP, Cap: cap}
		if err := r.validate(); err == nil {
			if h := HoldAmount(amount, marginBP, cap); h < amount || h > cap {
				t.Fatalf("HoldAmount(%d, %d, %d) = %d", amount, marginBP, cap, h)
			}
		}
	})
}

package settlement

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

func TestMeterKnownAnswers(t *testing.T) {
	cases := []struct {
		u    Usage
		r    Rates
		want Charges
	}{
		{Usage{}, Rates{WallPerHour: 100}, Charges{}},
		// One hour of wall time at 100/h is exactly 100.
		{Usage{WallMillis: 3_600_000}, Rates{WallPerHour: 100}, Charges{Wall: 100, Total: 100}},
		// One millisecond more rounds up to 101.
		{Usage{WallMillis: 3_600_001}, Rates{WallPerHour: 100}, Charges{Wall: 101, Total: 101}},
		// 2 CPU-hours at 30, 4 GB for 30 min at 10/GB-h, 90 GPU-seconds at 7200/h.
		{Usage{CPUMillis: 7_200_000, MemGBMillis: 4 * 1_800_000, GPUMillis: 90_000},
			Rates{CPUPerHour: 30, MemGBPerHour: 10, GPUPerHour: 7200},
			Charges{CPU: 60, Mem: 20, GPU: 180, Total: 260}},
		// A tiny usage at a tiny rate still costs one minor unit.
		{Usage{GPUMillis: 1}, Rates{GPUPerHour: 1}, Charges{GPU: 1, Total: 1}},
	}
	for _, c := range cases {
		got, err := Meter(c.u, c.r)
		if err != nil || got != c.want {
			t.Errorf("Meter(%+v, %+v) = %+v, %v; want %+v", c.u, c.r, got, err, c.want)
		}
	}
}

func TestMeterRejects(t *testing.T) {
	if _, err := Meter(Usage{CPUMillis: -1}, Rates{}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("negative usage: %v", err)
	}
	if _, err := Meter(Usage{}, Rates{GPUPerHour: -5}); !errors.Is(err, ErrBadAmount) {
		t.Errorf("negative rate: %v", err)
	}
	if _, err := Meter(Usage{WallMillis: math.MaxInt64}, Rates{WallPerHour: MaxAmount}); !errors.Is(err, ErrBadAmount) {
		t.Errorf("overflow: %v", err)
	}
	// Each component under the limit, the total over it.
	big := Usage{WallMillis: 3_600_000 * 1000, CPUMillis: 3_600_000 * 1000}
	if _, err := Meter(big, Rates{WallPerHour: MaxAmount / 1000, CPUPerHour: MaxAmount / 1000}); !errors.Is(err, ErrBadAmount) {
		t.Errorf("total overflow: %v", err)
	}
}

func TestUsageFromSeconds(t *testing.T) {
	u, err := UsageFromSeconds(1.5, 0.0001, 2.25, 0)
	if err != nil || u != (Usage{WallMillis: 1500, CPUMillis: 1, MemGBMillis: 2250}) {
		t.Fatalf("UsageFromSeconds = %+v, %v", u, err)
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1), 1e13} {
		if _, err := UsageFromSeconds(bad, 0, 0, 0); !errors.Is(err, ErrBadRequest) {
			t.Errorf("UsageFromSeconds(%v): %v", bad, err)
		}
	}
}

func TestHoldAmount(t *testing.T) {
	for _, c := range []struct{ price, bp, cap, want int64 }{
		{1000, 2000, 5000, 1200},
		{1000, 2000, 1100, 1100}, // capped by the budget
		{999, 1, 5000, 1000},     // margin rounded up
		{0, 5000, 10, 0},
	} {
		if got := HoldAmount(c.price, c.bp, c.cap); got != c.want {
			t.Errorf("HoldAmount(%d, %d, %d) = %d, want %d", c.price, c.bp, c.cap, got, c.want)
		}
	}
}

func TestEvaluateSLA(t *testing.T) {
	placed := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	terms := SLATerms{Deadline: time.Hour, MaxDuration: 30 * time.Minute, RefundPercent: 20, SlashPercent: 5, Stake: 1000}
	onTests := terms
	onTests.SlashOnTests = true
	cases := []struct {
		name     string
		terms    SLATerms
		o        Outcome
		breached bool
		reasons  int
		slash    int // applied slash percent
	}{
		{"met", terms, Outcome{Placed: placed, Finished: placed.Add(59 * time.Minute), Duration: 30 * time.Minute}, false, 0, 0},
		{"late", terms, Outcome{Placed: placed, Finished: placed.Add(61 * time.Minute), Duration: time.Minute}, true, 1, 5},
		{"slow", terms, Outcome{Duration: 31 * time.Minute}, true, 1, 5},
		// A failing tenant-written test refunds but slashes only under
		// SlashOnTests.
		{"tests failed", terms, Outcome{VerificationFailed: true}, true, 1, 0},
		{"tests failed, slash agreed", onTests, Outcome{VerificationFailed: true}, true, 1, 5},
		{"everything", terms, Outcome{Placed: placed, Finished: placed.Add(2 * time.Hour), Duration: time.Hour, VerificationFailed: true}, true, 3, 5},
		// No stake agreed: nothing to slash whatever the percentage.
		{"no stake", SLATerms{MaxDuration: time.Second, RefundPercent: 20, SlashPercent: 100}, Outcome{Duration: time.Minute}, true, 1, 0},
	}
	for _, c := range cases {
		r, err := EvaluateSLA(c.terms, c.o)
		if err != nil || r.Breached != c.breached || len(r.Reasons) != c.reasons {
			t.Errorf("%s: %+v, %v", c.name, r, err)
		}
		wantRefund := 0
		if c.breached {
			wantRefund = c.terms.RefundPercent
		}
		if r.RefundPercent != wantRefund || r.SlashPercent != c.slash {
			t.Errorf("%s: percentages %+v, want refund %d slash %d", c.name, r, wantRefund, c.slash)
		}
	}
	if _, err := EvaluateSLA(SLATerms{RefundPercent: 120}, Outcome{}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("refund over 100%%: %v", err)
	}
	if _, err := EvaluateSLA(SLATerms{Stake: -1}, Outcome{}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("negative stake: %v", err)
	}
}

func TestSlashAmountBoundedByStake(t *testing.T) {
	for _, c := range []struct {
		v          SLAResult
		bond, want int64
	}{
		{SLAResult{SlashPercent: 100, Stake: 200}, 1_000_000, 200}, // never the bond beyond the stake
		{SLAResult{SlashPercent: 50, Stake: 200}, 1_000_000, 100},
		{SLAResult{SlashPercent: 100, Stake: 200}, 150, 150}, // never more than the bond holds
		{SLAResult{SlashPercent: 100}, 1_000_000, 0},         // no stake agreed
		{SLAResult{SlashPercent: 100, Stake: 200}, -5, 0},
	} {
		if got := SlashAmount(c.v, c.bond); got != c.want {
			t.Errorf("SlashAmount(%+v, %d) = %d, want %d", c.v, c.bond, got, c.want)
		}
	}
}

func TestCheckShares(t *testing.T) {
	ok := []Royalty{{Account: "a", BasisPoints: 3000}, {Account: "b", BasisPoints: 2000}}
	if err := CheckShares(5000, ok); err != nil {
		t.Errorf("exactly 100%%: %v", err)
	}
	for name, c := range map[string]struct {
		fee int64
		roy []Royalty
	}{
		"over 100%":     {5001, ok},
		"fee over 100%": {10_001, nil},
		"negative fee":  {-1, nil},
		"duplicate":     {0, []Royalty{{Account: "a", BasisPoints: 1}, {Account: "owner:a", BasisPoints: 1}}},
		"negative":      {0, []Royalty{{Account: "a", BasisPoints: -1}}},
	} {
		if err := CheckShares(c.fee, c.roy); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func ExampleMeter() {
	// 90 s of wall time, 3 CPU-minutes, 2 GB for 90 s and 90 GPU-seconds.
	u, _ := UsageFromSeconds(90, 180, 180, 90)
	c, _ := Meter(u, Rates{WallPerHour: 40, CPUPerHour: 20, MemGBPerHour: 4, GPUPerHour: 250})
	fmt.Printf("%+v\n", c)
	// Output: {Wall:1 CPU:1 Mem:1 GPU:7 Total:10}
}

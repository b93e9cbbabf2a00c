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
	sub := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	terms := SLATerms{Deadline: time.Hour, MaxDuration: 30 * time.Minute, RefundPercent: 20, SlashPercent: 5}
	cases := []struct {
		name     string
		o        Outcome
		breached bool
		reasons  int
	}{
		{"met", Outcome{Submitted: sub, Finished: sub.Add(59 * time.Minute), Duration: 30 * time.Minute}, false, 0},
		{"late", Outcome{Submitted: sub, Finished: sub.Add(61 * time.Minute), Duration: time.Minute}, true, 1},
		{"slow", Outcome{Duration: 31 * time.Minute}, true, 1},
		{"unverified", Outcome{VerificationFailed: true}, true, 1},
		{"everything", Outcome{Submitted: sub, Finished: sub.Add(2 * time.Hour), Duration: time.Hour, VerificationFailed: true}, true, 3},
	}
	for _, c := range cases {
		r, err := EvaluateSLA(terms, c.o)
		if err != nil || r.Breached != c.breached || len(r.Reasons) != c.reasons {
			t.Errorf("%s: %+v, %v", c.name, r, err)
		}
		if r.Breached && (r.RefundPercent != 20 || r.SlashPercent != 5) || !r.Breached && (r.RefundPercent != 0 || r.SlashPercent != 0) {
			t.Errorf("%s: percentages %+v", c.name, r)
		}
	}
	if _, err := EvaluateSLA(SLATerms{RefundPercent: 120}, Outcome{}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("refund over 100%%: %v", err)
	}
}

func ExampleMeter() {
	// 90 s of wall time, 3 CPU-minutes, 2 GB for 90 s and 90 GPU-seconds.
	u, _ := UsageFromSeconds(90, 180, 180, 90)
	c, _ := Meter(u, Rates{WallPerHour: 40, CPUPerHour: 20, MemGBPerHour: 4, GPUPerHour: 250})
	fmt.Printf("%+v\n", c)
	// Output: {Wall:1 CPU:1 Mem:1 GPU:7 Total:10}
}

package settlement

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/accordmesh/accord/provenance/predicate"
)

// millisPerHour converts a per-hour rate applied to millisecond quantities.
const millisPerHour = 3_600_000

// maxSeconds bounds a metered quantity (about 31,700 years), so that the
// millisecond conversion stays exact in int64.
const maxSeconds = 1e12

// Usage is what a job consumed, in integer milli-units: milliseconds of wall
// time, CPU-milliseconds, GB-milliseconds of memory and GPU-milliseconds.
// It is the settlement predicate's MeteredUsage: one definition, so the
// audit recomputes charges from exactly what settlement used.
type Usage = predicate.MeteredUsage

// Rates are a provider's prices in minor units per hour of each quantity:
// per wall-clock hour, per CPU-hour, per GB-hour of memory, per GPU-hour.
// They are the settlement predicate's Rates (one definition).
type Rates = predicate.Rates

// Charges is metered usage priced at a provider's rates.
type Charges struct {
	Wall  int64 `json:"wall"`
	CPU   int64 `json:"cpu"`
	Mem   int64 `json:"mem"`
	GPU   int64 `json:"gpu"`
	Total int64 `json:"total"`
}

// UsageFromSeconds converts the runtime's float measurements (seconds,
// CPU-seconds, GB-seconds, GPU-seconds) to [Usage], rounding each up to the
// next milli-unit. Negative, NaN, infinite or absurdly large values are
// rejected with [ErrBadRequest].
func UsageFromSeconds(wall, cpu, memGBSeconds, gpu float64) (Usage, error) {
	conv := func(what string, v float64) (int64, error) {
		if math.IsNaN(v) || v < 0 || v > maxSeconds {
			return 0, fmt.Errorf("%w: %s usage %v outside [0, %g]", ErrBadRequest, what, v, maxSeconds)
		}
		return int64(math.Ceil(v * 1000)), nil
	}
	var u Usage
	var err error
	if u.WallMillis, err = conv("wall", wall); err != nil {
		return Usage{}, err
	}
	if u.CPUMillis, err = conv("cpu", cpu); err != nil {
		return Usage{}, err
	}
	if u.MemGBMillis, err = conv("memory", memGBSeconds); err != nil {
		return Usage{}, err
	}
	if u.GPUMillis, err = conv("gpu", gpu); err != nil {
		return Usage{}, err
	}
	return u, nil
}

// Meter prices usage at rates with integer arithmetic only. Each component
// is quantity × rate / 3,600,000 (milli-units against an hourly rate),
// rounded up to a whole minor unit, so the provider is never paid less than
// the exact amount and the tenant overpays by less than one minor unit per
// component; Total is the sum of the components. Negative inputs and
// results above [MaxAmount] fail with [ErrBadRequest] or [ErrBadAmount].
func Meter(u Usage, r Rates) (Charges, error) {
	if err := checkUsage(u); err != nil {
		return Charges{}, err
	}
	if err := checkRates(r); err != nil {
		return Charges{}, err
	}
	var c Charges
	var err error
	if c.Wall, err = price("wall", u.WallMillis, r.WallPerHour); err != nil {
		return Charges{}, err
	}
	if c.CPU, err = price("cpu", u.CPUMillis, r.CPUPerHour); err != nil {
		return Charges{}, err
	}
	if c.Mem, err = price("memory", u.MemGBMillis, r.MemGBPerHour); err != nil {
		return Charges{}, err
	}
	if c.GPU, err = price("gpu", u.GPUMillis, r.GPUPerHour); err != nil {
		return Charges{}, err
	}
	c.Total = c.Wall + c.CPU + c.Mem + c.GPU
	if c.Total > MaxAmount {
		return Charges{}, fmt.Errorf("%w: metered total %d exceeds %d", ErrBadAmount, c.Total, MaxAmount)
	}
	return c, nil
}

func checkUsage(u Usage) error {
	if u.WallMillis < 0 || u.CPUMillis < 0 || u.MemGBMillis < 0 || u.GPUMillis < 0 {
		return fmt.Errorf("%w: negative usage %+v", ErrBadRequest, u)
	}
	return nil
}

func checkRates(r Rates) error {
	for _, v := range []int64{r.WallPerHour, r.CPUPerHour, r.MemGBPerHour, r.GPUPerHour} {
		if err := checkAmount("rate", v); err != nil {
			return err
		}
	}
	return nil
}

// price returns ceil(qty × rate / millisPerHour) without overflow.
func price(what string, qty, rate int64) (int64, error) {
	hi, lo := bits.Mul64(uint64(qty), uint64(rate))
	if hi >= millisPerHour {
		return 0, fmt.Errorf("%w: %s charge overflows", ErrBadAmount, what)
	}
	q, rem := bits.Div64(hi, lo, millisPerHour)
	if rem != 0 {
		q++
	}
	if q > uint64(MaxAmount) {
		return 0, fmt.Errorf("%w: %s charge %d exceeds %d", ErrBadAmount, what, q, MaxAmount)
	}
	return int64(q), nil
}

// bp returns amount × basisPoints / 10,000 rounded down; amount ≤ MaxAmount
// and basisPoints ≤ 10,000 keep the product inside int64.
func bp(amount, basisPoints int64) int64 { return amount * basisPoints / 10_000 }

// pct returns amount × percent / 100 rounded down.
func pct(amount int64, percent int) int64 { return amount * int64(percent) / 100 }

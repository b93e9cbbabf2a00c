package pools

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/accordmesh/accord/internal/names"
	"github.com/accordmesh/accord/runtimes"
)

// Pricing is a pool's price list, read from the file given to
// `accord pool attach --pricing FILE` (YAML or JSON). Rates are int64 minor
// units of Currency per hour:
//
//	currency: USD
//	gpu_hour:            # by model; a key matches a GPU whose model contains it
//	  H100: 250000       # (case-insensitive, longest key wins); "*" is the fallback
//	  A10: 60000
//	cpu_core_hour: 2000  # per 1000 millicores
//	memory_gib_hour: 500
//	minimum: 1000        # optional floor per task
type Pricing struct {
	Currency      string           `json:"currency" yaml:"currency"`
	GPUHour       map[string]int64 `json:"gpu_hour,omitempty" yaml:"gpu_hour"`
	CPUCoreHour   int64            `json:"cpu_core_hour,omitempty" yaml:"cpu_core_hour"`
	MemoryGiBHour int64            `json:"memory_gib_hour,omitempty" yaml:"memory_gib_hour"`
	Minimum       int64            `json:"minimum,omitempty" yaml:"minimum"`
}

// LoadPricing reads and validates a price list.
func LoadPricing(path string) (*Pricing, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: pricing: %v", ErrInvalid, err)
	}
	var p Pricing
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: pricing %s: %v", ErrInvalid, path, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}

// Validate checks currency and that no rate is negative or missing.
func (p *Pricing) Validate() error {
	if err := names.Currency(p.Currency); err != nil {
		return fmt.Errorf("%w: pricing: %v", ErrInvalid, err)
	}
	if len(p.GPUHour) == 0 && p.CPUCoreHour == 0 && p.MemoryGiBHour == 0 {
		return fmt.Errorf("%w: pricing sets no rate", ErrInvalid)
	}
	for k, v := range p.GPUHour {
		if v < 0 || k == "" {
			return fmt.Errorf("%w: pricing gpu_hour[%q] = %d", ErrInvalid, k, v)
		}
	}
	if p.CPUCoreHour < 0 || p.MemoryGiBHour < 0 || p.Minimum < 0 {
		return fmt.Errorf("%w: pricing has a negative rate", ErrInvalid)
	}
	return nil
}

// GPURate is the hourly rate for a GPU model, or false when none applies.
func (p *Pricing) GPURate(model string) (int64, bool) {
	keys := make([]string, 0, len(p.GPUHour))
	for k := range p.GPUHour {
		keys = append(keys, k)
	}
	// Longest key first, then alphabetical, so the choice is deterministic.
	sort.Slice(keys, func(i, j int) bool {
		if len(keys[i]) != len(keys[j]) {
			return len(keys[i]) > len(keys[j])
		}
		return keys[i] < keys[j]
	})
	m := strings.ToLower(model)
	for _, k := range keys {
		if k != "*" && strings.Contains(m, strings.ToLower(k)) {
			return p.GPUHour[k], true
		}
	}
	v, ok := p.GPUHour["*"]
	return v, ok
}

// Quote prices resources on GPUs of the given model for d, rounding up to a
// whole minor unit, and at least Minimum.
func (p *Pricing) Quote(r runtimes.Resources, gpuModel string, d time.Duration) (int64, error) {
	if d <= 0 {
		return 0, fmt.Errorf("%w: quote for non-positive duration %v", ErrInvalid, d)
	}
	secs := int64((d + time.Second - 1) / time.Second)
	// Rates are per hour; sum rate×units×seconds, then divide once.
	var perHourMilli int64 // in thousandths of a unit-hour, to keep millicores exact
	if r.GPUs > 0 {
		rate, ok := p.GPURate(gpuModel)
		if !ok {
			return 0, fmt.Errorf("%w: pricing has no rate for GPU model %q", ErrInvalid, gpuModel)
		}
		perHourMilli += rate * int64(r.GPUs) * 1000
	}
	perHourMilli += p.CPUCoreHour * r.MilliCPU
	perHourMilli += p.MemoryGiBHour * ((r.MemoryBytes*1000 + (1<<30 - 1)) >> 30)
	total := (perHourMilli*secs + 3600*1000 - 1) / (3600 * 1000)
	return max(total, p.Minimum), nil
}

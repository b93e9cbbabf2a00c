package market

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/accordmesh/accord/settlement/sla"
)

// Provider is a seller: a pool of machines that can bid for jobs. The
// market asks it for its current profile at each clearing, so an
// implementation backed by live inventory (a Nomad pool, the local
// containerd host) reports what is free now. Static is the plain
// implementation used for configured and simulated providers.
type Provider interface {
	Profile(ctx context.Context) (Profile, error)
}

// Profile is what a provider offers at one moment.
type Profile struct {
	Name          string   `json:"name" yaml:"name"`
	Region        string   `json:"region" yaml:"region"`
	Jurisdictions []string `json:"jurisdictions,omitempty" yaml:"jurisdictions"` // data-residency, e.g. "EU"
	TEE           []string `json:"tee,omitempty" yaml:"tee"`                     // "sev-snp", "tdx", "nvidia-cc"
	Attestation   bool     `json:"attestation,omitempty" yaml:"attestation"`     // can produce remote attestation
	Reputation    float64  `json:"reputation" yaml:"reputation"`                 // 0..1
	// StartDelay is how long until the provider can start new work.
	StartDelay time.Duration `json:"start_delay_ns,omitempty" yaml:"start_delay"`
	// Free is the capacity available now; Total the pool's full capacity
	// (for utilisation-based pricing). A zero Total means Free.
	Free     Capacity `json:"free" yaml:"free"`
	Total    Capacity `json:"total" yaml:"total"`
	Pricing  Pricing  `json:"pricing" yaml:"pricing"`
	Strategy Strategy `json:"strategy" yaml:"strategy"`
	// SLA is the money terms the provider accepts to be held to; the zero
	// value accepts no refund and no slash.
	SLA SLAOffer `json:"sla" yaml:"sla"`
}

// SLAOffer is the money terms a provider accepts to be held to. A job whose
// spec asks for more (settlement.sla) gets no offer from it: a Diagnostic
// with constraint "sla". The terms agreed for a job are the spec's, with
// this Stake and SlashOnTests (Award.SLA).
type SLAOffer struct {
	// MaxRefundPercent is the largest sla.refund_percent accepted (0..100).
	MaxRefundPercent int `json:"max_refund_percent" yaml:"max_refund_percent"`
	// MaxSlashPercent is the largest sla.slash_percent accepted (0..100).
	MaxSlashPercent int `json:"max_slash_percent" yaml:"max_slash_percent"`
	// Stake is the most of the provider's bond at risk per job, in minor
	// units: a slash takes at most the slash percentage of it. Zero means
	// nothing is ever slashed, whatever percentage is accepted.
	Stake int64 `json:"stake,omitempty" yaml:"stake"`
	// SlashOnTests accepts that a failing tenant-written acceptance test
	// slashes the stake; without it such a failure only refunds.
	SlashOnTests bool `json:"slash_on_tests,omitempty" yaml:"slash_on_tests"`
	// MinDeadline is the shortest sla.deadline or sla.max_duration accepted
	// when a refund or slash is at stake; zero accepts any.
	MinDeadline time.Duration `json:"min_deadline_ns,omitempty" yaml:"min_deadline"`
}

// Capacity is an amount of compute.
type Capacity struct {
	MilliCPU    int64     `json:"cpu_millis" yaml:"cpu_millis"`
	MemoryBytes int64     `json:"memory_bytes" yaml:"memory_bytes"`
	DiskBytes   int64     `json:"disk_bytes,omitempty" yaml:"disk_bytes"`
	GPUs        []GPUPool `json:"gpus,omitempty" yaml:"gpus"`
}

// GPUPool is a number of identical GPUs.
type GPUPool struct {
	Model       string `json:"model" yaml:"model"`
	MemoryBytes int64  `json:"memory_bytes" yaml:"memory_bytes"`
	Count       int    `json:"count" yaml:"count"`
}

// Pricing is a provider's price list in integer minor units of Currency
// per resource-hour, with utilisation-based surge: the cost of a bundle is
// multiplied by 1 + Surge·u², u being the pool's utilisation after the
// bundle is placed. No bid goes below Reserve.
type Pricing struct {
	Currency       string           `json:"currency" yaml:"currency"`
	CPUHour        int64            `json:"cpu_hour" yaml:"cpu_hour"`               // per core-hour
	MemoryGiBHour  int64            `json:"memory_gib_hour" yaml:"memory_gib_hour"` // per GiB-hour
	DiskGiBHour    int64            `json:"disk_gib_hour,omitempty" yaml:"disk_gib_hour"`
	GPUHour        map[string]int64 `json:"gpu_hour,omitempty" yaml:"gpu_hour"` // per GPU-hour, by model
	Surge          float64          `json:"surge,omitempty" yaml:"surge"`
	Reserve        int64            `json:"reserve,omitempty" yaml:"reserve"`
	MinimumSeconds int64            `json:"minimum_seconds,omitempty" yaml:"minimum_seconds"` // billing floor per task
}

// Strategy is how a provider turns its cost into a bid.
//
//   - "truthful" (default): bid the cost. Under VCG payments this is a
//     dominant strategy, so it is what a rational provider does there.
//   - "markup": bid cost·(1+Markup); useful in simulations and under
//     pay-as-bid protocols.
//
// Concession is the provider's concession tactic in alternating offers:
// "boulware", "linear" (default) or "conceder".
type Strategy struct {
	Name       string  `json:"name,omitempty" yaml:"name"`
	Markup     float64 `json:"markup,omitempty" yaml:"markup"`
	Concession string  `json:"concession,omitempty" yaml:"concession"`
	// Opening is the alternating-offers opening ask as a multiple of the
	// reservation ask (default 2).
	Opening float64 `json:"opening,omitempty" yaml:"opening"`
	// Discount is the provider's per-round discount factor (default 0.95).
	Discount float64 `json:"discount,omitempty" yaml:"discount"`
}

// Static is a Provider with a fixed profile.
type Static struct{ P Profile }

// Profile returns the fixed profile.
func (s *Static) Profile(context.Context) (Profile, error) { return s.P, nil }

// Validate reports the first problem with a profile.
func (p *Profile) Validate() error {
	switch {
	case p.Name == "":
		return fmt.Errorf("%w: provider without a name", ErrInvalid)
	case p.Reputation < 0 || p.Reputation > 1:
		return fmt.Errorf("%w: provider %s: reputation %v outside 0..1", ErrInvalid, p.Name, p.Reputation)
	case p.Free.MilliCPU < 0 || p.Free.MemoryBytes < 0 || p.Free.DiskBytes < 0:
		return fmt.Errorf("%w: provider %s: negative capacity", ErrInvalid, p.Name)
	case p.Pricing.CPUHour < 0 || p.Pricing.MemoryGiBHour < 0 || p.Pricing.DiskGiBHour < 0 || p.Pricing.Reserve < 0:
		return fmt.Errorf("%w: provider %s: negative price", ErrInvalid, p.Name)
	case p.Pricing.Surge < 0 || p.Strategy.Markup < 0:
		return fmt.Errorf("%w: provider %s: negative surge or markup", ErrInvalid, p.Name)
	case p.Pricing.Currency == "":
		return fmt.Errorf("%w: provider %s: pricing without a currency", ErrInvalid, p.Name)
	}
	if err := p.SLA.validate(); err != nil {
		return fmt.Errorf("%w: provider %s: %v", ErrInvalid, p.Name, err)
	}
	for _, g := range p.Free.GPUs {
		if g.Count < 0 || g.MemoryBytes < 0 || g.Model == "" {
			return fmt.Errorf("%w: provider %s: bad GPU pool %+v", ErrInvalid, p.Name, g)
		}
	}
	for m, v := range p.Pricing.GPUHour {
		if v < 0 {
			return fmt.Errorf("%w: provider %s: negative price for GPU %s", ErrInvalid, p.Name, m)
		}
	}
	switch p.Strategy.Name {
	case "", "truthful", "markup":
	default:
		return fmt.Errorf("%w: provider %s: unknown strategy %q", ErrInvalid, p.Name, p.Strategy.Name)
	}
	if _, err := concession(p.Strategy.Concession); err != nil {
		return fmt.Errorf("%w: provider %s: %v", ErrInvalid, p.Name, err)
	}
	return nil
}

func (o SLAOffer) validate() error {
	switch {
	case o.MaxRefundPercent < 0 || o.MaxRefundPercent > 100 || o.MaxSlashPercent < 0 || o.MaxSlashPercent > 100:
		return fmt.Errorf("sla percentages outside 0..100")
	case o.Stake < 0 || o.Stake > sla.MaxStake:
		return fmt.Errorf("sla stake %d outside 0..%d", o.Stake, sla.MaxStake)
	case o.MinDeadline < 0:
		return fmt.Errorf("negative sla min_deadline")
	}
	return nil
}

// providersFile is the on-disk form: {"providers": [Profile, ...]}.
type providersFile struct {
	Providers []Profile `json:"providers" yaml:"providers"`
}

// LoadProviders reads configured providers from a YAML or JSON file
// ({"providers": [...]}, durations as Go strings such as "90s" in YAML).
func LoadProviders(path string) ([]Provider, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("market: read providers: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f providersFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, path, err)
	}
	seen := map[string]bool{}
	out := make([]Provider, 0, len(f.Providers))
	for _, p := range f.Providers {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("%w: %s: provider %s listed twice", ErrInvalid, path, p.Name)
		}
		seen[p.Name] = true
		out = append(out, &Static{P: p})
	}
	return out, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

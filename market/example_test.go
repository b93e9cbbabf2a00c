package market_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/specs"
)

// TestNegotiateExampleSpecs runs the market on the repository's example
// specs, compiled by the specs package, against a small simulated market.
func TestNegotiateExampleSpecs(t *testing.T) {
	const gib = int64(1) << 30
	sla := market.SLAOffer{MaxRefundPercent: 50, MaxSlashPercent: 50, Stake: 1000}
	provs := []market.Provider{
		&market.Static{P: market.Profile{Name: "cpu-eu", Region: "eu-west-1", Jurisdictions: []string{"EU"}, Reputation: 0.9,
			Free:    market.Capacity{MilliCPU: 64000, MemoryBytes: 256 * gib, DiskBytes: 1 << 40},
			Pricing: market.Pricing{Currency: "EUR", CPUHour: 2, MemoryGiBHour: 1, DiskGiBHour: 0}, SLA: sla}},
		&market.Static{P: market.Profile{Name: "gpu-eu", Region: "eu-central-1", Jurisdictions: []string{"EU"}, Reputation: 0.8,
			TEE: []string{"sev-snp", "nvidia-cc"}, Attestation: true,
			Free: market.Capacity{MilliCPU: 64000, MemoryBytes: 512 * gib, DiskBytes: 1 << 40,
				GPUs: []market.GPUPool{{Model: "h100", MemoryBytes: 80 * gib, Count: 8}, {Model: "a100", MemoryBytes: 40 * gib, Count: 8}}},
			Pricing: market.Pricing{Currency: "EUR", CPUHour: 3, MemoryGiBHour: 1, GPUHour: map[string]int64{"h100": 250, "a100": 120}}, SLA: sla}},
		&market.Static{P: market.Profile{Name: "cpu-eu-usd", Region: "eu-west-1", Jurisdictions: []string{"EU"}, Reputation: 0.7,
			Free:    market.Capacity{MilliCPU: 16000, MemoryBytes: 64 * gib, DiskBytes: 1 << 40},
			Pricing: market.Pricing{Currency: "USD", CPUHour: 2, MemoryGiBHour: 1}, SLA: sla}},
	}
	files, _ := filepath.Glob("../examples/*.md")
	if len(files) == 0 {
		t.Skip("no example specs in ../examples")
	}
	for _, f := range files {
		s, err := specs.Load(f)
		if err != nil {
			t.Logf("%s: %v (not a loadable spec here)", f, err)
			continue
		}
		if s.Service != nil {
			continue // a deployment is placed by its own workflow, not the job market
		}
		plan, err := specs.Compile(s)
		if err != nil {
			t.Fatalf("%s: compile: %v", f, err)
		}
		res, err := market.Negotiate(context.Background(), plan, provs, market.Options{Job: "job-" + s.Name})
		switch {
		case err == nil:
			if len(res.Awards) == 0 {
				t.Fatalf("%s: no awards without an error", f)
			}
			for _, a := range res.Awards {
				if a.Price < a.Ask || a.Price > plan.Spec.Budget.MaxPrice {
					t.Fatalf("%s: award %+v outside [ask, budget %d]", f, a, plan.Spec.Budget.MaxPrice)
				}
			}
			t.Logf("%s: %d award(s), welfare %d %s", f, len(res.Awards), res.Welfare, res.Currency)
		case errors.Is(err, market.ErrNoOffers), errors.Is(err, market.ErrNoAgreement):
			t.Fatalf("%s: %v: %+v", f, err, res.Diagnostics)
		default:
			t.Fatalf("%s: %v", f, err)
		}
	}
}

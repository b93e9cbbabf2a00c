package market

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/settlement/sla"
	"github.com/accordmesh/accord/specs"
)

func slaPlan(req specs.SLA) *specs.Plan {
	pl := plan("job", 10000, task("t", 1000, gib, 0, ""))
	pl.Spec.Settlement.SLA = req
	return pl
}

func slaDiags(res *Result) []Diagnostic {
	var out []Diagnostic
	if res == nil {
		return nil
	}
	for _, d := range res.Diagnostics {
		if d.Constraint == "sla" {
			out = append(out, d)
		}
	}
	return out
}

// TestSLAOfferMustCoverRequest: only providers whose SLA offer covers the
// spec's requested terms bid; the others are excluded with constraint sla,
// and the award carries the agreed terms (the spec's, with the winner's
// stake and test-slash flag).
func TestSLAOfferMustCoverRequest(t *testing.T) {
	ctx := context.Background()
	req := specs.SLA{Deadline: time.Hour, MaxDuration: 30 * time.Minute, RefundPercent: 50, SlashPercent: 20, Stake: 100}
	none := provider("none", 10, 0) // zero offer: accepts no refund, no slash
	lowRefund := provider("low-refund", 10, 0)
	lowRefund.P.SLA = SLAOffer{MaxRefundPercent: 40, MaxSlashPercent: 100, Stake: 1000}
	smallStake := provider("small-stake", 10, 0)
	smallStake.P.SLA = SLAOffer{MaxRefundPercent: 100, MaxSlashPercent: 100, Stake: 99}
	slow := provider("slow", 10, 0)
	slow.P.SLA = SLAOffer{MaxRefundPercent: 100, MaxSlashPercent: 100, Stake: 1000, MinDeadline: 2 * time.Hour}
	ok := provider("ok", 50, 0) // dearer, but the only one that agrees
	ok.P.SLA = SLAOffer{MaxRefundPercent: 50, MaxSlashPercent: 20, Stake: 500, SlashOnTests: true}
	for _, protocol := range []string{ProtocolAuction, ProtocolAlternating} {
		pl := slaPlan(req)
		pl.Spec.Negotiation.Protocol = protocol
		res, err := Negotiate(ctx, pl, []Provider{none, lowRefund, smallStake, slow, ok}, Options{})
		if err != nil {
			t.Fatalf("%s: %v", protocol, err)
		}
		if len(res.Awards) != 1 || res.Awards[0].Provider != "ok" {
			t.Fatalf("%s: awards %+v", protocol, res.Awards)
		}
		want := sla.Terms{Deadline: time.Hour, MaxDuration: 30 * time.Minute, RefundPercent: 50, SlashPercent: 20, Stake: 500, SlashOnTests: true}
		if got := res.Awards[0].SLA; got == nil || *got != want {
			t.Fatalf("%s: agreed terms %+v, want %+v", protocol, got, want)
		}
		excluded := map[string]bool{}
		for _, d := range slaDiags(res) {
			excluded[d.Provider] = true
		}
		for _, name := range []string{"none", "low-refund", "small-stake", "slow"} {
			if !excluded[name] {
				t.Errorf("%s: %s not excluded with constraint sla: %+v", protocol, name, res.Diagnostics)
			}
		}
		if excluded["ok"] {
			t.Errorf("%s: ok excluded: %+v", protocol, res.Diagnostics)
		}
	}
}

// TestSLAAttackFindsNoOffer is issue 19's attack at negotiation: a spec
// asking sla: {deadline: 1ms, refund_percent: 100, slash_percent: 100} gets
// no offer from providers that did not agree to such terms, and the
// no-offer error names the sla constraint.
func TestSLAAttackFindsNoOffer(t *testing.T) {
	ctx := context.Background()
	attack := specs.SLA{Deadline: time.Millisecond, RefundPercent: 100, SlashPercent: 100}
	bonded := provider("bonded", 10, 0)
	bonded.P.SLA = SLAOffer{MaxRefundPercent: 100, MaxSlashPercent: 100, Stake: 500, MinDeadline: time.Minute}
	cautious := provider("cautious", 10, 0)
	cautious.P.SLA = SLAOffer{MaxRefundPercent: 20, MaxSlashPercent: 10, Stake: 500}
	res, err := Negotiate(ctx, slaPlan(attack), []Provider{bonded, cautious}, Options{})
	if !errors.Is(err, ErrNoOffers) {
		t.Fatalf("attack negotiated: %v %+v", err, res)
	}
	if d := slaDiags(res); len(d) < 2 || !strings.Contains(d[0].Detail, "deadline") {
		t.Fatalf("diagnostics %+v", res.Diagnostics)
	}
	// Without money at stake a short deadline is only a label.
	res, err = Negotiate(ctx, slaPlan(specs.SLA{Deadline: time.Millisecond}), []Provider{bonded}, Options{})
	if err != nil || res.Awards[0].SLA.Stake != 0 {
		t.Fatalf("no-money deadline: %v %+v", err, res)
	}
}

// A provider that accepts a slash percentage but stakes nothing agrees to
// lose nothing: the agreed stake is 0.
func TestSLANoStakeAgreesToNothing(t *testing.T) {
	p := provider("p", 10, 0)
	p.P.SLA = SLAOffer{MaxRefundPercent: 100, MaxSlashPercent: 100}
	res, err := Negotiate(context.Background(), slaPlan(specs.SLA{MaxDuration: time.Hour, RefundPercent: 100, SlashPercent: 100}), []Provider{p}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Awards[0].SLA; got.Stake != 0 || got.SlashPercent != 100 || got.RefundPercent != 100 {
		t.Fatalf("agreed %+v", got)
	}
}

// Out-of-range SLA offers in providers.yaml are refused.
func TestLoadProvidersBadSLA(t *testing.T) {
	for _, bad := range []string{"max_refund_percent: 101", "max_slash_percent: -1", "stake: -5", "min_deadline: -1s"} {
		yml := "providers:\n  - {name: p, reputation: 1, pricing: {currency: EUR}, sla: {" + bad + "}}\n"
		if _, err := loadYAML(t, yml); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "sla") {
			t.Errorf("%s: err %v, want ErrInvalid", bad, err)
		}
	}
}

// The tenant's own code may run for its declared max_duration, so a
// deadline or maximum duration shorter than the critical path (plus the
// provider's start delay) would make a breach the tenant's choice: no
// provider is held to it.
func TestSLADeadlineCoversCriticalPath(t *testing.T) {
	ctx := context.Background()
	p := provider("p", 10, 0)
	p.P.SLA = SLAOffer{MaxRefundPercent: 100, MaxSlashPercent: 100, Stake: 100}
	p.P.StartDelay = time.Minute
	for _, c := range []struct {
		req specs.SLA
		ok  bool
	}{
		{specs.SLA{Deadline: 61 * time.Minute, MaxDuration: time.Hour, RefundPercent: 10}, true},
		{specs.SLA{Deadline: 60 * time.Minute, RefundPercent: 10}, false},   // start delay + 1h critical path
		{specs.SLA{MaxDuration: 59 * time.Minute, SlashPercent: 10}, false}, // shorter than the task may run
		{specs.SLA{Deadline: time.Minute, MaxDuration: time.Second}, true},  // no money at stake
	} {
		pl := slaPlan(c.req)
		pl.CriticalTime = time.Hour
		res, err := Negotiate(ctx, pl, []Provider{p}, Options{})
		if c.ok != (err == nil) || !c.ok && len(slaDiags(res)) != 1 {
			t.Errorf("%+v: %v %+v", c.req, err, res)
		}
	}
}

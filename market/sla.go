package market

import (
	"fmt"

	"github.com/accordmesh/accord/settlement/sla"
	"github.com/accordmesh/accord/specs"
)

// slaDiagnostics says why a provider's SLA offer does not cover the terms
// a buyer's spec asks for (constraint "sla"); none means it accepts them.
func slaDiagnostics(b *Buyer, p *Profile) []Diagnostic {
	var d []Diagnostic
	add := func(format string, a ...any) {
		d = append(d, Diagnostic{Provider: p.Name, Job: b.Job, Constraint: "sla", Detail: fmt.Sprintf(format, a...)})
	}
	req, off := b.SLA, p.SLA
	if req.RefundPercent > off.MaxRefundPercent {
		add("sla.refund_percent %d above the %d%% the provider accepts", req.RefundPercent, off.MaxRefundPercent)
	}
	if req.SlashPercent > off.MaxSlashPercent {
		add("sla.slash_percent %d above the %d%% the provider accepts", req.SlashPercent, off.MaxSlashPercent)
	}
	if req.Stake > off.Stake {
		add("sla.stake %d above the provider's stake of %d per job", req.Stake, off.Stake)
	}
	if req.RefundPercent == 0 && req.SlashPercent == 0 {
		return d // no money at stake: any deadline is only a label
	}
	for _, t := range []struct {
		name string
		v    any
		ok   bool
	}{
		{"deadline", req.Deadline, req.Deadline == 0 || req.Deadline >= off.MinDeadline && req.Deadline > p.StartDelay},
		{"max_duration", req.MaxDuration, req.MaxDuration == 0 || req.MaxDuration >= off.MinDeadline},
	} {
		if !t.ok {
			add("sla.%s %v shorter than the provider accepts (min_deadline %v, start delay %v)", t.name, t.v, off.MinDeadline, p.StartDelay)
		}
	}
	return d
}

// agreedSLA is the terms a provider whose offer covers the spec's request
// agrees to: the spec's, with the provider's stake and test-slash flag.
func agreedSLA(req specs.SLA, off SLAOffer) *sla.Terms {
	t := &sla.Terms{Deadline: req.Deadline, MaxDuration: req.MaxDuration,
		RefundPercent: req.RefundPercent, SlashPercent: req.SlashPercent, SlashOnTests: off.SlashOnTests}
	if req.SlashPercent > 0 {
		t.Stake = off.Stake
	}
	return t
}

// withSLA sets each award's agreed terms from its buyer's request and its
// provider's offer (every award's provider passed slaDiagnostics).
func withSLA(awards []Award, buyers []*Buyer, profs []Profile) {
	req := map[string]specs.SLA{}
	for _, b := range buyers {
		req[b.Job] = b.SLA
	}
	off := map[string]SLAOffer{}
	for _, p := range profs {
		off[p.Name] = p.SLA
	}
	for i := range awards {
		awards[i].SLA = agreedSLA(req[awards[i].Job], off[awards[i].Provider])
	}
}

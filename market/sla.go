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
	// The tenant's own code may run each task for its declared
	// max_duration: a provider is never held to finish sooner than that.
	if floor := max(off.MinDeadline, p.StartDelay+b.CriticalTime); req.Deadline > 0 && req.Deadline < floor {
		add("sla.deadline %v shorter than the provider can be held to: min_deadline %v, start delay %v + critical path %v by the tasks' max_duration",
			req.Deadline, off.MinDeadline, p.StartDelay, b.CriticalTime)
	}
	if floor := max(off.MinDeadline, b.CriticalTime); req.MaxDuration > 0 && req.MaxDuration < floor {
		add("sla.max_duration %v shorter than the provider can be held to: min_deadline %v, critical path %v by the tasks' max_duration",
			req.MaxDuration, off.MinDeadline, b.CriticalTime)
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

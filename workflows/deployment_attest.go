package workflows

import (
	"encoding/json"
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/services"
	"github.com/accordmesh/accord/specs"
)

// attest signs and logs one deployment event (from layout 2), chained to
// the previous one. It runs in line: events are rare next to ticks, and an
// event is attested before the deployment moves on, so the chain has no
// gaps. A failure after the activity's retries fails the caller like any
// other activity error.
func (d *deployer) attest(ctx workflow.Context, p predicate.Deployment) error {
	if d.layout < deployLayout2 {
		return nil
	}
	seq := d.st.Attested + 1
	p.Header = predicate.Header{JobID: d.st.ID}
	p.Seq, p.At = seq, workflow.Now(ctx)
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", p.Event, err)
	}
	out, err := AttestEvent.Run(ctx, services.AttestRequest{Deployment: d.st.ID, Seq: seq, Previous: d.st.AttestTail,
		SpecDigest: d.st.Stable.SpecDigest, Predicate: b})
	if err != nil {
		return fmt.Errorf("attest %s event %d: %w", p.Event, seq, err)
	}
	d.st.Attested, d.st.AttestTail = seq, out.Digest
	return nil
}

// startRecord is the start event: the negotiated terms and the endpoint.
func (d *deployer) startRecord() *predicate.DeploymentStart {
	s := d.svc()
	return &predicate.DeploymentStart{Tenant: d.st.Tenant, Currency: d.st.Currency, Budget: d.st.Budget,
		Endpoint: s.Endpoint, Address: d.st.Endpoint, Replicas: s.Replicas, ReplicaHour: d.st.Rate,
		Period: s.Billing.Period, Grace: s.Billing.Grace, SLA: slaTerms(s.SLA)}
}

func slaTerms(t specs.ServiceSLA) predicate.SLATerms {
	return predicate.SLATerms{AvailabilityBP: t.AvailabilityBP, P95Latency: t.P95Latency, Window: t.Window,
		RefundPercent: t.RefundPercent, SlashPercent: t.SlashPercent, Stake: t.Stake}
}

func gates(ro specs.Rollout) predicate.Gates {
	return predicate.Gates{MinRequests: ro.MinRequests, MinSuccessBP: ro.MinSuccessBP, MaxP95: ro.MaxP95}
}

func measured(s services.Stats) predicate.Measured {
	return predicate.Measured{Requests: s.Requests, Errors: s.Errors, SuccessBP: s.SuccessBP,
		P50: s.P50, P95: s.P95, P99: s.P99, Start: s.Start, End: s.End}
}

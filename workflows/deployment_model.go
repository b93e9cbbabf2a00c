package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/services"
)

// A service's registry model (layout 3, deployLayoutServedModel): each
// release resolves its model once, before any of its replicas starts, so
// every replica of the release (canary included) mounts the same pinned,
// verified copy; a new model version is a new release, rolled out through
// the canary like an image. Per-inference fees are paid per billing period.

// resolveModel pins, verifies, fetches and prices rel's model (layout 3)
// and keeps its pin for billing.
func (d *deployer) resolveModel(ctx workflow.Context, rel *ServiceRelease) error {
	m := rel.Service.Model
	if d.layout < deployLayoutServedModel || m == nil {
		return nil
	}
	pin, err := ResolveModel.Run(ctx, services.ResolveModelRequest{Deployment: d.st.ID, Name: m.Name, Constraint: m.Version,
		As: m.As, Currency: d.st.Currency})
	if err != nil {
		return fmt.Errorf("model %s %s: %w", m.Name, m.Version, err)
	}
	rel.Model = &pin
	if d.st.Pins == nil {
		d.st.Pins = map[string]services.ModelPin{}
	}
	d.st.Pins[rel.Label()] = pin
	d.event(ctx, "model", "%s serves %s (%s), %d %s per inference", rel.Label(), pin.Ref, pin.Digest, pin.Fee.Price, pin.Fee.Currency)
	return nil
}

// cutFees closes the open period's billing window (idempotent by its key)
// and prices its requests; once per period.
func (d *deployer) cutFees(ctx workflow.Context) error {
	if d.layout < deployLayoutServedModel || (d.feesCut && d.feesPeriod == d.st.Period) {
		return nil
	}
	d.fees, d.feesPeriod, d.feesCut = nil, d.st.Period, true
	if !d.priced() {
		d.st.LastModelFees = 0
		return nil
	}
	w, err := MeasureWindow.Run(ctx, services.MeasureRequest{Deployment: d.st.ID, Stream: services.StreamBilling, Key: fmt.Sprintf("p%d", d.st.Period)})
	if err != nil {
		d.feesCut = false
		return fmt.Errorf("measure period %d: %w", d.st.Period, err)
	}
	d.fees = services.InferenceFees(w, d.st.Pins)
	var total int64
	for _, f := range d.fees {
		t, _ := f.Total()
		total = min(total+t, services.MaxAmount)
	}
	d.st.LastModelFees = total
	return nil
}

// priced reports whether any release of the open period serves a model
// priced per inference.
func (d *deployer) priced() bool {
	for _, p := range d.st.Pins {
		if p.Fee.Price > 0 {
			return true
		}
	}
	return false
}

// prunePins forgets the models of releases that can serve no more
// requests (after their last period settled).
func (d *deployer) prunePins() {
	for label := range d.st.Pins {
		if !d.live(label) {
			delete(d.st.Pins, label)
		}
	}
}

func (d *deployer) live(label string) bool {
	for _, r := range []*ServiceRelease{&d.st.Stable, d.st.Canary, d.st.Previous} {
		if r != nil && r.Label() == label {
			return true
		}
	}
	return false
}

func replicaModel(p *services.ModelPin) *services.ReplicaModel {
	if p == nil {
		return nil
	}
	return &services.ReplicaModel{Ref: p.Ref, Digest: p.Digest, As: p.As}
}

// servedModel is a release's model as its events record it.
func servedModel(p *services.ModelPin) *predicate.ServedModel {
	if p == nil {
		return nil
	}
	return &predicate.ServedModel{Name: p.Name, Constraint: p.Constraint, Ref: p.Ref, Digest: p.Digest, As: p.As,
		Currency: p.Fee.Currency, PerInference: p.Fee.Price, Shares: shareRecords(p.Fee.Shares)}
}

func shareRecords(in []services.ModelShare) []predicate.ModelShare {
	var out []predicate.ModelShare
	for _, s := range in {
		out = append(out, predicate.ModelShare{Owner: s.Owner, Model: s.Model, Amount: s.Amount})
	}
	return out
}

func inferenceRecords(in []services.InferenceFee) []predicate.InferenceFee {
	var out []predicate.InferenceFee
	for _, f := range in {
		out = append(out, predicate.InferenceFee{Release: f.Release, Model: f.Model, Digest: f.Digest, Requests: f.Requests,
			Price: f.Price, Shares: shareRecords(f.Shares)})
	}
	return out
}

func paidRecords(in []services.PaidModelFee) []predicate.PaidModelFee {
	var out []predicate.PaidModelFee
	for _, f := range in {
		out = append(out, predicate.PaidModelFee{Release: f.Release, Model: f.Model, Digest: f.Digest, Shares: shareRecords(f.Shares)})
	}
	return out
}

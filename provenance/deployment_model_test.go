package provenance_test

import (
	"context"
	"strings"
	"testing"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/predicate"
)

// modelEvents is deploymentEvents with a registry model served by release
// 1 at 5 per inference (4 to ann, a royalty of 1 to rex) and period 1
// paying its 10 successful requests: 40 to ann, 10 to rex, before the
// charge, from the same escrow.
func modelEvents() []predicate.Deployment {
	ev := deploymentEvents()
	shares := []predicate.ModelShare{{Owner: "ann", Model: "ann/clf@1.2.0", Amount: 4}, {Owner: "rex", Model: "rex/base@1.0.0", Amount: 1}}
	digest := "sha256:" + strings.Repeat("ab", 32)
	ev[0].Model = &predicate.ServedModel{Name: "ann/clf", Constraint: "^1.2", Ref: "ann/clf@1.2.0", Digest: digest, As: "/models/clf",
		Currency: "USD", PerInference: 5, Shares: shares}
	s := *ev[8].Settle
	s.Inferences = []predicate.InferenceFee{{Release: "r1", Model: "ann/clf@1.2.0", Digest: digest, Requests: 10, Price: 5, Shares: shares}}
	s.ModelFees = []predicate.PaidModelFee{{Release: "r1", Model: "ann/clf@1.2.0", Digest: digest, Shares: []predicate.ModelShare{
		{Owner: "ann", Model: "ann/clf@1.2.0", Amount: 40}, {Owner: "rex", Model: "rex/base@1.0.0", Amount: 10}}}}
	s.ModelFeeTotal, s.Refund = 50, 70
	ev[8].Settle = &s
	stop := *ev[9].Stop
	stop.Spent = 170
	ev[9].Stop = &stop
	return ev
}

func TestDeploymentReceiptModelFees(t *testing.T) {
	e := newEnv(t)
	e.attestDeployment(t, "dep1", modelEvents())
	rep, err := provenance.Verify(context.Background(), e.receipt(t, "dep1"), e.trust, provenance.VerifyOptions{})
	if err != nil || !rep.OK {
		t.Fatalf("%v %+v", err, rep)
	}
}

func TestDeploymentReceiptModelFeeProblems(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(ev []predicate.Deployment)
		want   string
	}{
		{"a share paid more than requests × its part", func(ev []predicate.Deployment) {
			ev[8].Settle.ModelFees[0].Shares[0].Amount = 41
		}, "deployment.000009: amounts"},
		{"the royalty left unpaid", func(ev []predicate.Deployment) {
			ev[8].Settle.ModelFees[0].Shares = ev[8].Settle.ModelFees[0].Shares[:1]
			ev[8].Settle.ModelFeeTotal, ev[8].Settle.Refund = 40, 80
		}, "deployment.000009: amounts"},
		{"billed at another price than the release recorded", func(ev []predicate.Deployment) {
			ev[8].Settle.Inferences[0].Price = 6
		}, "deployment.000009: amounts"},
		{"inferences of a release without a model", func(ev []predicate.Deployment) {
			ev[8].Settle.Inferences[0].Release = "r2"
		}, "deployment.000009: amounts"},
		{"a model whose split does not add up", func(ev []predicate.Deployment) {
			ev[0].Model.PerInference = 6
		}, "deployment.000001: amounts"},
		{"fees left out of the stop's spend", func(ev []predicate.Deployment) {
			ev[9].Stop.Spent = 120
		}, "deployment.000010: amounts"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := modelEvents()
			c.mutate(ev)
			e := newEnv(t)
			e.attestDeployment(t, "dep1", ev)
			rep, err := provenance.Verify(context.Background(), e.receipt(t, "dep1"), e.trust, provenance.VerifyOptions{})
			if err == nil || rep.OK {
				t.Fatalf("verified: %+v", rep)
			}
			if !strings.Contains(err.Error(), "stage "+c.want) {
				t.Fatalf("want a problem %q, got %v", c.want, err)
			}
		})
	}
}

package activities

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/broker"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

type plainNegotiator struct{}

func (plainNegotiator) Negotiate(context.Context, string, *specs.Plan) (Award, error) {
	return Award{}, nil
}

// The bargain activities: the sellers once, then each round the replay of
// the moves; an agreement is the broker's award (runtime, devices, SLA)
// with every round in its record.
func TestBargainActivities(t *testing.T) {
	ctx := context.Background()
	plan, _ := quickstartPlan(t)
	plan.Spec.Negotiation = specs.Negotiation{Protocol: "alternating-offers", Rounds: 10, Buyer: specs.BuyerAgent, RoundTimeout: specs.DefaultRoundTimeout}
	raw, _ := json.Marshal(plan)
	in := workflows.PlanInput{PlanJSON: raw}
	a := &Activities{Negotiator: MarketNegotiator{Broker: broker.Broker{
		Providers:      func(context.Context) ([]market.Provider, error) { return []market.Provider{localProvider(4000)}, nil },
		DefaultRuntime: "containerd",
		Assign: func(_ context.Context, provider string, plan *specs.Plan) ([]broker.TaskDevices, error) {
			return []broker.TaskDevices{{Task: plan.Tasks[0].Name, Node: provider + "-n1"}}, nil
		},
	}}}
	snap, err := a.BargainSnapshot(ctx, workflows.NegotiateInput{JobID: "job-1", PlanInput: in})
	if err != nil {
		t.Fatal(err)
	}
	round := workflows.BargainRoundInput{JobID: "job-1", PlanInput: in, Sellers: snap.Sellers}
	st, err := a.BargainRound(ctx, round)
	if err != nil {
		t.Fatal(err)
	}
	if st.Over || st.Round != 0 || st.DeadlineRound != 5 || st.Currency != "USD" || len(st.Offers) != 1 || st.Offers[0].Provider != "local" {
		t.Fatalf("round 0: %+v", st)
	}
	open := st.Offers[0].Price
	round.Moves = []workflows.CounterInput{{By: "agent", Accept: "local"}}
	st, err = a.BargainRound(ctx, round)
	if err != nil {
		t.Fatal(err)
	}
	aw := st.Award
	if !st.Over || aw == nil || aw.Provider != "local" || aw.Runtime != "containerd" || aw.Price != open ||
		len(aw.Devices) != 1 || aw.SLA == nil || aw.SLA.Stake != 300 {
		t.Fatalf("agreement: %+v %+v", st, aw)
	}
	var rec market.Result
	if err := json.Unmarshal(aw.Record, &rec); err != nil || len(rec.Rounds) != 1 || !rec.Rounds[0].Accepted {
		t.Fatalf("record %s: %v", aw.Record, err)
	}
	// A move the replay cannot take, a broken snapshot, or a negotiator
	// that cannot bargain are the job's no-offers outcome, not retried.
	round.Moves = []workflows.CounterInput{{By: "agent", Accept: "nobody"}}
	if _, err := a.BargainRound(ctx, round); appErrType(err) != workflows.ErrTypeNoOffers {
		t.Errorf("bad move: %v", err)
	}
	round.Sellers = json.RawMessage(`{"rounds": "x"}`)
	if _, err := a.BargainRound(ctx, round); appErrType(err) != workflows.ErrTypeNoOffers {
		t.Errorf("bad snapshot: %v", err)
	}
	plain := &Activities{Negotiator: plainNegotiator{}}
	if _, err := plain.BargainSnapshot(ctx, workflows.NegotiateInput{JobID: "job-1", PlanInput: in}); appErrType(err) != workflows.ErrTypeNoOffers {
		t.Errorf("plain negotiator: %v", err)
	}
	// No seller fits: no offers, with the reason.
	small := &Activities{Negotiator: MarketNegotiator{Broker: broker.Broker{
		Providers: func(context.Context) ([]market.Provider, error) { return []market.Provider{localProvider(100)}, nil }}}}
	if _, err := small.BargainSnapshot(ctx, workflows.NegotiateInput{JobID: "job-1", PlanInput: in}); appErrType(err) != workflows.ErrTypeNoOffers {
		t.Errorf("no seller: %v", err)
	}
}

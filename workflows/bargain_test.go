package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/provenance/predicate"
)

// The bargain's market side in these tests is the real pure replay
// (market.Sellers.Play) over a hand-made snapshot of two sellers.
func bargainSellers() market.Sellers {
	return market.Sellers{Job: "job-1", Currency: "USD", Budget: 1000, Rounds: 10, Providers: []string{"a", "b"},
		Sellers: []market.Seller{
			{Provider: "a", Agent: market.Agent{Initial: 1216, Reserve: 608, Beta: market.BetaLinear, Discount: 0.95}, Reputation: 0.9},
			{Provider: "b", Agent: market.Agent{Initial: 816, Reserve: 408, Beta: market.BetaLinear, Discount: 0.95}, Reputation: 0.9},
		}}
}

func bargainPlan() PlanSummary {
	p := dagPlan()
	p.AgentBuyer, p.RoundTimeout = true, 2*time.Minute
	return p
}

func bargainSnapshotAct(context.Context, NegotiateInput) (BargainSnapshotOutput, error) {
	panic("mocked")
}
func bargainRoundAct(context.Context, BargainRoundInput) (BargainRoundOutput, error) { panic("mocked") }

// bargainHarness mocks the bargain's activities with the real replay.
func bargainHarness(t *testing.T, plan PlanSummary) *harness {
	h := newHarness(t, plan)
	BargainSnapshot.Register(h.env, bargainSnapshotAct)
	BargainRound.Register(h.env, bargainRoundAct)
	raw, _ := json.Marshal(bargainSellers())
	h.on(BargainSnapshot.Name).Return(BargainSnapshotOutput{Sellers: raw}, nil)
	h.on(BargainRound.Name).Return(func(_ context.Context, in BargainRoundInput) (BargainRoundOutput, error) {
		var s market.Sellers
		if err := json.Unmarshal(in.Sellers, &s); err != nil {
			return BargainRoundOutput{}, err
		}
		var moves []market.Move
		for _, m := range in.Moves {
			moves = append(moves, market.Move{Price: m.Price, Accept: m.Accept})
		}
		p, err := s.Play(moves)
		if err != nil {
			return BargainRoundOutput{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeNoOffers, err)
		}
		out := BargainRoundOutput{Round: p.Round, DeadlineRound: p.DeadlineRound, Budget: s.Budget, Currency: s.Currency, Over: p.Over}
		for _, o := range p.Offers {
			out.Offers = append(out.Offers, BargainOffer{Provider: o.Provider, Price: o.Price})
		}
		if p.Over && len(p.Result.Awards) > 0 {
			aw := p.Result.Awards[0]
			rec, _ := json.Marshal(p.Result)
			out.Award = &NegotiateOutput{Provider: aw.Provider, Pool: aw.Provider, Runtime: "containerd", Price: aw.Price,
				Currency: s.Currency, Record: rec, Explanation: aw.Explanation}
		}
		return out, nil
	})
	return h
}

// counter sends the counter update; wantType is the rejection's error
// type, or "" when the move must be accepted; reply gets the response.
func (h *harness) counter(in CounterInput, wantType string, reply func(CounterOutput)) {
	t := h.t
	h.env.UpdateWorkflow(UpdateCounter, "", &testsuite.TestUpdateCallback{
		OnReject: func(err error) {
			var app *temporal.ApplicationError
			if wantType == "" || !errors.As(err, &app) || app.Type() != wantType {
				t.Errorf("counter %+v rejected with %v, want %q", in, err, wantType)
			}
		},
		OnAccept: func() {
			if wantType != "" {
				t.Errorf("counter %+v accepted, want a rejection of type %s", in, wantType)
			}
		},
		OnComplete: func(v any, err error) {
			if err != nil {
				t.Errorf("counter %+v: %v", in, err)
				return
			}
			if reply != nil {
				reply(v.(CounterOutput))
			}
		},
	}, in)
}

func (h *harness) bargainStatus() *BargainStatus {
	v, err := h.env.QueryWorkflow(QueryStatus)
	if err != nil {
		h.t.Fatalf("query: %v", err)
	}
	var st JobStatus
	if err := v.Get(&st); err != nil {
		h.t.Fatal(err)
	}
	return st.Bargain
}

func TestJobAgentBargainAgrees(t *testing.T) {
	h := bargainHarness(t, bargainPlan())
	var replies []CounterOutput
	keep := func(o CounterOutput) { replies = append(replies, o) }
	h.env.RegisterDelayedCallback(func() {
		st := h.bargainStatus()
		if st == nil || st.Round != 0 || st.DeadlineRound != 5 || st.Budget != 1000 || len(st.Offers) != 2 ||
			st.Offers[1] != (BargainOffer{"b", 816}) || st.Timeout.IsZero() {
			t.Errorf("round 0 status %+v", st)
		}
		if len(h.attests) != 2 { // spec, admission: no negotiation yet
			t.Errorf("attested %v before agreement", h.stages())
		}
		h.counter(CounterInput{By: "agent", Price: 1001}, ErrTypeBadMove, nil)
		h.counter(CounterInput{By: "agent", Price: -1}, ErrTypeBadMove, nil)
		h.counter(CounterInput{By: "agent", Accept: "zz"}, ErrTypeBadMove, nil)
		h.counter(CounterInput{By: "agent", Accept: "a"}, ErrTypeBadMove, nil) // 1216, over the budget
		h.counter(CounterInput{By: "", Price: 300}, ErrTypeBadMove, nil)
		h.counter(CounterInput{By: "agent", Price: 300, Accept: "a"}, ErrTypeBadMove, nil)
		h.counter(CounterInput{By: "agent", Price: 300}, "", keep)
	}, time.Minute)
	h.env.RegisterDelayedCallback(func() {
		if st := h.bargainStatus(); st == nil || st.Round != 1 || st.Offers[1] != (BargainOffer{"b", 735}) {
			t.Errorf("round 1 status %+v", st)
		}
		h.counter(CounterInput{By: "agent", Accept: "b"}, "", keep)
	}, 2*time.Minute+30*time.Second) // each round has its own timeout
	h.env.RegisterDelayedCallback(func() {
		h.counter(CounterInput{By: "agent", Price: 500}, ErrTypeNotBargaining, nil)
	}, 5*time.Minute)
	res := h.run()
	if res.Status != StatusSettled || res.Provider != "b" || res.Price != 735 {
		t.Fatalf("got %+v", res)
	}
	if len(replies) != 2 || replies[0].Over || len(replies[0].Offers) != 2 || replies[0].Round != 1 ||
		!replies[1].Over || replies[1].Agreed != "b" || replies[1].Price != 735 {
		t.Fatalf("replies %+v", replies)
	}
	var neg predicate.Negotiation
	for _, a := range h.attests {
		if a.Stage == predicate.StageNegotiation {
			if err := json.Unmarshal(a.Predicate, &neg); err != nil {
				t.Fatal(err)
			}
		}
	}
	var rec market.Result
	if err := json.Unmarshal(neg.Record, &rec); err != nil {
		t.Fatalf("negotiation record: %v", err)
	}
	if neg.Provider != "b" || neg.Price != 735 || len(rec.Rounds) != 6 || rec.Protocol != market.ProtocolAlternating ||
		rec.Rounds[2].By != "buyer" || rec.Rounds[2].Price != 300 || !rec.Rounds[5].Accepted {
		t.Fatalf("negotiation %+v rounds %+v", neg, rec.Rounds)
	}
}

func TestJobAgentBargainRoundTimeout(t *testing.T) {
	h := bargainHarness(t, bargainPlan())
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassNoOffers || h.placed {
		t.Fatalf("got %+v (placed %v)", res, h.placed)
	}
	if !strings.Contains(res.Error, "the buyer agent made no move in round 0 within 2m0s") {
		t.Fatalf("error %q", res.Error)
	}
}

func TestJobAgentBargainDeadline(t *testing.T) {
	h := bargainHarness(t, bargainPlan())
	for i := range 6 {
		h.env.RegisterDelayedCallback(func() { h.counter(CounterInput{By: "agent", Price: 1}, "", nil) }, time.Duration(i+1)*time.Minute)
	}
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassNoOffers || h.placed || !strings.Contains(res.Error, "reached its deadline (round 5)") {
		t.Fatalf("got %+v", res)
	}
}

func TestJobCounterRefusedWithoutAgentBuyer(t *testing.T) {
	plan := dagPlan()
	plan.ApprovalRequired, plan.Approvers = true, []string{"alice"}
	h := newHarness(t, plan)
	h.env.RegisterDelayedCallback(func() {
		h.counter(CounterInput{By: "agent", Price: 300}, ErrTypeNotBargaining, nil)
		h.approve("alice", "")
	}, time.Hour)
	if res := h.run(); res.Status != StatusSettled {
		t.Fatalf("got %+v", res)
	}
}

package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// Bargainer is a Negotiator that can also play the market side of a
// bargain whose buyer is an agent (negotiation.buyer: agent): the sellers
// taken once, and the award of an agreement.
type Bargainer interface {
	Snapshot(ctx context.Context, jobID string, plan *specs.Plan) (*market.Sellers, error)
	Agreed(ctx context.Context, plan *specs.Plan, res *market.Result) (Award, error)
}

// maxSellers bounds a snapshot that comes back from history.
const maxSellers = 8 << 20

// BargainSnapshot takes the sellers of an agent-played bargain (layout 8).
// Like Negotiate it is a pure function of the plan and the providers at
// the time; only the snapshot the workflow records counts.
func (a *Activities) BargainSnapshot(ctx context.Context, in workflows.NegotiateInput) (workflows.BargainSnapshotOutput, error) {
	b, ok := a.Negotiator.(Bargainer)
	if !ok {
		return workflows.BargainSnapshotOutput{}, permanent(workflows.ErrTypeNoOffers,
			fmt.Errorf("bargain %s: this worker's negotiator cannot bargain with a buyer agent", in.JobID))
	}
	plan, err := a.plan(ctx, in.PlanInput)
	if err != nil {
		return workflows.BargainSnapshotOutput{}, err
	}
	s, err := b.Snapshot(ctx, in.JobID, plan)
	if err != nil {
		if errors.Is(err, ErrNoOffers) {
			return workflows.BargainSnapshotOutput{}, permanent(workflows.ErrTypeNoOffers, err)
		}
		return workflows.BargainSnapshotOutput{}, fmt.Errorf("bargain %s: snapshot: %w", in.JobID, err)
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return workflows.BargainSnapshotOutput{}, fmt.Errorf("bargain %s: encode snapshot: %w", in.JobID, err)
	}
	a.logger(ctx, in.JobID).Info("bargain sellers", "sellers", len(s.Sellers))
	return workflows.BargainSnapshotOutput{Sellers: raw}, nil
}

// BargainRound replays the buyer agent's moves against the snapshot
// (market.Sellers.Play): the sellers' offers now, or the bargain's end,
// with the award and its record (every round) on agreement.
func (a *Activities) BargainRound(ctx context.Context, in workflows.BargainRoundInput) (workflows.BargainRoundOutput, error) {
	b, ok := a.Negotiator.(Bargainer)
	if !ok {
		return workflows.BargainRoundOutput{}, permanent(workflows.ErrTypeNoOffers,
			fmt.Errorf("bargain %s: this worker's negotiator cannot bargain with a buyer agent", in.JobID))
	}
	if len(in.Sellers) > maxSellers {
		return workflows.BargainRoundOutput{}, permanent(workflows.ErrTypeNoOffers, fmt.Errorf("bargain %s: snapshot of %d bytes", in.JobID, len(in.Sellers)))
	}
	var s market.Sellers
	if err := json.Unmarshal(in.Sellers, &s); err != nil {
		return workflows.BargainRoundOutput{}, permanent(workflows.ErrTypeNoOffers, fmt.Errorf("bargain %s: decode snapshot: %w", in.JobID, err))
	}
	moves := make([]market.Move, len(in.Moves))
	for i, m := range in.Moves {
		moves[i] = market.Move{Price: m.Price, Accept: m.Accept}
	}
	p, err := s.Play(moves)
	if err != nil {
		return workflows.BargainRoundOutput{}, permanent(workflows.ErrTypeNoOffers, fmt.Errorf("bargain %s: %w", in.JobID, err))
	}
	out := workflows.BargainRoundOutput{Round: p.Round, DeadlineRound: p.DeadlineRound, Budget: s.Budget,
		Currency: s.Currency, Over: p.Over, Offers: []workflows.BargainOffer{}}
	for _, o := range p.Offers {
		out.Offers = append(out.Offers, workflows.BargainOffer{Provider: o.Provider, Price: o.Price})
	}
	if !p.Over || len(p.Result.Awards) == 0 {
		return out, nil
	}
	plan, err := a.plan(ctx, in.PlanInput)
	if err != nil {
		return workflows.BargainRoundOutput{}, err
	}
	aw, err := b.Agreed(ctx, plan, p.Result)
	if err != nil {
		return workflows.BargainRoundOutput{}, fmt.Errorf("bargain %s: award: %w", in.JobID, err)
	}
	award := negotiated(aw)
	out.Award = &award
	a.logger(ctx, in.JobID).Info("bargain agreed", "provider", aw.Provider, "price", aw.Price, "round", p.Round)
	return out, nil
}

package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// An agent-played bargain (layout 8): the buyer's moves arrive as counter
// updates, one per round, each within the plan's round timeout.

// DefaultRoundTimeout bounds a round whose plan does not say
// (specs.DefaultRoundTimeout).
const DefaultRoundTimeout = 2 * time.Minute

// bargainState is the workflow's side of an agent-played bargain.
type bargainState struct {
	status  *BargainStatus // the round waiting for a move; nil otherwise
	move    *CounterInput  // the move accepted for this round
	replies []CounterOutput
}

// registerCounter installs the counter update (layout 8). Its validator
// refuses a move unless the job waits for one and the move is one the
// bargain can take, so a refused move leaves no trace in the job.
func (j *job) registerCounter(ctx workflow.Context) error {
	if j.layout < layoutAgentBuyer {
		return nil
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateCounter,
		func(ctx workflow.Context, in CounterInput) (CounterOutput, error) {
			n := len(j.bargain.replies)
			j.bargain.move = &in
			j.log.Info("counter-offer", "job_id", j.in.JobID, "by", in.By, "price", in.Price, "accept", in.Accept)
			// Answer with the sellers' response to this move.
			if err := workflow.Await(ctx, func() bool { return len(j.bargain.replies) > n }); err != nil {
				return CounterOutput{}, err
			}
			return j.bargain.replies[n], nil
		},
		workflow.UpdateHandlerOptions{Validator: j.validateCounter},
	)
	if err != nil {
		return fmt.Errorf("workflows: update %s: %w", UpdateCounter, err)
	}
	return nil
}

// validateCounter accepts one move per round, only while the job waits for
// it: a price in (0, budget], or an acceptance of a current offer.
func (j *job) validateCounter(in CounterInput) error {
	st := j.bargain.status
	switch {
	case st == nil || j.bargain.move != nil:
		return rejectMove(ErrTypeNotBargaining, "job %s is not waiting for a counter-offer (stage %s)", j.in.JobID, j.stage)
	case strings.TrimSpace(in.By) == "" || len(in.By) > MaxCounterBy:
		return rejectMove(ErrTypeBadMove, "a counter-offer needs the buyer's identity (at most %d bytes)", MaxCounterBy)
	case (in.Price != 0) == (in.Accept != ""):
		return rejectMove(ErrTypeBadMove, "a counter-offer is a price or an acceptance, exactly one")
	case in.Accept != "" && !slices.ContainsFunc(st.Offers, func(o BargainOffer) bool { return o.Provider == in.Accept }):
		return rejectMove(ErrTypeBadMove, "%q has no current offer for job %s", in.Accept, j.in.JobID)
	case in.Accept != "" && !slices.ContainsFunc(st.Offers, func(o BargainOffer) bool { return o.Provider == in.Accept && o.Price <= st.Budget }):
		return rejectMove(ErrTypeBadMove, "%q's offer is above %d, the job's budget for compute", in.Accept, st.Budget)
	case in.Accept == "" && (in.Price <= 0 || in.Price > st.Budget):
		return rejectMove(ErrTypeBadMove, "price %d is outside (0, %d], the job's budget for compute", in.Price, st.Budget)
	}
	return nil
}

func rejectMove(typ, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), typ, nil)
}

// negotiateAgent plays the bargain: the sellers once, then per round their
// offers in the status, the buyer agent's move (or the round timeout), and
// the sellers' response.
func (j *job) negotiateAgent(ctx workflow.Context) (NegotiateOutput, error) {
	snap, err := control(ctx, j.layout, BargainSnapshot, NegotiateInput{JobID: j.in.JobID, PlanInput: j.planIn}, time.Minute)
	if err != nil {
		return NegotiateOutput{}, classify(ctx, err, ClassNoOffers)
	}
	in := BargainRoundInput{JobID: j.in.JobID, PlanInput: j.planIn, Sellers: snap.Sellers, Moves: []CounterInput{}}
	for {
		st, err := control(ctx, j.layout, BargainRound, in, time.Minute)
		if err != nil {
			j.endBargain(CounterOutput{Round: len(in.Moves), Over: true})
			return NegotiateOutput{}, classify(ctx, err, ClassNoOffers)
		}
		if st.Over {
			return j.bargainOver(st)
		}
		timeout := j.plan.RoundTimeout
		if timeout <= 0 {
			timeout = DefaultRoundTimeout
		}
		j.bargain.status = &BargainStatus{Round: st.Round, DeadlineRound: st.DeadlineRound, Budget: st.Budget,
			Currency: st.Currency, Timeout: workflow.Now(ctx).Add(timeout), Offers: st.Offers}
		if len(in.Moves) > 0 {
			j.bargain.replies = append(j.bargain.replies, CounterOutput{Round: st.Round, Offers: st.Offers})
		}
		moved, err := workflow.AwaitWithTimeout(ctx, timeout, func() bool { return j.bargain.move != nil })
		if err != nil {
			j.bargain.status = nil
			return NegotiateOutput{}, fail(ClassCancelled, errors.New("cancelled while bargaining"))
		}
		if !moved {
			j.bargain.status = nil
			return NegotiateOutput{}, fail(ClassNoOffers, fmt.Errorf("no agreement: the buyer agent made no move in round %d within %s", st.Round, timeout))
		}
		in.Moves = append(in.Moves, *j.bargain.move)
		j.bargain.status, j.bargain.move = nil, nil
	}
}

// bargainOver ends the bargain: the award on agreement, else no offers.
func (j *job) bargainOver(st BargainRoundOutput) (NegotiateOutput, error) {
	j.bargain.status = nil
	if st.Award == nil {
		j.endBargain(CounterOutput{Round: st.Round, Over: true})
		return NegotiateOutput{}, fail(ClassNoOffers, fmt.Errorf("no agreement: the bargain reached its deadline (round %d)", st.DeadlineRound))
	}
	j.endBargain(CounterOutput{Round: st.Round, Over: true, Agreed: st.Award.Provider, Price: st.Award.Price})
	return *st.Award, nil
}

// endBargain answers the move that ended the bargain, if a move did.
func (j *job) endBargain(out CounterOutput) {
	if out.Round > len(j.bargain.replies) {
		j.bargain.replies = append(j.bargain.replies, out)
	}
}
